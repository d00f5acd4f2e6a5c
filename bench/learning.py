"""``neuromosaic bench learning``: what on-chip learning costs in cycles, measured on the generated
Verilog under Verilator (every transaction checked by the scoreboard as it runs), and what the LIF
core + learning engine take on the iCE40UP5K. Figures are printed, never asserted.

Cycles depend on activity, so the bench drives a real recording: one FSDD digit encoded to the
network's input channels, through zero-mean random core weights (the network is not trained; the
hidden activity is reported). A 5-way 5-shot inner step is 25 support samples with learning on and
one ``OP_UPDATE``. With no idle input and no backpressure the timing is deterministic, so the run
measures two support samples (the period between their first events, which includes the overlap of
one sample's learning with the next one's core time), the update, and one query sample without
learning (one inference: first input event to last logit); the inner step is
``24 * period + (the last sample until the update is taken) + (the update pass)``.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..cosim.learning import run_learning_cosim
from ..cosim.options import FULL_RATE
from ..fpga.learning import build_learning, estimate_learning
from ..model.episode import ChipEpisode
from ..model.learning import UPDATE_LATENCY, LearningConfig
from ..model.snn import NETWORKS, IntegerSRNN, SRNNConfig
from .data import DEFAULT_FSDD

__all__ = ["bench_learning", "measure_inner_step"]

WAYS, SHOTS = 5, 5


def _recording(config: SRNNConfig, steps: int, fsdd: Path) -> torch.Tensor:
    """One FSDD recording as input event counts [steps, channels]."""
    from ..model.data import load_source
    ds = load_source(f"fsdd:{fsdd}", channels=config.channels, steps=steps)
    return torch.as_tensor(ds.rasters[0]).to(torch.int64)


def measure_inner_step(config: SRNNConfig, cfg: LearningConfig, x: torch.Tensor, seed: int = 0, mosaic=None) -> dict:
    """Runs two support samples, an update and a query of recording ``x`` [T, channels] through the
    ``LearningCore`` (or the Mosaic ``mosaic`` of ``config``, every source routed to every other
    tile) on Verilator and returns the measured cycles."""
    g = torch.Generator().manual_seed(seed)
    lo, hi = config.core.weight_range
    w_core = torch.randint(lo // 2, hi // 2 + 1, (config.neurons, config.core.inputs), generator=g)
    olo, ohi = config.readout_weight_range
    w_out = torch.randint(olo // 4, ohi // 4 + 1, (config.outputs, config.neurons), generator=g)
    net = IntegerSRNN(config, w_core[:, :config.channels], w_core[:, config.channels:], w_out)
    hidden = net.hidden(x.unsqueeze(1)).to(torch.int64)                    # [T, 1, N]
    ep = ChipEpisode("bench", w_out, hidden.repeat(1, 2, 1), [0, 1 % config.outputs], hidden, 2.0 ** 16, 1, [0],
                 w_core, x.unsqueeze(1).repeat(1, 2, 1), x.unsqueeze(1))
    if mosaic is None:
        r = run_learning_cosim("verilator", config, cfg, episode_list=[ep], name="bench", options=FULL_RATE)
    else:
        from ..cosim.mosaic import run_mosaic_cosim
        r = run_mosaic_cosim("verilator", mosaic, cfg, episode_list=[ep], name="bench", options=FULL_RATE)
    t = r.details["timing"]
    starts = [c for kind, c in t["segments"] if kind == "spikes"]            # first input event of each sample
    update, writes, logits = t["update_cycles"][0], t["write_cycles"], t["logit_cycles"]
    weights = config.outputs * config.neurons
    period = starts[1] - starts[0]
    last_support = update - starts[1]
    update_pass = writes[-1] - update + 1
    inference = logits[-1] - starts[2] + 1
    inner = (WAYS * SHOTS - 1) * period + last_support + update_pass
    return {
        "input_events_per_step": round(float(x.sum(-1).float().mean()), 2),
        "hidden_spikes_per_step": round(float(hidden.sum(-1).float().mean()), 2),
        "steps_per_sample": int(x.shape[0]),
        "cycles_per_weight_update": round((writes[-1] - writes[0] + 1) / len(writes), 4),
        "weight_update_latency_cycles": writes[0] - update,
        "update_pass_cycles": update_pass,
        "update_pass_cycles_contract": weights + UPDATE_LATENCY,
        "support_sample_period_cycles": period,
        "inference_cycles": inference,
        "inner_step_cycles": inner,
        "inner_step_over_inference": round(inner / inference, 3),
        "checked": r.checked,
        "verilator_cycles_per_s": round(r.cycles_per_s),
    }


def bench_learning(quick: bool = False, out: str | Path = "build/bench", fsdd: str | Path | None = None) -> dict:
    cfg = LearningConfig()
    seed_net = NETWORKS["small" if quick else "seed"]
    fit_net = dataclasses.replace(NETWORKS["small"], core=NETWORKS["small"].core.replace(lanes=1))
    fsdd = Path(fsdd) if fsdd else DEFAULT_FSDD
    stages = ["encode one FSDD recording", "inner step on Verilator", "iCE40UP5K synthesis (seed network)",
              "iCE40UP5K place and route (small network, one lane)"]
    result: dict = {"network": seed_net.to_dict(), "learning": dataclasses.asdict(cfg), "ways": WAYS, "shots": SHOTS}
    with tqdm(total=len(stages), desc="bench learning", unit="stage") as bar:
        bar.set_postfix_str(stages[0])
        x = _recording(seed_net, 20 if quick else 100, fsdd)
        bar.update()

        bar.set_postfix_str(stages[1])
        start = time.perf_counter()
        result["cycles"] = measure_inner_step(seed_net, cfg, x)
        result["cycles"]["wall_s"] = round(time.perf_counter() - start, 1)
        bar.update()

        bar.set_postfix_str(stages[2])
        start = time.perf_counter()
        est = estimate_learning(seed_net, cfg, out_dir=Path(out) / "fpga", name="learning_seed")
        result["ice40up5k_seed_synthesis"] = {**est, "yosys_s": round(time.perf_counter() - start, 1)}
        bar.update()

        bar.set_postfix_str(stages[3])
        start = time.perf_counter()
        b = build_learning(fit_net, cfg, out_dir=Path(out) / "fpga", name="learning_small")
        rep = b.report
        result["ice40up5k_small_build"] = {
            "network": fit_net.to_dict(), "fmax_mhz": rep["fmax_mhz"], "logic_cells": rep["logic_cells"],
            "logic_cells_share": round(rep["logic_cells"] / rep["logic_cells_available"], 3),
            "ram_blocks": rep["ram_blocks"], "spram_blocks": rep["spram_blocks"], "dsps": rep["dsps"],
            "build_s": round(time.perf_counter() - start, 1)}
        bar.update()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "learning.json").write_text(json.dumps(result, indent=2))
    return result
