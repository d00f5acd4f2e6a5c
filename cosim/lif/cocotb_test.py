"""cocotb test module of the LIF core (runs inside Verilator or Icarus; see ``cosim.lif``).

The job (config, seeds, steps, fault, idle and backpressure rates) comes as JSON from the file named
by ``NEUROMOSAIC_JOB``; the result (pass/fail, the mismatch, counts, coverage, speed) goes back as
JSON to the path the job names.
"""

import cocotb
from neuromosaic.cosim.batch_loop import run_batched
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_back_to_back, run_job, run_mutants, select_mutant
from neuromosaic.cosim.lif.stimulus import saturated_scenario, scenarios, synapse_pass_scenario, synapse_scenarios
from neuromosaic.cosim.lif.testbench import LIFTestbench
from neuromosaic.cosim.options import RunOptions
from neuromosaic.model.config import LIFConfig


def _body(dut, scoreboard: bool):
    async def body(job, clock):
        select_mutant(dut, job)
        config = LIFConfig.from_dict(job["config"])
        synapses = job.get("synapses")
        if synapses and job.get("forward_pass"):
            scns = [synapse_pass_scenario(config, **synapses)]
        elif synapses:
            scns = synapse_scenarios(config, seeds=job["seeds"], steps=job["steps"], **synapses)
        elif job.get("saturated"):
            scns = [saturated_scenario(config, job["steps"], job["saturated"])]
        else:
            scns = scenarios(config, job["seeds"], job["steps"], corners=job.get("corners", True),
                             first_seed=job.get("first_seed", 0))
        options = RunOptions(**job["options"])
        tb = LIFTestbench(config, lambda n: cocotb_port(dut, n), options, scoreboard=scoreboard,
                          synapses=scns[0].memory if synapses else None)

        def start(tb, index, scenario, cycle):
            # The weight memory holds the first scenario's (seed 0's) weights only in a fresh simulation.
            tb.start(scenario, cycle, load_weights=index > 0 or job.get("resumed", False)
                     or job.get("first_seed", 0) != 0)

        if job["layout"]:
            spans = await run_batched(dut, tb, scns, start, job["layout"], options, clock, check=scoreboard,
                                      item_cycles=job.get("item_cycles"))
        else:
            spans = await run_back_to_back(dut, tb, scns, start, ("events", "weights"), ("spikes",), clock)
        return {**tb.finish(), "scoreboard": scoreboard, "scenarios": len(scns), "item_cycles": spans}

    return body


@cocotb.test()
async def lif_scoreboard(dut):
    """Every state write and output event against the golden model, with cycles."""
    await run_job(_body(dut, scoreboard=True))


@cocotb.test()
async def lif_mutants(dut):
    """The scoreboard's run once per mutant of a mutant netlist, in one simulation."""
    await run_mutants(_body(dut, scoreboard=True))


@cocotb.test()
async def lif_bare_loop(dut):
    """The same stimulus through a bare per-cycle loop without monitors or scoreboard (speed reference)."""
    await run_job(_body(dut, scoreboard=False))
