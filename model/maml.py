"""MAML with the hardware's inner loop (seed 000): only the readout adapts, by a few steps of plain
gradient descent with a large learning rate; the outer loop trains everything by BPTT through the
inner update (second order; first order as an option).

The recurrent layer's activity does not depend on the readout, so one batched forward pass over the
support and query samples of every task in the meta-batch serves all tasks. The summed readout is,
piece by piece, linear in its weights, so every task's inner loop and query loss then run at once in
closed form (features of the hidden spikes, the support loss's gradient written out, no copied
parameters and no double backward); the maximum runs per task under ``torch.func.vmap``.

Three choices make one inner step work (measured on FSDD, see docs/meta-learning.md):

* With per-task labels the outputs are exchangeable, so a meta-learned readout init can only hold a
  row common to all outputs, which the softmax ignores; the readout starts every task from zero
  (``readout_init="zero"``; the chip clears it). The one step then makes each output's row the
  support set's class mean minus the mean of all classes (times the rate): a prototype classifier
  by dot product, which the outer loop shapes the hidden layer for.
* The inner rate is meta-learned (a scalar on a log scale, as in Meta-SGD/MAML++ but one value for
  the whole readout, the form of the on-chip rule): with saturating 8-bit readout weights the rate
  is not a mere scale, and a fixed rate leaves the outer loop to trade the hidden activity against it.

* A firing-rate term per sample (seed 000 has one on the mean rate) keeps every sample's hidden
  activity near ``target_rate``, so no class wins the dot product by being louder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.func import grad, vmap

from .config import ConfigError
from .data.episodes import Episode
from .snn import FloatSRNN, round_ste

__all__ = ["MAMLConfig", "Params", "init_params", "calibrate_input_gain", "meta_loss", "adapt_readout",
           "step_rate", "regularisers"]


@dataclass(frozen=True)
class MAMLConfig:
    # Readout-weight units per unit of gradient. Readout gradients in integer weight units are about
    # 1e-3 (logits are 2**-logit_shift of sums of integer potentials), so a step that moves the
    # logits by O(1), the "large" inner step of seed 000, needs a rate of this order.
    inner_lr: float = 30000.0
    inner_steps: int = 1
    learn_inner_lr: bool = True     # inner_lr is then the initial value
    # One meta-learned rate per inner step (else one for all steps), the readout saturated to its
    # integer range after every step as the chip saturates it (so the schedule is learned for the chip)
    rate_schedule: bool = False
    inner_lr_lr: float = 0.05       # Adam rate of log(inner_lr)
    readout_init: str = "zero"      # "zero": every task starts from a zero readout; "learned": MAML's init
    rate_lambda: float = 0.1        # weight of the per-sample firing-rate term
    target_rate: float = 0.05       # spikes per neuron and step (also the calibration target)
    first_order: bool = False
    outer_lr: float = 1.0           # Adam, weight units
    weight_decay: float = 1e-5      # seed 000's 0.01 * mean(w**2), scaled to integer weight units

    def __post_init__(self):
        if self.readout_init not in ("zero", "learned"):
            raise ConfigError(f"readout_init={self.readout_init!r} is unknown; allowed: zero, learned.")
        if not self.inner_lr > 0 or self.inner_steps < 1:
            raise ConfigError(f"inner_lr={self.inner_lr}, inner_steps={self.inner_steps}: allowed are "
                              f"inner_lr > 0 and inner_steps >= 1.")
        if self.rate_schedule and not self.learn_inner_lr:
            raise ConfigError("rate_schedule=True needs a learned inner rate; allowed: rate_schedule with "
                              "learn_inner_lr=True.")


@dataclass
class Params:
    w_in: torch.Tensor
    w_rec: torch.Tensor
    w_out: torch.Tensor
    # meta-learned inner rate: a scalar, or one per inner step (a schedule); None: MAMLConfig.inner_lr
    log_inner_lr: torch.Tensor | None = None

    def tensors(self):
        """The weights (the inner rate is not one)."""
        return [self.w_in, self.w_rec, self.w_out]

    def trained(self, cfg: MAMLConfig) -> list[torch.Tensor]:
        """What the outer loop optimises under ``cfg``."""
        t = [self.w_in, self.w_rec] + ([self.w_out] if cfg.readout_init == "learned" else [])
        return t + ([self.log_inner_lr] if cfg.learn_inner_lr and self.log_inner_lr is not None else [])

    def inner_lr(self, cfg: MAMLConfig):
        """The inner rate: a number, a scalar tensor or, with a schedule, one rate per step."""
        return cfg.inner_lr if self.log_inner_lr is None else self.log_inner_lr.exp()

    def inner_lr_values(self, cfg: MAMLConfig) -> list[float]:
        """The inner rate of each step (one value without a schedule)."""
        if self.log_inner_lr is None:
            return [float(cfg.inner_lr)]
        return [float(v) for v in self.log_inner_lr.detach().exp().reshape(-1)]

    def inner_lr_value(self, cfg: MAMLConfig) -> float:
        """The first step's inner rate."""
        return self.inner_lr_values(cfg)[0]

    @torch.no_grad()
    def project(self, net: FloatSRNN) -> None:
        """Keeps every weight inside its integer range after an optimiser step. Outside it the
        quantiser's clamp has no gradient, so a readout row pushed past the range (held-out classes'
        rows are pushed down by every meta-training task) could never be adapted again."""
        c = net.config
        self.w_in.clamp_(*c.core.weight_range)
        self.w_rec.clamp_(*c.core.weight_range)
        self.w_out.clamp_(*c.readout_weight_range)


