"""Meta-training and evaluation: MAML with the hardware in the loop (quantisation-aware forward, RRAM
noise injection, Mosaic layout penalty and pruning), checkpoints of the deployable integer network,
and evaluation of that integer network on held-out classes (mean and spread over tasks and devices)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .checkpoint import Checkpoint, deployable_weights, load_checkpoint, save_checkpoint
from .config import ConfigError
from .data import PROTOCOLS, load_source
from .data.base import SpikeDataset
from .maml import MAMLConfig, Params, adapt_readout, calibrate_input_gain, init_params, meta_loss
from .mosaic import connectivity_stats, layout_mask, layout_penalty, prune
from .rram import PRESETS as DEVICES
from .rram import noisy_weights, program
from .snn import FloatSRNN, IntegerSRNN, SRNNConfig

__all__ = ["TrainConfig", "PRESETS", "train", "evaluate"]


@dataclass(frozen=True)
class TrainConfig:
    data: str = "synthetic"
    channels: int = 64
    steps: int = 50                 # time bins per sample
    neurons: int = 64
    outputs: int = 20               # with global labels; per-task labels use n_way outputs
    labels: str = "task"            # "task": output k = the task's k-th class (classic MAML);
                                    # "global": one output per class of the dataset (seed 000's code)
    n_way: int = 5
    k_shot: int = 5
    k_query: int = 5
    meta_batch: int = 8
    iterations: int = 300
    maml: MAMLConfig = field(default_factory=MAMLConfig)
    rram: str = "ideal"
    layout: str | None = None       # "RxC" neuron tiles
    layout_lambda: float = 100.0
    layout_beta: float = 8.0
    prune_threshold: float = 4.0    # integer weight units; applied after the first quarter
    target_rate: float = 0.05
    seed: int = 0
    eval_every: int = 50
    eval_tasks: int = 20

    def __post_init__(self):
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
    # 100 bins. Its meta-batch of 256 tasks is reduced here to what 2 cores can carry.
    "seed000": TrainConfig(channels=256, steps=100, neurons=256, outputs=20, meta_batch=16, iterations=2000),
}


def _protocol_for(source: str):
    kind = source.partition(":")[0]
    return PROTOCOLS["shd-seed000" if kind == "shd" else kind]


def _network(cfg: TrainConfig) -> FloatSRNN:
    outputs = cfg.n_way if cfg.labels == "task" else cfg.outputs
    return FloatSRNN(SRNNConfig.make(channels=cfg.channels, neurons=cfg.neurons, outputs=outputs), exact=True)


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
    of floating-point sums). Only rank 0 writes checkpoints, metrics and evaluations."""
    from tqdm import tqdm

    rank, world = _distributed()
    if cfg.meta_batch % world:
        raise ConfigError(f"meta_batch={cfg.meta_batch} does not split over {world} ranks; use a multiple of {world}.")
    share = cfg.meta_batch // world
    progress = progress and rank == 0
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    ds = dataset or load_source(cfg.data, channels=cfg.channels, steps=cfg.steps, progress=progress)
    protocol = _protocol_for(cfg.data)
    sampler = protocol.meta_train(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query, seed=cfg.seed,
                                  relabel=cfg.labels == "task")
    net = _network(cfg)
    p = init_params(net, seed=cfg.seed)
    first = sampler.episode(10**6)
    gain = calibrate_input_gain(net, p, torch.cat([first.support, first.query]).transpose(0, 1), cfg.target_rate)
    mask = None
    if cfg.layout:
        rows, cols = cfg.grid()
        mask = layout_mask(rows, cols, cfg.neurons, cfg.layout_beta)
        mask = (mask / mask.max()).float()
        with torch.no_grad():
            p.w_rec.mul_((mask < 1).float())       # start without the connections the layout forbids
    device = DEVICES[cfg.rram]
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    opt = torch.optim.Adam(p.tensors(), lr=cfg.maml.outer_lr)
    hi = net.config.core.weight_range[1]
    metrics_path = out / "metrics.jsonl"
    if rank == 0:
        metrics_path.unlink(missing_ok=True)
    history = []
    start = time.perf_counter()
    bar = tqdm(range(cfg.iterations), desc="meta-training", unit="it", disable=not progress)
    for it in bar:
        episodes = sampler.batch(it * cfg.meta_batch + rank * share, share)
        q = Params(noisy_weights(p.w_in, device, gen), noisy_weights(p.w_rec, device, gen),
                   noisy_weights(p.w_out, device, gen)) if cfg.rram != "ideal" else p
        loss, acc = meta_loss(net, q, episodes, cfg.maml)
        penalty = layout_penalty(p.w_rec / hi, mask) if mask is not None else torch.zeros(())
        opt.zero_grad()
        (loss + cfg.layout_lambda * penalty).backward()
        loss, acc = loss.detach(), acc.detach()
        if world > 1:
            import torch.distributed as dist
            for t in [w.grad for w in p.tensors()] + [loss, acc]:
                dist.all_reduce(t)
                t /= world
        opt.step()
        p.project(net)
        if mask is not None and it >= cfg.iterations // 4:
            prune(p.w_rec.data, cfg.prune_threshold)
        row = {"iteration": it, "loss": round(loss.item(), 4), "query_accuracy": round(acc.item(), 4),
               "layout_penalty": round(float(penalty.detach()), 6), "elapsed_s": round(time.perf_counter() - start, 2)}
        if rank == 0 and ((it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations):
            ck = _checkpoint(cfg, net, p, {"iteration": it + 1, "input_gain": gain})
            save_checkpoint(out, ck)
            row.update({f"eval_{k}": v for k, v in evaluate(ck, ds, cfg, tasks=cfg.eval_tasks)["integer"].items()
                        if k.endswith("mean")})
        history.append(row)
        if rank == 0:
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        bar.set_postfix(loss=row["loss"], acc=row["query_accuracy"])
    summary = {"iterations": cfg.iterations, "train_s": round(time.perf_counter() - start, 1),
               "final": history[-1], "config": dataclasses.asdict(cfg), "ranks": world}
    if rank == 0:
        if mask is not None:
            summary["connectivity"] = connectivity_stats(load_checkpoint(out).w_rec, *cfg.grid())
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        _plot(history, out / "curves.png")
    if return_params:
        summary["params"] = p
    return summary


def _checkpoint(cfg: TrainConfig, net: FloatSRNN, p: Params, meta: dict) -> Checkpoint:
    w = deployable_weights(net.config, p.w_in, p.w_rec, p.w_out)
    return Checkpoint(net.config, w["w_in"], w["w_rec"], w["w_out"], {**meta, "train": dataclasses.asdict(cfg)})


_EVAL_CHUNK = 10


def evaluate(ck: Checkpoint, ds: SpikeDataset, cfg: TrainConfig, *, tasks: int = 50, devices: int = 0,
             inner_steps: int | None = None, seed: int = 1234) -> dict:
    """Seen / unseen query accuracy of the deployable network on meta-test tasks: hidden activity
    from the bit-exact integer network, the readout adapted by the inner loop, then rounded to its
    integers and read out in integer arithmetic. With ``devices``, repeated over sampled RRAM devices."""
    protocol = _protocol_for(cfg.data)
    sampler = protocol.meta_test(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query, seed=seed,
                                 relabel=cfg.labels == "task")
    maml = dataclasses.replace(cfg.maml, inner_steps=inner_steps or cfg.maml.inner_steps)
    net = FloatSRNN(ck.config, exact=True)
    unseen = set(protocol.unseen)
    device_seeds = list(range(devices)) if devices else [None]
    episodes = [sampler.episode(i) for i in range(tasks)]
    per_device = []
    for dseed in device_seeds:
        w_in, w_rec, w_out = ck.w_in, ck.w_rec, ck.w_out
        if dseed is not None:
            dev = DEVICES[cfg.rram if cfg.rram != "ideal" else "mosaic"]
            lo, hi = ck.config.core.weight_range
            w_in = torch.round(program(w_in.double(), dev, 2 * dseed)).clamp(lo, hi).long()
            w_rec = torch.round(program(w_rec.double(), dev, 2 * dseed + 1)).clamp(lo, hi).long()
        integer = IntegerSRNN(ck.config, w_in, w_rec, w_out)
        counts = {"seen": [0, 0], "unseen": [0, 0]}
        for i, e in enumerate(episodes):
            # The hidden activity does not depend on the readout: one batched integer run per chunk
            # of tasks (bounded memory for large networks).
            if i % _EVAL_CHUNK == 0:
                chunk = episodes[i:i + _EVAL_CHUNK]
                hidden = integer.hidden(torch.cat([torch.cat([c.support, c.query]) for c in chunk]).transpose(0, 1))
                offset = 0
            ns, nq = e.support.shape[0], e.query.shape[0]
            h = hidden[:, offset:offset + ns + nq]
            offset += ns + nq
            with torch.enable_grad():
                adapted = adapt_readout(net, w_out.double(), h[:, :ns].double(), e.support_labels, maml)
            w_adapted = deployable_weights(ck.config, w_in, w_rec, adapted)["w_out"]
            ok = integer.readout(h[:, ns:], w_adapted).argmax(-1) == e.query_labels
            classes = [e.classes[y] if cfg.labels == "task" else y for y in e.query_labels.tolist()]
            for y, good in zip(classes, ok.tolist()):
                key = "unseen" if y in unseen else "seen"
                counts[key][0] += int(good)
                counts[key][1] += 1
        per_device.append({k: (c / n if n else math.nan) for k, (c, n) in counts.items()})
    seen = torch.tensor([d["seen"] for d in per_device])
    uns = torch.tensor([d["unseen"] for d in per_device])
    return {"integer": {"seen_mean": round(float(seen.mean()), 4), "seen_std": round(float(seen.std()), 4) if len(seen) > 1 else 0.0,
                        "unseen_mean": round(float(uns.mean()), 4), "unseen_std": round(float(uns.std()), 4) if len(uns) > 1 else 0.0},
            "tasks": tasks, "devices": devices, "inner_steps": maml.inner_steps}


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
    ev = [(h["iteration"], h.get("eval_unseen_mean"), h.get("eval_seen_mean")) for h in history if "eval_seen_mean" in h]
    if ev:
        b.plot([e[0] for e in ev], [e[2] for e in ev], "o-", label="meta-test seen (integer)")
        b.plot([e[0] for e in ev], [e[1] for e in ev], "s-", label="meta-test unseen (integer)")
    b.set_xlabel("iteration")
    b.set_ylabel("accuracy")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
