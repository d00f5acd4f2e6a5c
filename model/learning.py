"""The integer learning rule of the readout (seed 001's integer training datapath running seed 000's
MAML inner step), in the arithmetic the chip's learning engine will use.

For a support set of ``n`` samples, one step:

1. eligibility ``E[i, j] = sum_t tr_j(t)`` with ``tr_j(t) = tr_j(t-1) - (tr_j(t-1) >> s) + (S_j(t) << f)``,
   the presynaptic trace of hidden neuron j (the readout's own leak ``s``, ``f`` fractional bits so
   that the floor does not stop the leak of a small trace) summed over the sample, saturating at
   ``elig_bits`` (unsigned; 20 bits hold 500 steps of a neuron that fires at every step);
2. error ``e[i, k] = (y[i, k] << P) - p[i, k]`` at the end of the sample, with ``p`` an integer
   softmax of the integer logits in units of ``2**-P`` (:func:`integer_softmax`: base-2 exponent
   table and one division per output);
3. accumulation over the support set ``acc[k, j] = sum_i e[i, k] * E[i, j]``, sample by sample,
   saturating at ``acc_bits`` (signed; 40 bits hold 128 samples of the largest products);
4. the update ``w[k, j] <- sat(w[k, j] + floor((acc[k, j] * m + r) / 2**q))``, visiting the weights
   row by row (``k`` outer, ``j`` inner), with ``r`` the next draw of a Galois LFSR: stochastic
   rounding whose sequence the RTL reproduces bit for bit. ``m / 2**q`` is the inner rate
   quantised to a ``rate_bits`` mantissa (:func:`quantise_rate`). With RRAM emulation
   (``level_shift``, ``write_noise_bits``) the rounding is to conductance levels and a changed weight
   gets a write noise drawn from the same LFSR (:func:`apply_update`).

This is the float inner step (``maml.adapt_readout``: ``w -= lr * dCE/dw``; for the summed readout
``dlogit_k/dw_kj = F_ij / 2**logit_shift`` with ``F`` the float trace sum) with the floor decays in
the trace, the softmax from a table, and the rate rounded; ``k`` steps repeat it with the updated
readout on the same support samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .config import ConfigError, Field, _check_int, bits_for, signed_range
from .snn import SRNNConfig, integer_readout

__all__ = ["LearningConfig", "LFSR", "integer_softmax", "softmax_distance_bits", "eligibility", "quantise_rate",
           "update_weight", "apply_update", "level_bounds", "accumulate", "adapt_readout_integer", "OP_END",
           "OP_UPDATE", "UPDATE_LATENCY", "UPDATE_PIPELINE", "rate_fields", "command_fields", "readout_load_fields",
           "weight_write_fields", "logit_fields", "trace_bits", "error_bits"]

_LOG2E_FRAC = 16
_LOG2E_Q = round(math.log2(math.e) * (1 << _LOG2E_FRAC))
RATE_SHIFT_BITS = 6                 # the rate's shift q is a 6-bit field of the engine
RATE_SHIFT_MAX = (1 << RATE_SHIFT_BITS) - 1

# The learning engine's interface (rtl.learning.LearningEngine), defined once for the RTL, the
# testbench and the host driver.
OP_END = 0          # end of a sample: report the logits; with ``learn``, accumulate its update
OP_UPDATE = 1       # apply the accumulated update to every readout weight (one inner step)
UPDATE_PIPELINE = 4  # registered stages of the update datapath: the pair, the product, its shift, the new weight
UPDATE_LATENCY = 2 + UPDATE_PIPELINE  # UPDATE taken in cycle c -> the n-th weight write in cycle c + 6 + n


@dataclass(frozen=True)
class LearningConfig:
    prob_bits: int = 12             # P: probabilities and errors in units of 2**-P
    trace_frac_bits: int = 8        # f: fractional bits of the presynaptic trace
    exp_frac_bits: int = 4          # fractional bits of the base-2 exponent (table of 2**F entries)
    exp_table_bits: int = 16        # precision of the table entries 2**-(f / 2**F)
    rate_bits: int = 8              # mantissa of the quantised inner rate
    lfsr_bits: int = 16
    lfsr_taps: int = 0xB400         # x^16 + x^14 + x^13 + x^11 + 1, maximal length
    lfsr_seed: int = 0xACE1
    elig_bits: int = 20             # eligibility per hidden neuron and sample (unsigned, saturating)
    acc_bits: int = 40              # accumulated update per weight over the support set (signed, saturating)
    # RRAM emulation (0 = off): the readout weights on conductance levels 2**level_shift apart, and a
    # programmed weight (one the update changes) off by a uniform write noise of write_noise_bits bits
    # of levels, drawn from the same LFSR right after the rounding draw.
    level_shift: int = 0
    write_noise_bits: int = 0

    def __post_init__(self):
        _check_int("prob_bits", self.prob_bits, 1, 16)
        _check_int("trace_frac_bits", self.trace_frac_bits, 0, 16)
        _check_int("exp_frac_bits", self.exp_frac_bits, 0, 8)
        _check_int("exp_table_bits", self.exp_table_bits, 2, 30)
        _check_int("rate_bits", self.rate_bits, 1, 16)
        _check_int("lfsr_bits", self.lfsr_bits, 2, 32)
        if not 0 < self.lfsr_taps < (1 << self.lfsr_bits) or not self.lfsr_taps >> (self.lfsr_bits - 1):
            raise ConfigError(f"lfsr_taps=0x{self.lfsr_taps:X} does not fit a {self.lfsr_bits}-bit LFSR; allowed: "
                              f"a tap mask with bit {self.lfsr_bits - 1} set, below 2**{self.lfsr_bits}.")
        _check_int("elig_bits", self.elig_bits, 2, 32)
        _check_int("acc_bits", self.acc_bits, 2, 64)
        _check_int("level_shift", self.level_shift, 0, 15)
        _check_int("write_noise_bits", self.write_noise_bits, 0, self.lfsr_bits, " (at most lfsr_bits)")
        if not 0 < self.lfsr_seed < (1 << self.lfsr_bits):
            raise ConfigError(f"lfsr_seed={self.lfsr_seed} is not a non-zero {self.lfsr_bits}-bit state; "
                              f"allowed: 1..{(1 << self.lfsr_bits) - 1}.")

    def exp_table(self) -> list[int]:
        """``round(2**B * 2**-(f / 2**F))`` for f in 0..2**F-1: the entries of the exponent ROM."""
        n = 1 << self.exp_frac_bits
        return [round((1 << self.exp_table_bits) * 2.0 ** (-f / n)) for f in range(n)]


class LFSR:
    """Galois LFSR (shift right, XOR the taps when the bit shifted out is 1). ``next()`` advances one
    step and returns the new state; a draw of ``q`` bits is built from it by :meth:`draw`."""

    def __init__(self, cfg: LearningConfig, state: int | None = None):
        self.cfg = cfg
        self.state = cfg.lfsr_seed if state is None else state

    def next(self) -> int:
        s = self.state
        s = (s >> 1) ^ (self.cfg.lfsr_taps if s & 1 else 0)
        self.state = s
        return s

    def draw(self, q: int) -> int:
        """A uniform-ish integer in [0, 2**q): the state's top ``q`` bits when ``q`` <= the width,
        else the state shifted up (the low bits then stay zero)."""
        s, w = self.next(), self.cfg.lfsr_bits
        return s >> (w - q) if q <= w else s << (q - w)


def integer_softmax(logits: torch.Tensor, logit_shift: int, cfg: LearningConfig) -> torch.Tensor:
    """``softmax(logits / 2**logit_shift)`` in units of ``2**-P``, integers [..., outputs]: the
    distance to the maximum times log2(e) as a fixed-point base-2 exponent, its fraction looked up
    in :meth:`LearningConfig.exp_table`, its integer part a right shift, and one (floor) division.
    The floors make the probabilities sum to up to one unit per output less than ``2**P``, so the
    errors sum to that remainder instead of zero and every weight drifts up by remainder x
    eligibility x rate: ``P`` = 12 keeps this drift below a tenth of a weight unit per step."""
    z = torch.as_tensor(logits).to(torch.int64)
    d = z.max(dim=-1, keepdim=True).values - z                                   # >= 0
    d = d.clamp(max=1 << softmax_distance_bits(logit_shift, cfg))                # its exponent is 0 from there
    v = (d * _LOG2E_Q) >> (logit_shift + _LOG2E_FRAC - cfg.exp_frac_bits)        # units of 2**-F
    whole, frac = v >> cfg.exp_frac_bits, v & ((1 << cfg.exp_frac_bits) - 1)
    table = torch.tensor(cfg.exp_table(), dtype=torch.int64)
    num = torch.where(whole < cfg.exp_table_bits + 1, table[frac] >> whole.clamp(max=62), torch.zeros_like(whole))
    return (num << cfg.prob_bits) // num.sum(dim=-1, keepdim=True)


def softmax_distance_bits(logit_shift: int, cfg: LearningConfig) -> int:
    """The smallest ``D`` such that a distance to the largest logit of ``2**D`` or more has a
    base-2 exponent whose integer part shifts every table entry to zero: the softmax clamps the
    distance there, so that the hardware's multiplier by log2(e) is ``D + 1`` bits wide."""
    shift = logit_shift + _LOG2E_FRAC - cfg.exp_frac_bits
    d = 0
    while ((1 << d) * _LOG2E_Q >> shift) >> cfg.exp_frac_bits < cfg.exp_table_bits + 1:
        d += 1
    return d