def init_params(net: FloatSRNN, seed: int = 0, dtype=torch.float32, cfg: MAMLConfig | None = None) -> Params:
    """Weights in integer units, scaled so the hidden layer fires sparsely on typical input; the
    readout zero under ``readout_init="zero"``, the inner rate learnable under ``learn_inner_lr``."""
    cfg = cfg or MAMLConfig()
    c = net.config
    g = torch.Generator().manual_seed(seed)
    lo, hi = c.core.weight_range
    w_in = (torch.randn(c.neurons, c.channels, generator=g) * hi * 0.3 + hi * 0.08).clamp(lo, hi)
    w_rec = (torch.randn(c.neurons, c.neurons, generator=g) * hi * 0.1).clamp(lo, hi)
    w_rec.fill_diagonal_(0)
    olo, ohi = c.readout_weight_range
    w_out = (torch.randn(c.outputs, c.neurons, generator=g) * ohi * 0.05).clamp(olo, ohi)
    if cfg.readout_init == "zero":
        w_out.zero_()
    shape = (cfg.inner_steps,) if cfg.rate_schedule else ()
    log_lr = torch.full(shape, math.log(cfg.inner_lr), dtype=dtype, requires_grad=True) if cfg.learn_inner_lr else None
    return Params(*(w.to(dtype).requires_grad_(True) for w in (w_in, w_rec, w_out)), log_lr)


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


def step_rate(lr, step: int):
    """The rate of inner step ``step`` (from 0) of ``lr``: a number or scalar tensor is every step's;
    a schedule (a 1-d tensor or a list) gives one per step, its last for the steps beyond it."""
    if isinstance(lr, (list, tuple)) or (torch.is_tensor(lr) and lr.dim() == 1):
        return lr[min(step, len(lr) - 1)]
    return lr


def adapt_readout(net: FloatSRNN, w_out, hidden_s, y_s, cfg: MAMLConfig, lr=None):
    """The inner loop: ``inner_steps`` gradient steps of rate ``lr`` (default ``cfg.inner_lr``; a
    schedule: see :func:`step_rate`) on the readout from the support set."""
    lr = cfg.inner_lr if lr is None else lr

    def loss(w):
        return F.cross_entropy(net.readout(hidden_s, w), y_s)

    for step in range(cfg.inner_steps):
        g = grad(loss)(w_out)
        if cfg.first_order:
            g = g.detach()
        w_out = _saturated(net, cfg, w_out - step_rate(lr, step) * g)
    return w_out


