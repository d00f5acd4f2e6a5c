"""Runs the simulator-independent LIF testbench in Amaranth's own simulator (fast unit tests, no
Verilog). The cocotb counterpart is ``cosim/lif_tb.py``."""

from __future__ import annotations

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from ..model.config import LIFConfig
from ..rtl.lif import LIFCore
from .harness import Port
from .lif_bench import LIFTestbench
from .stimulus import Scenario

__all__ = ["simulate_lif"]


def _resolve(dut, name):
    obj = dut
    for part in name.split("__"):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj.as_value() if hasattr(obj, "as_value") else obj


def _back_to_back(dut, make_tb, items, start, inputs, vcd=None) -> dict:
    """Runs ``items`` on ``dut`` one after the other with a two-cycle synchronous reset between
    them (the first starts from the reset at time 0): ``make_tb(port)`` builds the testbench,
    ``start(tb, index, item, cycle)`` begins an item, then ``drive`` and ``sample`` once a cycle
    until ``tb.done``. ``inputs``: the stream ports whose ``valid`` drops during a reset."""
    m = Module()
    m.domains.sync = cd = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6)
    result = {}

    async def testbench(ctx):
        def port(name):
            sig = _resolve(dut, name)
            return Port(name, lambda: ctx.get(sig), lambda v: ctx.set(sig, v))

        tb = make_tb(port)
        cycle = 0
        for index, item in enumerate(items):
            if index:
                for name in inputs:
                    ctx.set(getattr(dut, name).valid, 0)
                ctx.set(cd.rst, 1)
                await ctx.tick()
                await ctx.tick()
                ctx.set(cd.rst, 0)
                cycle += 2
            start(tb, index, item, cycle)
            while not tb.done:
                tb.drive()
                tb.sample(cycle)
                await ctx.tick()
                cycle += 1
        result.update(tb.finish(), cycles=cycle)

    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result


def simulate_lif(config: LIFConfig, scenarios: list[Scenario], *, seed=0, idle=0.2, backpressure=0.3,
                 fault=None, vcd=None) -> dict:
    """Runs ``scenarios`` back to back on one core, with a reset between them. The first uses the
    weights the core was elaborated with; the others load theirs through the weight port. Scenarios
    with a synapse memory (``stimulus.synapse_scenarios``) run on a core built with the first one's."""
    memory = scenarios[0].memory
    return _back_to_back(
        LIFCore(config, scenarios[0].weights) if memory is None else LIFCore(config, synapses=memory),
        lambda port: LIFTestbench(config, port, seed=seed, idle=idle, backpressure=backpressure, fault=fault,
                                  synapses=memory),
        scenarios, lambda tb, index, scenario, cycle: tb.start(scenario, cycle, load_weights=index > 0),
        ("events", "weights"), vcd)


def simulate_learning(config, cfg, episodes, *, seed=0, idle=0.2, backpressure=0.3, fault=None, vcd=None,
                      synapses=None, core_synapses=None) -> dict:
    """Runs few-shot ``episodes`` on one ``LearningCore`` (episodes through the core: with
    ``w_core``) or ``LearningEngine`` (hidden rasters only), with a reset between them (the first
    starts from the reset at time 0), checked by :class:`~.learning_bench.LearningTestbench`.
    ``synapses``: the readout in a synapse memory (``learning_bench.readout_memory``);
    ``core_synapses``: the core's weights in one (``learning_bench.core_memory``)."""
    from ..rtl.learning import LearningCore, LearningEngine
    from .learning_bench import LearningTestbench, core_memory, readout_memory, stream_inputs

    core = episodes[0].through_core
    readout = readout_memory(config, synapses)
    result = _back_to_back(
        LearningCore(config, cfg, core_synapses=core_memory(config, core_synapses), readout_synapses=readout)
        if core else LearningEngine(config, cfg, synapses=readout),
        lambda port: LearningTestbench(config, cfg, port, seed=seed, idle=idle, backpressure=backpressure,
                                       fault=fault, core=core, synapses=synapses, core_synapses=core_synapses),
        episodes, lambda tb, index, episode, cycle: tb.start(episode, cycle), stream_inputs(core), vcd)
    return {**result, "episodes": len(episodes)}


def simulate_mosaic(mc, cfg, episodes, *, seed=0, idle=0.2, backpressure=0.3, fault=None, tables=None,
                    vcd=None) -> dict:
    """Runs few-shot ``episodes`` (through the core: with ``w_core``) on one ``rtl.mosaic.Mosaic`` of
    ``mc``, every hidden spike, logit and weight write checked by
    :class:`~.learning_bench.LearningTestbench` against the whole network's model. ``tables``: the
    mesh's routing tables (default: every source to every other tile, right for any weights)."""
    from ..rtl.mosaic import Mosaic
    from .learning_bench import LearningTestbench, stream_inputs

    result = _back_to_back(
        Mosaic(mc, cfg, tables=tables),
        lambda port: LearningTestbench(mc.network, cfg, port, seed=seed, idle=idle, backpressure=backpressure,
                                       fault=fault, core=True, core_loads=mc.core_load_words),
        episodes, lambda tb, index, episode, cycle: tb.start(episode, cycle), stream_inputs(True), vcd)
    return {**result, "episodes": len(episodes)}


def simulate_router(scenario, *, seed=0, idle=0.3, backpressure=0.3, fault=None, vcd=None) -> dict:
    """Runs a router scenario (``router_bench.router_scenario``) on ``rtl.router.Router``, every
    output of every cycle checked against ``model.router.RouterModel``."""
    from ..rtl.router import Router
    from .router_bench import RouterTestbench

    s = scenario
    return _back_to_back(
        Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth, s.tables),
        lambda port: RouterTestbench(s, port, seed=seed, idle=idle, backpressure=backpressure, fault=fault),
        [s], lambda tb, index, item, cycle: tb.start(item, cycle), [f"in_{p}" for p in s.in_ports], vcd)


def simulate_mesh(scenario, *, seed=0, idle=0.3, backpressure=0.3, fault=None, load_tables=False, vcd=None) -> dict:
    """Runs a mesh scenario (``router_bench.mesh_scenario``) on ``rtl.router.MeshFabric``, every link
    of every cycle checked against ``model.router.MeshModel``, then spike conservation.
    ``load_tables``: the fabric starts empty and the tables are written through its table port."""
    from ..rtl.router import MeshFabric
    from .router_bench import MeshTestbench

    return _back_to_back(
        MeshFabric(scenario.tables.mesh, None if load_tables else scenario.tables),
        lambda port: MeshTestbench(scenario, port, seed=seed, idle=idle, backpressure=backpressure, fault=fault,
                                   load_tables=load_tables),
        [scenario], lambda tb, index, item, cycle: tb.start(item, cycle), ("table",), vcd)


def simulate_synapse(scenario, *, seed=0, idle=0.2, fault=None, vcd=None) -> dict:
    """Runs a synapse memory scenario on the RTL of its organisation, checked by
    :class:`~.synapse_bench.SynapseTestbench`."""
    from ..rtl.synapse import SynapseMemory
    from .synapse_bench import SynapseTestbench

    return _back_to_back(
        SynapseMemory(scenario.memory),
        lambda port: SynapseTestbench(scenario.memory, port, seed=seed, idle=idle, fault=fault),
        [scenario], lambda tb, index, item, cycle: tb.start(item, cycle), ("commands",), vcd)
