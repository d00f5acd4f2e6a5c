"""The learning engine: the readout and its on-chip learning rule beside the LIF core.

Everything here is ``model.learning`` bit for bit. :class:`GaloisLFSR` steps through the states of
``model.learning.LFSR``; :class:`UpdateUnit` computes ``model.learning.update_weight`` for a stream of
``(acc, old)`` pairs, one per cycle, drawing once per pair; :class:`LearningEngine` is the readout
(``model.snn.integer_readout``) with the eligibility traces, the integer softmax and the update of
``model.learning.adapt_readout_integer``, sequenced over its memories.
"""

from typing import NamedTuple

import torch
from amaranth.hdl import Array, Cat, Const, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import synapse as synapse_model
from ..model.config import ConfigError, bits_for, signed_range
from ..model.learning import (
    _LOG2E_FRAC,
    _LOG2E_Q,
    OP_END,
    RATE_SHIFT_MAX,
    UPDATE_PIPELINE,
    LearningConfig,
    command_fields,
    error_bits,
    level_bounds,
    logit_fields,
    rate_fields,
    readout_load_fields,
    softmax_distance_bits,
    trace_bits,
    weight_write_fields,
)
from ..model.snn import SRNNConfig
from . import layouts
from .arith import decay, saturate
from .checked import CheckedComponent
from .layouts import EventKind
from .lif import LIFCore
from .synapse import SynapseMemory

__all__ = ["GaloisLFSR", "UpdateUnit", "LearningEngine", "LearningCore", "WeightWriteSignature",
           "SpikeMonitorSignature"]

def _readout_rows(config: SRNNConfig, w_out) -> list | None:
    """The initial readout as ``[outputs][neurons]`` ints in the weights' range (None without one)."""
    if w_out is None:
        return None
    K, N = config.outputs, config.neurons
    rows = [[int(v) for v in row] for row in (w_out.tolist() if hasattr(w_out, "tolist") else w_out)]
    lo, hi = config.readout_weight_range
    if len(rows) != K or any(len(r) != N or min(r) < lo or max(r) > hi for r in rows):
        raise ConfigError(f"initial readout weights must be [{K}][{N}] integers in {lo}..{hi}.")
    return rows


class GaloisLFSR(wiring.Component):
    """``state`` is the current state (the seed after reset); with ``advance`` high it moves
    ``steps`` states on (each: shift right, XOR the taps when the bit shifted out is 1) at the clock
    edge. ``next`` is the state one step on, ``after`` the state ``steps`` steps on."""

    def __init__(self, cfg: LearningConfig, steps: int = 1):
        self.cfg, self.steps = cfg, steps
        super().__init__({"advance": In(1), "state": Out(cfg.lfsr_bits, init=cfg.lfsr_seed),
                          "next": Out(cfg.lfsr_bits), "after": Out(cfg.lfsr_bits)})

    def elaborate(self, platform):
        m = Module()
        taps = Const(self.cfg.lfsr_taps, self.cfg.lfsr_bits)
        s = self.state
        for i in range(self.steps):
            s = (s >> 1) ^ Mux(s[0], taps, 0)
            if i == 0:
                m.d.comb += self.next.eq(s)
        m.d.comb += self.after.eq(s)
        with m.If(self.advance):
            m.d.sync += self.state.eq(self.after)
        return m


