"""First pieces of the learning engine (issue 5): the LFSR and the weight-update datapath.

Both are ``model.learning`` bit for bit: :class:`GaloisLFSR` steps through the same states as
``model.learning.LFSR``, and :class:`UpdateUnit` computes ``model.learning.update_weight`` (stochastic
rounding of ``acc * m / 2**q`` with the LFSR draw, added to the old weight, saturated) for a stream
of ``(acc, old)`` pairs, one per cycle, drawing once per accepted pair, in order.
Still to come: the eligibility accumulators, the integer softmax and the memory sequencing.
"""

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.config import ConfigError
from ..model.learning import LearningConfig
from ..model.snn import SRNNConfig

__all__ = ["GaloisLFSR", "UpdateUnit"]

_SHIFT_BITS = 6


class GaloisLFSR(wiring.Component):
    """``state`` is the current state (the seed after reset); with ``advance`` high it moves to
    ``next`` (shift right, XOR the taps when the bit shifted out is 1) at the clock edge."""

    def __init__(self, cfg: LearningConfig):
        self.cfg = cfg
        super().__init__({"advance": In(1), "state": Out(cfg.lfsr_bits, init=cfg.lfsr_seed),
                          "next": Out(cfg.lfsr_bits)})

    def elaborate(self, platform):
        m = Module()
        taps = Const(self.cfg.lfsr_taps, self.cfg.lfsr_bits)
        m.d.comb += self.next.eq((self.state >> 1) ^ Mux(self.state[0], taps, 0))
        with m.If(self.advance):
            m.d.sync += self.state.eq(self.next)
        return m


class UpdateUnit(wiring.Component):
    """The weight-update datapath.

    Ports
    -----
    rate : In(m: rate_bits, q: 6 bits)   -- the quantised inner rate, steady during a pass
    inp : In(stream of {acc: signed(acc_bits), old: signed(weight_bits)})
    out : Out(stream of signed(weight_bits))  -- the new weight, one cycle after its pair is taken
    """

    def __init__(self, config: SRNNConfig, cfg: LearningConfig = LearningConfig(), acc_bits: int = 40):
        if not 2 <= acc_bits <= 64:
            raise ConfigError(f"acc_bits={acc_bits} is out of range; allowed: 2..64.")
        self.config, self.cfg, self.acc_bits = config, cfg, acc_bits
        wbits = config.readout_weight_bits
        pair = data.StructLayout({"acc": signed(acc_bits), "old": signed(wbits)})
        super().__init__({
            "rate": In(data.StructLayout({"m": unsigned(cfg.rate_bits), "q": unsigned(_SHIFT_BITS)})),
            "inp": In(stream.Signature(pair)),
            "out": Out(stream.Signature(signed(wbits))),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.lfsr = lfsr = GaloisLFSR(self.cfg)
        width = self.cfg.lfsr_bits
        q = self.rate.q
        # the draw of model.learning.LFSR.draw(q), from the state the LFSR steps to
        draw = Signal(unsigned(width + (1 << _SHIFT_BITS)))
        with m.If(q <= width):
            m.d.comb += draw.eq(lfsr.next >> (Const(width, _SHIFT_BITS + 1) - q)[:_SHIFT_BITS])
        with m.Else():
            m.d.comb += draw.eq(lfsr.next << (q - width)[:_SHIFT_BITS])
        acc, old = self.inp.payload.acc, self.inp.payload.old
        scaled = Signal(signed(self.acc_bits + self.cfg.rate_bits + 2 + (1 << _SHIFT_BITS)))
        m.d.comb += scaled.eq(acc * self.rate.m + draw)
        delta = Signal.like(scaled)
        m.d.comb += delta.eq(scaled >> q)                          # arithmetic: floor
        lo, hi = self.config.readout_weight_range
        total = Signal.like(scaled)
        m.d.comb += total.eq(old + delta)
        take = self.inp.valid & self.inp.ready
        m.d.comb += [self.inp.ready.eq(~self.out.valid | self.out.ready), lfsr.advance.eq(take)]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(take):
            m.d.sync += [self.out.valid.eq(1),
                         self.out.payload.eq(Mux(total > hi, hi, Mux(total < lo, lo, total)))]
        return m
