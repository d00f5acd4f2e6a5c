"""The run loop of the simulator-independent testbenches in Amaranth's own simulator (fast unit tests,
no Verilog); each design's ``amaranth_sim`` module runs its testbench through it. The cocotb
counterpart is ``cocotb_loop``."""

from __future__ import annotations

import time

from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from .agents import Port
from .options import CosimResult

__all__ = ["back_to_back"]


def _resolve(dut, name):
    obj = dut
    for part in name.split("__"):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj.as_value() if hasattr(obj, "as_value") else obj


def back_to_back(dut, make_tb, items, start, inputs, vcd=None) -> CosimResult:
    """Runs ``items`` on ``dut`` one after the other with a two-cycle synchronous reset between
    them (the first starts from the reset at time 0): ``make_tb(port)`` builds the testbench,
    ``start(tb, index, item, cycle)`` begins an item, then ``drive`` and ``sample`` once a cycle
    until ``tb.done``. ``inputs``: the stream ports whose ``valid`` drops during a reset. Returns what
    ``tb.finish()`` reports as a :class:`~.options.CosimResult` of the simulator ``"amaranth"``."""
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
    began = time.perf_counter()
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    wall = time.perf_counter() - began
    result.update(wall_s=wall, cycles_per_s=result["cycles"] / wall if wall else 0.0)
    return CosimResult.from_job_result("amaranth", result, "")
