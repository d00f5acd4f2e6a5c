"""Seed 001's learning experiment: a 2-layer SNN learns to reproduce a spatio-temporal spike
pattern with integer weights and integer updates, measured by the van Rossum distance, and what
its training costs in each synapse memory organisation at each weight density.

* Network: ``inputs -> hidden -> outputs`` LIF neurons (leak ``alpha``, threshold 1, reset by
  subtraction), ``W``-bit integer weights scaled by ``gain / 2^(W-1)``, a fixed random sparsity mask
  per layer at the given density (a sparse organisation cannot create synapses).
* Task: a fixed Poisson input raster and a random target raster of the outputs; the loss is the
  squared van Rossum distance (spike trains filtered with ``exp(-t / tau)``).
* Integer training (WAGE-style, as in seed 001's code): surrogate gradients through time; each layer's
  gradient is normalised by the power of two above its largest magnitude, multiplied by ``rate``
  (integer steps) and stochastically rounded to an integer step; weights saturate to ``W`` bits and
  masked synapses stay zero.
* Retention error: the van Rossum distance of the output to the target relative to that of an
  empty output (1: nothing retained, 0: the pattern exactly), averaged over the last tenth of the
  iterations (stochastic rounding makes single iterations noisy); ``final`` is that of the trained
  weights.
* Training energy per iteration (:mod:`.energy`, ``event`` schedule): every input and hidden spike
  is one forward event (the forward pass's energy per presynaptic neuron, times the events), every
  step's output errors one transposed pass of the output layer (to reach the hidden neurons), and
  one update pass of both layers.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .config import ConfigError
from .energy import Layer, layer_energy, random_mask
from .synapse import LABELS, MATRIX_ORGANISATIONS

__all__ = ["RetentionConfig", "van_rossum", "train_retention", "retention_experiment"]


@dataclass(frozen=True)
class RetentionConfig:
    inputs: int = 100
    hidden: int = 100
    outputs: int = 20
    steps: int = 100
    weight_bits: int = 8
    input_rate: float = 0.1
    target_spikes: int = 4          # per output neuron
    alpha: float = 0.8
    gain: float = 1.0
    tau: float = 5.0
    rate: float = 8.0               # integer steps of the largest update
    iterations: int = 200
    seed: int = 0

    def __post_init__(self):
        for name in ("inputs", "hidden", "outputs", "steps", "iterations", "target_spikes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)} is not allowed; allowed: 1 or more.")
        if not 2 <= self.weight_bits <= 16:
            raise ConfigError(f"weight_bits={self.weight_bits} is not allowed; allowed: 2..16.")
        if self.target_spikes > self.steps:
            raise ConfigError(f"target_spikes={self.target_spikes} is more than steps={self.steps}.")


def _filter(spikes: torch.Tensor, tau: float) -> torch.Tensor:
    decay, trace, out = math.exp(-1.0 / tau), torch.zeros_like(spikes[0]), []
    for s in spikes:
        trace = trace * decay + s
        out.append(trace)
    return torch.stack(out)


def van_rossum(a: torch.Tensor, b: torch.Tensor, tau: float = 5.0) -> torch.Tensor:
    """Squared van Rossum distance of two ``[T, N]`` rasters: ``sum((f(a) - f(b))^2) / tau``."""
    return ((_filter(a, tau) - _filter(b, tau)) ** 2).sum() / tau


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, v):
        ctx.save_for_backward(v)
        return (v >= 1.0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):
        (v,) = ctx.saved_tensors
        return grad / (1.0 + 10.0 * (v - 1.0).abs()) ** 2          # fast-sigmoid surrogate


def _run(x: torch.Tensor, weights, scale: float, alpha: float):
    """Spikes of every layer for input raster ``x`` [T, inputs]."""
    rasters, layer_in = [], x
    for w in weights:
        v = torch.zeros(w.shape[0], dtype=x.dtype)
        out = []
        for t in range(layer_in.shape[0]):
            v = alpha * v + layer_in[t] @ (w * scale).t()
            s = _Spike.apply(v)
            v = v - s.detach()
            out.append(s)
        layer_in = torch.stack(out)
        rasters.append(layer_in)
    return rasters


def _masks(cfg: RetentionConfig, density: float, g: torch.Generator):
    return [random_mask(shape, density, g) for shape in ((cfg.hidden, cfg.inputs), (cfg.outputs, cfg.hidden))]


def train_retention(cfg: RetentionConfig, density: float, progress=None) -> dict:
    """Trains at one density; returns the retention error per iteration and the spike counts."""
    if not 0 < density <= 1:
        raise ConfigError(f"density {density} is not allowed; allowed: more than 0 and at most 1.")
    g = torch.Generator().manual_seed(cfg.seed)
    x = (torch.rand(cfg.steps, cfg.inputs, generator=g) < cfg.input_rate).double()
    target = torch.zeros(cfg.steps, cfg.outputs, dtype=torch.float64)
    for n in range(cfg.outputs):
        target[torch.randperm(cfg.steps, generator=g)[:cfg.target_spikes], n] = 1.0
    empty = float(van_rossum(torch.zeros_like(target), target, cfg.tau))
    hi = (1 << (cfg.weight_bits - 1)) - 1
    masks = _masks(cfg, density, g)
    # initial weights: uniform with a fan-in scaled spread, integers, masked
    weights = []
    for m in masks:
        spread = min(hi, max(1, round(hi * 3.0 / math.sqrt(max(1.0, float(m.sum(1).float().mean()))))))
        w = torch.randint(-spread, spread + 1, m.shape, generator=g) * m
        weights.append(w.to(torch.int64))
    scale = cfg.gain / (1 << (cfg.weight_bits - 1))
    history = []
    for it in range(cfg.iterations):
        ws = [w.double().requires_grad_(True) for w in weights]
        hidden, out = _run(x, ws, scale, cfg.alpha)
        loss = van_rossum(out, target, cfg.tau)
        history.append(float(loss.detach()) / empty)
        loss.backward()
        for w, wf, m in zip(weights, ws, masks):
            grad = wf.grad * m
            peak = float(grad.abs().max())
            if peak == 0:
                continue
            step = -cfg.rate * grad / 2.0 ** math.ceil(math.log2(peak))
            low = torch.floor(step)
            step = low + (torch.rand(step.shape, generator=g, dtype=step.dtype) < step - low)
            w.copy_(((w + step.to(torch.int64)).clamp(-hi - 1, hi)) * m)
        if progress and (it + 1) % max(1, cfg.iterations // 10) == 0:
            progress(f"density {density}: iteration {it + 1}/{cfg.iterations}, retention error {history[-1]:.3f}")
    hidden, out = _run(x, [w.double() for w in weights], scale, cfg.alpha)
    final = float(van_rossum(out.detach(), target, cfg.tau)) / empty
    tail = history[-max(1, cfg.iterations // 10):]
    return {"density": density, "retention_error": sum(tail) / len(tail), "final": final, "history": history,
            "spikes": {"input": int(x.sum()), "hidden": int(hidden.sum()), "output": int(out.sum())},
            "synapses": [int(m.sum()) for m in masks], "masks": masks}


def training_energy(cfg: RetentionConfig, density: float, organisation: str, spikes: dict, seed: int = 0) -> float:
    """Energy (pJ) of one training iteration in ``organisation`` (see the module docstring)."""
    l1 = Layer("fc", inputs=cfg.inputs, outputs=cfg.hidden)
    l2 = Layer("fc", inputs=cfg.hidden, outputs=cfg.outputs)
    e1 = layer_energy(l1, organisation, density, cfg.weight_bits, seed=seed)["energy_pj"]
    e2 = layer_energy(l2, organisation, density, cfg.weight_bits, seed=seed + 1)["energy_pj"]
    forward = e1["forward"] * spikes["input"] / cfg.inputs + e2["forward"] * spikes["hidden"] / cfg.hidden
    return forward + cfg.steps * e2["backward"] + e1["update"] + e2["update"]


def retention_experiment(cfg: RetentionConfig = RetentionConfig(), densities=(0.1, 0.25, 0.5, 1.0),
                         organisations=MATRIX_ORGANISATIONS, progress=None) -> dict:
    """Retention error and training energy per density and organisation; efficiency and retention
    loss are relative to the crossbar at full density (its energy over the row's), which is always run."""
    densities = sorted(set(float(d) for d in densities) | {1.0})
    runs = [train_retention(cfg, d, progress) for d in densities]
    rows = []
    for run in runs:
        for org in organisations:
            rows.append({"density": run["density"], "organisation": org, "label": LABELS[org],
                         "retention_error": run["retention_error"],
                         "energy_uj": training_energy(cfg, run["density"], org, run["spikes"]) * 1e-6})
    base = next(r for r in rows if r["density"] == 1.0)
    base_energy = training_energy(cfg, 1.0, "dense", runs[-1]["spikes"]) * 1e-6
    for r in rows:
        r["efficiency"] = base_energy / r["energy_uj"]
        r["retention_loss"] = r["retention_error"] - base["retention_error"]
    return {"config": asdict(cfg), "rows": rows,
            "histories": {str(run["density"]): run["history"] for run in runs},
            "spikes": {str(run["density"]): run["spikes"] for run in runs}}
