"""Cosimulation of the Mosaic top (``rtl.mosaic.Mosaic``) under Verilator or Icarus through cocotb.

The Mosaic has the ports of a ``LearningCore``, so the learning testbench (``cosim/learning_bench.py``)
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

from ..model.config import ConfigError
from ..model.learning import LearningConfig
from ..model.router import RoutingTables, compile_routes
from ..model.snn import IntegerSRNN
from ..model.tiles import MosaicConfig, mosaic_tables
from ..rtl.mosaic import Mosaic
from .learning_bench import Episode, random_network_episode
from .runner import CocotbRun, CosimError, generate_verilog

__all__ = ["FAULTS", "checkpoint_episodes", "episode_tables", "mosaic_run", "run_mosaic_cosim"]

TEST_MODULE = "neuromosaic.cosim.learning_tb"
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


def checkpoint_episodes(ck, count: int = 1, *, seed: int = 0, shots: int = 2, queries: int = 2, steps: int = 1,
                        dataset=None) -> list[Episode]:
    """``count`` meta-test tasks of a checkpoint (its data source and protocol, from its training
    metadata; or ``dataset``) as cosim episodes of the whole network: its weights, ``shots`` support and
    ``queries`` query samples of each task (the classes in turn), its inner rate, ``steps`` inner steps."""
    from ..model.data import load_source
    from ..model.train import TrainConfig, _protocol_for

    train = ck.metadata.get("train")
    if train is None:
        raise ConfigError("the checkpoint has no training metadata (data source, protocol); allowed: a checkpoint "
                          "written by neuromosaic train.")
    cfg = TrainConfig(**{k: v for k, v in train.items() if k in ("data", "channels", "steps", "n_way", "k_shot",
                                                                  "k_query", "labels")})
    ds = dataset or load_source(cfg.data, channels=cfg.channels, steps=cfg.steps, progress=False)
    sampler = _protocol_for(cfg.data).meta_test(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query,
                                                seed=seed, relabel=cfg.labels == "task")
    c = ck.config
    net = IntegerSRNN(c, ck.w_in, ck.w_rec, ck.w_out)
    w_core = torch.cat([ck.w_in, ck.w_rec], dim=1).to(torch.int64)
    rate = float(ck.metadata.get("inner_lr", 2.0 ** 16))

    def interleaved(labels: torch.Tensor, n: int) -> list[int]:
        """The first ``n`` samples taking the classes in turn (a task lists its samples class by class)."""
        count_of: dict = {}
        rank = []
        for v in labels.tolist():
            count_of[v] = count_of.get(v, 0) + 1
            rank.append(count_of[v])
        return sorted(range(len(rank)), key=lambda i: (rank[i], int(labels[i])))[:n]

    out = []
    for i in range(count):
        e = sampler.episode(i)
        s, q = interleaved(e.support_labels, shots), interleaved(e.query_labels, queries)
        sx = e.support[s].transpose(0, 1).round().to(torch.int64)                # [T, n, channels]
        qx = e.query[q].transpose(0, 1).round().to(torch.int64)
        out.append(Episode(f"checkpoint-task-{seed}-{i}", ck.w_out.to(torch.int64), net.hidden(sx).to(torch.int64),
                           e.support_labels[s].tolist(), net.hidden(qx).to(torch.int64), rate, steps,
                           e.query_labels[q].tolist(), w_core, sx, qx))
    return out


def mosaic_run(sim: str, mc: MosaicConfig, cfg: LearningConfig, tables: RoutingTables, *,
               waves: bool = False) -> CocotbRun:
    """Builds (or reuses) the simulator model of the Mosaic of ``mc`` with ``tables``."""
    return CocotbRun(sim, generate_verilog(Mosaic(mc, cfg, tables=tables), "mosaic"), "mosaic", waves=waves)


def run_mosaic_cosim(sim: str, mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), *, episodes: int = 2,
                     first_seed: int = 0, episode_list=None, w_rec=None, fault: str | None = None,
                     idle: float = 0.2, backpressure: float = 0.3, rng_seed: int = 0, waves: bool = False,
                     name: str = "run") -> dict:
    """Runs ``episodes`` random whole-network episodes (seeds ``first_seed..``; every source routed to
    every other tile), or ``episode_list`` with the tables of ``w_rec`` (a trained network's
    ``[post, pre]`` recurrent weights; the episodes' core weights must have no synapse outside it).
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
    tables = episode_tables(mc, w_rec, fault)
    run = mosaic_run(sim, mc, cfg, tables, waves=waves)
    path = run.build_dir / name / "episodes.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save([dataclasses.asdict(e) for e in episode_list], path)
    job = {"mosaic": mc.to_dict(), "learning": dataclasses.asdict(cfg), "episodes_file": str(path),
           "idle": idle, "backpressure": backpressure, "rng_seed": rng_seed, "core": True}
    result = run.test(TEST_MODULE, "learning_episodes", job, name)
    result.update(sim=sim, build_dir=str(run.build_dir), episodes=len(episode_list),
                  routes=sum(len(d) for d in tables.destinations))
    return result
