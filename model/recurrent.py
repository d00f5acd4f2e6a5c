"""The recurrent LIF layer's training engine: the float twin's forward and its hand-written BPTT over
all steps as one autograd node, written for the CPU's memory system.

Every step works in a few preallocated [batch, neurons] buffers with in-place and ``out=`` operations
(a fresh tensor per operation costs more than the arithmetic at this size, and a strided one several
times a contiguous one); the forward keeps only what the backward needs: the spikes (sample-major,
as the readout reads them), ``V - R`` of every step (the surrogate's argument) and the clamp masks of
the steps where a clamp engaged (most steps have none). The backward adds each step's share of the
weight gradients while that step's gradient is in cache.

On the integer grid (``exact`` twin, weights of at most 8 bits, inputs that are event counts of at
most 127) the forward's matrix products are int8 products with int32 sums: exact, so the same spikes
as the float products, in a quarter (per step) to a half (all steps at once) of the time. The
backward's products carry float gradients and stay in the weights' float type.

The operations are the twin's (:meth:`model.lif.FloatLIF.advance`) in the same order, so the spikes
are the same; the gradients are the twin's derivatives (straight-through decays, clamp masks, the
surrogate), equal to autograd through the step-by-step graph within rounding.
"""

from __future__ import annotations

import torch

__all__ = ["RecurrentLIF", "event_counts"]

_INT8_MAX = 127
_CHUNK = 1 << 18


def event_counts(x: torch.Tensor) -> torch.Tensor | None:
    """``x`` as int8 when it holds event counts 0..127 (integers, non-negative, at most 127), else None."""
    if x.numel() == 0:
        return None
    lo, hi = torch.aminmax(x)
    if lo < 0 or hi > _INT8_MAX:
        return None
    if x.is_floating_point():
        flat = x.reshape(-1)
        frac = torch.empty(min(flat.numel(), _CHUNK), dtype=x.dtype)
        for start in range(0, flat.numel(), _CHUNK):        # chunked: no tensor as large as x
            part = flat[start:start + _CHUNK]
            if torch.frac(part, out=frac[:part.numel()]).any():
                return None
    return x.to(torch.int8)


class _Clamps:
    """The clamp masks of one variable, kept only for the steps where the clamp engaged."""

    def __init__(self, bounds):
        self.lo, self.hi = float(bounds[0]), float(bounds[1])
        self.masks: dict[int, torch.Tensor] = {}

    def apply(self, t: int, x: torch.Tensor) -> None:
        """Clamps ``x`` in place; records step ``t``'s mask (1 inside the range) if any value left it."""
        lo, hi = torch.aminmax(x)
        if lo < self.lo or hi > self.hi:
            self.masks[t] = ((x >= self.lo) & (x <= self.hi)).to(x.dtype)
            x.clamp_(self.lo, self.hi)

    def mask(self, t: int, g: torch.Tensor) -> None:
        if t in self.masks:
            g.mul_(self.masks[t])


def _floor_decay_(x: torch.Tensor, shift: int, tmp: torch.Tensor) -> None:
    """x <- x - floor(x * 2**-shift), in place (``tmp`` is scratch)."""
    torch.mul(x, 2.0 ** -shift, out=tmp).floor_()
    x.sub_(tmp)


