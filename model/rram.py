"""Memristive (RRAM/PCM) weights: a weight is a differential pair of conductances with a finite number
of levels, programmed with noise, read with noise, optionally drifting. Used two ways:

* in training, ``noisy_weights`` injects the device's error with a straight-through gradient;
* in evaluation, ``program`` draws one device instance (programming error, then read noise and
  drift at time t) and maps it back to the weight it realises, so accuracy can be measured over many
  sampled devices (mean and spread).

Presets (``../shared/reference/mosaic-maml-rram.md`` section 3):
``mosaic``: the EIS lab's Gaussian weight noise, sigma = 0.05 max|W| on non-zero weights (Mosaic /
meta-mosaic); ``reram-wan2022``: programming error sigma(x) of Wan et al. (Nature 2022, as in aihwkit,
at t = 1 s, g_max 40 uS) plus 1 % read noise; ``pcm-nandakumar``: aihwkit's PCM-like model
(programming error, drift exponent nu, 1/f read noise; Nandakumar et al. 2019).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ConfigError

__all__ = ["Device", "PRESETS", "noisy_weights", "program"]


@dataclass(frozen=True)
class Device:
    name: str
    levels: int = 0                  # conductance levels per device (0: continuous)
    relative_sigma: float = 0.0      # "mosaic" style: sigma = relative_sigma * max|W|
    model: str = "gaussian"          # gaussian | wan2022 | pcm
    g_max: float = 40.0              # uS
    read_sigma: float = 0.0          # relative read noise
    drift_time: float = 0.0          # s after programming (pcm drift, 1/f read noise)

    def __post_init__(self):
        if self.levels < 0 or self.levels == 1:
            raise ConfigError(f"levels={self.levels} is not allowed; allowed: 0 (continuous) or 2 or more.")
        if self.model not in ("gaussian", "wan2022", "pcm"):
            raise ConfigError(f"device model {self.model!r} is unknown; allowed: gaussian, wan2022, pcm.")


PRESETS = {
    "ideal": Device("ideal"),
    "mosaic": Device("mosaic", relative_sigma=0.05),
    "reram-wan2022": Device("reram-wan2022", levels=16, model="wan2022", g_max=40.0, read_sigma=0.01),
    "pcm-nandakumar": Device("pcm-nandakumar", levels=16, model="pcm", g_max=25.0, drift_time=3600.0),
}


def _pair(w: torch.Tensor, scale: float, device: Device):
    """Differential pair G+ - G- = w * scale (one of the two at 0), on the device's levels."""
    g = (w.abs() * scale).clamp(0, device.g_max)
    if device.levels:
        step = device.g_max / (device.levels - 1)
        g = torch.round(g / step) * step
    pos = torch.where(w > 0, g, torch.zeros_like(g))
    neg = torch.where(w < 0, g, torch.zeros_like(g))
    return pos, neg


def _programmed(g: torch.Tensor, device: Device, gen: torch.Generator) -> torch.Tensor:
    x = (g / device.g_max).clamp(0, 1)
    n = torch.randn(g.shape, generator=gen, dtype=g.dtype)
    if device.model == "wan2022":
        sigma = (0.348 + 16.030 * x - 43.853 * x ** 2 + 45.393 * x ** 3 - 16.815 * x ** 4) * device.g_max / 40.0
        g = g + sigma * n
        g = g + device.read_sigma * g.abs() * torch.randn(g.shape, generator=gen, dtype=g.dtype)
    elif device.model == "pcm":
        sigma = (0.26348 + 1.9650 * x - 1.1731 * x ** 2) * device.g_max / 25.0
        g = (g + sigma * n).clamp(min=0)
        if device.drift_time > 0:
            xs = x.clamp(min=1e-6)
            mu = (-0.0155 * torch.log(xs) + 0.0244).clamp(0.049, 0.1)
            sd = (-0.0125 * torch.log(xs) - 0.0059).clamp(0.008, 0.045)
            nu = (mu + sd * torch.randn(g.shape, generator=gen, dtype=g.dtype)).abs()
            t0, t = 20.0, device.drift_time
            g = g * ((t + t0) / t0) ** (-nu)
            q = (0.0088 / x.pow(0.65).clamp(min=1e-3)).clamp(max=0.2)
            read = q * math.sqrt(math.log((t + 250e-9) / (2 * 250e-9)))
            g = g + g.abs() * read * torch.randn(g.shape, generator=gen, dtype=g.dtype)
    return g.clamp(0, device.g_max)


def program(w: torch.Tensor, device: Device, seed: int) -> torch.Tensor:
    """The weights one sampled device instance realises (same units as ``w``; zeros stay zero: an
    absent synapse has no device)."""
    if device.model == "gaussian" and not device.levels:
        return noisy_weights(w, device, torch.Generator().manual_seed(seed)).detach()
    wmax = float(w.detach().abs().max())
    if wmax == 0:
        return w.detach().clone()
    scale = device.g_max / wmax
    gen = torch.Generator().manual_seed(seed)
    pos, neg = _pair(w.detach(), scale, device)
    if device.model == "gaussian":
        realised = (pos - neg) / scale
        sigma = device.relative_sigma * wmax
        realised = realised + sigma * torch.randn(w.shape, generator=gen, dtype=w.dtype)
    else:
        realised = (_programmed(pos, device, gen) - _programmed(neg, device, gen)) / scale
    return torch.where(w != 0, realised, torch.zeros_like(realised))


def noisy_weights(w: torch.Tensor, device: Device, gen: torch.Generator | None = None) -> torch.Tensor:
    """Training-time injection: ``w`` plus a sampled device error, straight-through (the gradient is
    that of ``w``)."""
    if device.name == "ideal":
        return w
    if device.model == "gaussian" and not device.levels:
        sigma = device.relative_sigma * float(w.detach().abs().max())
        noise = sigma * torch.randn(w.shape, generator=gen, dtype=w.dtype)
        noise = torch.where(w.detach() != 0, noise, torch.zeros_like(noise))
        return w + noise
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen)) if gen is not None else 0
    return w + (program(w, device, seed) - w).detach()
