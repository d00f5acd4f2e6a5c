"""Board tops: the chip (a ``LearningCore`` or a ``Mosaic``) behind the host link.

:class:`ChipTop` is the chip and its :class:`~.link.HostLink` with the UART pins as ports: what the
full-board cosimulation drives (``cosim.board``) and what :class:`BoardTop` puts on a board (the
pins through the board's ``uart`` resource; LED 0 toggles on every hidden spike, LED 1 on every logit).
The chip a board carries by default, its widths and its clock are the board's record (``fpga.boards``).
"""

from __future__ import annotations

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
from .boards import board_spec
from .link import HostLink
from .protocol import LinkConfig, Protocol

__all__ = ["ChipTop", "BoardTop", "board_chip", "board_protocol", "build_board", "describe"]

BAUD = 1_000_000                  # both boards' FTDI bridges take 1 Mbaud; both clocks divide it exactly


def board_chip(board: str, network: SRNNConfig | None = None, grid: tuple[int, int] | None = None):
    """The chip a board carries: ``network`` (default: the board's own) as a ``LearningCore``, or on a
    board that carries a Mosaic as one of ``grid`` tiles (default: the board's). A Mosaic's ports take
    any routes (capacities = the neuron count): the host loads the tables compiled from the weights;
    its tiles' cores have the board's ``tile_lanes``."""
    spec = board_spec(board)
    network = network or spec.chip
    if not spec.mosaic:
        return network
    rows, cols = grid or spec.default_grid
    n = network.neurons
    return MosaicConfig.make(spec.tiled(network), rows, cols, tile_capacity=n, between_capacity=n, corner_capacity=n)


def board_protocol(board: str, chip: SRNNConfig | MosaicConfig | None = None,
                   cfg: LearningConfig | None = None, baud: int = BAUD) -> Protocol:
    """The protocol of ``chip`` (default: the board's own) with ``cfg`` (default: the board's learning
    widths) at the board's clock."""
    spec = board_spec(board)
    cfg = spec.learning if cfg is None else cfg
    chip = board_chip(board) if chip is None else chip
    return Protocol(chip, cfg, LinkConfig(clock_hz=spec.clock_hz, baud=baud))


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
              "Estimated before synthesis (the parts alone): "
              + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in r.get("estimate", {}).items()), "",
              f"Host link: {LinkConfig(**r['link']).actual_baud:,.0f} baud, {r['link']['buffer_bytes']} B frame "
              "buffer.",
              f"Bitstream: {r['bitstream']}", ""]
    return "\n".join(lines)


def describe(protocol: Protocol) -> str:
    c = protocol.network
    what = f"{c.channels} channels, {c.neurons} LIF neurons, {c.outputs} outputs learning on chip"
    if protocol.kind == "mosaic":
        return f"Mosaic {protocol.chip.mesh.rows}x{protocol.chip.mesh.cols} tiles, {what}"
    return f"LearningCore ({c.core.lanes} lanes), {what}"


def build_board(protocol: Protocol, board: str, out_dir="build/fpga", name: str = "chip", tables=None,
                progress=None):
    """Synthesises, places and routes :class:`BoardTop` for ``board``; writes the bitstream,
    ``{name}.report.json`` and ``{name}.report.md`` (utilisation per resource, Fmax against the board
    clock, critical path, the estimate made before synthesis; its parts in ``{name}.estimate.json``)
    under ``out_dir/board``. Returns the ``BoardBuild``. A chip whose estimate (``fpga.estimate``)
    exceeds the device (or whose weights exceed its block memory, checked before any part is
    elaborated) is refused first, with a ``BuildError`` naming the resource; ``progress(message)``
    follows the estimate."""
    from ..model.checkpoint import atomic_write
    from .board import BuildError, build_top, check_memory
    from .estimate import chip_estimate, shortfall
    spec = board_spec(board)
    if protocol.link.clock_hz != spec.clock_hz:
        raise ValueError(f"the link is set for a {protocol.link.clock_hz} Hz clock; {board} runs at "
                         f"{spec.clock_hz} Hz (use board_protocol).")
    check_memory(protocol.network.core, board)
    estimate = chip_estimate(protocol, board, Path(out_dir) / "parts", progress)
    why = shortfall(estimate)
    if why:
        raise BuildError(f"the {board} build is refused: {why}.", {}, fits=False)
    out = Path(out_dir) / board
    b = build_top(BoardTop(protocol, tables), protocol.config_dict(), board, out_dir, name)
    b.report.update(chip=describe(protocol), link=protocol.link.to_dict(), bitstream=str(b.bitstream),
                    identity=f"0x{protocol.identity:08x}",
                    estimate={k: estimate[k] for k in estimate["available"]})
    atomic_write(out / f"{name}.estimate.json", json.dumps(estimate, indent=2).encode())
    atomic_write(out / f"{name}.report.json", json.dumps(b.report, indent=2).encode())
    atomic_write(out / f"{name}.report.md", _markdown(b.report).encode())
    return b
