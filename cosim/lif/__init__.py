"""Cosimulation of the LIF core: generated Verilog under Verilator or Icarus through cocotb, every
transaction checked against the golden model."""

from __future__ import annotations

from ...model.config import LIFConfig
from ...rtl.lif import LIFCore
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, harness_run, per_cycle_run
from .stimulus import random_scenario, required_coverage, synapse_memory
from .testbench import HARNESS_PORTS

__all__ = ["check_coverage", "lif_core", "lif_mutation_target", "lif_run", "run_lif_cosim"]

TEST_MODULE = "neuromosaic.cosim.lif.cocotb_test"


def lif_core(config: LIFConfig, synapses: dict | None = None):
    """A factory of the core under test: its weight memory starts with the first random scenario's
    weights (or, with ``synapses``, it keeps them in that synapse memory)."""
    def core():
        if synapses is None:
            return LIFCore(config, random_scenario(config, 0, 0).weights)
        return LIFCore(config, synapses=synapse_memory(config, **synapses))
    return core


def lif_run(sim: str, config: LIFConfig, *, waves: bool = False, synapses: dict | None = None,
            per_cycle: bool = False, optimise: bool = False) -> tuple[CocotbRun, dict | None]:
    """Builds (or reuses) the simulator model of a core whose weight memory starts with the weights
    of the first random scenario; later scenarios load theirs through the weight port. ``synapses``:
    the core keeps its weights in a synapse memory, ``stimulus.synapse_memory(config, **synapses)``.
    The core sits in its batch harness (returned with its layout) unless ``per_cycle``."""
    core = lif_core(config, synapses)
    if per_cycle:
        return per_cycle_run(sim, core, "lif_core", waves=waves, optimise=optimise), None
    return harness_run(sim, core, "lif_core", waves=waves, optimise=optimise, **HARNESS_PORTS)


def run_lif_cosim(sim: str, config: LIFConfig, *, seeds: int = 4, steps: int = 50, corners: bool = True,
                  options: RunOptions = RunOptions(), scoreboard: bool = True, saturated: int = 0,
                  synapses: dict | None = None, forward_pass: bool = False, name: str = "run",
                  item_cycles: list[int] | None = None, build: tuple[CocotbRun, dict] | None = None,
                  mutant: int | None = None, first_seed: int = 0) -> CosimResult:
    """Runs ``seeds`` random scenarios (seeds ``first_seed``..; and the directed corner cases) and
    returns the summary.
    With ``saturated=E`` it runs instead one stream of ``steps`` timesteps of E back-to-back spike
    events (for throughput). With ``synapses`` (``organisation`` and the other arguments of
    ``stimulus.synapse_memory``) the core keeps its weights in that synapse memory and runs
    ``stimulus.synapse_scenarios`` (no corner cases: the memory's structure is fixed), or with
    ``forward_pass`` one ``stimulus.synapse_pass_scenario`` (for throughput). Raises
    :class:`CosimError` on any mismatch, hang, or missing coverage. Without the ``scoreboard`` a
    batch run (``options.per_cycle`` false) runs each scenario for the ``item_cycles`` a checked run
    of it took (its ``details["item_cycles"]``): the stimulus alone, at the simulator's own speed.
    ``build``: a simulator build and harness layout to run on instead of the core's own (a mutant
    netlist, ``cosim.mutation``), with ``mutant`` the one to activate."""
    if seeds < 1 or steps < 1:
        raise CosimError(f"seeds={seeds}, steps={steps}: both must be at least 1.")
    if not scoreboard and not options.per_cycle and item_cycles is None:
        raise CosimError("a batch run without the scoreboard needs the item_cycles of a checked run.")
    run, layout = build or lif_run(sim, config, waves=options.waves, synapses=synapses,
                                   per_cycle=options.per_cycle, optimise=options.optimise)
    job = {"config": config.to_dict(), "seeds": seeds, "steps": steps, "corners": corners, "options": options.to_job(),
           "saturated": saturated, "synapses": synapses, "forward_pass": forward_pass, "layout": layout,
           "item_cycles": item_cycles, "mutant": mutant, "first_seed": first_seed}
    result = run.test(TEST_MODULE, "lif_scoreboard" if scoreboard else "lif_bare_loop", job, name)
    if scoreboard and corners and not saturated and synapses is None:
        check_coverage(sim, config, result)
    return CosimResult.from_job_result(sim, result, run.build_dir)


def check_coverage(sim: str, config: LIFConfig, result: dict) -> None:
    """Raises :class:`CosimError` when a corner case the configuration needs never happened in a run."""
    missing = [k for k in required_coverage(config) if not result["coverage"].get(k)]
    if missing:
        raise CosimError(f"{sim}: the corner cases {', '.join(missing)} never happened; the stimulus "
                         f"does not cover this configuration.")


def lif_mutation_target(config: LIFConfig, *, seeds: int = 4, steps: int = 50):
    """The core in its batch harness (``runner.harness_verilog``) and its regression for mutation
    testing (``cosim.mutation.score``): the random scenarios and corner cases of ``cosim lif``, every
    state write and output event against the golden model."""
    from ..mutation import Target
    from ..runner import harness_verilog
    harness = harness_verilog(lif_core(config), "lif_core", **HARNESS_PORTS)
    job = {"config": config.to_dict(), "seeds": seeds, "steps": steps, "corners": True,
           "options": RunOptions().to_job(), "saturated": 0, "synapses": None, "forward_pass": False,
           "layout": harness["layout"], "item_cycles": None}
    return Target("lif", harness, TEST_MODULE, "lif_mutants", job,
                  check=lambda outcome: check_coverage("regression", config, outcome))