class UpdateUnit(CheckedComponent):
    """The weight-update datapath.

    Ports
    -----
    rate : In(m: rate_bits, q: 6 bits)   -- the quantised inner rate, steady during a pass
    inp : In(stream of {acc: signed(acc_bits), old: signed(weight_bits)})
    out : Out(stream of signed(weight_bits))  -- the new weight, ``UPDATE_PIPELINE`` cycles after its
                                                 pair is taken (when ``out`` is never held back)
    busy : Out(1)                             -- a pair is somewhere in the pipeline or at ``out``

    The pipeline's registered stages: the pair; the product ``acc * m``; its shift by ``q`` (with the
    bits below); the rounding with the LFSR's draw, the write noise, the sum and the saturation into
    ``out``. It moves as a whole, whenever ``out`` is empty or taken; the LFSR draws for the pair in
    the last stage, so the draws come in the pairs' order.
    """

    @classmethod
    def check(cls, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), acc_bits: int | None = None) -> None:
        acc_bits = cfg.acc_bits if acc_bits is None else acc_bits
        if not 2 <= acc_bits <= 64:
            raise ConfigError(f"acc_bits={acc_bits} is out of range; allowed: 2..64.")
        level_bounds(config.readout_weight_range, cfg.level_shift)

    def __init__(self, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), acc_bits: int | None = None):
        acc_bits = cfg.acc_bits if acc_bits is None else acc_bits
        self.config, self.cfg, self.acc_bits = config, cfg, acc_bits
        wbits = config.readout_weight_bits
        pair = data.StructLayout({"acc": signed(acc_bits), "old": signed(wbits)})
        super().__init__({
            "rate": In(layouts.struct(rate_fields(cfg))),
            "inp": In(stream.Signature(pair)),
            "out": Out(stream.Signature(signed(wbits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self.cfg
        noise_bits, ls = cfg.write_noise_bits, cfg.level_shift
        # With write noise the LFSR makes two draws per weight: the rounding, then the noise.
        m.submodules.lfsr = lfsr = GaloisLFSR(cfg, 2 if noise_bits else 1)
        W = cfg.lfsr_bits
        q = Signal(range(RATE_SHIFT_MAX + ls + 1))       # the shift in levels of 2**level_shift
        m.d.comb += q.eq(self.rate.q + ls)
        move = Signal()                                 # every stage moves on
        m.d.comb += [move.eq(~self.out.valid | self.out.ready), self.inp.ready.eq(move)]
        # stage 1: the pair
        v1, acc, old1 = Signal(), Signal.like(self.inp.payload.acc), Signal.like(self.inp.payload.old)
        # stage 2: P = acc * m
        v2, old2 = Signal(), Signal.like(old1)
        product = Signal(signed(self.acc_bits + self.cfg.rate_bits + 1))
        # stage 3: P * 2**W shifted right by q
        # floor((P + draw) / 2**q) with P = acc * m and draw = model.learning.LFSR.draw(q), without
        # shifting the draw: it is floor(P / 2**q) plus a carry, and the carry is
        # [(P mod 2**q) + draw >= 2**q] = [F + s' >= 2**W], where F is the W bits of P just below bit q
        # and s' the LFSR state with its low W - q bits cleared (all of it when q >= W). One
        # arithmetic shift of P * 2**W by q gives both floor(P / 2**q) and F.
        v3, old3 = Signal(), Signal.like(old1)
        shifted = Signal(signed(len(product) + W))
        with m.If(move):
            m.d.sync += [v1.eq(self.inp.valid), acc.eq(self.inp.payload.acc), old1.eq(self.inp.payload.old),
                         v2.eq(v1), product.eq(acc * self.rate.m), old2.eq(old1),
                         v3.eq(v2), shifted.eq(Cat(Const(0, W), product).as_signed() >> q), old3.eq(old2)]
        # stage 4: the rounding's carry with the draw, the noise, the new weight saturated into ``out``
        keep = Signal(W)                                       # the draw's bits: the top min(q, W)
        m.d.comb += keep.eq(Mux(q >= W, (1 << W) - 1, ~(Const((1 << W) - 1, W) >> q)))
        carry = Signal()
        m.d.comb += carry.eq((shifted[:W] + (lfsr.next & keep)) >> W)
        delta = Signal(signed(len(product) + 1))
        m.d.comb += delta.eq(shifted[W:].as_signed() + carry)
        if noise_bits:                                  # a programmed weight: plus the write noise
            noise = Signal(signed(noise_bits + 1))
            m.d.comb += noise.eq(lfsr.after[W - noise_bits:] - (1 << (noise_bits - 1)))
            noisy = Signal(signed(len(delta) + 1))
            m.d.comb += noisy.eq(Mux(delta != 0, delta + noise, 0))
            delta = noisy
        lo, hi = level_bounds(self.config.readout_weight_range, ls)
        total = Signal(signed(len(delta) + ls + 1))
        m.d.comb += total.eq(old3 + (delta << ls))
        m.d.comb += lfsr.advance.eq(move & v3)
        with m.If(move):
            m.d.sync += [self.out.valid.eq(v3), self.out.payload.eq(saturate(total, lo, hi))]
        m.d.comb += self.busy.eq(v1 | v2 | v3 | self.out.valid)
        return m


class WeightWriteSignature(wiring.Signature):
    """Verification port: one readout weight written by an update in this cycle (output, neuron,
    old value, new value)."""

    def __init__(self, config: SRNNConfig):
        super().__init__({"valid": Out(1), "payload": Out(layouts.struct(weight_write_fields(config)))})


def _readout_memory(config: SRNNConfig, synapses, rows) -> synapse_model.SynapseMemory:
    """The readout's model synapse memory: ``"dense"`` holding ``rows`` (zeros if None), or the
    given memory, checked against the readout."""
    K, N, wb = config.outputs, config.neurons, config.readout_weight_bits
    if isinstance(synapses, str):
        if synapse_model.organisation_name(synapses) != "dense":
            raise ConfigError(f"synapses={synapses!r}: a sparse readout's structure comes with its memory; "
                              "allowed: 'dense' (every weight, from w_out) or a model.synapse memory.")
        return synapse_model.make_memory("dense", torch.zeros(K, N, dtype=torch.int64) if rows is None
                                         else torch.tensor(rows, dtype=torch.int64), wb)
    if not isinstance(synapses, synapse_model.SynapseMemory):
        raise TypeError(f"synapses must be 'dense' or a model.synapse memory, not {synapses!r}")
    if synapses.name not in synapse_model.MATRIX_ORGANISATIONS or hasattr(synapses, "kernel_shape"):
        raise ConfigError(f"a {synapses.name} convolution cannot hold the readout; allowed: a matrix organisation "
                          f"({', '.join(synapse_model.MATRIX_ORGANISATIONS)}).")
    if (synapses.post, synapses.pre, synapses.weight_bits) != (K, N, wb):
        raise ConfigError(f"a synapse memory of {synapses.post} outputs, {synapses.pre} neurons and "
                          f"{synapses.weight_bits}-bit weights does not hold the readout; allowed: {K} outputs, "
                          f"{N} neurons, {wb}-bit weights.")
    return synapses


class Readout(wiring.Component):
    """The readout's leaky integrators, one per output, and their reduction over time into the
    logits (``model.snn.integer_readout``).

    Members
    -------
    word : In(valid, payload: ``outputs`` weights)   -- a spike's readout weights, added to the drives
    result : In(valid, output, weight)   -- one output's weight, added to its drive (a synapse memory's result)
    step : In(1)      -- the timestep: ``O_k <- sat(O_k - (O_k >> s) + drive_k)``, reduced into ``logit_k``
    step_k : In(range(outputs))   -- with ``shared``: the output whose timestep it is (see below)
    clear : In(1)     -- a new sample: drives, integrators and logits to zero
    logits : Out(array of ``outputs`` signed(logit_bits))

    With ``shared`` one datapath steps one output per cycle: a timestep is ``step`` with ``step_k``
    ``0, 1, ..., outputs - 1`` (in any cycles, no drive added from the first to a cycle after the
    last), each output's new state written a cycle after its ``step``; otherwise one ``step`` cycle
    steps every output, each with its own datapath.
    """

    def __init__(self, config: SRNNConfig, cfg: LearningConfig, shared: bool = False):
        self.config = c = config
        self.shared = shared
        K, wb = c.outputs, c.readout_weight_bits
        super().__init__({
            "word": In(wiring.Signature({"valid": Out(1), "payload": Out(K * wb)})),
            "result": In(wiring.Signature({"valid": Out(1), "payload": Out(data.StructLayout(
                {"output": range(K), "weight": signed(wb)}))})),
            "step": In(1), "step_k": In(range(K)), "clear": In(1),
            "logits": Out(data.ArrayLayout(signed(c.logit_bits), K)),
        })

    def _next(self, m, state, drive, logit, first, name: str):
        """(new integrator, new logit) of one output's timestep."""
        c = self.config
        o_new = Signal(signed(c.readout_bits), name=f"readout_next_{name}")
        m.d.comb += o_new.eq(saturate(decay(state, c.readout_decay_shift) + drive, *c.readout_range))
        if c.readout_reduce == "sum":
            reduced = saturate(logit + o_new, *c.logit_range)
        else:
            reduced = Mux(o_new > logit, o_new, logit)
        return o_new, Mux(first, o_new, reduced)

    def elaborate(self, platform):
        c = self.config
        K, N, wb = c.outputs, c.neurons, c.readout_weight_bits
        m = Module()
        drive = [Signal(signed(wb + bits_for(N) + 1), name=f"drive_{k}") for k in range(K)]
        state = [Signal(signed(c.readout_bits), name=f"readout_{k}") for k in range(K)]
        logit = [Signal(signed(c.logit_bits), name=f"logit_{k}") for k in range(K)]
        first = Signal(init=1)                          # no timestep of this sample yet
        m.d.comb += [self.logits[k].eq(logit[k]) for k in range(K)]
        with m.If(self.word.valid):
            m.d.sync += [drive[k].eq(drive[k] + self.word.payload.word_select(k, wb).as_signed()) for k in range(K)]
        with m.If(self.result.valid):
            for k in range(K):
                with m.If(self.result.payload.output == k):
                    m.d.sync += drive[k].eq(drive[k] + self.result.payload.weight)
        if self.shared:
            # Two stages: the output's state, drive and logit are selected and registered, then its
            # timestep is computed and written back (a cycle after its ``step``).
            valid, i = Signal(), Signal(range(K))
            old = [Signal.like(state[0]), Signal.like(drive[0]), Signal.like(logit[0])]
            m.d.sync += [valid.eq(self.step), i.eq(self.step_k)]
            m.d.sync += [r.eq(Array(v)[self.step_k]) for r, v in zip(old, (state, drive, logit))]
            with m.If(valid):
                o_new, l_new = self._next(m, *old, first, "shared")
                for k in range(K):
                    with m.If(i == k):
                        m.d.sync += [state[k].eq(o_new), drive[k].eq(0), logit[k].eq(l_new)]
                with m.If(i == K - 1):
                    m.d.sync += first.eq(0)
        else:
            with m.If(self.step):
                for k in range(K):
                    o_new, l_new = self._next(m, state[k], drive[k], logit[k], first, str(k))
                    m.d.sync += [state[k].eq(o_new), drive[k].eq(0), logit[k].eq(l_new)]
                m.d.sync += first.eq(0)
        with m.If(self.clear):
            m.d.sync += [v.eq(0) for v in drive + state + logit] + [first.eq(1)]
        return m


class Softmax(wiring.Component):
    """The errors of a learning sample: ``onehot(label) << prob_bits`` minus the integer softmax of its
    logits (``model.learning.integer_softmax``): the exponent of each output's distance from the
    largest logit, one a cycle (pipelined), then each probability by restoring division, one
    quotient bit a cycle.

    Members
    -------
    logits : In(array of ``outputs`` signed(logit_bits))
    track : In(1), index : In(range(outputs))  -- logit ``index`` was reported (the largest is kept)
    start : In(1), label : In(range(outputs))  -- compute the errors against ``label``
    done : Out(1)                              -- the last error is written in this cycle
    errors : Out(array of ``outputs`` signed(error_bits))
    """

    def __init__(self, config: SRNNConfig, cfg: LearningConfig):
        self.config, self.cfg = config, cfg
        K = config.outputs
        super().__init__({"logits": In(data.ArrayLayout(signed(config.logit_bits), K)),
                          "track": In(1), "index": In(range(K)), "start": In(1), "label": In(range(K)),
                          "done": Out(1), "errors": Out(data.ArrayLayout(signed(error_bits(cfg)), K))})

    def elaborate(self, platform):
        c, cfg = self.config, self.cfg
        K, P = c.outputs, cfg.prob_bits
        NUMB = cfg.exp_table_bits + 1                   # table[0] == 2**exp_table_bits
        SUMB = NUMB + bits_for(K) + 1
        m = Module()
        logit_a = Array(self.logits[i] for i in range(K))
        err_a = Array(Signal(signed(error_bits(cfg)), name=f"error_{i}") for i in range(K))
        num_a = Array(Signal(unsigned(NUMB), name=f"exp_{i}") for i in range(K))
        m.d.comb += [self.errors[i].eq(err_a[i]) for i in range(K)]
        k = Signal(range(K))
        last_k = k == K - 1
        top = Signal(signed(c.logit_bits))              # the largest logit
        total = Signal(unsigned(SUMB))                  # sum of the exponents
        with m.If(self.track):
            i = self.index
            m.d.sync += top.eq(Mux((i == 0) | (logit_a[i] > top), logit_a[i], top))
            with m.If(i == K - 1):
                m.d.sync += total.eq(0)
        # The exponent of output v_k, pipelined (the critical path otherwise) from the registered v.
        dist_bits = softmax_distance_bits(c.logit_shift, cfg)
        dist = Signal(unsigned(c.logit_bits + 1))
        dist_c = Signal(unsigned(dist_bits + 1))
        v = Signal(unsigned(dist_bits + 1 + _LOG2E_Q.bit_length()))
        m.d.comb += [dist.eq(top - logit_a[k]), dist_c.eq(Mux(dist >= (1 << dist_bits), 1 << dist_bits, dist)),
                     v.eq((dist_c * _LOG2E_Q) >> (c.logit_shift + _LOG2E_FRAC - cfg.exp_frac_bits))]
        v_r = Signal.like(v)
        v_k = Signal(range(K))
        v_valid = Signal()
        whole = v_r >> cfg.exp_frac_bits
        frac = v_r[:cfg.exp_frac_bits] if cfg.exp_frac_bits else Const(0, 1)
        entry = Array(Const(t, NUMB) for t in cfg.exp_table())[frac]
        exp_k = Signal(unsigned(NUMB))
        m.d.comb += exp_k.eq(Mux(whole < cfg.exp_table_bits + 1, entry >> whole[:bits_for(NUMB + 1)], 0))
        with m.If(v_valid):
            m.d.sync += [num_a[v_k].eq(exp_k), total.eq(total + exp_k)]
        # p_k = (exp_k << P) // total, one bit a cycle.
        rem = Signal(unsigned(SUMB + 1))
        quo = Signal(unsigned(P + 1))
        bit = Signal(range(P + 1))
        ge = Signal()
        m.d.comb += ge.eq(rem >= total)
        quotient = Cat(ge, quo)[:P + 1]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += k.eq(0)
                    m.next = "EXP"
            with m.State("EXP"):                         # the exponent of every output, and their sum
                m.d.sync += [v_r.eq(v), v_k.eq(k), v_valid.eq(1), k.eq(k + 1)]
                with m.If(last_k):
                    m.d.sync += k.eq(0)
                    m.next = "EXP_LAST"

            with m.State("EXP_LAST"):                    # the last exponent leaves the pipeline
                m.d.sync += v_valid.eq(0)
                m.next = "DIV_LOAD"

            with m.State("DIV_LOAD"):
                m.d.sync += [rem.eq(num_a[k]), quo.eq(0), bit.eq(0)]
                m.next = "DIV"

            with m.State("DIV"):
                m.d.sync += [quo.eq(quotient), rem.eq(Mux(ge, rem - total, rem) << 1), bit.eq(bit + 1)]
                with m.If(bit == P):
                    m.d.sync += [err_a[k].eq(Mux(self.label == k, 1 << P, 0) - quotient), k.eq(k + 1)]
                    with m.If(last_k):
                        m.d.sync += k.eq(0)
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "DIV_LOAD"
        return m


class _Memories(NamedTuple):
    """The learning engine's memory ports (the readout weights' are None with a synapse memory)."""
    w_rd: object
    w_wr: object
    t_rd: object
    t_wr: object
    s_rd: object
    s_wr: object
    a_rd: object
    a_wr: object


class _EngineState:
    """The learning engine's sequencing registers, shared by its datapath and its control states: the
    output and neuron counters (``k``, ``j``; ``n = k * N + j``), the sample's ``label`` and ``learn``
    bit, whether a spike is taken (``take_spike``) and whether the synapse memory's results are an
    update's (``updating``), each pipeline's valid bit and indices (``sweep``: valid, j; ``mac``:
    valid, k, n; ``upd``: valid, k, j, n) and this cycle's readout weight write (``write``: en, lane,
    word, value)."""

    def __init__(self, config: SRNNConfig):
        K, N, wb = config.outputs, config.neurons, config.readout_weight_bits
        self.k, self.j, self.n = Signal(range(K), name="k"), Signal(range(N), name="j"), Signal(range(K * N), name="n")
        self.last_j, self.last_k = self.j == N - 1, self.k == K - 1
        self.label, self.learn = Signal(range(K), name="label"), Signal(name="learn")
        self.take_spike, self.updating = Signal(name="take_spike"), Signal(name="updating")
        self.sweep = (Signal(name="sweep_valid"), Signal(range(N), name="sweep_j"))
        self.mac = (Signal(name="mac_valid"), Signal(range(K), name="mac_k"), Signal(range(K * N), name="mac_n"))
        self.upd = (Signal(name="upd_valid"), Signal(range(K), name="upd_k"), Signal(range(N), name="upd_j"),
                    Signal(range(K * N), name="upd_n"))
        self.write = (Signal(name="write_en"), Signal(range(K), name="write_lane"), Signal(range(N), name="write_word"),
                      Signal(signed(wb), name="write_value"))

    def advance_kj(self, m):
        """Next (k, j), j inner; returns the condition 'this was the last'."""
        m.d.sync += [self.j.eq(Mux(self.last_j, 0, self.j + 1)), self.n.eq(self.n + 1)]
        with m.If(self.last_j):
            m.d.sync += self.k.eq(self.k + 1)
        return self.last_j & self.last_k


class LearningEngine(CheckedComponent):
    """The readout of the SRNN and its integer learning rule, generated from an :class:`SRNNConfig`
    and a :class:`LearningConfig`.

    It takes the hidden layer's spike stream (the LIF core's output events: spiking neurons, then a
    TICK per timestep) and commands from the host. Per sample it keeps, for every output ``k``, the
    readout drive, state and logit (registers), and for every hidden neuron ``j`` the presynaptic
    trace and the eligibility (one memory word). At the end of a sample (``OP_END``) it reports the
    logits; with ``learn`` it computes the errors (integer softmax: a distance to the largest logit
    times log2(e), a table of ``2**exp_frac_bits`` entries, a shift, and one ``prob_bits + 1``-cycle
    division per output) and adds ``err[k] * E[j]`` to the accumulator of every weight. ``OP_UPDATE``
    applies the accumulated update to every readout weight, row by row, one weight per cycle, with
    the LFSR's stochastic rounding (:class:`UpdateUnit`), and clears the accumulators.

    Memories: the readout weights (one word of ``outputs`` weights per hidden neuron, written one
    lane at a time), traces and eligibilities (one word per hidden neuron), the spikes of the current
    step (one bit per hidden neuron), the accumulators (one per weight).

    With ``synapses`` the readout weights live in a :class:`~.synapse.SynapseMemory`
    instead: ``"dense"`` (built from ``w_out``), or a ``model.synapse`` memory of any matrix
    organisation holding the ``[outputs, neurons]`` readout (its structure, fixed, says which
    synapses exist). A hidden spike is a forward access whose results (output, weight) are added to
    the drives one a cycle (a TICK, a command or a load waits for the last); a load is an update
    command (of a stored synapse: the host loads only those); ``OP_UPDATE`` makes, per output ``k``,
    a transposed access whose ``(j, W[k, j])`` results (the stored synapses of row ``k``) go through
    the update unit (accumulator read with the result) into a FIFO of new weights, then one update
    command per new weight, reported on ``weight_write`` when taken. Only stored synapses are
    updated and draw from the LFSR: ``model.learning.adapt_readout_integer`` with the memory's
    ``structure()``. The order of the updates and draws is the model's; the cycles below hold only
    without a synapse memory.

    Cycles from taking a token to taking the next one (no backpressure): a spike 1; a TICK
    ``neurons + 2``; an ``OP_END`` ``outputs + neurons + 2`` (the logits, the clearing of the sample),
    with learning ``outputs * (prob_bits + 3) + outputs * neurons + 2`` more (the softmax, the
    accumulation); an ``OP_UPDATE`` taken in cycle ``c`` ``outputs * neurons + UPDATE_LATENCY + 1``,
    its n-th weight written in cycle ``c + UPDATE_LATENCY + n``. After a reset the engine clears its
    memories (``outputs * neurons`` cycles) before it takes anything.

    Members
    -------
    spikes : In(stream of output_event(config.core))   -- hidden spikes and TICKs
    command : In(stream of command_fields)              -- OP_END (label, learn) or OP_UPDATE
    weights : In(stream of readout_load_fields)         -- loads one readout weight (when idle)
    rate : In(m, q)                                     -- the quantised inner rate, held steady
    logits : Out(stream of logit_fields)                -- the ``outputs`` logits of each sample
    weight_write : Out(WeightWriteSignature)            -- every weight written by an update
    """

    @classmethod
    def check(cls, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), w_out=None, synapses=None) -> None:
        """An RRAM emulation with at least 2 levels, the initial readout, its synapse memory."""
        if not isinstance(config, SRNNConfig):
            raise TypeError(f"config must be an SRNNConfig, not {config!r}")
        level_bounds(config.readout_weight_range, cfg.level_shift)
        if synapses is not None and w_out is not None and not isinstance(synapses, str):
            raise ConfigError("give the initial readout either as w_out= or in the synapse memory, not both.")
        rows = _readout_rows(config, w_out)
        if synapses is not None:
            SynapseMemory.check(_readout_memory(config, synapses, rows))

    def __init__(self, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), w_out=None,
                 synapses: str | None = None):
        self.config, self.cfg = config, cfg
        K, N, wb = config.outputs, config.neurons, config.readout_weight_bits
        rows = _readout_rows(config, w_out)
        self._init = []
        if rows is not None:
            mask = (1 << wb) - 1
            self._init = [sum((rows[k][j] & mask) << (k * wb) for k in range(K)) for j in range(N)]
        self._synapses = None if synapses is None else SynapseMemory(_readout_memory(config, synapses, rows))
        self._state = _EngineState(config)
        super().__init__({
            "spikes": In(stream.Signature(layouts.output_event(config.core))),
            "command": In(stream.Signature(layouts.struct(command_fields(config)))),
            "weights": In(stream.Signature(layouts.struct(readout_load_fields(config)))),
            "rate": In(layouts.struct(rate_fields(cfg))),
            "logits": Out(stream.Signature(layouts.struct(logit_fields(config)))),
            "weight_write": Out(WeightWriteSignature(config)),
        })

    def elaborate(self, platform):
        sm = self._synapses
        c, cfg = self.config, self.cfg
        K, N, wb, s = c.outputs, c.neurons, c.readout_weight_bits, c.readout_decay_shift
        f, EB, AB = cfg.trace_frac_bits, cfg.elig_bits, cfg.acc_bits
        TB = trace_bits(s, cfg)
        m = Module()

        # -- memories -------------------------------------------------------------------------------
        w_rd = w_wr = None
        if sm is None:
            m.submodules.weight_memory = wmem = Memory(shape=unsigned(K * wb), depth=N, init=self._init)
            w_rd, w_wr = wmem.read_port(), wmem.write_port(granularity=wb)
        else:
            m.submodules.synapses = sm
        m.submodules.trace_memory = tmem = Memory(shape=unsigned(TB + EB), depth=N, init=[])
        m.submodules.spike_memory = smem = Memory(shape=unsigned(1), depth=N, init=[])
        m.submodules.acc_memory = amem = Memory(shape=signed(AB), depth=K * N, init=[])
        t_rd, t_wr = tmem.read_port(), tmem.write_port()
        s_rd, s_wr = smem.read_port(), smem.write_port()
        a_rd, a_wr = amem.read_port(), amem.write_port()
        m.submodules.update = upd = UpdateUnit(c, cfg)
        m.d.comb += [upd.rate.eq(self.rate), upd.out.ready.eq(1)]

        # -- the readout and the softmax ----------------------------------------------------------------
        # The readout's timestep rides on the trace sweep: output k steps with neuron j = k, through one
        # datapath (the sweep's N cycles cover the K outputs; the logits are read only after it).
        shared = K <= N
        m.submodules.readout = readout = Readout(c, cfg, shared=shared)
        m.submodules.softmax = softmax = Softmax(c, cfg)
        m.d.comb += softmax.logits.eq(readout.logits)
        err_a = Array(softmax.errors[kk] for kk in range(K))
        st = self._state
        take_spike, updating = st.take_spike, st.updating
        sweep_valid, sweep_j = st.sweep
        mac_valid, mac_k, mac_n = st.mac
        m.d.comb += softmax.label.eq(st.label)

        # -- spike events: one readout weight word a cycle, added to every output's drive -----------
        if sm is None:                                  # the spike's weight word, a cycle after its read
            m.d.sync += readout.word.valid.eq(take_spike)
            m.d.comb += readout.word.payload.eq(w_rd.data)
        else:                                           # one (output, weight) result a cycle
            res = sm.results
            m.d.comb += [readout.result.valid.eq(res.valid & ~updating),
                         readout.result.payload.output.eq(res.payload.neuron),
                         readout.result.payload.weight.eq(res.payload.weight)]

        # -- the trace sweep of a TICK (issue j, then update j one cycle later) ----------------------
        tr = t_rd.data[:TB]
        elig = t_rd.data[TB:]
        tr_new = Signal(TB)
        elig_sum = Signal(EB + 1)
        m.d.comb += [tr_new.eq(decay(tr, s) + (s_rd.data << f)), elig_sum.eq(elig + tr_new)]
        sweep_done = Signal()
        with m.If(sweep_valid):
            m.d.comb += [t_wr.en.eq(1), t_wr.addr.eq(sweep_j),
                         t_wr.data.eq(Cat(tr_new, saturate(elig_sum, 0, (1 << EB) - 1))),
                         s_wr.en.eq(1), s_wr.addr.eq(sweep_j), s_wr.data.eq(0)]
            with m.If(sweep_j == N - 1):
                m.d.comb += sweep_done.eq(1)
        if shared:
            m.d.comb += [readout.step.eq(sweep_valid & (sweep_j < K)), readout.step_k.eq(sweep_j)]
        else:                                           # every output at once, at the sweep's end
            m.d.comb += readout.step.eq(sweep_done)

        # -- the accumulation of a learning sample: acc[k, j] += err[k] * E[j] ----------------------
        acc_lo, acc_hi = signed_range(AB)
        mac_sum = Signal(signed(AB + EB + error_bits(cfg) + 1))
        m.d.comb += mac_sum.eq(a_rd.data + err_a[mac_k] * elig)
        mac_done = Signal()
        with m.If(mac_valid):
            m.d.comb += [a_wr.en.eq(1), a_wr.addr.eq(mac_n), a_wr.data.eq(saturate(mac_sum, acc_lo, acc_hi))]
            with m.If(mac_n == K * N - 1):
                m.d.comb += mac_done.eq(1)

        mem = _Memories(w_rd, w_wr, t_rd, t_wr, s_rd, s_wr, a_rd, a_wr)
        pending, head = self._update_path(m, mem, upd)

        # -- control ------------------------------------------------------------------------------------
        with m.FSM(init="CLEAR"):
            self._sample_states(m, mem, readout, softmax)
            self._update_states(m, mem, upd, pending, head)
        return m

    def _update_path(self, m, mem, upd):
        """The update's datapath: an accumulator and its old weight into the ``UpdateUnit``, its new
        weight written into its lane of the weight word, or queued for the synapse memory as an update
        command; returns the queue and its head (None, None without a synapse memory)."""
        K, N, wb = self.config.outputs, self.config.neurons, self.config.readout_weight_bits
        sm = self._synapses
        res = None if sm is None else sm.results
        st = self._state
        k, n = st.k, st.n
        updating = st.updating
        upd_valid, upd_k, upd_j, upd_n = st.upd
        write_en, write_lane, write_word, write_value = st.write
        w_rd, w_wr = mem.w_rd, mem.w_wr
        a_rd, a_wr = mem.a_rd, mem.a_wr
        pending = head = None
        out_k = Signal(range(K))
        out_j = Signal(range(N))
        out_old = Signal(signed(wb))
        if sm is None:
            old = w_rd.data.word_select(upd_k, wb).as_signed()
        else:
            # The transposed access of output k delivers (j, old weight) a cycle: its accumulator is
            # read then, the pair goes to the update unit a cycle later.
            old = Signal(signed(wb))
            with m.If(res.valid & updating):
                m.d.comb += a_rd.addr.eq(n + res.payload.neuron)            # n = k * N during the update
            m.d.sync += [upd_valid.eq(res.valid & updating), upd_j.eq(res.payload.neuron), upd_k.eq(k),
                         upd_n.eq(n + res.payload.neuron), old.eq(res.payload.weight)]
        m.d.comb += [upd.inp.valid.eq(upd_valid), upd.inp.payload.acc.eq(a_rd.data), upd.inp.payload.old.eq(old)]
        with m.If(upd_valid):
            m.d.comb += [a_wr.en.eq(1), a_wr.addr.eq(upd_n), a_wr.data.eq(0)]      # consumed: cleared
        # (k, j, old) of each pair alongside it through the update pipeline (which is never held here)
        tag = [upd_k, upd_j, old]
        for stage in range(UPDATE_PIPELINE):
            last = stage == UPDATE_PIPELINE - 1
            nxt = [out_k, out_j, out_old] if last else [Signal.like(v, name=f"upd_{what}_{stage}")
                                                        for v, what in zip(tag, ("k", "j", "old"))]
            m.d.sync += [a.eq(b) for a, b in zip(nxt, tag)]
            tag = nxt
        if sm is None:
            m.d.comb += [w_wr.addr.eq(write_word), w_wr.data.eq(Cat(*[write_value] * K))]
            for kk in range(K):
                m.d.comb += w_wr.en[kk].eq(write_en & (write_lane == kk))
            with m.If(upd.out.valid):
                m.d.comb += [write_en.eq(1), write_lane.eq(out_k), write_word.eq(out_j),
                             write_value.eq(upd.out.payload), self.weight_write.valid.eq(1),
                             self.weight_write.payload.output.eq(out_k), self.weight_write.payload.neuron.eq(out_j),
                             self.weight_write.payload.old.eq(out_old),
                             self.weight_write.payload.new.eq(upd.out.payload)]
        else:
            # The new weights of output k wait in a FIFO until its transposed access is over, then go
            # to the synapse memory as update commands (reported when taken); a load is one too.
            entry = data.StructLayout({"j": unsigned(bits_for(N)), "old": signed(wb), "new": signed(wb)})
            m.submodules.new_weights = pending = SyncFIFOBuffered(width=entry.size, depth=max(N, 2))
            head = data.View(entry, pending.r_data)
            tail = data.View(entry, pending.w_data)
            m.d.comb += [pending.w_en.eq(upd.out.valid), tail.j.eq(out_j), tail.old.eq(out_old),
                         tail.new.eq(upd.out.payload)]
            cmd = sm.commands
            with m.If(write_en):
                m.d.comb += [cmd.valid.eq(1), cmd.payload.kind.eq(synapse_model.CMD_UPDATE),
                             cmd.payload.post.eq(write_lane), cmd.payload.pre.eq(write_word),
                             cmd.payload.value.eq(write_value)]
        return pending, head

    def _sample_states(self, m, mem, readout, softmax):
        """The FSM's states of a sample: after reset every memory cleared; IDLE (spike events, TICKs,
        commands, loads); the trace SWEEP of a TICK; the LOGITS at its end and, when it learns, the
        errors (SOFTMAX) and their accumulation with the eligibilities (MAC); then its traces cleared."""
        sm = self._synapses
        st = self._state
        k, j, n = st.k, st.j, st.n
        last_j, last_k = st.last_j, st.last_k
        label, learn = st.label, st.learn
        take_spike = st.take_spike
        sweep_valid, sweep_j = st.sweep
        mac_valid, mac_k, mac_n = st.mac
        write_en, write_lane, write_word, write_value = st.write
        w_rd = mem.w_rd
        t_rd, t_wr = mem.t_rd, mem.t_wr
        s_rd, s_wr = mem.s_rd, mem.s_wr
        a_rd, a_wr = mem.a_rd, mem.a_wr
        logit_a = Array(readout.logits[kk] for kk in range(self.config.outputs))
        with m.State("CLEAR"):                       # after reset: every memory to zero
            m.d.comb += [a_wr.en.eq(1), a_wr.addr.eq(n), a_wr.data.eq(0),
                         t_wr.en.eq(k == 0), t_wr.addr.eq(j), t_wr.data.eq(0),
                         s_wr.en.eq(k == 0), s_wr.addr.eq(j), s_wr.data.eq(0)]
            with m.If(st.advance_kj(m)):
                m.d.sync += [k.eq(0), j.eq(0), n.eq(0)]
                m.next = "IDLE"

        with m.State("IDLE"):
            spike = self.spikes.payload.kind == layouts.EventKind.SPIKE
            if sm is None:
                m.d.comb += [self.spikes.ready.eq(1),
                             self.command.ready.eq(~self.spikes.valid),
                             self.weights.ready.eq(~self.spikes.valid & ~self.command.valid),
                             take_spike.eq(self.spikes.valid & spike),
                             w_rd.addr.eq(self.spikes.payload.address)]
                idle = Const(1)
            else:
                # A spike is a forward access; a TICK, a command or a load waits for its last result.
                cmd = sm.commands
                idle = ~sm.busy
                with m.If(self.spikes.valid & spike):
                    m.d.comb += [cmd.valid.eq(1), cmd.payload.kind.eq(synapse_model.CMD_FORWARD),
                                 cmd.payload.pre.eq(self.spikes.payload.address),
                                 self.spikes.ready.eq(cmd.ready), take_spike.eq(cmd.ready)]
                with m.Elif(self.spikes.valid):
                    m.d.comb += self.spikes.ready.eq(idle)
                m.d.comb += [self.command.ready.eq(~self.spikes.valid & idle),
                             self.weights.ready.eq(~self.spikes.valid & ~self.command.valid & cmd.ready)]
            with m.If(self.spikes.valid):
                with m.If(spike):
                    with m.If(take_spike):
                        m.d.comb += [s_wr.en.eq(1), s_wr.addr.eq(self.spikes.payload.address), s_wr.data.eq(1)]
                with m.Elif(idle):
                    m.d.sync += j.eq(0)
                    m.next = "SWEEP"
            with m.Elif(self.command.valid):
                with m.If(idle):
                    m.d.sync += [label.eq(self.command.payload.label), learn.eq(self.command.payload.learn),
                                 k.eq(0), j.eq(0), n.eq(0)]
                    with m.If(self.command.payload.op == OP_END):
                        m.next = "LOGITS"
                    with m.Else():
                        m.next = "UPDATE"
            with m.Elif(self.weights.valid):
                m.d.comb += [write_en.eq(1), write_lane.eq(self.weights.payload.output),
                             write_word.eq(self.weights.payload.neuron),
                             write_value.eq(self.weights.payload.value)]

        with m.State("SWEEP"):                       # issue trace j; its update follows a cycle later
            m.d.comb += [t_rd.addr.eq(j), s_rd.addr.eq(j)]
            m.d.sync += [sweep_valid.eq(1), sweep_j.eq(j), j.eq(j + 1)]
            with m.If(last_j):
                m.d.sync += j.eq(0)
                m.next = "SWEEP_LAST"

        with m.State("SWEEP_LAST"):
            m.d.sync += sweep_valid.eq(0)
            m.next = "IDLE"

        with m.State("LOGITS"):
            m.d.comb += [self.logits.valid.eq(1), self.logits.payload.output.eq(k),
                         self.logits.payload.value.eq(logit_a[k])]
            m.d.comb += [softmax.track.eq(self.logits.ready), softmax.index.eq(k)]
            with m.If(self.logits.ready):
                m.d.sync += k.eq(k + 1)
                with m.If(last_k):
                    m.d.sync += k.eq(0)
                    m.next = "LOGITS_DONE"

        with m.State("LOGITS_DONE"):
            with m.If(learn):
                m.d.comb += softmax.start.eq(1)
                m.next = "SOFTMAX"
            with m.Else():
                m.next = "CLEAR_SAMPLE"

        with m.State("SOFTMAX"):                     # the errors of the sample's logits
            with m.If(softmax.done):
                m.next = "MAC"

        with m.State("MAC"):                         # issue (k, j); the add follows a cycle later
            m.d.comb += [t_rd.addr.eq(j), a_rd.addr.eq(n)]
            m.d.sync += [mac_valid.eq(1), mac_k.eq(k), mac_n.eq(n)]
            with m.If(st.advance_kj(m)):
                m.next = "MAC_LAST"

        with m.State("MAC_LAST"):
            m.d.sync += [mac_valid.eq(0), k.eq(0), j.eq(0), n.eq(0)]
            m.next = "CLEAR_SAMPLE"

        with m.State("CLEAR_SAMPLE"):                # traces, eligibilities and spikes of the sample
            m.d.comb += [t_wr.en.eq(1), t_wr.addr.eq(j), t_wr.data.eq(0),
                         s_wr.en.eq(1), s_wr.addr.eq(j), s_wr.data.eq(0)]
            m.d.sync += j.eq(j + 1)
            with m.If(last_j):
                m.d.sync += j.eq(0)
                m.d.comb += readout.clear.eq(1)
                m.next = "IDLE"

    def _update_states(self, m, mem, upd, pending, head):
        """The FSM's states of an ``OP_UPDATE``: every readout weight through the update datapath, from
        the weight memory, or output by output through the synapse memory's transposed accesses."""
        N = self.config.neurons
        sm = self._synapses
        cmd = None if sm is None else sm.commands
        st = self._state
        k, j, n = st.k, st.j, st.n
        last_k = st.last_k
        updating = st.updating
        upd_valid, upd_k, upd_j, upd_n = st.upd
        write_en, write_lane, write_word, write_value = st.write
        w_rd = mem.w_rd
        a_rd = mem.a_rd
        if sm is None:
            with m.State("UPDATE"):                  # issue (k, j): its accumulator and weight word
                m.d.comb += [a_rd.addr.eq(n), w_rd.addr.eq(j)]
                m.d.sync += [upd_valid.eq(1), upd_k.eq(k), upd_j.eq(j), upd_n.eq(n)]
                with m.If(st.advance_kj(m)):
                    m.next = "UPDATE_DRAIN"

            with m.State("UPDATE_DRAIN"):            # the last weight leaves the pipeline
                m.d.sync += [upd_valid.eq(0), k.eq(0), j.eq(0), n.eq(0)]
                with m.If(~upd_valid & ~upd.busy):
                    m.next = "IDLE"
        else:
            with m.State("UPDATE"):                  # output k's transposed access (n = k * N)
                m.d.comb += [cmd.valid.eq(1), cmd.payload.kind.eq(synapse_model.CMD_TRANSPOSED),
                             cmd.payload.post.eq(k)]
                with m.If(cmd.ready):
                    m.d.sync += updating.eq(1)
                    m.next = "UPDATE_PAIRS"

            with m.State("UPDATE_PAIRS"):            # until its last new weight is in the FIFO
                with m.If(~sm.busy & ~upd_valid & ~upd.busy):
                    m.d.sync += updating.eq(0)
                    m.next = "UPDATE_WRITE"

            with m.State("UPDATE_WRITE"):            # the new weights of output k, one update each
                with m.If(pending.r_rdy):
                    m.d.comb += [write_en.eq(1), write_lane.eq(k), write_word.eq(head.j),
                                 write_value.eq(head.new), pending.r_en.eq(cmd.ready)]
                    with m.If(cmd.ready):
                        m.d.comb += [self.weight_write.valid.eq(1), self.weight_write.payload.output.eq(k),
                                     self.weight_write.payload.neuron.eq(head.j),
                                     self.weight_write.payload.old.eq(head.old),
                                     self.weight_write.payload.new.eq(head.new)]
                with m.Elif(pending.level == 0):
                    m.d.sync += [k.eq(k + 1), n.eq(n + N)]
                    m.next = "UPDATE"
                    with m.If(last_k):
                        m.d.sync += [k.eq(0), j.eq(0), n.eq(0)]
                        m.next = "UPDATE_DRAIN"

            with m.State("UPDATE_DRAIN"):            # the last update command is served
                with m.If(~sm.busy):
                    m.next = "IDLE"


class SpikeMonitorSignature(wiring.Signature):
    """Verification port: a hidden spike event (an output event of the LIF core) passed on in this cycle.
    With ``ready`` it is a stream: an event waits (and the network with it) until it is taken."""

    def __init__(self, config: SRNNConfig, ready: bool = False):
        members = {"valid": Out(1), "payload": Out(layouts.output_event(config.core))}
        if ready:
            members["ready"] = In(1)
        super().__init__(members)


def connect_engine(m: Module, chip, engine: LearningEngine) -> None:
    """Wires a chip's host ports ``weights``, ``logits``, ``weight_write`` and ``rate`` to its engine's."""
    wiring.connect(m, wiring.flipped(chip.weights), engine.weights)
    wiring.connect(m, wiring.flipped(chip.logits), engine.logits)
    wiring.connect(m, wiring.flipped(chip.weight_write), engine.weight_write)
    m.d.comb += engine.rate.eq(chip.rate)


class LearningCore(CheckedComponent):
    """The network on chip: the recurrent LIF core (``config.core``), its recurrence, and the
    :class:`LearningEngine` on its output, all from one :class:`SRNNConfig`.

    The host sends each timestep's external events (addresses below ``channels``, ascending, repeats
    adjacent) and a TICK. The core's spikes of step t go to the engine and into a FIFO; when the
    host's TICK of step t+1 arrives (and the core has finished step t), the FIFO is replayed into
    the core as the events ``channels + j``, ascending, before the TICK: the order of
    ``model.snn.IntegerSRNN``. An ``OP_END`` is passed to the engine once the core's last TICK has
    reached it; in the cycle it is taken, the core (its neuron state and spike mask; not its
    weights) and the FIFO are reset, so the next sample starts from rest, after the core's
    ``blocks``-cycle clear. The host sends a sample's ``OP_END`` after its last TICK and before the
    next sample's first event. ``OP_UPDATE`` and the rate are the engine's.

    Synapse memories: ``core_synapses``, a ``model.synapse`` memory of the core's
    ``[neurons, channels + neurons]`` weights (``LIFCore(synapses=)``; ``core_weights`` then takes
    ``model.synapse.load_fields`` updates of its stored synapses), and ``readout_synapses``, the
    engine's (``LearningEngine(synapses=)``).

    Members
    -------
    events : In(stream of input_event(config.core))    -- external input spikes and TICKs
    command : In(stream of command_fields)             -- OP_END (label, learn) or OP_UPDATE
    core_weights : In(stream of weight_load(config.core)) -- loads a word of [W_in | W_rec] (when idle; with
                                                      core_synapses, an update of one stored synapse)
    weights : In(stream of readout_load_fields)        -- loads a readout weight (when idle)
    rate : In(m, q)
    logits : Out(stream of logit_fields)
    weight_write : Out(WeightWriteSignature)           -- every readout weight written by an update
    hidden : Out(SpikeMonitorSignature)                -- every hidden spike and TICK, for verification; with
                                                      ``hidden_ready`` a stream the network waits on (a host
                                                      link that reports the spikes)
    """

    @classmethod
    def check(cls, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), core_weights=None, w_out=None,
              core_synapses=None, readout_synapses=None, hidden_ready: bool = False) -> None:
        if not isinstance(config, SRNNConfig):
            raise TypeError(f"config must be an SRNNConfig, not {config!r}")
        LIFCore.check(config.core, core_weights, synapses=core_synapses)
        LearningEngine.check(config, cfg, w_out, synapses=readout_synapses)

    def __init__(self, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), core_weights=None, w_out=None,
                 core_synapses=None, readout_synapses=None, hidden_ready: bool = False):
        self.config, self.cfg = config, cfg
        self.core = LIFCore(config.core, core_weights, synapses=core_synapses)
        self.engine = LearningEngine(config, cfg, w_out, synapses=readout_synapses)
        super().__init__({
            "events": In(stream.Signature(layouts.input_event(config.core))),
            "command": In(stream.Signature(layouts.struct(command_fields(config)))),
            "core_weights": In(stream.Signature(layouts.weight_load(config.core) if core_synapses is None else
                                                layouts.struct(synapse_model.load_fields(core_synapses)))),
            "weights": In(stream.Signature(layouts.struct(readout_load_fields(config)))),
            "rate": In(layouts.struct(rate_fields(cfg))),
            "logits": Out(stream.Signature(layouts.struct(logit_fields(config)))),
            "weight_write": Out(WeightWriteSignature(config)),
            "hidden": Out(SpikeMonitorSignature(config, hidden_ready)),
        })
        self._hidden_ready = hidden_ready

    def elaborate(self, platform):
        c = self.config
        m = Module()
        clear = Signal()                                  # end of a sample: the core and FIFO to rest
        m.submodules.core = ResetInserter(clear)(self.core)
        m.submodules.engine = engine = self.engine
        fifo = SyncFIFOBuffered(width=c.core.neuron_address_bits, depth=max(c.neurons, 2))
        m.submodules.recurrence = ResetInserter(clear)(fifo)
        core = self.core
        wiring.connect(m, wiring.flipped(self.core_weights), core.weights)
        connect_engine(m, self, engine)

        # -- the core's spikes: to the engine, and (spikes only) into the FIFO -------------------------
        # (With ``hidden_ready``, an event also waits for the hidden port to take it.)
        out = core.spikes
        out_tick = out.payload.kind == EventKind.TICK
        go = self.hidden.ready if self._hidden_ready else 1
        m.d.comb += [
            engine.spikes.payload.eq(out.payload),
            fifo.w_data.eq(out.payload.address),
            engine.spikes.valid.eq(out.valid & (out_tick | fifo.w_rdy) & go),
            fifo.w_en.eq(out.valid & ~out_tick & engine.spikes.ready & go),
            out.ready.eq(engine.spikes.ready & (out_tick | fifo.w_rdy) & go),
            self.hidden.valid.eq(out.valid & engine.spikes.ready & (out_tick | fifo.w_rdy)),
            self.hidden.payload.eq(out.payload),
        ]

        # -- the core's inputs: external spikes; at a TICK, first the recurrent spikes ----------------
        busy = Signal()                   # a TICK is in the core and its output TICK has not left yet
        ev = self.events
        host_tick = ev.payload.kind == EventKind.TICK
        with m.If(ev.valid & ~host_tick):
            m.d.comb += [core.events.valid.eq(1), core.events.payload.eq(ev.payload), ev.ready.eq(core.events.ready)]
        with m.Elif(ev.valid & ~busy):
            with m.If(fifo.r_rdy):
                m.d.comb += [core.events.valid.eq(1), core.events.payload.kind.eq(EventKind.SPIKE),
                             core.events.payload.address.eq(c.channels + fifo.r_data),
                             fifo.r_en.eq(core.events.ready)]
            with m.Elif(fifo.level == 0):
                m.d.comb += [core.events.valid.eq(1), core.events.payload.eq(ev.payload),
                             ev.ready.eq(core.events.ready)]
        with m.If(out.valid & out.ready & out_tick):
            m.d.sync += busy.eq(0)
        with m.If(core.events.valid & core.events.ready & (core.events.payload.kind == EventKind.TICK)):
            m.d.sync += busy.eq(1)

        # -- commands: once the engine has the sample's last TICK ------------------------------------
        m.d.comb += [engine.command.payload.eq(self.command.payload),
                     engine.command.valid.eq(self.command.valid & ~busy),
                     self.command.ready.eq(engine.command.ready & ~busy)]
        with m.If(engine.command.valid & engine.command.ready & (self.command.payload.op == OP_END)):
            m.d.comb += clear.eq(1)
        return m
