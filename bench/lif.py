"""``neuromosaic bench lif``: throughput of the LIF core, speed of the cosimulation, and the
core's size and Fmax on the iCE40UP5K. Figures are printed, never asserted."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm import tqdm

from ..cosim.lif import run_lif_cosim
from ..cosim.options import FULL_RATE
from ..fpga.board import build
from ..model.config import SEED_LIF, LIFConfig

__all__ = ["bench_lif"]


def bench_lif(quick: bool = False, out: str | Path = "build/bench") -> dict:
    seed_cfg = SEED_LIF
    cosim_cfg = LIFConfig()
    seeds, steps = (1, 10) if quick else (3, 60)
    stages = ["throughput (Verilator, 256x256)", "cosim speed: verilator", "cosim speed: icarus",
              "iCE40UP5K build (256x256)"]
    result: dict = {"config": seed_cfg.to_dict(), "lanes": seed_cfg.lanes}
    with tqdm(total=len(stages), desc="bench lif", unit="stage") as bar:
        # 1. Synaptic operations per clock under a saturated input stream (no idle, no backpressure).
        bar.set_postfix_str(stages[0])
        r = run_lif_cosim("verilator", seed_cfg, steps=2 if quick else 8, saturated=64, name="bench-throughput",
                          options=FULL_RATE)
        tp = r.details["throughput"]
        result.update(sop_per_cycle=round(tp["sop_per_cycle"], 4),
                      sop_per_cycle_goal=0.95 * seed_cfg.lanes,
                      sop_per_cycle_with_timesteps=round(tp["sop_per_cycle_with_timesteps"], 4),
                      events_per_timestep=64, throughput_checked_state_writes=r.checked["state_writes"])
        bar.update()

        # 2. Cosimulation speed in the batch harness, scoreboarded vs the same stimulus unchecked, per
        #    simulator (``bench cosim`` compares the per-cycle agents too).
        result["cosim"] = {"config": cosim_cfg.to_dict(), "seeds": seeds, "steps": steps}
        for sim, label in (("verilator", stages[1]), ("icarus", stages[2])):
            bar.set_postfix_str(label)
            kw = dict(seeds=seeds, steps=steps, corners=False)
            full = run_lif_cosim(sim, cosim_cfg, scoreboard=True, name="bench-scoreboard", **kw)
            bare = run_lif_cosim(sim, cosim_cfg, scoreboard=False, name="bench-bare",
                                 item_cycles=full.details["item_cycles"], **kw)
            result["cosim"][sim] = {
                "cosim_cycles_per_s": round(full.cycles_per_s),
                "bare_harness_cycles_per_s": round(bare.cycles_per_s),
                "scoreboard_ratio": round(full.cycles_per_s / bare.cycles_per_s, 3),
                "cycles": full.cycles,
            }
            bar.update()
        result["cosim"]["scoreboard_ratio_goal"] = 0.5

        # 3. Size and Fmax of the seed-sized core on the iCE40UP5K.
        bar.set_postfix_str(stages[3])
        start = time.perf_counter()
        b = build(seed_cfg, "icebreaker", Path(out) / "fpga")
        rep = b.report
        result["ice40up5k"] = {
            "fmax_mhz": rep["fmax_mhz"], "fmax_goal_mhz": 24.0,
            "logic_cells": rep["logic_cells"],
            "logic_cells_share": round(rep["logic_cells"] / rep["logic_cells_available"], 3),
            "ram_blocks": rep["ram_blocks"], "spram_blocks": rep["spram_blocks"], "dsps": rep["dsps"],
            "build_s": round(time.perf_counter() - start, 1),
        }
        bar.update()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "lif.json").write_text(json.dumps(result, indent=2))
    return result
