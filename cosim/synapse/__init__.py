"""Cosimulation of the synapse memory: the Verilog of one organisation under Verilator or Icarus
through cocotb, every access, result and counter checked against ``model.synapse``."""

from __future__ import annotations

from ...rtl.synapse import SynapseMemory
from ..options import CosimResult, RunOptions
from ..runner import harness_run, harness_verilog, per_cycle_run
from .testbench import harness_ports, synapse_scenario

__all__ = ["MUTATION_IDLE", "run_synapse_cosim", "synapse_mutation_target"]

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


MUTATION_IDLE = (0.0, 0.3, 0.7)     # the idle rates of the commands in the regression of mutation testing


def synapse_mutation_target(organisation: str, *, seeds: int = 4, density: float = 0.4):
    """One organisation's memory (scenario seed 0) in its batch harness and its regression for
    mutation testing (``cosim.mutation.score``): ``seeds`` command sequences (every forward and
    transposed access in a random order, random updates, every forward access again), each under
    every idle rate of ``MUTATION_IDLE``, every access, result and counter against the model. Each
    run first writes every stored weight its built value (``restore``): an earlier mutant's updates
    do not carry over into the next run."""
    from ..mutation import Target
    scenario = {"organisation": organisation, "seed": 0, "density": density, "restore": True}
    memory = synapse_scenario(**scenario).memory
    harness = harness_verilog(lambda: SynapseMemory(memory), "synapse_memory", **harness_ports(memory))
    variants = [{"scenario": {"command_seed": 1000 + k}, "options": RunOptions(idle=idle, seed=k).to_job()}
                for k in range(seeds) for idle in MUTATION_IDLE]
    job = {"scenario": scenario, "options": RunOptions().to_job(), "layout": harness["layout"], "variants": variants}
    return Target(f"synapse-{memory.name}", harness, TEST_MODULE, "synapse_mutants", job)
