"""Cosimulation of the router and the mesh fabric: their Verilog under Verilator or Icarus through
cocotb, checked cycle by cycle against ``model.router`` (``testbench``)."""

from __future__ import annotations

from ...rtl.router import MeshFabric, Router
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, generate_verilog
from .testbench import ROUTER_OPTIONS, mesh_scenario, router_scenario

__all__ = ["run_router_cosim", "run_mesh_cosim"]

TEST_MODULE = "neuromosaic.cosim.router.cocotb_test"


def run_router_cosim(sim: str, *, options: RunOptions = ROUTER_OPTIONS, name: str = "run", **scenario) -> CosimResult:
    """One router with random tables and traffic (``scenario``: arguments of
    :func:`~.testbench.router_scenario`). Raises :class:`~..runner.CosimError` on any mismatch."""
    s = router_scenario(**scenario)
    verilog = generate_verilog(Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth, s.tables), "router")
    run = CocotbRun(sim, verilog, "router", waves=options.waves)
    job = {"scenario": scenario, "options": options.to_job()}
    result = run.test(TEST_MODULE, "router_scoreboard", job, name)
    return CosimResult.from_job_result(sim, result, run.build_dir)


def run_mesh_cosim(sim: str, *, options: RunOptions = ROUTER_OPTIONS, load_tables: bool = False, name: str = "run",
                   **scenario) -> CosimResult:
    """The mesh fabric of a random compiled connectivity (``scenario``: arguments of
    :func:`~.testbench.mesh_scenario`) under random spikes and backpressure; ``options.idle=0`` saturates
    the injectors; ``load_tables``: the fabric starts empty and the testbench writes the tables through
    its table port first. Raises :class:`~..runner.CosimError` on any mismatch or lost spike."""
    s = mesh_scenario(**scenario)
    verilog = generate_verilog(MeshFabric(s.tables.mesh, None if load_tables else s.tables), "mesh_fabric")
    run = CocotbRun(sim, verilog, "mesh_fabric", waves=options.waves)
    job = {"scenario": scenario, "options": options.to_job(), "load_tables": load_tables}
    result = run.test(TEST_MODULE, "mesh_scoreboard", job, name)
    return CosimResult.from_job_result(sim, result, run.build_dir)
