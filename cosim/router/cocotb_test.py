"""cocotb test module of the router and the mesh fabric (runs inside Verilator or Icarus; see
``cosim.router``). The job names the scenario's arguments; the scenario is rebuilt from them (it is
deterministic), so the testbench predicts from the same tables the Verilog was generated from. A job
with a harness layout runs in the batch harness (the replaying testbenches), one without per cycle."""

import cocotb
from neuromosaic.cosim.batch_loop import run_batched
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_back_to_back, run_job
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.router.testbench import (
    MeshReplay,
    MeshTestbench,
    RouterReplay,
    RouterTestbench,
    mesh_scenario,
    router_scenario,
)


def _start(tb, index, item, cycle):
    tb.start(item, cycle)


@cocotb.test()
async def router_scoreboard(dut):
    """Every in-port's take and every out-port's transfer (per cycle: every ready and valid), against the model."""
    async def body(job, clock):
        scenario = router_scenario(**job["scenario"])
        options = RunOptions(**job["options"])
        port = lambda n: cocotb_port(dut, n)     # noqa: E731
        if job.get("layout"):
            tb = RouterReplay(scenario, port, options)
            await run_batched(dut, tb, [scenario], _start, job["layout"], options, clock, idle_inputs=("table",))
        else:
            tb = RouterTestbench(scenario, port, options)
            await run_back_to_back(dut, tb, [scenario], _start, [f"in_{p}" for p in scenario.in_ports],
                                   [f"out_{q}" for q in scenario.out_ports], clock)
        return tb.finish()

    await run_job(body)


@cocotb.test()
async def mesh_scoreboard(dut):
    """Every link's handshake, injection and delivery against the model; then spike conservation."""
    async def body(job, clock):
        scenario = mesh_scenario(**job["scenario"])
        options = RunOptions(**job["options"])
        port = lambda n: cocotb_port(dut, n)     # noqa: E731
        load = job.get("load_tables", False)
        tiles = scenario.tables.mesh.tiles
        if job.get("layout"):
            tb = MeshReplay(scenario, port, options, load_tables=load)
            await run_batched(dut, tb, [scenario], _start, job["layout"], options, clock,
                              idle_inputs=() if load else ("table",))
        else:
            tb = MeshTestbench(scenario, port, options, load_tables=load)
            await run_back_to_back(dut, tb, [scenario], _start, [f"inject__{t}" for t in range(tiles)] + ["table"],
                                   [f"deliver__{t}" for t in range(tiles)], clock)
        return tb.finish()

    await run_job(body)
