"""cocotb test module of the LIF core (runs inside Verilator or Icarus; see ``cosim/lif.py``).

The job (config, seeds, steps, fault, idle and backpressure rates) comes as JSON from the file named
by ``NEUROMOSAIC_JOB``; the result (pass/fail, the mismatch, counts, coverage, speed) goes back as
JSON to the path the job names.
"""

import json
import os
import time
import traceback

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from neuromosaic.cosim.cocotb_ports import cocotb_port
from neuromosaic.cosim.lif_bench import LIFTestbench
from neuromosaic.cosim.stimulus import saturated_scenario, scenarios
from neuromosaic.model.config import LIFConfig


async def _run(dut, scoreboard: bool):
    job = json.loads(open(os.environ["NEUROMOSAIC_JOB"]).read())
    config = LIFConfig.from_dict(job["config"])
    result = {"passed": False, "scoreboard": scoreboard}
    start = time.perf_counter()
    cycle = 0
    try:
        if job.get("saturated"):
            scns = [saturated_scenario(config, job["steps"], job["saturated"])]
        else:
            scns = scenarios(config, job["seeds"], job["steps"], corners=job.get("corners", True))
        tb = LIFTestbench(config, lambda n: cocotb_port(dut, n), seed=job.get("rng_seed", 0),
                          idle=job.get("idle", 0.2), backpressure=job.get("backpressure", 0.3),
                          fault=job.get("fault"), scoreboard=scoreboard)
        dut.rst.value = 1           # before the first edge: Icarus starts undriven inputs at X
        Clock(dut.clk, 10, unit="ns").start()
        dut.events__valid.value = 0
        dut.weights__valid.value = 0
        dut.spikes__ready.value = 0
        edge, settle = RisingEdge(dut.clk), ReadOnly()
        for index, scenario in enumerate(scns):
            # Two cycles of synchronous reset; ``cycle`` is then the first cycle after it.
            await edge
            dut.rst.value = 1
            dut.events__valid.value = 0
            dut.weights__valid.value = 0
            await edge
            cycle += 2
            tb.start(scenario, cycle, load_weights=index > 0)
            first = True
            while not tb.done:
                await edge
                if first:
                    dut.rst.value = 0
                    first = False
                tb.drive()
                await settle
                tb.sample(cycle)
                cycle += 1
        result.update(tb.finish(), passed=True, scenarios=len(scns))
    except Exception as e:  # the mismatch is the result; the test still fails below
        result["error"] = str(e) if isinstance(e, AssertionError) else traceback.format_exc()
    wall = time.perf_counter() - start
    result.update(cycles=cycle, wall_s=wall, cycles_per_s=cycle / wall if wall else 0.0)
    with open(job["result"], "w") as f:
        json.dump(result, f)
    assert result["passed"], result.get("error")


@cocotb.test()
async def lif_scoreboard(dut):
    """Every state write and output event against the golden model, with cycles."""
    await _run(dut, scoreboard=True)


@cocotb.test()
async def lif_bare_loop(dut):
    """The same stimulus through a bare per-cycle loop without monitors or scoreboard (speed reference)."""
    await _run(dut, scoreboard=False)
