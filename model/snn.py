"""The seed 000 network: input channels -> one recurrent layer of LIF neurons -> leaky readout.

The recurrent layer is a LIF core whose inputs are the ``channels`` external inputs followed by its own
``neurons``: the spikes of step t-1 come back as input events of step t, after the external events
(ascending input order), exactly as the hardware routes them. So the core's weight matrix is
``[W_in | W_rec]`` and ``core.inputs == channels + neurons``; nothing about the arithmetic is new.

The readout is a non-spiking leaky integrator per output (integer, saturating)::

    O_k <- sat_O(O_k - (O_k >> readout_decay_shift) + sum_i W_out[k, i] * S_i)

and the logits reduce O_k over time: the sum (default; an accumulator per output in hardware) or the
maximum (seed 000's code), divided by ``2**logit_shift`` for the float loss. The maximum has a dead
gradient for a class whose readout row is negative (its maximum is the 0 before any input), which
stops the inner loop from ever raising a held-out class; the sum has a gradient at every step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from .config import ConfigError, LIFConfig, _check_int, signed_range
from .lif import FloatLIF, IntegerLIF, LIFState, decay, saturate
from .recurrent import RecurrentLIF

__all__ = ["SRNNConfig", "FloatSRNN", "IntegerSRNN", "integer_readout", "round_ste", "NETWORKS"]


@dataclass(frozen=True)
class SRNNConfig:
    core: LIFConfig
    channels: int
    outputs: int
    readout_bits: int = 24
    readout_decay_shift: int = 3
    readout_weight_bits: int = 8
    logit_shift: int = 12
    readout_reduce: str = "sum"     # "sum" or "max" over time
    logit_bits: int = 32            # the logit accumulator (the sum over time saturates at this width)

    def __post_init__(self):
        _check_int("channels", self.channels, 1, 1 << 16)
        _check_int("outputs", self.outputs, 1, 1 << 12)
        if self.core.inputs != self.channels + self.core.neurons:
            raise ConfigError(f"core.inputs={self.core.inputs} does not equal channels + neurons = "
                              f"{self.channels + self.core.neurons}; the recurrent core takes both.")
        _check_int("readout_bits", self.readout_bits, 2, 32)
        _check_int("readout_weight_bits", self.readout_weight_bits, 2, self.readout_bits)
        _check_int("readout_decay_shift", self.readout_decay_shift, 0, self.readout_bits - 1)
        _check_int("logit_shift", self.logit_shift, 0, 40)
        _check_int("logit_bits", self.logit_bits, self.readout_bits, 48, " (at least readout_bits)")
        if self.readout_reduce not in ("sum", "max"):
            raise ConfigError(f"readout_reduce={self.readout_reduce!r} is unknown; allowed: sum, max.")

    @classmethod
    def make(cls, channels: int, neurons: int, outputs: int, **core_and_readout) -> "SRNNConfig":
        readout_fields = {f.name for f in dataclasses.fields(cls)} - {"core", "channels", "outputs"}
        readout = {k: v for k, v in core_and_readout.items() if k in readout_fields}
        core = {k: v for k, v in core_and_readout.items() if k not in readout_fields}
        return cls(LIFConfig(neurons=neurons, inputs=channels + neurons, **core), channels, outputs, **readout)

    @property
    def neurons(self) -> int:
        return self.core.neurons

    @property
    def readout_range(self) -> tuple[int, int]:
        return signed_range(self.readout_bits)

    @property
    def readout_weight_range(self) -> tuple[int, int]:
        return signed_range(self.readout_weight_bits)

    @property
    def logit_range(self) -> tuple[int, int]:
        return signed_range(self.logit_bits)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["core"] = self.core.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "SRNNConfig":
        return cls(**{**d, "core": LIFConfig.from_dict(d["core"])})


# Named networks for the command line and the benchmarks (the LIF core's lanes are the hardware's choice).
NETWORKS = {
    "small": SRNNConfig.make(channels=4, neurons=16, outputs=5, lanes=4),       # the cosim's default
    "fsdd": SRNNConfig.make(channels=64, neurons=64, outputs=5, lanes=4),      # `neuromosaic train --data fsdd:`
    "seed": SRNNConfig.make(channels=256, neurons=256, outputs=20, lanes=2),   # seed 000: 256 hidden, 20 readout
}


def round_ste(x: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
    """Clamp and round to the integer grid in the forward pass; identity gradient inside the range."""
    c = x.clamp(lo, hi)
    return c + (torch.round(c) - c).detach()


class _RecurrentLIF(torch.autograd.Function):
    """The recurrent layer over all steps as one autograd node: the forward runs the float twin's
    equations (:meth:`FloatLIF.advance`, the same operations in the same order, so the same spikes)
    without recording a graph; the backward is hand-written BPTT with the twin's derivatives
    (straight-through decays, clamp masks, the surrogate), and the weight gradients are two matrix
    products over all steps at the end instead of one per step. First order in the hidden layer,
    which is all MAML needs (its second order is in the readout)."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, lif):
        c = lif.config
        dec = [1.0 - 2.0 ** -c.current_decay_shift, 1.0 - 2.0 ** -c.membrane_decay_shift,
               1.0 - 2.0 ** -c.refractory_decay_shift]
        batch = x.shape[1:-1]
        state = lif.initial_state(x, batch)
        spikes = x.new_zeros(batch + (c.neurons,))
        drive_in = (x @ w_in.t()).unbind(0)
        out, masks, vs = [], [], []
        for t in range(x.shape[0]):
            current, membrane, refractory = state
            p1 = current + (drive_in[t] + spikes @ w_rec.t())
            c1 = lif.saturate(p1, c.current_range)
            q = lif.decay(membrane, c.membrane_decay_shift) + c1
            m1 = lif.saturate(q, c.membrane_range)
            v = (m1 - refractory - c.threshold) / c.threshold
            spikes = (v >= 0).to(x.dtype)
            u = lif.decay(refractory, c.refractory_decay_shift) + c.refractory_jump * spikes
            r1 = lif.saturate(u, c.refractory_range)
            state = (lif.decay(c1, c.current_decay_shift), m1, r1)
            out.append(spikes)
            vs.append(v)
            if lif.exact:
                masks.append(torch.stack([(p1 >= c.current_range[0]) & (p1 <= c.current_range[1]),
                                          (q >= c.membrane_range[0]) & (q <= c.membrane_range[1]),
                                          (u >= c.refractory_range[0]) & (u <= c.refractory_range[1])]))
        s = torch.stack(out)
        ctx.save_for_backward(x, w_in, w_rec, s, torch.stack(vs), torch.stack(masks) if masks else None)
        ctx.lif, ctx.dec = lif, dec
        return s

    @staticmethod
    def backward(ctx, grad_s):
        x, w_in, w_rec, s, vs, masks = ctx.saved_tensors
        lif, (dc, dm, dr) = ctx.lif, ctx.dec
        c = lif.config
        thr, jump, k = float(c.threshold), float(c.refractory_jump), lif.surrogate_scale
        zero = grad_s.new_zeros(grad_s.shape[1:])
        g_c, g_m, g_r, g_s_next = zero, zero, zero, zero      # gradients w.r.t. the next step's inputs
        g_a = [None] * s.shape[0]
        for t in range(s.shape[0] - 1, -1, -1):
            mc, mm, mr = (masks[t, 0], masks[t, 1], masks[t, 2]) if masks is not None else (None, None, None)
            g_u = g_r if mr is None else g_r * mr
            g_s = grad_s[t] + g_s_next + jump * g_u
            g_v = g_s / (k * vs[t].abs() + 1.0) ** 2
            g_q = g_m + g_v / thr
            g_q = g_q if mm is None else g_q * mm
            g_r = dr * g_u - g_v / thr
            g_c1 = g_q + dc * g_c
            g_p1 = g_c1 if mc is None else g_c1 * mc
            g_m, g_c = dm * g_q, g_p1
            g_a[t] = g_p1
            g_s_next = g_p1 @ w_rec
        g_a = torch.stack(g_a)                                 # [T, ..., N]: d loss / d step drive
        flat = g_a.reshape(-1, g_a.shape[-1])
        prev = torch.cat([torch.zeros_like(s[:1]), s[:-1]]).reshape(-1, s.shape[-1])
        g_in = flat.t() @ x.reshape(-1, x.shape[-1]) if ctx.needs_input_grad[1] else None
        g_rec = flat.t() @ prev if ctx.needs_input_grad[2] else None
        return None, g_in, g_rec, None


