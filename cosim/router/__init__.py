"""Cosimulation of the router and the mesh fabric: their Verilog under Verilator or Icarus through
cocotb, checked cycle by cycle against ``model.router`` (``testbench``), in the batch harness (the
default) or per cycle."""

from __future__ import annotations

from ...rtl.router import MeshFabric, Router
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, harness_run, harness_verilog, per_cycle_run
from .testbench import ROUTER_OPTIONS, mesh_harness, mesh_scenario, router_harness, router_scenario

__all__ = ["run_router_cosim", "run_mesh_cosim", "router_mutation_target", "mesh_mutation_target"]

TEST_MODULE = "neuromosaic.cosim.router.cocotb_test"


def _build(sim: str, design, name: str, options: RunOptions, ports: dict) -> tuple[CocotbRun, dict | None]:
    """The simulator model of the design ``design()`` makes: per cycle, or in its batch harness with
    ``ports`` (and the harness's layout)."""
    if options.per_cycle:
        return per_cycle_run(sim, design, name, waves=options.waves, optimise=options.optimise), None
    return harness_run(sim, design, name, waves=options.waves, optimise=options.optimise, **ports)


def run_router_cosim(sim: str, *, options: RunOptions = ROUTER_OPTIONS, load_tables: bool = False, name: str = "run",
                     **scenario) -> CosimResult:
    """One router with random tables and traffic (``scenario``: arguments of
    :func:`~.testbench.router_scenario`); ``load_tables``: the router starts with empty tables and
    a player writes every row through its table port first (batch harness only). Raises
    :class:`~..runner.CosimError` on any mismatch."""
    if load_tables and options.per_cycle:
        raise CosimError("load_tables runs in the batch harness only; per_cycle drives no table port.")
    s = router_scenario(**scenario)
    tables = None if load_tables else s.tables
    run, layout = _build(sim, lambda: Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth, tables), "router",
                         options, router_harness(s, load_tables))
    job = {"scenario": scenario, "options": options.to_job(), "load_tables": load_tables, "layout": layout}
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


# The regression of mutation testing: each traffic seed under each pattern (idle inputs, backpressure).
MUTATION_PATTERNS = (RunOptions(idle=0.3, backpressure=0.3), RunOptions(idle=0.0, backpressure=0.6),
                     RunOptions(idle=0.0, backpressure=0.0), RunOptions(idle=0.7, backpressure=0.1))


def _mutation_variants(seed_name: str, seeds: int, densities: tuple[float, ...] = ()) -> list[dict]:
    """The job's ``variants``: for each k, the tables of scenario seed k (the mesh: a connectivity of
    ``densities[k]`` in turn) and traffic seed ``seed_name`` = 1000 + k through them, under each
    pattern with stream seed k. Tables that differ from one k to the next (and from a mutant's last
    run to the next mutant's first) expose a table write that a mutant drops; several connectivities
    send routes through every router the routing can use."""
    def scenario(k):
        return {seed_name: 1000 + k, "seed": k, **({"density": densities[k % len(densities)]} if densities else {})}
    return [{"scenario": scenario(k), "options": p.replace(seed=k).to_job()} for k in range(seeds)
            for p in MUTATION_PATTERNS]


def router_mutation_target(*, seeds: int = 4, **scenario):
    """One router (``scenario``: arguments of :func:`~.testbench.router_scenario`) in its batch
    harness, empty tables that a player writes row by row, and its regression for mutation testing
    (``cosim.mutation.score``): ``seeds`` random tables with their traffic, each under every pattern
    of ``MUTATION_PATTERNS`` (sparse, saturated and backpressured, full rate, mostly idle), every
    take and transfer against the model."""
    from ..mutation import Target
    s = router_scenario(**scenario)
    harness = harness_verilog(lambda: Router(s.in_ports, s.out_ports, s.sources, s.fifo_depth), "router",
                              **router_harness(s, load_tables=True))
    job = {"scenario": scenario, "options": ROUTER_OPTIONS.to_job(), "load_tables": True, "layout": harness["layout"],
           "variants": _mutation_variants("traffic_seed", seeds)}
    return Target("router", harness, TEST_MODULE, "router_mutants", job)


def mesh_mutation_target(*, seeds: int = 4, **scenario):
    """The mesh fabric of a random connectivity (``scenario``: arguments of
    :func:`~.testbench.mesh_scenario`) in its batch harness, empty tables that a player writes
    (every source of every table, the empty entries too), and its regression for mutation testing:
    ``seeds`` random connectivities (half of them every source to every other tile), each with its
    spikes under every pattern of ``MUTATION_PATTERNS``, every link handshake, injection and delivery
    against the model, then spike conservation."""
    from ..mutation import Target
    s = mesh_scenario(**scenario)
    harness = harness_verilog(lambda: MeshFabric(s.tables.mesh, None), "mesh_fabric",
                              **mesh_harness(s, load_tables=True))
    job = {"scenario": scenario, "options": ROUTER_OPTIONS.to_job(), "load_tables": True, "every_source": True,
           "layout": harness["layout"],
           "variants": _mutation_variants("spike_seed", seeds, densities=(1.0, 0.5))}
    return Target("mesh", harness, TEST_MODULE, "mesh_mutants", job)