def _saturated(net: FloatSRNN, cfg: MAMLConfig, w):
    """The readout after an inner step: clamped to its integer range under a rate schedule (as the
    chip's update saturates it; no gradient through a clamped weight), else as it is."""
    return w.clamp(*net.config.readout_weight_range) if cfg.rate_schedule and net.exact else w


def meta_loss(net: FloatSRNN, p: Params, episodes: list[Episode], cfg: MAMLConfig, batched: bool = True):
    """Mean query loss after adaptation over the meta-batch plus the regularisers (weight decay, the
    per-sample firing-rate term), and the query accuracy. ``batched`` (the summed readout only): every
    task's inner loop and query loss at once in closed form (:func:`_adapted_query_logits`); otherwise
    (and for the maximum) per task under ``vmap`` with ``torch.func.grad``. Both give the same loss
    and, within rounding, the same gradients."""
    ys = torch.stack([e.support_labels for e in episodes])
    yq = torch.stack([e.query_labels for e in episodes])
    tasks, ns, nq = len(episodes), ys.shape[1], yq.shape[1]
    # every task's support samples, then every task's query samples: [T, samples, C] as a view of
    # [samples, T, C], so that the recurrent layer works sample-major
    x = torch.cat([e.support for e in episodes] + [e.query for e in episodes]).transpose(0, 1)
    T = x.shape[0]
    h = net.hidden(x, p.w_in, p.w_rec)                                  # [T, samples, N]
    lr = p.inner_lr(cfg)
    if batched and net.config.readout_reduce == "sum":
        hs, hq = h.transpose(0, 1).split([tasks * ns, tasks * nq])
        logits = _adapted_query_logits(net, p.w_out, hs.reshape(tasks, ns, T, -1), ys,
                                       hq.reshape(tasks, nq, T, -1), cfg, lr)
        losses = F.cross_entropy(logits.reshape(tasks * nq, -1), yq.reshape(-1), reduction="none")
        losses = losses.view(tasks, nq).mean(1)
        accs = (logits.argmax(-1) == yq).float().mean(1)
    else:
        hs = h[:, :tasks * ns].reshape(T, tasks, ns, -1).transpose(0, 1)     # [tasks, T, ns, N]
        hq = h[:, tasks * ns:].reshape(T, tasks, nq, -1).transpose(0, 1)

        def one_task(hs_t, ys_t, hq_t, yq_t):
            w = adapt_readout(net, p.w_out, hs_t, ys_t, cfg, lr)
            logits = net.readout(hq_t, w)
            return F.cross_entropy(logits, yq_t), (logits.argmax(-1) == yq_t).float().mean()

        losses, accs = vmap(one_task)(hs, ys, hq, yq)
    rates = h.sum(dim=(0, 2)) / (T * h.shape[-1])      # per sample (a sum's backward is a broadcast, no copy)
    return losses.mean() + regularisers(p, rates, cfg), accs.mean()


