"""Cosimulation of on-chip learning: the generated Verilog of a ``LearningCore`` (the LIF core, its
recurrence and the learning engine; or the ``LearningEngine`` alone) under Verilator or Icarus through
cocotb, whole few-shot episodes checked against the golden model (``testbench``, ``scoreboard``)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
from pathlib import Path

import torch
from tqdm import tqdm

from ...model.learning import LearningConfig
from ...model.snn import SRNNConfig
from ...rtl.learning import LearningCore, LearningEngine
from ..options import CosimResult, RunOptions, merge_job_results
from ..runner import CocotbRun, CosimError, harness_run, harness_verilog, per_cycle_run
from .stimulus import core_memory, readout_memory
from .testbench import harness_ports

__all__ = ["LEARNING_COVERAGE", "MUTATION_NETWORK", "MUTATION_RULE", "learning_mutation_target", "learning_run",
           "run_learning_cosim", "run_episode_jobs"]

TEST_MODULE = "neuromosaic.cosim.learning.cocotb_test"


def learning_run(sim: str, config: SRNNConfig, cfg: LearningConfig, *, core: bool = True,
                 waves: bool = False, synapses=None, core_synapses=None,
                 per_cycle: bool = False, optimise: bool = False) -> tuple[CocotbRun, dict | None]:
    """Builds (or reuses) the simulator model of a learning core (or engine) for these configs, with
    its readout in the synapse memory ``stimulus.readout_memory(config, synapses)`` and the
    core's weights in ``stimulus.core_memory(config, core_synapses)`` if given; in its batch harness
    (returned with the harness's layout) unless ``per_cycle``."""
    top = "learning_core" if core else "learning_engine"
    def dut():
        readout = readout_memory(config, synapses)
        if core:
            return LearningCore(config, cfg, core_synapses=core_memory(config, core_synapses), readout_synapses=readout)
        return LearningEngine(config, cfg, synapses=readout)

    if per_cycle:
        return per_cycle_run(sim, dut, top, waves=waves, optimise=optimise), None
    return harness_run(sim, dut, top, waves=waves, optimise=optimise, **harness_ports(core))


def run_learning_cosim(sim: str, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), *, episodes: int = 20,
                       first_seed: int = 0, options: RunOptions = RunOptions(), episode_list=None, name: str = "run",
                       core: bool = True, synapses=None, core_synapses=None, scoreboard: bool = True,
                       item_cycles: list[int] | None = None, workers: int = 1) -> CosimResult:
    """Runs ``episodes`` random episodes (seeds ``first_seed..``), or the given ``episode_list``, and
    returns the summary. ``core``: through the whole network (``LearningCore``, input events; the
    default), else into the ``LearningEngine`` alone (hidden spikes). ``synapses``: the readout in a
    synapse memory (an organisation name or a dict of ``stimulus.readout_memory``);
    ``core_synapses``: the core's weights in one (through the core only; ``stimulus.core_memory``).
    Without the ``scoreboard``, a batch run plays each episode for the ``item_cycles`` a checked run
    of it took, checking nothing (the simulator's own speed). ``workers``: the episodes split over
    that many simulator processes at once (on one build). Raises :class:`CosimError` on any
    mismatch or hang."""
    if core_synapses is not None and not core:
        raise CosimError("core_synapses= applies to the whole network; run it with core=True.")
    if not scoreboard and not options.per_cycle and item_cycles is None:
        raise CosimError("a batch run without the scoreboard needs the item_cycles of a checked run.")
    if episode_list is None and episodes < 1:
        raise CosimError(f"episodes={episodes}: at least 1 is needed.")
    if episode_list is not None and any(e.scheduled for e in episode_list):
        raise CosimError("an episode changes its inner rate between steps; the learning testbench holds one rate "
                         "per episode (run a schedule through the board's host: cosim board).")
    if episode_list is not None and any(e.through_core != core for e in episode_list):
        raise CosimError(f"core={core}, but some episodes {'lack' if core else 'have'} core weights and input "
                         "rasters; through the core every episode needs them, into the engine none may have them.")
    run, layout = learning_run(sim, config, cfg, core=core, waves=options.waves, synapses=synapses,
                               core_synapses=core_synapses, per_cycle=options.per_cycle, optimise=options.optimise)
    job = {"config": config.to_dict(), "learning": dataclasses.asdict(cfg), "episodes": episodes,
           "first_seed": first_seed, "options": options.to_job(), "core": core, "synapses": synapses,
           "core_synapses": core_synapses, "layout": layout, "scoreboard": scoreboard}
    return run_episode_jobs(run, job, name, episode_list, episodes, first_seed, item_cycles, workers)


