"""cocotb test module of the router and the mesh fabric (runs inside Verilator or Icarus; see
``cosim.router``). The job names the scenario's arguments; the scenario is rebuilt from them (it is
deterministic), so the testbench predicts from the same tables the Verilog was generated from. A job
with a harness layout runs in the batch harness (the replaying testbenches), one without per cycle.
A harness job may list ``variants``: changes to the scenario's arguments and the options, run one
after the other from the design's reset (other traffic and other patterns through the same tables)."""

from functools import partial

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


def _body(dut, run_one):
    """The test body: the mutant selected, then ``await run_one(job, arguments, options, port,
    clock)`` (one scenario's run, its testbench's ``finish()``) for each variant of the job."""
    async def body(job, clock):
        select_mutant(dut, job)
        port = lambda n: cocotb_port(dut, n)     # noqa: E731
        finished = [await run_one(job, arguments, options, port, clock) for arguments, options in job_variants(job)]
        return finished[0] if len(finished) == 1 else {"variants": finished}
    return body


async def _router_run(dut, job, arguments, options, port, clock) -> dict:
    scenario = router_scenario(**arguments)
    load = job.get("load_tables", False)
    if job.get("layout"):
        tb = RouterReplay(scenario, port, options, load_tables=load)
        await run_batched(dut, tb, [scenario], _start, job["layout"], options, clock,
                          idle_inputs=() if load else ("table",))
    else:
        tb = RouterTestbench(scenario, port, options)
        await run_back_to_back(dut, tb, [scenario], _start, [f"in_{p}" for p in scenario.in_ports],
                               [f"out_{q}" for q in scenario.out_ports], clock)
    return tb.finish()


async def _mesh_run(dut, job, arguments, options, port, clock) -> dict:
    scenario = mesh_scenario(**arguments)
    tiles = scenario.tables.mesh.tiles
    load = job.get("load_tables", False)
    if job.get("layout"):
        tb = MeshReplay(scenario, port, options, load_tables=load, every_source=job.get("every_source", False))
        await run_batched(dut, tb, [scenario], _start, job["layout"], options, clock,
                          idle_inputs=() if load else ("table",))
    else:
        tb = MeshTestbench(scenario, port, options, load_tables=load)
        await run_back_to_back(dut, tb, [scenario], _start, [f"inject__{t}" for t in range(tiles)] + ["table"],
                               [f"deliver__{t}" for t in range(tiles)], clock)
    return tb.finish()


def _router_body(dut):
    return _body(dut, partial(_router_run, dut))


def _mesh_body(dut):
    return _body(dut, partial(_mesh_run, dut))


@cocotb.test()
async def router_scoreboard(dut):
    """Every in-port's take and every out-port's transfer (per cycle: every ready and valid), against the model."""
    await run_job(_router_body(dut))


@cocotb.test()
async def router_mutants(dut):
    """The router's scoreboard once per mutant of a mutant netlist, in one simulation."""
    await run_mutants(_router_body(dut))


@cocotb.test()
async def mesh_scoreboard(dut):
    """Every link's handshake, injection and delivery against the model; then spike conservation."""
    await run_job(_mesh_body(dut))


@cocotb.test()
async def mesh_mutants(dut):
    """The fabric's scoreboard once per mutant of a mutant netlist, in one simulation."""
    await run_mutants(_mesh_body(dut))
