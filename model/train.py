"""Meta-training and evaluation: MAML with the hardware in the loop (quantisation-aware forward, RRAM
noise injection, Mosaic layout penalty and pruning), checkpoints of the deployable integer network,
and evaluation of that integer network on held-out classes (mean and spread over tasks and devices)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .allocator import keep_freed_memory
from .checkpoint import Checkpoint, atomic_write, deployable_weights, load_checkpoint, save_checkpoint
from .config import ConfigError, _check_int
from .data import load_source, protocol_for
from .data.base import SpikeDataset
from .learning import LFSR, LearningConfig, adapt_readout_integer
from .maml import MAMLConfig, Params, adapt_readout, calibrate_input_gain, init_params, meta_loss
from .mosaic import connectivity_stats, export_connectivity, layout_mask, layout_penalty, prune
from .rram import PRESETS as DEVICES
from .rram import noisy_weights, program
from .snn import FloatSRNN, IntegerSRNN, SRNNConfig

__all__ = ["TrainConfig", "PRESETS", "train", "evaluate", "evaluate_steps", "inner_rates"]


@dataclass(frozen=True)
class TrainConfig:
    data: str = "synthetic"
    channels: int = 64
    steps: int = 50                 # time bins per sample
    neurons: int = 64
    outputs: int = 20               # with global labels; per-task labels use n_way outputs
    labels: str = "task"            # "task": output k = the task's k-th class (classic MAML);
                                    # "global": one output per class of the dataset (seed 000's code)
    quantised: bool = True          # False: the ideal float network (no integer formats), for comparison
    n_way: int = 5
    k_shot: int = 5
    k_query: int = 5
    meta_batch: int = 8
    iterations: int = 600
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    rram: str = "ideal"
    layout: str | None = None       # "RxC" neuron tiles
    layout_lambda: float = 100.0
    layout_beta: float = 8.0
    prune_threshold: float = 4.0    # integer weight units; applied after the first quarter
    seed: int = 0
    eval_every: int = 50
    eval_tasks: int = 20
    # The protocol's classes and groups (speakers), where they differ from the data's own protocol.
    seen: tuple[int, ...] | None = None
    unseen: tuple[int, ...] | None = None
    train_groups: tuple[str, ...] | None = None
    test_groups: tuple[str, ...] | None = None

    def __post_init__(self):
        for name in ("seen", "unseen", "train_groups", "test_groups"):     # lists, as read back from JSON
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(getattr(self, name)))
        for name, lo in (("channels", 1), ("neurons", 1), ("steps", 1), ("n_way", 2), ("k_shot", 1), ("k_query", 1),
                         ("meta_batch", 1), ("iterations", 1)):
            _check_int(name, getattr(self, name), lo, 1 << 20)
        if self.labels not in ("task", "global"):
            raise ConfigError(f"labels={self.labels!r} is unknown; allowed: task, global.")
        if self.rram not in DEVICES:
            raise ConfigError(f"--rram {self.rram!r} is unknown; allowed: {', '.join(DEVICES)}.")
        if self.layout is not None:
            self.grid()

    def grid(self) -> tuple[int, int]:
        try:
            rows, cols = (int(v) for v in self.layout.lower().split("x"))
        except (ValueError, AttributeError):
            raise ConfigError(f"--layout {self.layout!r} is not RxC (for example 4x4).") from None
        if rows < 1 or cols < 1 or self.neurons % (rows * cols):
            raise ConfigError(f"--layout {self.layout}: {rows * cols} tiles must divide the {self.neurons} neurons.")
        return rows, cols


PRESETS = {
    # Built-in synthetic data: small and fast (minutes on 2 cores).
    "synthetic": TrainConfig(),
    # Seed 000's code: 256 recurrent neurons, 20 outputs, 5-way 5-shot, one inner step, 256 channels,
    # 100 bins. Its meta-batch of 256 tasks is reduced here to what 2 cores can carry (about 2.2 s per
    # iteration there; an integer evaluation of 20 tasks takes about 40 s, hence every 200 iterations).
    "seed000": TrainConfig(channels=256, steps=100, neurons=256, outputs=20, meta_batch=16, iterations=2000,
                           eval_every=200),
}


def _protocol_for(cfg: TrainConfig, ds: SpikeDataset):
    """The few-shot protocol of ``cfg``'s data source, with its own classes and groups if it gives them."""
    return protocol_for(cfg.data.partition(":")[0], ds, seen=cfg.seen, unseen=cfg.unseen,
                        train_groups=cfg.train_groups, test_groups=cfg.test_groups)