def run_episode_jobs(run: CocotbRun, job: dict, name: str, episode_list, episodes: int, first_seed: int,
                     item_cycles, workers: int) -> CosimResult:
    """Runs the episodes of ``job`` (``episode_list``, or ``episodes`` random ones from ``first_seed``)
    on ``run``, split into ``workers`` consecutive shares run at once, and returns the merged result."""
    count = len(episode_list) if episode_list is not None else episodes
    workers = max(1, min(workers, count))
    bounds = [count * i // workers for i in range(workers + 1)]
    jobs = []
    with contextlib.ExitStack() as held:
        for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
            folder = held.enter_context(run.folder(f"{name}-{i}" if workers > 1 else name))
            share = {**job, "episodes": b - a, "first_seed": first_seed + a,
                     "item_cycles": None if item_cycles is None else item_cycles[a:b]}
            if episode_list is not None:
                path = folder / "episodes.pt"
                torch.save([e.to_file() for e in episode_list[a:b]], path)
                share["episodes_file"] = str(path)
            jobs.append((share, folder))
        with _Progress(run, [folder for _, folder in jobs], count):
            results = run.test_many(TEST_MODULE, "learning_episodes", jobs) if workers > 1 else \
                [run.test(TEST_MODULE, "learning_episodes", *jobs[0])]
    return CosimResult.from_job_result(run.sim, merge_job_results(results), run.build_dir)


class _Progress:
    """Shows the episodes the shares of a run have done (their progress files), every few seconds."""

    def __init__(self, run: CocotbRun, folders: list[Path], total: int):
        self.files = [folder / "progress.json" for folder in folders]
        self.total, self.sim = total, run.sim
        self._stop = threading.Event()

    def __enter__(self):
        self._thread = threading.Thread(target=self._show, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _show(self):
        with tqdm(total=self.total, desc=f"episodes on {self.sim}", unit="episode", leave=False) as bar:
            while not self._stop.wait(2.0):
                done = 0
                for f in self.files:
                    try:
                        done += json.loads(f.read_text())["items"]
                    except (OSError, ValueError, KeyError):
                        pass
                bar.update(done - bar.n)


# What the engine's regression must make happen (the golden model's counts of the episodes).
LEARNING_COVERAGE = ("weights_changed", "weights_saturated", "weights_written_zero", "logits_saturated",
                     "eligibility_saturated", "accumulator_saturated")


# The engine of the regression of mutation testing: the cosim's network, with a readout, logits,
# eligibilities and accumulators narrow enough that random episodes saturate each of them now and then.
MUTATION_NETWORK = SRNNConfig.make(channels=4, neurons=16, outputs=5, lanes=4, readout_bits=12, logit_bits=16)
MUTATION_RULE = LearningConfig(elig_bits=13, acc_bits=26)


def learning_mutation_target(config: SRNNConfig = MUTATION_NETWORK, cfg: LearningConfig = MUTATION_RULE, *,
                             seeds: int = 4, episodes: int = 3):
    """The learning engine alone (hidden spikes in) in its batch harness, and its regression for
    mutation testing (``cosim.mutation.score``): ``seeds`` sets of ``episodes`` random episodes
    (``model.episode.random_episode``: a zero or random readout loaded at the start of each, so a
    mutant's writes do not carry over), each set under one of the stream patterns of
    ``cosim.router.MUTATION_PATTERNS`` in turn, every logit and weight write (value and cycle)
    against the golden model. ``check``: every corner of ``LEARNING_COVERAGE`` happened."""
    from ..mutation import Target
    from ..router import MUTATION_PATTERNS
    harness = harness_verilog(lambda: LearningEngine(config, cfg, synapses=readout_memory(config, None)),
                              "learning_engine", **harness_ports(False))
    variants = [{"first_seed": 1000 + episodes * k,
                 "options": MUTATION_PATTERNS[k % len(MUTATION_PATTERNS)].replace(seed=k).to_job()}
                for k in range(seeds)]
    job = {"config": config.to_dict(), "learning": dataclasses.asdict(cfg), "episodes": episodes, "first_seed": 0,
           "options": RunOptions().to_job(), "core": False, "synapses": None, "core_synapses": None,
           "layout": harness["layout"], "scoreboard": True, "variants": variants}

    def check(outcome: dict) -> None:
        hit = {k: sum(v["coverage"].get(k, 0) for v in outcome["variants"]) for k in LEARNING_COVERAGE}
        missing = [k for k, n in hit.items() if not n]
        if missing:
            raise CosimError(f"the corner cases {', '.join(missing)} never happened in the engine's regression.")
    return Target("learning", harness, TEST_MODULE, "learning_mutants", job, check=check)
