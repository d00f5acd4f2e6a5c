"""``neuromosaic bench train``: meta-training throughput of the seed network (256 channels, 256 LIF
neurons, 100 steps, 5-way 5-shot), each method in a fresh process so that its peak memory is its own:

* ``ours``: one batched pass of the in-place recurrent layer, every task's inner loop in closed form,
  the allocator keeping freed memory; next to a plain reference loop on the same tasks (per task:
  its own forward passes through the twin's step-by-step autograd graph and ``autograd.grad`` on a
  copied readout);
* ``seed000``: the preset's meta-batch of 16 tasks with the previous formulation (the fused layer,
  ``vmap`` over tasks, the default allocator) and the new one side by side, and the previous
  formulation with the allocator setting alone, to show what each part buys."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["bench_train"]


def _setup(engine: str):
    import torch

    from ..model.data import PROTOCOLS, synthetic_dataset
    from ..model.maml import MAMLConfig, init_params
    from ..model.snn import FloatSRNN, SRNNConfig
    torch.set_num_threads(2)
    ds = synthetic_dataset(classes=20, samples_per_class=12, speakers=4, channels=256, steps=100)
    sampler = PROTOCOLS["synthetic"].meta_train(ds, relabel=True)
    net = FloatSRNN(SRNNConfig.make(channels=256, neurons=256, outputs=5), exact=True, engine=engine)
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


# method -> (recurrent engine, batched inner loop, allocator keeps freed memory)
_METHODS = {"ours": ("inplace", True, True), "previous": ("fused", False, False),
            "previous+allocator": ("fused", False, True), "reference": ("graph", None, False)}


def _worker(method: str, tasks: int, repeats: int) -> dict:
    from ..model.allocator import keep_freed_memory
    from ..model.maml import meta_loss
    engine, batched, allocator = _METHODS[method]
    if allocator:
        keep_freed_memory()
    net, p, sampler, cfg = _setup(engine)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for r in range(repeats):
        episodes = sampler.batch(r * tasks, tasks)
        start = time.perf_counter()
        if method == "reference":
            loss = _reference_step(net, p, episodes, cfg)
        else:
            loss = meta_loss(net, p, episodes, cfg, batched=batched)[0]
        for w in p.trained(cfg):
            w.grad = None
        loss.backward()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "s_per_meta_step": round(min(times), 3), "tasks_per_s": round(tasks / min(times), 3),
            "peak_rss_increase_mb_per_task": round((peak - base) / 1024 / tasks, 1)}


def _run(method: str, tasks: int, repeats: int) -> dict:
    r = subprocess.run([sys.executable, "-c", f"import json; from neuromosaic.bench.train import _worker; "
                        f"print(json.dumps(_worker({method!r}, {tasks}, {repeats})))"],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def bench_train(quick: bool = False, out: str | Path = "build/bench") -> dict:
    # The fastest of the repeats, so the first step's warm-up (allocation) and the noise of a shared
    # machine are not counted for either method.
    tasks, seed_tasks, repeats = (2, 2, 1) if quick else (8, 16, 5)
    rows = {m: _run(m, tasks, repeats) for m in ("ours", "reference")}
    seed = {m: _run(m, seed_tasks, repeats) for m in ("previous", "ours", "previous+allocator")}
    result = {"network": "256 channels -> 256 LIF (recurrent) -> 5 readout, 100 steps, 5-way 5-shot 5-query",
              "tasks_per_meta_batch": tasks, "ours": rows["ours"], "reference_loop": rows["reference"],
              "speedup": round(rows["ours"]["tasks_per_s"] / rows["reference"]["tasks_per_s"], 2),
              "speedup_goal": 3.0,
              "seed000": {"tasks_per_meta_batch": seed_tasks, "previous": seed["previous"], "new": seed["ours"],
                          "previous_with_allocator": seed["previous+allocator"],
                          "speedup": round(seed["previous"]["s_per_meta_step"] / seed["ours"]["s_per_meta_step"], 2),
                          "speedup_of_the_allocator_alone": round(seed["previous"]["s_per_meta_step"]
                                                                  / seed["previous+allocator"]["s_per_meta_step"], 2),
                          "speedup_goal": 4.0}}
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "train.json").write_text(json.dumps(result, indent=2))
    return result
