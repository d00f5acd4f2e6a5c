"""MAML with the hardware's inner loop (seed 000): only the readout adapts, by a few steps of plain
gradient descent with a large learning rate; the outer loop trains everything by BPTT through the
inner update (second order; first order as an option).

The recurrent layer's activity does not depend on the readout, so one batched forward pass over the
support and query samples of every task in the meta-batch serves all tasks; the per-task inner loop
and query loss then run under ``torch.func.vmap`` with ``torch.func.grad``, with no copied parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from .data.episodes import Episode
from .snn import FloatSRNN

__all__ = ["MAMLConfig", "Params", "init_params", "calibrate_input_gain", "meta_loss", "adapt_readout"]


@dataclass(frozen=True)
class MAMLConfig:
    # Readout-weight units per unit of gradient. Readout gradients in integer weight units are about
    # 1e-3 (logits are 2**-logit_shift of sums of integer potentials), so a step that moves the
    # logits by O(1), the "large" inner step of seed 000, needs a rate of this order.
    inner_lr: float = 30000.0
    inner_steps: int = 1
    first_order: bool = False
    outer_lr: float = 1.0           # Adam, weight units
    weight_decay: float = 1e-5      # seed 000's 0.01 * mean(w**2), scaled to integer weight units


@dataclass
class Params:
    w_in: torch.Tensor
    w_rec: torch.Tensor
    w_out: torch.Tensor

    def tensors(self):
        return [self.w_in, self.w_rec, self.w_out]

    @torch.no_grad()
    def project(self, net: FloatSRNN) -> None:
        """Keeps every weight inside its integer range after an optimiser step. Outside it the
        quantiser's clamp has no gradient, so a readout row pushed past the range (held-out classes'
        rows are pushed down by every meta-training task) could never be adapted again."""
        c = net.config
        self.w_in.clamp_(*c.core.weight_range)
        self.w_rec.clamp_(*c.core.weight_range)
        self.w_out.clamp_(*c.readout_weight_range)


def init_params(net: FloatSRNN, seed: int = 0, dtype=torch.float32) -> Params:
    """Weights in integer units, scaled so the hidden layer fires sparsely on typical input."""
    c = net.config
    g = torch.Generator().manual_seed(seed)
    lo, hi = c.core.weight_range
    w_in = (torch.randn(c.neurons, c.channels, generator=g) * hi * 0.3 + hi * 0.08).clamp(lo, hi)
    w_rec = (torch.randn(c.neurons, c.neurons, generator=g) * hi * 0.1).clamp(lo, hi)
    w_rec.fill_diagonal_(0)
    olo, ohi = c.readout_weight_range
    w_out = (torch.randn(c.outputs, c.neurons, generator=g) * ohi * 0.05).clamp(olo, ohi)
    return Params(*(w.to(dtype).requires_grad_(True) for w in (w_in, w_rec, w_out)))


@torch.no_grad()
def calibrate_input_gain(net: FloatSRNN, p: Params, x: torch.Tensor, target_rate: float = 0.05,
                         iterations: int = 12) -> float:
    """Data-driven initialisation (seed 000's code does an LSUV-like loop): scales the input weights
    by bisection on a log scale until the hidden layer fires at ``target_rate`` spikes per neuron
    and step on the batch ``x`` [T, B, C]. Returns the gain applied."""
    lo_g, hi_g = 1.0 / 64, 64.0
    base = p.w_in.detach().clone()
    gain = 1.0
    for _ in range(iterations):
        gain = (lo_g * hi_g) ** 0.5
        rate = net.hidden(x, base * gain, p.w_rec).mean().item()
        if rate < target_rate:
            lo_g = gain
        else:
            hi_g = gain
    p.w_in.data.copy_((base * gain).clamp(*net.config.core.weight_range))
    return gain


def adapt_readout(net: FloatSRNN, w_out, hidden_s, y_s, cfg: MAMLConfig):
    """The inner loop: ``inner_steps`` gradient steps on the readout from the support set."""
    def loss(w):
        return F.cross_entropy(net.readout(hidden_s, w), y_s)

    for _ in range(cfg.inner_steps):
        g = grad(loss)(w_out)
        if cfg.first_order:
            g = g.detach()
        w_out = w_out - cfg.inner_lr * g
    return w_out


def _split(episodes: list[Episode]):
    sup = torch.stack([e.support for e in episodes])        # [tasks, n_s, T, C]
    qry = torch.stack([e.query for e in episodes])
    ys = torch.stack([e.support_labels for e in episodes])
    yq = torch.stack([e.query_labels for e in episodes])
    return sup, qry, ys, yq


def meta_loss(net: FloatSRNN, p: Params, episodes: list[Episode], cfg: MAMLConfig):
    """Mean query loss after adaptation over the meta-batch, and the query accuracy."""
    sup, qry, ys, yq = _split(episodes)
    tasks, ns, T, C = sup.shape
    nq = qry.shape[1]
    x = torch.cat([sup.reshape(tasks * ns, T, C), qry.reshape(tasks * nq, T, C)]).transpose(0, 1)
    h = net.hidden(x.to(p.w_in.dtype), p.w_in, p.w_rec)                 # [T, tasks*(ns+nq), N]
    hs = h[:, :tasks * ns].reshape(T, tasks, ns, -1).transpose(0, 1)     # [tasks, T, ns, N]
    hq = h[:, tasks * ns:].reshape(T, tasks, nq, -1).transpose(0, 1)

    def one_task(hs_t, ys_t, hq_t, yq_t):
        w = adapt_readout(net, p.w_out, hs_t, ys_t, cfg)
        logits = net.readout(hq_t, w)
        return F.cross_entropy(logits, yq_t), (logits.argmax(-1) == yq_t).float().mean()

    losses, accs = vmap(one_task)(hs, ys, hq, yq)
    reg = cfg.weight_decay * sum((w ** 2).mean() for w in p.tensors())
    return losses.mean() + reg, accs.mean()