def trace_bits(decay_shift: int, cfg: LearningConfig) -> int:
    """Width of the presynaptic trace (unsigned): it never exceeds ``2**(f + s) + 2**s``, about
    its fixed point when the neuron fires at every step."""
    return cfg.trace_frac_bits + decay_shift + 2


def error_bits(cfg: LearningConfig) -> int:
    """Width of an error ``(y << P) - p`` in ``-2**P .. 2**P`` (signed)."""
    return cfg.prob_bits + 2


def eligibility(hidden: torch.Tensor, decay_shift: int, frac_bits: int = 8, bits: int | None = None) -> torch.Tensor:
    """Per-sample eligibility [B, N] of hidden spikes [T, B, N]: the integer presynaptic trace with
    the readout's leak and ``frac_bits`` fractional bits, summed over the sample (saturating at
    ``2**bits - 1`` when ``bits`` is given)."""
    h = torch.as_tensor(hidden).to(torch.int64) << frac_bits
    tr = torch.zeros(h.shape[1:], dtype=torch.int64)
    total = torch.zeros_like(tr)
    top = None if bits is None else (1 << bits) - 1
    for t in range(h.shape[0]):
        tr = tr - (tr >> decay_shift) + h[t]
        total = total + tr if top is None else (total + tr).clamp(max=top)
    return total