def _network(cfg: TrainConfig) -> FloatSRNN:
    outputs = cfg.n_way if cfg.labels == "task" else cfg.outputs
    return FloatSRNN(SRNNConfig.make(channels=cfg.channels, neurons=cfg.neurons, outputs=outputs), exact=cfg.quantised)


def _distributed() -> tuple[int, int]:
    """(rank, world size) under torch.distributed (torchrun), else (0, 1)."""
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_distributed_from_env() -> None:
    """Joins the process group torchrun describes (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPUs."""
    import os

    import torch.distributed as dist
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def train(cfg: TrainConfig, out: str | Path, dataset: SpikeDataset | None = None, progress: bool = True,
          return_params: bool = False) -> dict:
    """Meta-trains. Under torch.distributed each rank takes an equal, contiguous share of every
    meta-batch and the meta-gradients are all-reduced (averaged) before the identical optimiser step
    on every rank, so the result equals the single-process run on the same tasks (up to the order
    of floating-point sums). Only rank 0 writes checkpoints, metrics and evaluations.

    The run writes into a staging folder inside ``out`` and moves its files over the previous run's
    only when it completes (the checkpoint atomically, a previous run's file this run does not make
    removed); an interrupted or failed run leaves ``out`` as it found it."""
    rank, world = _distributed()
    keep_freed_memory()
    out = Path(out)
    staging = out / f".partial-{os.getpid()}"
    if rank == 0:
        staging.mkdir(parents=True, exist_ok=True)
    try:
        summary = _train(cfg, staging, dataset, progress, rank, world)
        if rank == 0:
            _publish(staging, out)
    finally:
        if rank == 0:
            shutil.rmtree(staging, ignore_errors=True)
    if not return_params:
        summary.pop("params")
    return summary


RUN_FILES = ("metrics.jsonl", "summary.json", "curves.png", "connectivity.json")   # besides the checkpoint


def _publish(staging: Path, out: Path) -> None:
    """A completed run's files over the previous run's: the checkpoint, then each of ``RUN_FILES``
    this run made (renamed, atomic), and those it did not make removed."""
    save_checkpoint(out, load_checkpoint(staging))
    for name in RUN_FILES:
        if (staging / name).exists():
            os.replace(staging / name, out / name)
        else:
            (out / name).unlink(missing_ok=True)


