"""``neuromosaic bench data``: FSDD encoding throughput and episode sampling rate, next to the time
of a training step on the same episode, so that training is never data-bound."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from ..model.data import PROTOCOLS, CochleaEncoder, synthetic_dataset
from ..model.data.fsdd import fsdd_files, read_wav

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


def _training_step(episode, repeats: int) -> float:
    """One meta-training step (the MAML of ``model/maml.py``: hidden pass, inner readout step,
    query loss, backward through it) of the seed-sized network on the episode."""
    from ..model.maml import MAMLConfig, init_params, meta_loss
    from ..model.snn import FloatSRNN, SRNNConfig
    net = FloatSRNN(SRNNConfig.make(channels=256, neurons=256, outputs=5), exact=True)
    p = init_params(net)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loss, _ = meta_loss(net, p, [episode], MAMLConfig())
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
    sampler = PROTOCOLS["synthetic"].meta_train(ds, n_way=5, k_shot=5, k_query=5, relabel=True)
    n = 50 if quick else 500
    sampler.episode(0)
    start = time.perf_counter()
    for i in range(n):
        sampler.episode(i)
    per_episode = (time.perf_counter() - start) / n
    step = _training_step(sampler.episode(0), 2 if quick else 5)
    result["episodes"] = {"n_way": 5, "k_shot": 5, "k_query": 5, "steps": 100, "channels": 256,
                          "episodes_per_s": round(1 / per_episode, 1), "ms_per_episode": round(1e3 * per_episode, 2)}
    result["training_step_proxy"] = {
        "what": "one MAML meta-training step of the seed network (256 channels -> 256 LIF -> readout) on "
                "one episode (1 inner step, second order)",
        "s_per_step": round(step, 3)}
    result["sampling_vs_step"] = round(step / per_episode, 1)
    result["sampling_vs_step_goal"] = 10
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "data.json").write_text(json.dumps(result, indent=2))
    return result