def accumulate(err: torch.Tensor, elig: torch.Tensor, cfg: LearningConfig) -> torch.Tensor:
    """``acc[k, j] = sum_i err[i, k] * elig[i, j]`` over the samples in order, saturating at
    ``acc_bits`` after each sample as the engine's accumulator memory does."""
    lo, hi = signed_range(cfg.acc_bits)
    acc = torch.zeros(err.shape[1], elig.shape[1], dtype=torch.int64)
    for e, el in zip(err.unbind(0), elig.unbind(0)):
        acc = (acc + torch.outer(e, el)).clamp(lo, hi)
    return acc


def quantise_rate(rate: float, samples: int, logit_shift: int, cfg: LearningConfig) -> tuple[int, int]:
    """The float inner rate as ``(m, q)``: the update per unit of ``acc`` is ``m / 2**q``, with ``m``
    of ``rate_bits`` bits, equal to ``rate / (samples * 2**(logit_shift + P + f))`` rounded."""
    c = rate / (samples * 2.0 ** (logit_shift + cfg.prob_bits + cfg.trace_frac_bits))
    if not c > 0:
        raise ConfigError(f"inner rate {rate} is not positive; allowed: a rate > 0.")
    q = max(0, math.floor(math.log2(((1 << cfg.rate_bits) - 1) / c)))
    if q > RATE_SHIFT_MAX:
        smallest = samples * 2.0 ** (logit_shift + cfg.prob_bits + cfg.trace_frac_bits - RATE_SHIFT_MAX)
        raise ConfigError(f"inner rate {rate} is too small for the engine (it needs a shift of {q}); "
                          f"allowed: a rate of at least {smallest}.")
    m = round(c * 2 ** q)
    return m, q


def adapt_readout_integer(config: SRNNConfig, w_out: torch.Tensor, hidden_s: torch.Tensor, labels: torch.Tensor,
                          rate, cfg: LearningConfig = LearningConfig(), steps: int = 1,
                          lfsr: LFSR | None = None, writes: list | None = None,
                          structure: torch.Tensor | None = None) -> torch.Tensor:
    """``steps`` integer inner steps on the readout from the support set (hidden spikes [T, n, N],
    labels [n]) at ``rate`` (a number, or a schedule: one rate per step, its last for the steps
    beyond, each quantised as the host programs it before that step's update); returns the new
    integer readout. ``writes``, if given, receives every weight write
    as ``(step, k, j, old, new)`` in the engine's order, for the scoreboard. ``structure`` ([outputs,
    neurons] booleans; default: every weight): the synapses a sparse synapse memory stores, the only
    ones updated (see :func:`apply_update`); the others must be zero."""
    lfsr = lfsr or LFSR(cfg)
    w = torch.as_tensor(w_out).to(torch.int64).clone()
    if structure is not None:
        structure = torch.as_tensor(structure).to(torch.bool)
        if structure.shape != w.shape:
            raise ConfigError(f"a readout structure of shape {list(structure.shape)} does not match the "
                              f"{list(w.shape)} readout; allowed: the readout's shape.")
        if bool((w[~structure] != 0).any()):
            raise ConfigError("the readout has non-zero weights outside its structure; allowed: zeros where "
                              "the synapse memory stores no synapse.")
    n = hidden_s.shape[1]
    elig = eligibility(hidden_s, config.readout_decay_shift, cfg.trace_frac_bits, cfg.elig_bits)   # [n, N]
    onehot = torch.nn.functional.one_hot(torch.as_tensor(labels), config.outputs).to(torch.int64)
    rates = list(rate) if isinstance(rate, (list, tuple)) else [rate]
    lo, hi = config.readout_weight_range
    for step in range(steps):
        m, q = quantise_rate(rates[min(step, len(rates) - 1)], n, config.logit_shift, cfg)
        logits = integer_readout(config, hidden_s, w)                          # [n, outputs]
        err = (onehot << cfg.prob_bits) - integer_softmax(logits, config.logit_shift, cfg)
        acc = accumulate(err, elig, cfg)                                       # [outputs, N]
        w = apply_update(w, acc, m, q, lfsr, (lo, hi), writes, step, structure)
    return w


