"""cocotb test module of the synapse memory (runs inside Verilator or Icarus; see ``cosim.synapse``).

The job (the scenario's organisation, seed and density, the idle rate and the fault) comes as JSON from
the file named by ``NEUROMOSAIC_JOB``; the scenario is rebuilt from it (it is deterministic), so the
testbench predicts from the same memory the Verilog was generated from. A harness job may list
``variants`` (other commands and idle rates on the same memory), run one after the other from the
design's reset.
"""

import cocotb
from neuromosaic.cosim.batch_loop import run_batched
from neuromosaic.cosim.cocotb_loop import (
    cocotb_port,
    job_variants,
    run_back_to_back,
    run_job,
    run_mutants,
    select_mutant,
)
from neuromosaic.cosim.synapse.testbench import SynapseTestbench, synapse_scenario


def _start(tb, index, item, cycle):
    tb.start(item, cycle)


def _body(dut):
    async def body(job, clock):
        select_mutant(dut, job)
        finished = []
        for arguments, options in job_variants(job):
            scenario = synapse_scenario(**arguments)
            tb = SynapseTestbench(scenario.memory, lambda n: cocotb_port(dut, n), options)
            if job.get("layout"):
                await run_batched(dut, tb, [scenario], _start, job["layout"], options, clock)
            else:
                await run_back_to_back(dut, tb, [scenario], _start, ("commands",), (), clock)
            finished.append(tb.finish())
        return finished[0] if len(finished) == 1 else {"variants": finished}
    return body


@cocotb.test()
async def synapse_scoreboard(dut):
    """Every access and result against the golden model, then the access counters."""
    await run_job(_body(dut))


@cocotb.test()
async def synapse_mutants(dut):
    """The scoreboard's run once per mutant of a mutant netlist, in one simulation."""
    await run_mutants(_body(dut))
