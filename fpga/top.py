"""Board tops: the chip (a ``LearningCore`` or a ``Mosaic``) behind the host link.

:class:`ChipTop` is the chip and its :class:`~.link.HostLink` with the UART pins as ports: what the
full-board cosimulation drives (``cosim/board.py``) and what :class:`BoardTop` puts on a board (the
pins through the board's ``uart`` resource; LED 0 toggles on every hidden spike, LED 1 on every logit).

``BOARD_CHIPS`` are the networks each board carries by default: on the iCEBreaker's
iCE40UP5K, the seed's 256-neuron SRNN (256 channels, 2 lanes, its weights in the four SPRAMs) with a
5-way readout that learns on chip, at the readout and learning widths of ``UP5K_NETWORK`` and
``UP5K_LEARNING`` (it then fills 5,273 of the 5,280 logic cells); on the ULX3S's ECP5-85F, the FSDD
network (64 neurons) as a 4 x 4 Mosaic, the layout it was meta-trained for.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

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

__all__ = ["ChipTop", "BoardTop", "BOARD_CLOCKS", "BOARD_CHIPS", "UP5K_NETWORK", "UP5K_LEARNING", "board_chip",
           "board_learning", "board_protocol", "build_board", "describe", "up5k_network"]

BOARD_CLOCKS = {"icebreaker": 12_000_000, "ulx3s-85f": 25_000_000}
BAUD = 1_000_000                  # both boards' FTDI bridges take 1 Mbaud; both clocks divide it exactly


# What the iCE40UP5K's 5,280 logic cells hold beside the core and the link: the readout and the
# learning engine with these widths (the model reads the same config, so it stays bit-exact; the
# defaults, readout_bits=24, logit_bits=32, acc_bits=40, ..., take about 1,000 cells more).
UP5K_NETWORK = dict(readout_bits=14, logit_bits=20)
UP5K_LEARNING = LearningConfig(acc_bits=20, elig_bits=14, prob_bits=10, exp_table_bits=12)


# The network each board carries by default (``board_chip`` makes the ULX3S's a 4 x 4 Mosaic).
BOARD_CHIPS = {
    "icebreaker": SRNNConfig.make(channels=256, neurons=256, outputs=5, lanes=2, **UP5K_NETWORK),
    "ulx3s-85f": SRNNConfig.make(channels=64, neurons=64, outputs=5, lanes=4),
}


def board_chip(board: str, network: SRNNConfig | None = None, grid: tuple[int, int] | None = None):
    """The chip a board carries: ``network`` (default: the board's ``BOARD_CHIPS``) as a ``LearningCore``
    on the iCEBreaker (``up5k_network`` gives a network the UP5K's widths), as a Mosaic of ``grid``
    tiles (default 4x4) on the ULX3S. A Mosaic's ports take any routes (capacities = the neuron
    count): the host loads the tables compiled from the weights."""
    from .board import board_spec
    board_spec(board)
    network = network or BOARD_CHIPS[board]
    if board == "icebreaker":
        return network
    rows, cols = grid or (4, 4)
    n = network.neurons
    return MosaicConfig.make(network, rows, cols, tile_capacity=n, between_capacity=n, corner_capacity=n)


def up5k_network(network: SRNNConfig, keep=()) -> SRNNConfig:
    """``network`` with the UP5K's readout widths (``UP5K_NETWORK``; fields in ``keep`` left as they are)."""
    return dataclasses.replace(network, **{k: v for k, v in UP5K_NETWORK.items() if k not in keep})


def board_learning(board: str) -> LearningConfig:
    """The learning rule's widths a board carries by default."""
    return UP5K_LEARNING if board == "icebreaker" else LearningConfig()


def board_protocol(board: str, chip: SRNNConfig | MosaicConfig | None = None,
                   cfg: LearningConfig | None = None, baud: int = BAUD) -> Protocol:
    """The protocol of ``chip`` (default: the board's ``BOARD_CHIPS``) with ``cfg`` (default: the
    board's ``board_learning``) at the board's clock."""
    cfg = board_learning(board) if cfg is None else cfg
    from .board import board_spec
    board_spec(board)
    chip = board_chip(board) if chip is None else chip
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


def _markdown(report: dict) -> str:
    r = report
    rows = [("logic cells", r["logic_cells"], r["logic_cells_available"]),
            ("RAM blocks", r["ram_blocks"], r["ram_blocks_available"]),
            ("DSPs", r["dsps"], r["dsps_available"])]
    if "spram_blocks" in r:
        rows.insert(2, ("SPRAM blocks", r["spram_blocks"], r["spram_blocks_available"]))
    lines = [f"# {r['board']} ({r['device']}): {r['chip']}", "",
             "| resource | used | available | utilisation |", "|---|---|---|---|"]
    lines += [f"| {name} | {used:,} | {avail:,} | {100 * used / avail:.1f} % |" for name, used, avail in rows if avail]
    lines += ["", f"Fmax {r['fmax_mhz']} MHz against the board clock of {r['clock_constraint_mhz']} MHz "
              f"({'meets' if r['fmax_mhz'] >= r['clock_constraint_mhz'] else 'FAILS'} timing).", "",
              "Critical path (last routing hops): " + ("; ".join(r["critical_path"]) or "none reported"), "",
              f"Host link: {r['link']['baud']:,} baud, {r['link']['buffer_bytes']} B frame buffer.",
              f"Bitstream: {r['bitstream']}", ""]
    return "\n".join(lines)


def describe(protocol: Protocol) -> str:
    c = protocol.network
    what = f"{c.channels} channels, {c.neurons} LIF neurons, {c.outputs} outputs learning on chip"
    if protocol.kind == "mosaic":
        return f"Mosaic {protocol.chip.mesh.rows}x{protocol.chip.mesh.cols} tiles, {what}"
    return f"LearningCore ({c.core.lanes} lanes), {what}"


def build_board(protocol: Protocol, board: str, out_dir="build/fpga", name: str = "chip", tables=None):
    """Synthesises, places and routes :class:`BoardTop` for ``board``; writes the bitstream,
    ``{name}.report.json`` and ``{name}.report.md`` (utilisation per resource, Fmax against the board
    clock, critical path) under ``out_dir/board``. Returns the ``BoardBuild``."""
    from .board import build_top
    if protocol.link.clock_hz != BOARD_CLOCKS[board]:
        raise ValueError(f"the link is set for a {protocol.link.clock_hz} Hz clock; {board} runs at "
                         f"{BOARD_CLOCKS[board]} Hz (use board_protocol).")
    b = build_top(BoardTop(protocol, tables), protocol.config_dict(), board, out_dir, name)
    b.report.update(chip=describe(protocol), link=protocol.link.to_dict(), bitstream=str(b.bitstream),
                    identity=f"0x{protocol.identity:08x}")
    out = Path(out_dir) / board
    (out / f"{name}.report.json").write_text(json.dumps(b.report, indent=2))
    (out / f"{name}.report.md").write_text(_markdown(b.report))
    return b
