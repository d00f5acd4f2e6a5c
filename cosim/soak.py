"""Soak: a design's cosimulation run again and again with constrained-random stimulus, a new seed
each round, until a number of clock cycles has been checked (``neuromosaic soak``; too long for CI).

Each round of a design is one checked cosimulation (sized to some 10^5 to 10^6 cycles, so that the
simulator's start is a small part of it) whose stimulus, stream pattern and (where the
design has them) contents come from the round's seed: the LIF core's random scenarios and corner
cases; a synapse memory of each organisation in turn at a random density; whole-network learning
episodes; a router's and the mesh fabric's random tables (written through their table ports, so
one build serves every seed) and traffic; the board top's episodes through the host driver on a line
with bit errors at a random rate. A round that fails ends the soak; the report names its seed, and
``neuromosaic soak DESIGN --first-seed SEED --seeds 1 --cycles 1`` runs it again.
"""

from __future__ import annotations

import random
import time
from typing import Callable

from .options import CosimResult, RunOptions
from .runner import CosimError

__all__ = ["SOAK_DESIGNS", "soak", "soak_round"]

SOAK_DESIGNS = ("lif", "synapse", "learning", "router", "mesh", "link")


def _pattern(rng: random.Random, seed: int) -> RunOptions:
    """A stream pattern: idle inputs and backpressured outputs, from sparse to full rate."""
    return RunOptions(idle=rng.choice((0.0, 0.1, 0.3, 0.6)), backpressure=rng.choice((0.0, 0.2, 0.5, 0.8)), seed=seed)


def soak_round(design: str, sim: str, seed: int) -> CosimResult:
    """One checked run of ``design`` from ``seed`` (raises :class:`CosimError` on any mismatch)."""
    rng = random.Random(seed)
    options = _pattern(rng, seed)
    name = f"soak-{seed}"
    if design == "lif":
        from ..model.config import LIFConfig
        from .lif import run_lif_cosim
        return run_lif_cosim(sim, LIFConfig(), seeds=4, steps=500, first_seed=4 * seed, options=options, name=name)
    if design == "synapse":
        from ..model.synapse import ORGANISATIONS
        from .synapse import run_synapse_cosim
        organisation = list(ORGANISATIONS)[seed % len(ORGANISATIONS)]
        return run_synapse_cosim(sim, organisation, seed=seed, density=rng.uniform(0.05, 0.95), updates=1500,
                                 options=options, name=name)
    if design == "learning":
        from ..model.snn import SRNNConfig
        from .learning import run_learning_cosim
        config = SRNNConfig.make(channels=4, neurons=16, outputs=5, lanes=4)
        return run_learning_cosim(sim, config, episodes=8, first_seed=8 * seed, options=options, name=name)
    if design == "router":
        from .router import run_router_cosim
        return run_router_cosim(sim, load_tables=True, seed=seed, events=20_000, empty=rng.uniform(0.0, 0.5),
                                options=options, name=name)
    if design == "mesh":
        from .router import run_mesh_cosim
        return run_mesh_cosim(sim, load_tables=True, seed=seed, density=rng.uniform(0.1, 1.0), spikes_per_tile=5_000,
                              options=options, name=name)
    if design == "link":
        from ..fpga.protocol import Protocol
        from ..model.learning import LearningConfig
        from ..model.snn import SRNNConfig
        from .board import MUTATION_LINK, run_board_cosim
        protocol = Protocol(SRNNConfig.make(channels=8, neurons=8, outputs=3, lanes=2), LearningConfig(), MUTATION_LINK)
        return run_board_cosim(sim, protocol, episodes=2, first_seed=2 * seed, ber=rng.choice((0.0, 1e-4, 3e-4)),
                               noise_seed=seed, timeout=0.005, name=name)
    raise ValueError(f"design {design!r} is unknown; allowed: {', '.join(SOAK_DESIGNS)}.")


def soak(design: str, *, sim: str = "verilator", cycles: int, seeds: int = 20, first_seed: int = 0,
         progress: Callable[[dict], None] | None = None) -> dict:
    """Rounds of ``design`` (:func:`soak_round`) from seed ``first_seed`` on, until at least ``cycles``
    clock cycles are checked over at least ``seeds`` rounds, or a round fails. Returns the report:
    the rounds' seeds and cycles, the total, the speed, and the failure (its seed and first line)
    or None. ``progress(report)`` is called after each round."""
    start = time.perf_counter()
    report = {"design": design, "sim": sim, "first_seed": first_seed, "rounds": [], "cycles": 0, "failure": None}
    seed = first_seed
    while report["cycles"] < cycles or len(report["rounds"]) < seeds:
        began = time.perf_counter()
        try:
            r = soak_round(design, sim, seed)
        except CosimError as e:
            report["failure"] = {"seed": seed, "error": str(e).strip().splitlines()[0][:300]}
            break
        report["rounds"].append({"seed": seed, "cycles": r.cycles, "wall_s": round(time.perf_counter() - began, 1)})
        report["cycles"] += r.cycles
        seed += 1
        report["wall_s"] = round(time.perf_counter() - start, 1)
        if progress:
            progress(report)
    report["wall_s"] = round(time.perf_counter() - start, 1)
    report["seeds"] = len(report["rounds"])
    report["cycles_per_s"] = round(report["cycles"] / report["wall_s"]) if report["wall_s"] else 0
    return report
