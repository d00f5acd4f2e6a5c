"""cocotb test module of the router and the mesh fabric (runs inside Verilator or Icarus; see
``cosim.router``). The job names the scenario's arguments; the scenario is rebuilt from them (it is
deterministic), so the testbench predicts from the same tables the Verilog was generated from."""

import cocotb
from neuromosaic.cosim.cocotb_loop import cocotb_port, run_back_to_back, run_job
from neuromosaic.cosim.options import RunOptions
from neuromosaic.cosim.router.testbench import MeshTestbench, RouterTestbench, mesh_scenario, router_scenario


def _bench(job, dut, cls, scenario, **more):
    return cls(scenario, lambda n: cocotb_port(dut, n), RunOptions(**job["options"]), **more)


@cocotb.test()
async def router_scoreboard(dut):
    """Every in-port's ready and every out-port's valid and address, every cycle, against the model."""
    async def body(job, clock):
        scenario = router_scenario(**job["scenario"])
        tb = _bench(job, dut, RouterTestbench, scenario)
        await run_back_to_back(dut, tb, [scenario], lambda tb, index, item, cycle: tb.start(item, cycle),
                               [f"in_{p}" for p in scenario.in_ports], [f"out_{q}" for q in scenario.out_ports], clock)
        return tb.finish()

    await run_job(body)


@cocotb.test()
async def mesh_scoreboard(dut):
    """Every link's handshake, every cycle, against the model; then spike conservation."""
    async def body(job, clock):
        scenario = mesh_scenario(**job["scenario"])
        tb = _bench(job, dut, MeshTestbench, scenario, load_tables=job.get("load_tables", False))
        tiles = scenario.tables.mesh.tiles
        await run_back_to_back(dut, tb, [scenario], lambda tb, index, item, cycle: tb.start(item, cycle),
                               [f"inject__{t}" for t in range(tiles)] + ["table"],
                               [f"deliver__{t}" for t in range(tiles)],
                               clock)
        return tb.finish()

    await run_job(body)
