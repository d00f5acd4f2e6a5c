"""``neuromosaic bench train``: meta-training throughput of the seed network (256 channels, 256 LIF
neurons, 100 steps, 5-way 5-shot) with our MAML (one batched pass of the fused recurrent layer, vmap
over tasks) next to a plain reference loop on the same tasks (per task: its own forward passes through
the twin's step-by-step autograd graph and ``autograd.grad`` on a copied readout), each in a fresh
process so that its peak memory is its own."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["bench_train"]


def _setup(tasks: int, fused: bool = True):
    import torch

    from ..model.data import PROTOCOLS, synthetic_dataset
    from ..model.maml import MAMLConfig, init_params
    from ..model.snn import FloatSRNN, SRNNConfig
    torch.set_num_threads(2)
    ds = synthetic_dataset(classes=20, samples_per_class=12, speakers=4, channels=256, steps=100)
    sampler = PROTOCOLS["synthetic"].meta_train(ds, relabel=True)
    net = FloatSRNN(SRNNConfig.make(channels=256, neurons=256, outputs=5), exact=True, fused=fused)
    p = init_params(net)
    return net, p, sampler, MAMLConfig()


def _reference_step(net, p, episodes, cfg):
    """The textbook loop: every task on its own, readout copied, inner gradient by autograd.grad."""
    import torch
    import torch.nn.functional as F

    from ..model.maml import regularisers
    total, rate_terms = 0.0, []
    for e in episodes:
        hs = net.hidden(e.support.transpose(0, 1), p.w_in, p.w_rec)
        hq = net.hidden(e.query.transpose(0, 1), p.w_in, p.w_rec)
        w = p.w_out.clone()
        for _ in range(cfg.inner_steps):
            (g,) = torch.autograd.grad(F.cross_entropy(net.readout(hs, w), e.support_labels), w, create_graph=True)
            w = w - p.inner_lr(cfg) * g
        total = total + F.cross_entropy(net.readout(hq, w), e.query_labels)
        rate_terms += [h.mean(dim=(0, 2)) for h in (hs, hq)]
    return total / len(episodes) + regularisers(p, torch.cat(rate_terms), cfg)


def _worker(method: str, tasks: int, repeats: int) -> dict:
    import torch

    from ..model.maml import meta_loss
    # The reference runs the twin's plain step-by-step autograd graph; ours, the fused layer.
    net, p, sampler, cfg = _setup(tasks, fused=method == "ours")
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for r in range(repeats):
        episodes = sampler.batch(r * tasks, tasks)
        start = time.perf_counter()
        loss = meta_loss(net, p, episodes, cfg)[0] if method == "ours" else _reference_step(net, p, episodes, cfg)
        for w in p.trained(cfg):
            w.grad = None
        loss.backward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    del torch
    return {"method": method, "s_per_meta_step": round(min(times), 3), "tasks_per_s": round(tasks / min(times), 3),
            "peak_rss_increase_mb_per_task": round((peak - base) / 1024 / tasks, 1)}


def bench_train(quick: bool = False, out: str | Path = "build/bench") -> dict:
    # Our default meta-batch (TrainConfig.meta_batch); the fastest of 5 steps, so the first step's
    # warm-up (tracing, allocation) and the noise of a shared machine are not counted for either method.
    tasks, repeats = (2, 1) if quick else (8, 5)
    rows = {}
    for method in ("ours", "reference"):
        r = subprocess.run([sys.executable, "-c", f"import json; from neuromosaic.bench.train import _worker; "
                            f"print(json.dumps(_worker({method!r}, {tasks}, {repeats})))"],
                           capture_output=True, text=True, check=True)
        rows[method] = json.loads(r.stdout.strip().splitlines()[-1])
    result = {"network": "256 channels -> 256 LIF (recurrent) -> 5 readout, 100 steps, 5-way 5-shot 5-query",
              "tasks_per_meta_batch": tasks, "ours": rows["ours"], "reference_loop": rows["reference"],
              "speedup": round(rows["ours"]["tasks_per_s"] / rows["reference"]["tasks_per_s"], 2),
              "speedup_goal": 3.0}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "train.json").write_text(json.dumps(result, indent=2))
    return result
