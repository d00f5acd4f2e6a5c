"""cocotb test module of the synapse memory (runs inside Verilator or Icarus; see ``cosim.synapse``).

The job (the scenario's organisation, seed and density, the idle rate and the fault) comes as JSON from
the file named by ``NEUROMOSAIC_JOB``; the scenario is rebuilt from it (it is deterministic), so the
testbench predicts from the same memory the Verilog was generated from.
"""

import cocotb
from neuromosaic.cosim.batch_loop import run_batched
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_back_to_back, run_job
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.synapse.testbench import SynapseTestbench, synapse_scenario


@cocotb.test()
async def synapse_scoreboard(dut):
    """Every access and result against the golden model, then the access counters."""
    async def body(job, clock):
        scenario = synapse_scenario(**job["scenario"])
        options = RunOptions(**job["options"])
        tb = SynapseTestbench(scenario.memory, lambda n: cocotb_port(dut, n), options)

        def start(tb, index, item, cycle):
            tb.start(item, cycle)

        if job.get("layout"):
            await run_batched(dut, tb, [scenario], start, job["layout"], options, clock)
        else:
            await run_back_to_back(dut, tb, [scenario], start, ("commands",), (), clock)
        return tb.finish()

    await run_job(body)