def _readout_features(net: FloatSRNN, h: torch.Tensor, w: torch.Tensor):
    """The summed readout of hidden spikes ``h`` [G, n, T, N] through per-task weights ``w`` [G, K, N]
    (on the readout grid) as ``value`` [G, n, K], the logits as the integer readout computes them
    (floored decays, both clamps), and features ``f`` [G, n, K, N] with which the logits are, piece by
    piece, linear: d logits[g, b, k] = sum_i f[g, b, k, i] d w[g, k, i] / 2**logit_shift (and
    likewise in ``h``). ``f`` = sum_t a_t h_t, with a_t the derivative of the summed potential by
    step t's drive: the readout's decay and clamp masks, scanned backwards."""
    c = net.config
    G, n, T, N = h.shape
    K = w.shape[1]
    dec = 1.0 - 2.0 ** -c.readout_decay_shift
    with torch.no_grad():
        drive = torch.bmm(h.reshape(G, n * T, N), w.transpose(1, 2)).view(G, n, T, K)
        o, total = torch.zeros(G, n, K, dtype=h.dtype), None
        o_in, total_in = [], []           # clamp masks (1: the value was inside); None: no clamp there
        for t in range(T):
            pre = net.lif.decay(o, c.readout_decay_shift) + drive[:, :, t]
            o = net.lif.saturate(pre, c.readout_range)
            o_in.append((o == pre).to(h.dtype) if net.exact else None)
            if total is None:
                total = o
                total_in.append(None)
            else:
                pre = total + o
                total = net.lif.saturate(pre, c.logit_range)
                total_in.append((total == pre).to(h.dtype) if net.exact else None)
        a = torch.empty(G, n, T, K, dtype=h.dtype)
        beta = torch.ones(G, n, K, dtype=h.dtype)              # d total / d (the sum at step t)
        gamma = torch.zeros(G, n, K, dtype=h.dtype)            # d total / d o_t
        for t in range(T - 1, -1, -1):
            direct = beta if total_in[t] is None else beta * total_in[t]
            if t + 1 < T:
                gamma = direct + dec * (gamma if o_in[t + 1] is None else gamma * o_in[t + 1])
            else:
                gamma = direct
            a[:, :, t] = gamma if o_in[t] is None else gamma * o_in[t]
            if total_in[t] is not None:
                beta = beta * total_in[t]
    f = torch.bmm(a.view(G * n, T, K).transpose(1, 2), h.reshape(G * n, T, N)).view(G, n, K, N)
    return total / (1 << c.logit_shift), f


def _logits(net: FloatSRNN, h: torch.Tensor, w: torch.Tensor):
    """Logits [G, n, K] of ``h`` through the per-task readouts ``w`` [G, K, N]: the integer readout's
    values, with the gradients of the twin's readout in ``w`` and ``h``; and the features."""
    c = net.config
    wq = round_ste(w, *c.readout_weight_range) if net.exact else w
    value, f = _readout_features(net, h, wq.detach())
    linear = torch.einsum("gnki,gki->gnk", f, wq) / (1 << c.logit_shift)
    return value + (linear - linear.detach()), f, wq


def _adapted_query_logits(net: FloatSRNN, w_out, hs, ys, hq, cfg: MAMLConfig, lr):
    """:func:`adapt_readout` for every task at once, in closed form: the support loss's gradient by
    the readout is sum_b (softmax_b - onehot_b) / n f_b / 2**logit_shift through the quantiser's
    mask, differentiable in ``h``, the rate and the weights (second order without a double
    backward); ``first_order`` detaches it. Returns the query logits [G, nq, K] after adaptation."""
    G, ns = ys.shape
    w = w_out.expand(G, *w_out.shape)
    for step in range(cfg.inner_steps):
        logits, f, wq = _logits(net, hs, w)
        err = (logits.softmax(-1) - F.one_hot(ys, logits.shape[-1]).to(logits.dtype)) / ns
        g = torch.einsum("gnk,gnki->gki", err, f) / (1 << net.config.logit_shift)
        if net.exact:
            lo, hi = net.config.readout_weight_range
            g = g * ((w >= lo) & (w <= hi)).to(g.dtype)
        if cfg.first_order:
            g = g.detach()
        w = _saturated(net, cfg, w - step_rate(lr, step) * g)
    return _logits(net, hq, w)[0]


def regularisers(p: Params, rates: torch.Tensor, cfg: MAMLConfig) -> torch.Tensor:
    """Weight decay plus the firing-rate term on the per-sample hidden ``rates``."""
    reg = cfg.weight_decay * sum((w ** 2).mean() for w in p.tensors())
    if cfg.rate_lambda:
        reg = reg + cfg.rate_lambda * (((rates - cfg.target_rate) / cfg.target_rate) ** 2).mean()
    return reg
