"""Board tops: the chip (a ``LearningCore`` or a ``Mosaic``) behind the host link.

:class:`ChipTop` is the chip and its :class:`~.link.HostLink` with the UART pins as ports: what the
full-board cosimulation drives (``cosim/board.py``) and what :class:`BoardTop` puts on a board (the
pins through the board's ``uart`` resource; LED 0 toggles on every hidden spike, LED 1 on every logit).

``BOARD_CHIPS`` are the configurations each board carries by default: on the iCEBreaker's
iCE40UP5K, the seed's 256-neuron SRNN (256 channels, 2 lanes, its weights in the four SPRAMs) with a
5-way readout that learns on chip; on the ULX3S's ECP5-85F, the FSDD network (64 neurons) as a 4 x 4
Mosaic, the layout it was meta-trained for.
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from ..model.learning import LearningConfig
from ..model.snn import SRNNConfig
from ..model.tiles import MosaicConfig
from ..rtl.learning import LearningCore
from ..rtl.mosaic import Mosaic
from .link import HostLink
from .protocol import LinkConfig, Protocol

__all__ = ["ChipTop", "BoardTop", "BOARD_CLOCKS", "BOARD_CHIPS", "board_protocol"]

BOARD_CLOCKS = {"icebreaker": 12_000_000, "ulx3s-85f": 25_000_000}
BAUD = 1_000_000                  # both boards' FTDI bridges take 1 Mbaud; both clocks divide it exactly


def _seed_5way() -> SRNNConfig:
    return SRNNConfig.make(channels=256, neurons=256, outputs=5, lanes=2)


def _fsdd_4x4() -> MosaicConfig:
    return MosaicConfig.make(SRNNConfig.make(channels=64, neurons=64, outputs=5, lanes=4), 4, 4)


BOARD_CHIPS = {"icebreaker": _seed_5way, "ulx3s-85f": _fsdd_4x4}


def board_protocol(board: str, chip: SRNNConfig | MosaicConfig | None = None,
                   cfg: LearningConfig = LearningConfig(), baud: int = BAUD) -> Protocol:
    """The protocol of ``chip`` (default: the board's ``BOARD_CHIPS``) at the board's clock."""
    from .board import board_spec
    board_spec(board)
    chip = BOARD_CHIPS[board]() if chip is None else chip
    return Protocol(chip, cfg, LinkConfig(clock_hz=BOARD_CLOCKS[board], baud=baud))


class ChipTop(wiring.Component):
    """The chip of ``protocol`` behind its host link.

    Members
    -------
    rx : In(1)      -- UART from the host (idle high)
    tx : Out(1)     -- UART to the host
    spike_led, logit_led : Out(1) -- toggle on every hidden spike and every logit
    """

    def __init__(self, protocol: Protocol, tables=None):
        self.protocol = protocol
        p = protocol
        if p.kind == "mosaic":
            self.chip = Mosaic(p.chip, p.cfg, tables=tables, hidden_ready=True)
        else:
            self.chip = LearningCore(p.chip, p.cfg, hidden_ready=True)
        self.link = HostLink(p)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "spike_led": Out(1), "logit_led": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.chip = chip = self.chip
        m.submodules.link = link = self.link
        m.d.comb += [link.rx.eq(self.rx), self.tx.eq(link.tx)]
        for name in ("core_weights", "weights", "events", "command"):
            wiring.connect(m, getattr(link, name), getattr(chip, name))
        if self.protocol.kind == "mosaic":
            m.d.comb += [chip.table.valid.eq(link.table.valid), chip.table.payload.eq(link.table.payload),
                         link.table.ready.eq(1)]              # a table write is taken in its cycle
        m.d.comb += chip.rate.eq(link.rate)
        wiring.connect(m, chip.logits, link.logit)
        wiring.connect(m, chip.hidden, link.spike)
        m.d.comb += [link.weight_write.valid.eq(chip.weight_write.valid),
                     link.weight_write.new.eq(chip.weight_write.payload.new)]
        with m.If(chip.hidden.valid & chip.hidden.ready):
            m.d.sync += self.spike_led.eq(~self.spike_led)
        with m.If(chip.logits.valid & chip.logits.ready):
            m.d.sync += self.logit_led.eq(~self.logit_led)
        return m


class BoardTop(Elaboratable):
    """:class:`ChipTop` on a board: the UART pins of its ``uart`` resource, LEDs 0 and 1."""

    def __init__(self, protocol: Protocol, tables=None):
        self.protocol, self.tables = protocol, tables

    def elaborate(self, platform):
        m = Module()
        m.submodules.top = top = ChipTop(self.protocol, self.tables)
        if platform is None:
            return m
        uart = platform.request("uart", 0, dir={"rx": "-", "tx": "-"})
        m.submodules.rx = rx = io.Buffer("i", uart.rx)
        m.submodules.tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx)]
        for i, sig in enumerate((top.spike_led, top.logit_led)):
            led = platform.request("led", i, dir="-")
            m.submodules[f"led{i}"] = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(sig)
        return m