def _train(cfg: TrainConfig, staging: Path, dataset, progress: bool, rank: int, world: int) -> dict:
    """The meta-training loop of :func:`train`, writing into ``staging``."""
    from tqdm import tqdm

    if cfg.meta_batch % world:
        raise ConfigError(f"meta_batch={cfg.meta_batch} does not split over {world} ranks; use a multiple of {world}.")
    share = cfg.meta_batch // world
    progress = progress and rank == 0
    torch.manual_seed(cfg.seed)
    ds = dataset or load_source(cfg.data, channels=cfg.channels, steps=cfg.steps, progress=progress)
    protocol = _protocol_for(cfg, ds)
    sampler = protocol.meta_train(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query, seed=cfg.seed,
                                  relabel=cfg.labels == "task")
    net = _network(cfg)
    p = init_params(net, seed=cfg.seed, cfg=cfg.maml)
    first = sampler.episode(10**6)
    gain = calibrate_input_gain(net, p, torch.cat([first.support, first.query]).transpose(0, 1), cfg.maml.target_rate)
    mask = None
    if cfg.layout:
        rows, cols = cfg.grid()
        mask = layout_mask(rows, cols, cfg.neurons, cfg.layout_beta)
        mask = (mask / mask.max()).float()
        with torch.no_grad():
            p.w_rec.mul_((mask < 1).float())       # start without the connections the layout forbids
    device = DEVICES[cfg.rram]
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    trained = p.trained(cfg.maml)
    groups = [{"params": [t for t in trained if t is not p.log_inner_lr], "lr": cfg.maml.outer_lr}]
    if any(t is p.log_inner_lr for t in trained):
        groups.append({"params": [p.log_inner_lr], "lr": cfg.maml.inner_lr_lr})
    opt = torch.optim.Adam(groups)
    hi = net.config.core.weight_range[1]
    metrics_path = staging / "metrics.jsonl"
    history = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.iterations), desc="meta-training", unit="it", disable=not progress)
    for it in bar:
        episodes = sampler.batch(it * cfg.meta_batch + rank * share, share)
        # The zero readout init is exact (both devices of a pair equal); learned weights carry noise.
        q = Params(noisy_weights(p.w_in, device, gen), noisy_weights(p.w_rec, device, gen),
                   noisy_weights(p.w_out, device, gen) if cfg.maml.readout_init == "learned" else p.w_out,
                   p.log_inner_lr) if cfg.rram != "ideal" else p
        loss, acc = meta_loss(net, q, episodes, cfg.maml)
        penalty = layout_penalty(p.w_rec / hi, mask) if mask is not None else torch.zeros(())
        opt.zero_grad()
        (loss + cfg.layout_lambda * penalty).backward()
        loss, acc = loss.detach(), acc.detach()
        if world > 1:
            import torch.distributed as dist
            for t in [w.grad for w in trained] + [loss, acc]:
                dist.all_reduce(t)
                t /= world
        opt.step()
        p.project(net)
        if mask is not None and it >= cfg.iterations // 4:
            prune(p.w_rec.data, cfg.prune_threshold)
        row = {"iteration": it, "loss": round(loss.item(), 4), "query_accuracy": round(acc.item(), 4),
               "inner_lr": round(p.inner_lr_value(cfg.maml), 1),
               "layout_penalty": round(float(penalty.detach()), 6), "elapsed_s": round(time.perf_counter() - start, 2)}
        if cfg.maml.rate_schedule:
            row["inner_lr_schedule"] = [round(v, 1) for v in p.inner_lr_values(cfg.maml)]
        if rank == 0 and ((it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations):
            ck = _checkpoint(cfg, net, p, {"iteration": it + 1, "input_gain": gain})
            # The float ideal network is scored in float; every other, as the deployable integer network.
            scores = evaluate(ck, ds, cfg, tasks=cfg.eval_tasks, params=None if cfg.quantised else p)
            save_checkpoint(staging, ck)
            row.update({f"eval_{k}": v for k, v in scores.items() if k.endswith("mean")})
        history.append(row)
        if rank == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=row["loss"], acc=row["query_accuracy"])
    summary = {"iterations": cfg.iterations, "train_s": round(time.perf_counter() - start, 1),
               "final": history[-1], "config": dataclasses.asdict(cfg), "ranks": world}
    if rank == 0:
        if mask is not None:
            w_rec = load_checkpoint(staging).w_rec
            summary["connectivity"] = connectivity_stats(w_rec, *cfg.grid())
            # for the router compiler: who sends to which tile, at how many hops
            atomic_write(staging / "connectivity.json", json.dumps(export_connectivity(w_rec, *cfg.grid())).encode())
        (staging / "summary.json").write_text(json.dumps(summary, indent=2))
        _plot(history, staging / "curves.png")
    summary["params"] = p
    return summary


