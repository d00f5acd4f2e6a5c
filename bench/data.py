"""``neuromosaic bench data``: FSDD encoding throughput and episode sampling rate, next to the time
of a training step on the same episode, so that training is never data-bound."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..model.config import SEED_LIF
from ..model.data import PROTOCOLS, CochleaEncoder, synthetic_dataset
from ..model.data.fsdd import fsdd_files, read_wav
from ..model.lif import FloatLIF

__all__ = ["bench_data", "DEFAULT_FSDD"]

DEFAULT_FSDD = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "fsdd"


def _encoding(files, channels: int) -> dict:
    enc = CochleaEncoder(channels=channels)
    audio = [read_wav(p) for p, *_ in files]
    enc.encode(audio[0], 100, 1.0)                 # imports and filter design out of the timing
    start = time.perf_counter()
    for a in audio:
        enc.encode(a, 100, 1.0)
    wall = time.perf_counter() - start
    seconds = sum(len(a) for a in audio) / enc.sample_rate
    return {"channels": channels, "recordings": len(audio), "audio_s": round(seconds, 1),
            "wall_s": round(wall, 2), "audio_s_per_wall_s": round(seconds / wall, 1)}


def _training_step_proxy(episode, repeats: int) -> float:
    """Forward and backward through the seed-sized float LIF layer (256 neurons, 256 inputs, BPTT
    over 100 steps) and a linear readout, on the episode's support and query sets: a lower bound on
    one meta-training step, which adds the inner loop on top."""
    cfg = SEED_LIF
    layer = FloatLIF(cfg, exact=False)
    w = (torch.randn(cfg.neurons, cfg.inputs) * 300).requires_grad_(True)
    readout = torch.randn(20, cfg.neurons, requires_grad=True)
    x = torch.cat([episode.support, episode.query]).transpose(0, 1)       # [T, B, C]
    y = torch.cat([episode.support_labels, episode.query_labels])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        spikes, _ = layer(x, w)
        loss = torch.nn.functional.cross_entropy(spikes.sum(0) @ readout.t(), y)
        loss.backward()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_data(quick: bool = False, out: str | Path = "build/bench", fsdd: str | Path | None = None) -> dict:
    torch.set_num_threads(2)
    result: dict = {}
    folder = Path(fsdd) if fsdd else DEFAULT_FSDD
    files = fsdd_files(folder)[:: (100 if quick else 25)]
    result["fsdd_encoding"] = [_encoding(files, ch) for ch in (64, 256)]

    ds = synthetic_dataset(channels=256, steps=100)
    sampler = PROTOCOLS["synthetic"].meta_train(ds, n_way=5, k_shot=5, k_query=5)
    n = 50 if quick else 500
    sampler.episode(0)
    start = time.perf_counter()
    for i in range(n):
        sampler.episode(i)
    per_episode = (time.perf_counter() - start) / n
    step = _training_step_proxy(sampler.episode(0), 2 if quick else 5)
    result["episodes"] = {"n_way": 5, "k_shot": 5, "k_query": 5, "steps": 100, "channels": 256,
                          "episodes_per_s": round(1 / per_episode, 1), "ms_per_episode": round(1e3 * per_episode, 2)}
    result["training_step_proxy"] = {
        "what": "forward+backward of the 256x256 float LIF layer and a readout on one episode (lower bound "
                "of a meta-training step; the MAML step of the training issue replaces it)",
        "s_per_step": round(step, 3)}
    result["sampling_vs_step"] = round(step / per_episode, 1)
    result["sampling_vs_step_goal"] = 10
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "data.json").write_text(json.dumps(result, indent=2))
    return result
