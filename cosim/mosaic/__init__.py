"""Cosimulation of the Mosaic top (``rtl.mosaic.Mosaic``) under Verilator or Icarus through cocotb.

The Mosaic has the ports of a ``LearningCore``, so the learning testbench (``cosim.learning.testbench``)
drives whole few-shot episodes into it and checks every hidden spike event, logit and weight write
against the whole network's golden model (``model.snn.IntegerSRNN`` and ``model.learning``): the
tiling and the mesh must change nothing. Episodes are random (dense random weights, every source routed
to every other tile) or a trained checkpoint's meta-test tasks (its sparse connectivity compiled into
the tables, so a route the compiler missed loses a spike and fails the run).

Fault: ``deaf-tile`` compiles the tables without any route into the last tile; the run must fail.
"""

from __future__ import annotations

import dataclasses

import torch

from ...model.config import ConfigError
from ...model.episode import random_network_episode
from ...model.learning import LearningConfig
from ...model.router import RoutingTables, compile_routes
from ...model.tiles import MosaicConfig, mosaic_tables
from ...rtl.mosaic import Mosaic
from ..learning import run_episode_jobs
from ..learning.testbench import harness_ports
from ..options import CosimResult, RunOptions
from ..runner import CocotbRun, CosimError, harness_run, per_cycle_run

__all__ = ["FAULTS", "episode_tables", "mosaic_run", "run_mosaic_cosim"]

FAULTS = ("deaf-tile",)


def episode_tables(mc: MosaicConfig, w_rec=None, fault: str | None = None) -> RoutingTables:
    """The routing tables of the recurrent weights ``w_rec`` (every source to every other tile if
    None); with ``fault="deaf-tile"``, without any route into the last tile."""
    if fault is None:
        return mosaic_tables(mc, w_rec)
    if fault not in FAULTS:
        raise ConfigError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
    tables = mosaic_tables(mc, w_rec)
    deaf = mc.tiles - 1
    return compile_routes(mc.mesh, [[t for t in d if t != deaf] for d in tables.destinations])


def mosaic_run(sim: str, mc: MosaicConfig, cfg: LearningConfig, tables: RoutingTables, *,
               waves: bool = False, per_cycle: bool = False, optimise: bool = False) -> tuple[CocotbRun, dict | None]:
    """Builds (or reuses) the simulator model of the Mosaic of ``mc`` with ``tables``, in its batch
    harness (returned with the harness's layout) unless ``per_cycle``."""
    def dut():
        return Mosaic(mc, cfg, tables=tables)

    what = {"design": "mosaic", "mosaic": mc.to_dict(), "learning": dataclasses.asdict(cfg),
            "destinations": tables.destinations}
    if per_cycle:
        return per_cycle_run(sim, dut, "mosaic", waves=waves, optimise=optimise, cache=what), None
    return harness_run(sim, dut, "mosaic", waves=waves, cache=what, optimise=optimise, **harness_ports(True))


def run_mosaic_cosim(sim: str, mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), *, episodes: int = 2,
                     first_seed: int = 0, episode_list=None, w_rec=None, options: RunOptions = RunOptions(),
                     name: str = "run", scoreboard: bool = True, item_cycles: list[int] | None = None,
                     workers: int = 1) -> CosimResult:
    """Runs ``episodes`` random whole-network episodes (seeds ``first_seed..``; every source routed to
    every other tile), or ``episode_list`` with the tables of ``w_rec`` (a trained network's
    ``[post, pre]`` recurrent weights; the episodes' core weights must have no synapse outside it).
    ``options.fault`` is a fault of the tables (``FAULTS``); the model stays right. Without the
    ``scoreboard``, a batch run plays each episode for the ``item_cycles`` a checked run of it took;
    ``workers`` splits the episodes over that many simulator processes at once.
    Returns the summary; raises :class:`CosimError` on any mismatch or hang."""
    if episode_list is None:
        if episodes < 1:
            raise CosimError(f"episodes={episodes}: at least 1 is needed.")
        episode_list = [random_network_episode(mc.network, cfg, first_seed + i) for i in range(episodes)]
    for e in episode_list:
        if not e.through_core:
            raise CosimError(f"episode {e.name} has no core weights and input rasters; the Mosaic needs them.")
        if w_rec is not None and bool(((e.w_core[:, mc.network.channels:] != 0) & (torch.as_tensor(w_rec) == 0)).any()):
            raise CosimError(f"episode {e.name} has recurrent synapses that w_rec lacks; the tables would not carry "
                             "them. Compile the tables from the episode's own weights.")
    tables = episode_tables(mc, w_rec, options.fault)
    run, layout = mosaic_run(sim, mc, cfg, tables, waves=options.waves, per_cycle=options.per_cycle,
                             optimise=options.optimise)
    job = {"mosaic": mc.to_dict(), "learning": dataclasses.asdict(cfg),
           "options": options.replace(fault=None).to_job(), "core": True, "layout": layout, "scoreboard": scoreboard}
    result = run_episode_jobs(run, job, name, episode_list, len(episode_list), 0, item_cycles, workers)
    result.details["routes"] = sum(len(d) for d in tables.destinations)
    return result
