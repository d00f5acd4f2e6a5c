"""``neuromosaic bench fpga``: the board tops on their FPGAs and what they cost in time.

For each board and chip configuration (``--quick``: the iCEBreaker's chip and a small Mosaic on the
ULX3S; in full also the ULX3S's own 4 x 4 Mosaic, a long placement): the build (Yosys + nextpnr:
utilisation per resource, Fmax, or by how much it does not fit), the cycles of one inference sample
and of one 5-way 5-shot
adaptation measured on the chip's generated Verilog under Verilator (``bench.learning``'s
measurement, one FSDD recording through random weights), and those cycles as time at Fmax and at the
board clock. Then the host link: a few-shot episode through the board top's UART in the simulated
transport (cocotb, the host driver), its bytes each way and its effective throughput against the
line rate. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..cosim.board import run_board_cosim
from ..fpga.board import BuildError
from ..fpga.boards import board_spec
from ..fpga.protocol import LinkConfig, Protocol
from ..fpga.top import board_chip, board_protocol, build_board, describe
from ..model.learning import LearningConfig
from ..model.snn import SRNNConfig
from ..model.tiles import MosaicConfig
from .data import DEFAULT_FSDD
from .learning import _recording, measure_inner_step

__all__ = ["bench_fpga", "CI_CHIPS"]

STEPS = 50


def CI_CHIPS() -> dict:
    """What the tests build on each board: the iCEBreaker's own chip (the 256-neuron SRNN), and on the
    ULX3S a small Mosaic (1 x 2 tiles), as its own 4 x 4 takes the ECP5 placer too long for CI."""
    small = SRNNConfig.make(channels=8, neurons=4, outputs=5, lanes=2)
    return {"icebreaker": (board_chip("icebreaker"), board_spec("icebreaker").learning),
            "ulx3s-85f": (board_chip("ulx3s-85f", small, (1, 2)), board_spec("ulx3s-85f").learning)}


def _timing(chip, cfg: LearningConfig, fsdd: Path) -> dict:
    network = chip.network if isinstance(chip, MosaicConfig) else chip
    x = _recording(network, STEPS, fsdd)
    return measure_inner_step(network, cfg, x, mosaic=chip if isinstance(chip, MosaicConfig) else None)


def _entry(board: str, chip, cfg: LearningConfig, out: Path, fsdd: Path) -> dict:
    protocol = board_protocol(board, chip, cfg)
    entry = {"board": board, "chip": describe(protocol), "board_clock_mhz": board_spec(board).clock_hz / 1e6}
    start = time.perf_counter()
    try:
        r = build_board(protocol, board, out / "fpga" / f"{board}-{protocol.identity:08x}").report
        entry["build"] = {k: r[k] for k in r if k not in ("config", "link", "bitstream", "board", "chip")}
        neurons = protocol.network.neurons
        entry["per_neuron"] = {k: round(r[k] / neurons, 1) for k in ("logic_cells", "flip_flops", "ram_blocks",
                                                                      "spram_blocks", "dsps") if k in r}
        fmax = r["fmax_mhz"]
    except BuildError as e:
        entry["build"] = {"fits": False, "error": str(e),
                          "utilisation": {k: {"used": u, "available": a} for k, (u, a) in e.utilisation.items() if a}}
        fmax = None
    entry["build_s"] = round(time.perf_counter() - start, 1)
    t = _timing(chip, cfg, fsdd)
    entry["cycles"] = {k: t[k] for k in ("inference_cycles", "support_sample_period_cycles", "update_pass_cycles",
                                         "inner_step_cycles", "input_events_per_step", "hidden_spikes_per_step",
                                         "steps_per_sample")}
    for label, mhz in (("at_fmax", fmax), ("at_board_clock", board_spec(board).clock_hz / 1e6)):
        if mhz:
            entry[f"time_{label}"] = {"clock_mhz": mhz,
                                      "inference_ms": round(t["inference_cycles"] / mhz / 1e3, 3),
                                      "adaptation_5way_5shot_ms": round(t["inner_step_cycles"] / mhz / 1e3, 3)}
    return entry


def _link(quick: bool) -> dict:
    """An episode through the UART of the board top in the simulated transport (cocotb + host driver)."""
    net = SRNNConfig.make(channels=8, neurons=8, outputs=3, lanes=2)
    link = LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=64)
    start = time.perf_counter()
    r = run_board_cosim("verilator", Protocol(net, LearningConfig(), link), episodes=1 if quick else 2, name="bench")
    seconds = r.cycles / link.clock_hz                      # link time: simulated seconds at the link's clock
    moved = r.details["bytes_sent"] + r.details["bytes_received"]
    line = link.baud / 10                                      # 8N1: 10 bits a byte
    return {"chip": f"{net.channels} channels, {net.neurons} neurons, {net.outputs} outputs",
            "baud": link.baud, "clock_hz": link.clock_hz, "episodes": len(r.details["episodes"]),
            "bytes_to_chip": r.details["bytes_sent"], "bytes_from_chip": r.details["bytes_received"],
            "link_seconds": round(seconds, 4), "effective_bytes_per_s": round(moved / seconds),
            "line_rate_bytes_per_s_each_way": round(line),
            "utilisation_of_one_direction": round(moved / seconds / line, 3),
            "checked": r.checked, "wall_s": round(time.perf_counter() - start, 1),
            "note": "stop-and-wait: every frame waits for its ACK; records (logits, spikes) share the return line"}


def bench_fpga(quick: bool = False, out: str | Path = "build/bench", fsdd: str | Path | None = None) -> dict:
    out = Path(out)
    fsdd = Path(fsdd or DEFAULT_FSDD)
    chips = [(board, chip, cfg) for board, (chip, cfg) in CI_CHIPS().items()]
    if not quick:
        chips.append(("ulx3s-85f", board_chip("ulx3s-85f"), board_spec("ulx3s-85f").learning))
    result = {"configurations": []}
    for board, chip, cfg in chips:
        print(f"bench fpga: {board}, {describe(board_protocol(board, chip, cfg))} ...", flush=True)
        result["configurations"].append(_entry(board, chip, cfg, out, fsdd))
    print("bench fpga: host link in the simulated transport ...", flush=True)
    result["host_link"] = _link(quick)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fpga.json").write_text(json.dumps(result, indent=2))
    return result
