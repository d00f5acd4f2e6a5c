"""Cosimulation of the LIF core: generated Verilog under Verilator or Icarus through cocotb, every
transaction checked against the golden model."""

from __future__ import annotations

from ...model.config import LIFConfig
from ...rtl.lif import LIFCore
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, generate_verilog
from .stimulus import random_scenario, required_coverage, synapse_memory

__all__ = ["lif_run", "run_lif_cosim"]

TEST_MODULE = "neuromosaic.cosim.lif.cocotb_test"


def lif_run(sim: str, config: LIFConfig, *, waves: bool = False, synapses: dict | None = None) -> CocotbRun:
    """Builds (or reuses) the simulator model of a core whose weight memory starts with the weights
    of the first random scenario; later scenarios load theirs through the weight port. ``synapses``:
    the core keeps its weights in a synapse memory, ``stimulus.synapse_memory(config, **synapses)``."""
    if synapses is None:
        core = LIFCore(config, random_scenario(config, 0, 0).weights)
    else:
        core = LIFCore(config, synapses=synapse_memory(config, **synapses))
    verilog = generate_verilog(core, "lif_core")
    return CocotbRun(sim, verilog, "lif_core", waves=waves)


def run_lif_cosim(sim: str, config: LIFConfig, *, seeds: int = 4, steps: int = 50, corners: bool = True,
                  options: RunOptions = RunOptions(), scoreboard: bool = True, saturated: int = 0,
                  synapses: dict | None = None, forward_pass: bool = False, name: str = "run") -> CosimResult:
    """Runs ``seeds`` random scenarios (and the directed corner cases) and returns the summary.
    With ``saturated=E`` it runs instead one stream of ``steps`` timesteps of E back-to-back spike
    events (for throughput). With ``synapses`` (``organisation`` and the other arguments of
    ``stimulus.synapse_memory``) the core keeps its weights in that synapse memory and runs
    ``stimulus.synapse_scenarios`` (no corner cases: the memory's structure is fixed), or with
    ``forward_pass`` one ``stimulus.synapse_pass_scenario`` (for throughput). Raises
    :class:`CosimError` on any mismatch, hang, or missing coverage."""
    if seeds < 1 or steps < 1:
        raise CosimError(f"seeds={seeds}, steps={steps}: both must be at least 1.")
    run = lif_run(sim, config, waves=options.waves, synapses=synapses)
    job = {"config": config.to_dict(), "seeds": seeds, "steps": steps, "corners": corners, "options": options.to_job(),
           "saturated": saturated, "synapses": synapses, "forward_pass": forward_pass}
    result = run.test(TEST_MODULE, "lif_scoreboard" if scoreboard else "lif_bare_loop", job, name)
    if scoreboard and corners and not saturated and synapses is None:
        missing = [k for k in required_coverage(config) if not result["coverage"].get(k)]
        if missing:
            raise CosimError(f"{sim}: the corner cases {', '.join(missing)} never happened; the stimulus "
                             f"does not cover this configuration.")
    return CosimResult.from_job_result(sim, result, run.build_dir)
