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
        obj = getattr(obj, part)
    return obj.as_value() if hasattr(obj, "as_value") else obj


def simulate_lif(config: LIFConfig, scenarios: list[Scenario], *, seed=0, idle=0.2, backpressure=0.3,
                 fault=None, vcd=None) -> dict:
    """Runs ``scenarios`` back to back on one core, with a reset between them. The first uses the
    weights the core was elaborated with; the others load theirs through the weight port."""
    dut = LIFCore(config, scenarios[0].weights)
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

        tb = LIFTestbench(config, port, seed=seed, idle=idle, backpressure=backpressure, fault=fault)
        cycle = 0
        for index, scenario in enumerate(scenarios):
            if index:
                # Synchronous reset for two cycles; ``cycle`` is then the first cycle after it.
                ctx.set(dut.events.valid, 0)
                ctx.set(dut.weights.valid, 0)
                ctx.set(cd.rst, 1)
                await ctx.tick()
                await ctx.tick()
                ctx.set(cd.rst, 0)
                cycle += 2
            tb.start(scenario, cycle, load_weights=index > 0)
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


def simulate_learning(config, cfg, episodes, *, seed=0, idle=0.2, backpressure=0.3, fault=None, vcd=None) -> dict:
    """Runs few-shot ``episodes`` on one ``LearningCore`` (episodes through the core: with
    ``w_core``) or ``LearningEngine`` (hidden rasters only), with a reset between them (the first
    starts from the reset at time 0), checked by :class:`~.learning_bench.LearningTestbench`."""
    from ..rtl.learning import LearningCore, LearningEngine
    from .learning_bench import LearningTestbench

    core = episodes[0].through_core
    dut = LearningCore(config, cfg) if core else LearningEngine(config, cfg)
    inputs = ("events", "command", "weights", "core_weights") if core else ("spikes", "command", "weights")
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

        tb = LearningTestbench(config, cfg, port, seed=seed, idle=idle, backpressure=backpressure, fault=fault,
                               core=core)
        cycle = 0
        for index, episode in enumerate(episodes):
            if index:
                for name in inputs:
                    ctx.set(getattr(dut, name).valid, 0)
                ctx.set(cd.rst, 1)
                await ctx.tick()
                await ctx.tick()
                ctx.set(cd.rst, 0)
                cycle += 2
            tb.start(episode, cycle)
            while not tb.done:
                tb.drive()
                tb.sample(cycle)
                await ctx.tick()
                cycle += 1
        result.update(tb.finish(), cycles=cycle, episodes=len(episodes))

    sim.add_testbench(testbench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return result
