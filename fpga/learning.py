"""The learning core on an FPGA: a self-test top (LFSR traffic, as ``LIFSelfTest``) and its builds.

For a build of the learning core alone (behind its host link it is ``fpga.top``), an LFSR loads both
weight memories after reset and then plays the host:
random input events and TICKs, an ``OP_END`` (random label, learning on or off) every 32 timesteps and
an ``OP_UPDATE`` after every fifth sample, with a rate taken from the LFSR after the loads. The logits
and the weight writes toggle an LED, so nothing the core or the engine computes can be optimised away.
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import io

from ..model.learning import OP_END, OP_UPDATE, LearningConfig
from ..model.snn import SRNNConfig
from ..rtl.layouts import EventKind
from ..rtl.learning import LearningCore
from .board import BoardBuild, Lfsr, build_top, synthesis_estimate
from .boards import board_spec

__all__ = ["LearningSelfTest", "build_learning", "estimate_learning"]

STEPS_PER_SAMPLE = 32
SAMPLES_PER_UPDATE = 5


class LearningSelfTest(Elaboratable):
    def __init__(self, config: SRNNConfig, cfg: LearningConfig = LearningConfig()):
        self.config, self.cfg = config, cfg

    def elaborate(self, platform):
        c, cfg = self.config, self.cfg
        core_cfg = c.core
        m = Module()
        m.submodules.dut = dut = LearningCore(c, cfg)
        m.submodules.lfsr = lfsr = Lfsr()
        rnd = lfsr.value

        def random_bits(width: int):
            """``width`` pseudo-random bits: the LFSR word, repeated."""
            return rnd.replicate(-(-width // 16))[:width]

        # Phase 1 and 2: the core's weights, then the readout weights; then the rate.
        phase = Signal(range(4))
        address = Signal(range(max(core_cfg.weight_depth, c.outputs * c.neurons) + 1))
        m.d.comb += lfsr.en.eq(1)
        with m.Switch(phase):
            with m.Case(0):
                m.d.comb += [dut.core_weights.valid.eq(1), dut.core_weights.payload.address.eq(address),
                             dut.core_weights.payload.data.eq(random_bits(core_cfg.weight_word_bits))]
                with m.If(dut.core_weights.ready):
                    m.d.sync += address.eq(address + 1)
                    with m.If(address == core_cfg.weight_depth - 1):
                        m.d.sync += [address.eq(0), phase.eq(1)]
            with m.Case(1):
                k, j = address // c.neurons, address % c.neurons
                m.d.comb += [dut.weights.valid.eq(1), dut.weights.payload.output.eq(k),
                             dut.weights.payload.neuron.eq(j),
                             dut.weights.payload.value.eq(random_bits(c.readout_weight_bits))]
                with m.If(dut.weights.ready):
                    m.d.sync += address.eq(address + 1)
                    with m.If(address == c.outputs * c.neurons - 1):
                        m.d.sync += phase.eq(2)
            with m.Case(2):
                m.d.sync += [dut.rate.m.eq(rnd[:cfg.rate_bits] | 1), dut.rate.q.eq(12 + rnd[8:12]), phase.eq(3)]

        # Phase 3: play the host.
        ticks = Signal(range(STEPS_PER_SAMPLE))
        samples = Signal(range(SAMPLES_PER_UPDATE))
        end_due = Signal()
        update_due = Signal()
        pre = rnd[:core_cfg.input_address_bits]
        tick = rnd[12:16] == 0
        with m.If(phase == 3):
            with m.If(update_due):
                m.d.comb += [dut.command.valid.eq(1), dut.command.payload.op.eq(OP_UPDATE)]
                with m.If(dut.command.ready):
                    m.d.sync += update_due.eq(0)
            with m.Elif(end_due):
                label = rnd[:len(dut.command.payload.label)]
                m.d.comb += [dut.command.valid.eq(1), dut.command.payload.op.eq(OP_END),
                             dut.command.payload.label.eq(Mux(label < c.outputs, label, 0)),
                             dut.command.payload.learn.eq(rnd[9])]
                with m.If(dut.command.ready):
                    m.d.sync += [end_due.eq(0), samples.eq(samples + 1)]
                    with m.If(samples == SAMPLES_PER_UPDATE - 1):
                        m.d.sync += [samples.eq(0), update_due.eq(1)]
            with m.Else():
                m.d.comb += [dut.events.valid.eq(tick | (pre < c.channels)),
                             dut.events.payload.kind.eq(Mux(tick, EventKind.TICK, EventKind.SPIKE)),
                             dut.events.payload.address.eq(pre)]
                # The LFSR holds a token until it is taken (stream rules).
                m.d.comb += lfsr.en.eq(dut.events.ready | ~dut.events.valid)
                with m.If(dut.events.valid & dut.events.ready & tick):
                    m.d.sync += ticks.eq(ticks + 1)
                    with m.If(ticks == STEPS_PER_SAMPLE - 1):
                        m.d.sync += [ticks.eq(0), end_due.eq(1)]

        activity = Signal()
        m.d.comb += dut.logits.ready.eq(1)
        with m.If(dut.logits.valid):
            m.d.sync += activity.eq(activity ^ dut.logits.payload.as_value().xor())
        with m.If(dut.weight_write.valid):
            m.d.sync += activity.eq(activity ^ dut.weight_write.payload.as_value().xor())
        if platform is not None:
            led = platform.request("led", 0, dir="-")
            m.submodules.led = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(activity)
        return m


def _config_dict(config: SRNNConfig, cfg: LearningConfig) -> dict:
    import dataclasses
    return {"network": config.to_dict(), "learning": dataclasses.asdict(cfg)}


def build_learning(config: SRNNConfig, cfg: LearningConfig = LearningConfig(), board: str = "icebreaker",
                   out_dir: str | Path = "build/fpga", name: str = "learning_top") -> BoardBuild:
    """Synthesis, placement and routing of the learning self-test top; bitstream and report."""
    board_spec(board)
    return build_top(LearningSelfTest(config, cfg), _config_dict(config, cfg), board, out_dir, name)


def estimate_learning(config: SRNNConfig, cfg: LearningConfig = LearningConfig(), board: str = "icebreaker",
                      out_dir: str | Path = "build/fpga", name: str = "learning_top") -> dict:
    """Yosys synthesis only: the cells of the learning self-test top and whether they fit."""
    board_spec(board)
    return synthesis_estimate(LearningSelfTest(config, cfg), board, out_dir, name)
