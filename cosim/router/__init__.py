"""Cosimulation of the router and the mesh fabric: their Verilog under Verilator or Icarus through
cocotb, checked cycle by cycle against ``model.router`` (``testbench``), in the batch harness (the
default) or per cycle."""

from __future__ import annotations

from ...rtl.router import MeshFabric, Router
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, harness_run, per_cycle_run
from .testbench import ROUTER_OPTIONS, mesh_harness, mesh_scenario, router_harness, router_scenario

__all__ = ["run_router_cosim", "run_mesh_cosim"]

TEST_MODULE = "neuromosaic.cosim.router.cocotb_test"


def _build(sim: str, design, name: str, options: RunOptions, ports: dict) -> tuple[CocotbRun, dict | None]:
    """The simulator model of the design ``design()`` makes: per cycle, or in its batch harness with
    ``ports`` (and the harness's layout)."""
    if options.per_cycle:
        return per_cycle_run(sim, design, name, waves=options.waves, optimise=options.optimise), None
    return harness_run(sim, design, name, waves=options.waves, optimise=options.optimise, **ports)


def run_router_cosim(sim: str, *, options: RunOptions = ROUTER_OPTIONS, name: str = "run", **scenario) -> CosimResult:
    """One router with random tables and traffic (``scenario``: arguments of
    :func:`~.testbench.router_scenario`). Raises :class:`~..runner.CosimError` on any mismatch."""
    s = router_scenario(**scenario)
    run, layout = _build(sim, lambda: Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth, s.tables), "router",
                         options, router_harness(s))
    job = {"scenario": scenario, "options": options.to_job(), "layout": layout}
    result = run.test(TEST_MODULE, "router_scoreboard", job, name)
    return CosimResult.from_job_result(sim, result, run.build_dir)


def run_mesh_cosim(sim: str, *, options: RunOptions = ROUTER_OPTIONS, load_tables: bool = False, name: str = "run",
                   **scenario) -> CosimResult:
    """The mesh fabric of a random compiled connectivity (``scenario``: arguments of
    :func:`~.testbench.mesh_scenario`) under random spikes and backpressure; ``options.idle=0`` saturates
    the injectors; ``load_tables``: the fabric starts empty and the testbench writes the tables through
    its table port first. Raises :class:`~..runner.CosimError` on any mismatch or lost spike."""
    s = mesh_scenario(**scenario)
    run, layout = _build(sim, lambda: MeshFabric(s.tables.mesh, None if load_tables else s.tables), "mesh_fabric",
                         options, mesh_harness(s, load_tables))
    job = {"scenario": scenario, "options": options.to_job(), "load_tables": load_tables, "layout": layout}
    result = run.test(TEST_MODULE, "mesh_scoreboard", job, name)
    return CosimResult.from_job_result(sim, result, run.build_dir)