def _checkpoint(cfg: TrainConfig, net: FloatSRNN, p: Params, meta: dict) -> Checkpoint:
    w = deployable_weights(net.config, p.w_in, p.w_rec, p.w_out)
    meta = {**meta, "inner_lr": p.inner_lr_value(cfg.maml), "train": dataclasses.asdict(cfg)}
    if cfg.maml.rate_schedule:
        meta["inner_lr_schedule"] = p.inner_lr_values(cfg.maml)     # one per inner step, programmed before each
    return Checkpoint(net.config, w["w_in"], w["w_rec"], w["w_out"], meta)


_EVAL_CHUNK = 10


def evaluate(ck: Checkpoint, ds: SpikeDataset, cfg: TrainConfig, *, tasks: int = 50, devices: int = 0,
             inner_steps: int | None = None, seed: int = 1234, params: Params | None = None,
             rule: str = "float") -> dict:
    """:func:`evaluate_steps` for one number of inner steps (default: the training's)."""
    k = inner_steps or cfg.maml.inner_steps
    return evaluate_steps(ck, ds, cfg, tasks=tasks, devices=devices, steps=(k,), seed=seed, params=params,
                          rule=rule)[k]


def inner_rates(ck: Checkpoint, cfg: TrainConfig, params: Params | None = None) -> list[float]:
    """The inner rate of each step, from ``params`` or the checkpoint: its schedule (one per step;
    the last one for the steps beyond) or its one rate."""
    if params is not None:
        return params.inner_lr_values(cfg.maml)
    return list(ck.metadata.get("inner_lr_schedule") or [ck.metadata.get("inner_lr", cfg.maml.inner_lr)])


