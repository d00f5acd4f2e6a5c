"""``neuromosaic demo``: the walking skeleton end to end on built-in data.

golden model -> Verilog -> cosim on Verilator and Icarus (and proof that a wrong model fails) ->
iCE40 bitstream, with one summary table, a JSON summary and a raster plot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .cosim.lif import run_lif_cosim
from .cosim.runner import CosimError, generate_verilog
from .cosim.stimulus import random_scenario
from .fpga.board import build
from .model.config import EVENT_SPIKE, LIFConfig
from .model.lif import FloatLIF, IntegerLIF
from .plots import raster_png
from .rtl.lif import LIFCore

__all__ = ["demo"]


def _raster(scenario, config: LIFConfig) -> torch.Tensor:
    """Event counts [T, inputs] of a token stream."""
    raster = torch.zeros(scenario.steps, config.inputs, dtype=torch.int64)
    t = 0
    for kind, address in scenario.tokens:
        if kind == EVENT_SPIKE:
            raster[t, address] += 1
        else:
            t += 1
    return raster


def demo(out: str | Path = "build/demo", config: LIFConfig | None = None) -> int:
    config = config or LIFConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"config": config.to_dict()}
    stages = ["golden model", "Verilog", "cosim: Verilator", "cosim: Icarus", "fault injection",
              "iCE40 bitstream"]
    ok = True
    with tqdm(total=len(stages), desc="demo", unit="stage") as bar:
        bar.set_postfix_str(stages[0])
        scenario = random_scenario(config, 0, 100)
        raster = _raster(scenario, config)
        model = IntegerLIF(config, scenario.weights)
        spikes, _ = model.run(raster)
        twin, _ = FloatLIF(config, exact=True)(raster.double(), scenario.weights.double())
        summary["model"] = {"timesteps": scenario.steps, "input_events": scenario.events,
                            "output_spikes": int(spikes.sum()),
                            "float_twin_agrees": bool(torch.equal(twin.bool(), spikes))}
        raster_png([(raster, "input events", "input channel"),
                    (spikes, "output spikes (golden model = RTL, checked in cosim)", "neuron")], out / "raster.png")
        bar.update()

        bar.set_postfix_str(stages[1])
        verilog = out / "lif_core.v"
        verilog.write_text(generate_verilog(LIFCore(config, scenario.weights), "lif_core"))
        summary["verilog"] = {"file": str(verilog), "bytes": verilog.stat().st_size}
        bar.update()

        for sim, label in (("verilator", stages[2]), ("icarus", stages[3])):
            bar.set_postfix_str(label)
            try:
                r = run_lif_cosim(sim, config, seeds=4, steps=50, name="demo")
                summary[sim] = {"passed": True, "cycles": r["cycles"], "cycles_per_s": round(r["cycles_per_s"]),
                                "state_writes": r["checked"]["state_writes"],
                                "output_events": r["checked"]["output_events"]}
            except CosimError as e:
                summary[sim] = {"passed": False, "error": str(e)}
                ok = False
            bar.update()

        bar.set_postfix_str(stages[4])
        try:
            run_lif_cosim("verilator", config, seeds=1, steps=20, fault="membrane-lsb", corners=False, name="demo-fault")
            summary["fault_injection"] = {"caught": False}
            ok = False
        except CosimError as e:
            summary["fault_injection"] = {"caught": True, "message": str(e)[:160]}
        bar.update()

        bar.set_postfix_str(stages[5])
        start = time.perf_counter()
        b = build(config, "icebreaker", out / "fpga")
        summary["fpga"] = {k: v for k, v in b.report.items() if k not in ("config", "critical_path")}
        summary["fpga"].update(bitstream=str(b.bitstream), build_s=round(time.perf_counter() - start, 1))
        bar.update()

    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    f = summary["fpga"]
    rows = [
        ("core", f"{config.neurons} LIF neurons x {config.inputs} inputs, {config.lanes} lanes"),
        ("golden model", f"{summary['model']['output_spikes']} spikes in {scenario.steps} steps; float twin "
                         f"{'agrees' if summary['model']['float_twin_agrees'] else 'DIFFERS'}"),
        *[(f"cosim {sim}", f"PASS, {summary[sim]['state_writes']} state writes and {summary[sim]['output_events']} "
                           f"output events bit-exact, {summary[sim]['cycles_per_s']} cycles/s"
           if summary[sim]["passed"] else f"FAIL: {summary[sim]['error'][:100]}") for sim in ("verilator", "icarus")],
        ("fault injection", "caught by the scoreboard" if summary["fault_injection"]["caught"] else "NOT CAUGHT"),
        ("iCE40UP5K", f"{f['logic_cells']}/{f['logic_cells_available']} LCs, {f['ram_blocks']} BRAM, "
                      f"{f['spram_blocks']} SPRAM, Fmax {f['fmax_mhz']} MHz (board clock {f['clock_constraint_mhz']} MHz)"),
        ("outputs", f"{out}/: lif_core.v, raster.png, summary.json, fpga/icebreaker/lif_top.bin"),
    ]
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"  {k:<{width}}  {v}")
    print("\nresult:", "PASS" if ok else "FAIL")
    return 0 if ok else 1
