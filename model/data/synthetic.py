"""Built-in spiking few-shot classes: no files, deterministic from a seed, as many classes as asked.

Each class is a spatio-temporal rate map made of a few "formant" ridges: Gaussian bands of
channels whose centre glides linearly over time, switched on for part of the window (a caricature
of a spoken word through a cochlea). Each speaker shifts the channels and scales the timing by a
fixed amount; each sample adds a random time jitter, drops spikes and adds background noise. The
result has the structure the real data has (classes, speakers, spectro-temporal patterns) and takes
milliseconds to build.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DataError, SpikeDataset

__all__ = ["SyntheticSpec", "synthetic_dataset"]


@dataclass(frozen=True)
class SyntheticSpec:
    classes: int = 20
    samples_per_class: int = 60     # per speaker
    speakers: int = 4
    steps: int = 100
    channels: int = 256
    ridges: int = 3                 # formant-like bands per class
    peak_rate: float = 0.5          # spike probability per bin at a ridge's centre
    jitter: int = 3                 # +- bins of random time shift per sample
    dropout: float = 0.2            # share of pattern spikes removed per sample
    noise_rate: float = 0.005       # background spike probability per bin and channel
    seed: int = 0

    def __post_init__(self):
        for name, lo in (("classes", 1), ("samples_per_class", 1), ("speakers", 1), ("steps", 4),
                         ("channels", 4), ("ridges", 1), ("jitter", 0)):
            if int(getattr(self, name)) < lo:
                raise DataError(f"{name}={getattr(self, name)} is not allowed; allowed: {lo} or more.")
        for name in ("peak_rate", "dropout", "noise_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise DataError(f"{name}={getattr(self, name)} is not allowed; allowed: a probability in [0, 1].")


def _prototypes(spec: SyntheticSpec, g: torch.Generator) -> torch.Tensor:
    """Rate maps [classes, T, C]."""
    T, C, R, K = spec.steps, spec.channels, spec.ridges, spec.classes
    t = torch.arange(T).float().view(1, 1, T, 1)
    c = torch.arange(C).float().view(1, 1, 1, C)
    start_c = torch.rand(K, R, 1, 1, generator=g) * C
    end_c = (start_c + (torch.rand(K, R, 1, 1, generator=g) - 0.5) * C * 0.4).clamp(0, C - 1)
    on = torch.rand(K, R, 1, 1, generator=g) * T * 0.4
    off = on + T * (0.3 + 0.3 * torch.rand(K, R, 1, 1, generator=g))
    width = C * (0.02 + 0.03 * torch.rand(K, R, 1, 1, generator=g))
    centre = start_c + (end_c - start_c) * ((t - on) / (off - on)).clamp(0, 1)
    active = ((t >= on) & (t < off)).float()
    ridge = torch.exp(-0.5 * ((c - centre) / width) ** 2) * active
    return (ridge.sum(1) * spec.peak_rate).clamp(0, 1)             # [K, T, C]


def synthetic_dataset(spec: SyntheticSpec | None = None, **overrides) -> SpikeDataset:
    spec = spec or SyntheticSpec(**overrides)
    g = torch.Generator().manual_seed(spec.seed)
    protos = _prototypes(spec, g)
    K, T, C = protos.shape
    S, P = spec.speakers, spec.samples_per_class
    # Speaker s: a fixed channel shift and a time scale.
    shifts = torch.randint(-C // 32, C // 32 + 1, (S,), generator=g)
    scales = 0.85 + 0.3 * torch.rand(S, generator=g)
    rasters, labels, speakers = [], [], []
    for s in range(S):
        src = (torch.arange(T).float() / scales[s]).round().long().clamp(0, T - 1)
        spk = torch.roll(protos[:, src, :], int(shifts[s]), dims=2)          # [K, T, C]
        rate = spk.unsqueeze(1).expand(K, P, T, C)
        jit = torch.randint(-spec.jitter, spec.jitter + 1, (K, P), generator=g)
        idx = (torch.arange(T).view(1, 1, T) - jit.unsqueeze(-1)).clamp(0, T - 1)
        rate = torch.gather(rate, 2, idx.unsqueeze(-1).expand(K, P, T, C))
        # A pattern spike that survives dropout, or a noise spike: one Bernoulli draw per bin.
        p = 1 - (1 - rate * (1 - spec.dropout)) * (1 - spec.noise_rate)
        rasters.append((torch.rand(K, P, T, C, generator=g) < p).to(torch.uint8).reshape(K * P, T, C))
        labels.append(torch.arange(K).repeat_interleave(P))
        speakers += [f"synth{s}"] * (K * P)
    return SpikeDataset(torch.cat(rasters), torch.cat(labels), speakers, [f"class{k}" for k in range(K)],
                        source="synthetic", info={"spec": spec.__dict__.copy()})