class FloatSRNN(torch.nn.Module):
    """Differentiable twin. ``exact=True``: weights rounded to their integer formats and every decay
    floored and saturated as in hardware (straight-through gradients); ``exact=False``: ideal float."""

    ENGINES = ("inplace", "fused", "graph")

    def __init__(self, config: SRNNConfig, exact: bool = True, surrogate_scale: float = 10.0, engine: str = "inplace"):
        super().__init__()
        if engine not in self.ENGINES:
            raise ConfigError(f"engine={engine!r} is unknown; allowed: {', '.join(self.ENGINES)}.")
        self.config, self.exact, self.engine = config, exact, engine
        self.lif = FloatLIF(config.core, exact=exact, surrogate_scale=surrogate_scale)

    def quantised(self, w_in, w_rec, w_out):
        if not self.exact:
            return w_in, w_rec, w_out
        lo, hi = self.config.core.weight_range
        olo, ohi = self.config.readout_weight_range
        return round_ste(w_in, lo, hi), round_ste(w_rec, lo, hi), round_ste(w_out, olo, ohi)

    def hidden(self, x: torch.Tensor, w_in: torch.Tensor, w_rec: torch.Tensor) -> torch.Tensor:
        """Hidden spikes [T, B, neurons] of inputs ``x`` [T, B, channels], by one of three engines
        with the same spikes and, within rounding, the same gradients: ``inplace`` (default,
        :class:`model.recurrent.RecurrentLIF`: one autograd node, in-place buffers, int8 products
        on the integer grid), ``fused`` (:class:`_RecurrentLIF`: one autograd node, a tensor per
        operation) and ``graph`` (autograd through the twin's step-by-step operations)."""
        if self.exact:
            lo, hi = self.config.core.weight_range
            w_in, w_rec = round_ste(w_in, lo, hi), round_ste(w_rec, lo, hi)
        if self.engine == "inplace":
            return RecurrentLIF.apply(x, w_in, w_rec, self.lif)
        x = x.to(w_in.dtype)
        if self.engine == "fused":
            return _RecurrentLIF.apply(x, w_in, w_rec, self.lif)
        state = self.lif.initial_state(x, x.shape[1:-1])
        spikes = x.new_zeros(x.shape[1:-1] + (self.config.neurons,))
        # Every step's external drive in one product; unbind (not indexing) keeps the backward cheap.
        drive_in = (x @ w_in.t()).unbind(0)
        out = []
        for t in range(x.shape[0]):
            state, spikes = self.lif.advance(state, drive_in[t] + spikes @ w_rec.t())
            out.append(spikes)
        return torch.stack(out)

    def readout(self, hidden: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
        """Logits [B, outputs]: the leaky readout reduced over time, scaled by 2**-logit_shift."""
        c = self.config
        if self.exact:
            w_out = round_ste(w_out, *c.readout_weight_range)
        drive = hidden @ w_out.t()                                   # [T, B, outputs]
        o = drive.new_zeros(drive.shape[1:])
        best = None
        for d in drive.unbind(0):
            o = self.lif.saturate(self.lif.decay(o, c.readout_decay_shift) + d, c.readout_range)
            best = o if best is None else (self.lif.saturate(best + o, c.logit_range) if c.readout_reduce == "sum"
                                           else torch.maximum(best, o))
        return best / (1 << c.logit_shift)

    def forward(self, x, w_in, w_rec, w_out):
        return self.readout(self.hidden(x, w_in, w_rec), w_out)


class IntegerSRNN:
    """Bit-exact integer network: the LIF core (recurrence as input events) and the integer readout."""

    def __init__(self, config: SRNNConfig, w_in, w_rec, w_out):
        self.config = config
        self.core = IntegerLIF(config.core, torch.cat([torch.as_tensor(w_in), torch.as_tensor(w_rec)], dim=1))
        w_out = torch.as_tensor(w_out)
        lo, hi = config.readout_weight_range
        if w_out.shape != (config.outputs, config.neurons) or w_out.min() < lo or w_out.max() > hi:
            raise ConfigError(f"readout weights of shape {tuple(w_out.shape)} in {int(w_out.min())}.."
                              f"{int(w_out.max())}; allowed: [{config.outputs}, {config.neurons}] in {lo}..{hi}.")
        self.w_out = w_out.to(torch.int64)

    def run(self, x: torch.Tensor):
        """``x`` [T, B, channels] event counts -> hidden spikes [T, B, N] (bool) and integer logits
        [B, outputs] (the readout summed, or maximised, over time)."""
        hidden = self.hidden(x)
        return hidden, self.readout(hidden)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        c = self.config
        x = torch.as_tensor(x).to(torch.int64)
        state: LIFState = self.core.initial_state(tuple(x.shape[1:-1]))
        spikes = torch.zeros(x.shape[1:-1] + (c.neurons,), dtype=torch.int64)
        out = []
        for t in range(x.shape[0]):
            state, s = self.core.advance(state, torch.cat([x[t], spikes], dim=-1))
            spikes = s.to(torch.int64)
            out.append(s)
        return torch.stack(out)

    def readout(self, hidden: torch.Tensor, w_out: torch.Tensor | None = None) -> torch.Tensor:
        """Integer logits of hidden spikes [T, B, N], with this network's readout or ``w_out``."""
        return integer_readout(self.config, hidden, self.w_out if w_out is None else w_out)


def integer_readout(c: SRNNConfig, hidden: torch.Tensor, w_out: torch.Tensor) -> torch.Tensor:
    """Integer logits [B, outputs] of hidden spikes [T, B, N] through the integer readout ``w_out``."""
    drive = hidden.to(torch.int64) @ torch.as_tensor(w_out).to(torch.int64).t()
    o = torch.zeros(drive.shape[1:], dtype=torch.int64)
    best = None
    for t in range(drive.shape[0]):
        o = saturate(decay(o, c.readout_decay_shift) + drive[t], c.readout_range)
        best = o if best is None else (saturate(best + o, c.logit_range) if c.readout_reduce == "sum"
                                       else torch.maximum(best, o))
    return best