def update_weight(old: int, acc: int, m: int, q: int, draw: int, bounds: tuple[int, int], level_shift: int = 0,
                  noise: int = 0) -> int:
    """One weight of the update, as the engine's datapath computes it: stochastic rounding of
    ``acc * m / 2**q`` with the LFSR draw (in levels of ``2**level_shift``: ``q`` includes the
    level shift), plus ``noise`` levels if that changes the weight, added to the old weight and
    saturated."""
    delta = (acc * m + draw) >> q
    if delta:
        delta += noise
    return min(max(old + (delta << level_shift), bounds[0]), bounds[1])


def level_bounds(bounds: tuple[int, int], level_shift: int) -> tuple[int, int]:
    """The range of a weight on levels ``2**level_shift`` apart: the top level is the largest
    multiple of ``2**level_shift`` in range (the bottom one, ``-2**(bits-1)``, is one already)."""
    lo, hi = bounds
    bits = (hi - lo).bit_length()
    if level_shift >= bits:
        raise ConfigError(f"level_shift={level_shift} leaves fewer than 2 levels for {bits}-bit weights; allowed: "
                          f"0..{bits - 1}.")
    return lo, hi - ((hi - lo) % (1 << level_shift))


def apply_update(w: torch.Tensor, acc: torch.Tensor, m: int, q: int, lfsr: LFSR, bounds: tuple[int, int],
                 writes: list | None = None, step: int = 0, structure: torch.Tensor | None = None) -> torch.Tensor:
    """The update of every weight, row by row (one LFSR draw each, two with write noise); returns the
    new weights. With ``structure`` (booleans of ``w``'s shape), only the stored synapses: the others
    take no draw and stay as they are, as in the engine, whose transposed access of a sparse synapse
    memory delivers the stored synapses alone (a stored weight may become zero and stays stored)."""
    cfg = lfsr.cfg
    ls, nb = cfg.level_shift, cfg.write_noise_bits
    qe, bounds = q + ls, level_bounds(bounds, ls)
    new = w.clone()
    acc_l, w_l = acc.tolist(), w.tolist()
    stored = None if structure is None else structure.tolist()
    for k in range(w.shape[0]):
        for j in range(w.shape[1]):
            if stored is not None and not stored[k][j]:
                continue
            draw = lfsr.draw(qe)
            noise = lfsr.draw(nb) - (1 << (nb - 1)) if nb else 0
            v = update_weight(w_l[k][j], acc_l[k][j], m, qe, draw, bounds, ls, noise)
            if writes is not None:
                writes.append((step, k, j, w_l[k][j], v))
            new[k, j] = v
    return new


def rate_fields(cfg: LearningConfig) -> tuple[Field, ...]:
    """The quantised inner rate as the engine takes it: ``m / 2**q`` per unit of accumulator."""
    return (Field("m", cfg.rate_bits), Field("q", RATE_SHIFT_BITS))


def command_fields(config: SRNNConfig) -> tuple[Field, ...]:
    """A command to the engine: ``op`` (OP_END or OP_UPDATE), the sample's label, learning on/off."""
    return (Field("op", 1), Field("label", bits_for(config.outputs)), Field("learn", 1))


def readout_load_fields(config: SRNNConfig) -> tuple[Field, ...]:
    """Loads one readout weight ``W_out[output, neuron]``."""
    return (Field("output", bits_for(config.outputs)), Field("neuron", bits_for(config.neurons)),
            Field("value", config.readout_weight_bits, signed=True))


def weight_write_fields(config: SRNNConfig) -> tuple[Field, ...]:
    """The engine's verification port: one readout weight written by an update."""
    return (Field("output", bits_for(config.outputs)), Field("neuron", bits_for(config.neurons)),
            Field("old", config.readout_weight_bits, signed=True),
            Field("new", config.readout_weight_bits, signed=True))


def logit_fields(config: SRNNConfig) -> tuple[Field, ...]:
    """One logit reported at the end of a sample."""
    return (Field("output", bits_for(config.outputs)), Field("value", config.logit_bits, signed=True))
