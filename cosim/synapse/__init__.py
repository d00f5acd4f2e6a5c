"""Cosimulation of the synapse memory: the Verilog of one organisation under Verilator or Icarus
through cocotb, every access, result and counter checked against ``model.synapse``."""

from __future__ import annotations

from ...rtl.synapse import SynapseMemory
from ..options import CosimResult, RunOptions
from ..runner import harness_run, per_cycle_run
from .testbench import harness_ports, synapse_scenario

__all__ = ["run_synapse_cosim"]

TEST_MODULE = "neuromosaic.cosim.synapse.cocotb_test"


def run_synapse_cosim(sim: str, organisation: str, *, seed: int = 0, density: float = 0.4,
                      options: RunOptions = RunOptions(), name: str = "run", **scenario) -> CosimResult:
    """Builds the RTL of ``organisation`` holding the random scenario ``seed`` (a matrix, or a kernel
    for the functional organisations; ``scenario``: more arguments of
    :func:`~.testbench.synapse_scenario`) and runs its commands on ``sim``, in the batch harness
    unless ``options.per_cycle``. Raises
    :class:`~.runner.CosimError` on any mismatch or hang."""
    scenario_args = {"organisation": organisation, "seed": seed, "density": density, **scenario}
    scenario = synapse_scenario(**scenario_args)

    def dut():
        return SynapseMemory(scenario.memory)

    if options.per_cycle:
        run = per_cycle_run(sim, dut, "synapse_memory", waves=options.waves, optimise=options.optimise)
        layout = None
    else:
        run, layout = harness_run(sim, dut, "synapse_memory", waves=options.waves, optimise=options.optimise,
                                  **harness_ports(scenario.memory))
    job = {"scenario": scenario_args, "options": options.to_job(), "layout": layout}
    result = run.test(TEST_MODULE, "synapse_scoreboard", job, name)
    result["organisation"] = scenario.memory.name
    return CosimResult.from_job_result(sim, result, run.build_dir)