def evaluate_steps(ck: Checkpoint, ds: SpikeDataset, cfg: TrainConfig, *, tasks: int = 50, devices: int = 0,
                   steps=(1,), seed: int = 1234, params: Params | None = None,
                   rule: str = "float") -> dict[int, dict]:
    """For each number of inner steps in ``steps``: seen / unseen query accuracy on meta-test tasks,
    mean and spread over tasks (and over device draws). The deployable network: hidden activity
    from the bit-exact integer network, the readout adapted by the inner loop at the checkpoint's
    inner rate, rounded to its integers and read out in integer arithmetic; with ``devices``,
    repeated over that many sampled RRAM devices programmed with the checkpoint's weights. With
    float ``params`` instead: the ideal float network, all in float. ``rule="integer"``: the readout
    is adapted by the chip's integer learning rule (``model/learning.py``, one LFSR stream per device
    draw) instead of the float inner step."""
    if rule not in ("float", "integer") or (rule == "integer" and params is not None):
        raise ConfigError(f"rule={rule!r} is not allowed here; allowed: float, or integer for a deployable network.")
    protocol = _protocol_for(cfg, ds)
    sampler = protocol.meta_test(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query, seed=seed,
                                 relabel=cfg.labels == "task")
    lr = inner_rates(ck, cfg, params)
    unseen = set(protocol.unseen)
    episodes = [sampler.episode(i) for i in range(tasks)]
    if params is not None:
        net = FloatSRNN(ck.config, exact=False)
        w = [t.detach().double() for t in params.tensors()]
        hidden_of = lambda x: net.hidden(x.double(), w[0], w[1])              # noqa: E731
        readout_of = lambda h, w_out: net.readout(h.double(), w_out)          # noqa: E731
        draws = [(w[2], hidden_of, readout_of)]
    else:
        net = FloatSRNN(ck.config, exact=True)
        draws = []
        for dseed in (range(devices) if devices else [None]):
            w_in, w_rec = ck.w_in, ck.w_rec
            if dseed is not None:
                dev = DEVICES[cfg.rram if cfg.rram != "ideal" else "mosaic"]
                lo, hi = ck.config.core.weight_range
                w_in = torch.round(program(w_in.double(), dev, 2 * dseed)).clamp(lo, hi).long()
                w_rec = torch.round(program(w_rec.double(), dev, 2 * dseed + 1)).clamp(lo, hi).long()
            integer = IntegerSRNN(ck.config, w_in, w_rec, ck.w_out)
            readout_of = (lambda integer: lambda h, w_out: integer.readout(
                h, deployable_weights(ck.config, ck.w_in, ck.w_rec, w_out)["w_out"]))(integer)
            draws.append((ck.w_out.double(), integer.hidden, readout_of))
    # [steps][draw][task] accuracy (nan: the task has no query of that kind)
    per_task = {k: {"seen": [], "unseen": []} for k in steps}
    for w_out, hidden_of, readout_of in draws:
        acc = {k: {"seen": [], "unseen": []} for k in steps}
        lfsr = LFSR(LearningConfig())
        for i, e in enumerate(episodes):
            # The hidden activity does not depend on the readout: one batched run per chunk of tasks
            # (bounded memory for large networks).
            if i % _EVAL_CHUNK == 0:
                chunk = episodes[i:i + _EVAL_CHUNK]
                with torch.no_grad():
                    hidden = hidden_of(torch.cat([torch.cat([c.support, c.query]) for c in chunk]).transpose(0, 1))
                offset = 0
            ns, nq = e.support.shape[0], e.query.shape[0]
            h = hidden[:, offset:offset + ns + nq]
            offset += ns + nq
            classes = torch.tensor([e.classes[y] if cfg.labels == "task" else y for y in e.query_labels.tolist()])
            is_unseen = torch.tensor([int(c) in unseen for c in classes])
            for k in steps:
                if rule == "integer":
                    adapted = adapt_readout_integer(ck.config, ck.w_out, h[:, :ns], e.support_labels, lr,
                                                    steps=k, lfsr=lfsr)
                else:
                    maml = dataclasses.replace(cfg.maml, inner_steps=k)
                    with torch.enable_grad():
                        adapted = adapt_readout(net, w_out, h[:, :ns].double(), e.support_labels, maml, lr).detach()
                ok = (readout_of(h[:, ns:], adapted).argmax(-1) == e.query_labels).double()
                for key, m in (("seen", ~is_unseen), ("unseen", is_unseen)):
                    acc[k][key].append(float(ok[m].mean()) if m.any() else math.nan)
        for k in steps:
            for key in acc[k]:
                per_task[k][key].append(acc[k][key])
    results = {}
    for k in steps:
        out = {"network": "float ideal" if params is not None else "integer", "tasks": tasks, "devices": devices,
               "inner_steps": k, "inner_lr": round(lr[0], 1), "rule": rule}
        if len(lr) > 1:
            out["inner_lr_schedule"] = [round(v, 1) for v in lr]
        for key, rows in per_task[k].items():
            a = torch.tensor(rows)                                   # [draws, tasks]
            valid = a[~a.isnan()]
            draw_means = torch.stack([r[~r.isnan()].mean() for r in a])
            out[f"{key}_mean"] = round(float(valid.mean()), 4)
            out[f"{key}_std"] = round(float(valid.std()), 4)                   # over tasks and draws
            out[f"{key}_device_std"] = round(float(draw_means.std()), 4) if len(draws) > 1 else 0.0
        results[k] = out
    return results


def _plot(history, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    its = [h["iteration"] for h in history]
    a.plot(its, [h["loss"] for h in history])
    a.set_xlabel("iteration")
    a.set_ylabel("query loss after the inner step")
    b.plot(its, [h["query_accuracy"] for h in history], label="meta-train query")
    ev = [(h["iteration"], h.get("eval_unseen_mean"),
           h.get("eval_seen_mean")) for h in history if "eval_seen_mean" in h]
    if ev:
        b.plot([e[0] for e in ev], [e[2] for e in ev], "o-", label="meta-test seen (integer)")
        b.plot([e[0] for e in ev], [e[1] for e in ev], "s-", label="meta-test unseen (integer)")
    b.set_xlabel("iteration")
    b.set_ylabel("accuracy")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