class RecurrentLIF(torch.autograd.Function):
    """Hidden spikes [T, B, N] of inputs ``x`` [T, B, C] through ``w_in`` [N, C] and ``w_rec`` [N, N]
    (already on the twin's weight grid) with the twin ``lif``; gradients for the two weights."""

    @staticmethod
    def forward(ctx, x, w_in, w_rec, lif):
        c = lif.config
        T, B, N = x.shape[0], x.shape[1], c.neurons
        dtype = w_in.dtype
        xb = x.transpose(0, 1).contiguous()                      # sample-major [B, T, C] (a view if it was)
        x8 = event_counts(xb) if lif.exact and c.weight_range[0] >= -128 and c.weight_range[1] <= _INT8_MAX else None
        if x8 is not None:
            wi8, wr8 = w_in.detach().to(torch.int8).t().contiguous(), w_rec.detach().to(torch.int8).t().contiguous()
            drive = torch._int_mm(x8.view(B * T, -1), wi8).view(B, T, N)
            rec32 = torch.empty(B, N, dtype=torch.int32)
            s8 = torch.zeros(B, N, dtype=torch.int8)
        else:
            xb = xb.to(dtype)
            drive = (xb.view(B * T, -1) @ w_in.t()).view(B, T, N)
            w_rec_t = w_rec.t()
        spikes = torch.zeros(B, T, N, dtype=dtype)               # sample-major; returned as a [T, B, N] view
        dv = torch.empty(T, B, N, dtype=dtype)                  # V - R after each step's membrane update
        cur, mem, ref = (torch.zeros(B, N, dtype=dtype) for _ in range(3))
        p, tmp, s = (torch.empty(B, N, dtype=dtype) for _ in range(3))
        clamps = [_Clamps(c.current_range), _Clamps(c.membrane_range), _Clamps(c.refractory_range)]
        thr, jump = float(c.threshold), float(c.refractory_jump)
        shifts = (c.current_decay_shift, c.membrane_decay_shift, c.refractory_decay_shift)
        dc, dm, dr = (1.0 - 2.0 ** -s for s in shifts)
        for t in range(T):
            # I + (W_in x_t + W_rec s_{t-1}), as the twin sums it
            if x8 is not None:
                if t:
                    torch._int_mm(s8, wr8, out=rec32)
                    rec32.add_(drive[:, t])
                    p.copy_(rec32)
                else:
                    p.copy_(drive[:, 0])
                p.add_(cur)
            elif t:
                torch.addmm(drive[:, t], s, w_rec_t, out=p).add_(cur)
            else:
                torch.add(drive[:, 0], cur, out=p)
            if lif.exact:
                clamps[0].apply(t, p)
                _floor_decay_(mem, c.membrane_decay_shift, tmp)
                mem.add_(p)
                clamps[1].apply(t, mem)
            else:
                mem.mul_(dm).add_(p)
            torch.sub(mem, ref, out=dv[t])
            torch.ge(dv[t], thr, out=s)
            if lif.exact:
                _floor_decay_(ref, c.refractory_decay_shift, tmp)
                ref.add_(s, alpha=jump)
                clamps[2].apply(t, ref)
                torch.mul(p, 2.0 ** -c.current_decay_shift, out=tmp).floor_()
                torch.sub(p, tmp, out=cur)
            else:
                ref.mul_(dr).add_(s, alpha=jump)
                torch.mul(p, dc, out=cur)
            if x8 is not None:
                s8.copy_(s)
            spikes[:, t].copy_(s)
        ctx.save_for_backward(x, w_rec, spikes, dv)
        ctx.lif, ctx.clamps, ctx.decays, ctx.dtype = lif, clamps, (dc, dm, dr), dtype
        return spikes.transpose(0, 1)

    @staticmethod
    def backward(ctx, grad_s):
        x, w_rec, s, dv = ctx.saved_tensors
        lif, (mc, mm, mr), (dc, dm, dr) = ctx.lif, ctx.clamps, ctx.decays
        c = lif.config
        thr, jump, k = float(c.threshold), float(c.refractory_jump), lif.surrogate_scale
        B, T, N = s.shape
        g_in = torch.zeros(N, x.shape[-1], dtype=ctx.dtype) if ctx.needs_input_grad[1] else None
        g_rec = torch.zeros(N, N, dtype=ctx.dtype) if ctx.needs_input_grad[2] else None
        g_p = torch.empty(B, N, dtype=ctx.dtype)                # d loss / d step drive
        g_c, g_m, g_r, g_s_next = (torch.zeros(B, N, dtype=ctx.dtype) for _ in range(4))
        g_s, g_q, sur = (torch.empty(B, N, dtype=ctx.dtype) for _ in range(3))
        w = w_rec.detach()
        for t in range(T - 1, -1, -1):
            _bptt_step(t, grad_s[t], g_s_next, dv[t], (mr, mm, mc) if lif.exact else None, g_c, g_p, g_m, g_r,
                       (g_s, g_q, sur), thr, jump, k, (dc, dm, dr))
            g_c, g_p = g_p, g_c
            # the weight gradients step by step, while this step's gradient is in cache
            if g_in is not None:
                g_in.addmm_(g_c.t(), x[t].to(ctx.dtype))
            if t:
                if g_rec is not None:
                    g_rec.addmm_(g_c.t(), s[:, t - 1])
                torch.mm(g_c, w, out=g_s_next)
        return None, g_in, g_rec, None


def _bptt_step(t, grad_s, g_s_next, dv, clamps, g_c, g_p, g_m, g_r, scratch, thr, jump, k, decays) -> None:
    """One step of the BPTT in PyTorch operations: d loss / d drive into ``g_p`` from the upstream
    gradient, the recurrent gradient ``g_s_next`` and ``g_c`` (the next step's ``g_p``); ``g_m``,
    ``g_r`` carried in place. ``clamps``: the (refractory, membrane, current) masks, or None."""
    g_s, g_q, sur = scratch
    dc, dm, dr = decays
    if clamps:
        clamps[0].mask(t, g_r)                                  # g_r is now d loss / d u
    torch.add(grad_s, g_s_next, out=g_s).add_(g_r, alpha=jump)
    torch.sub(dv, thr, out=sur).div_(thr).abs_().mul_(k).add_(1.0).square_()
    g_s.div_(sur)                                               # d loss / d v
    torch.add(g_m, g_s, alpha=1.0 / thr, out=g_q)
    if clamps:
        clamps[1].mask(t, g_q)
    g_r.mul_(dr).sub_(g_s, alpha=1.0 / thr)
    torch.add(g_q, g_c, alpha=dc, out=g_p)
    if clamps:
        clamps[2].mask(t, g_p)
    torch.mul(g_q, dm, out=g_m)
