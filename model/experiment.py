"""Seed 000's experiment on our data: few-shot accuracy on seen and unseen classes of the network as
the hardware constraints are added one by one, each meta-trained on the same tasks and measured on
the same meta-test tasks, with 1 and with 10 inner steps:

(a) float ideal MAML: no integer formats, scored in float;
(b) the deployable integer network: quantisation-aware training, scored bit-exactly in integers;
(c) (b) with RRAM noise injected in training, scored over sampled devices;
(d) (c) with the Mosaic layout (penalty and pruning), scored over sampled devices.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from .checkpoint import load_checkpoint
from .config import ConfigError
from .data import load_source
from .train import TrainConfig, evaluate_steps, train

__all__ = ["VARIANTS", "run_experiment", "markdown_table"]

VARIANTS = (
    ("a", "float ideal MAML"),
    ("b", "deployable integer network"),
    ("c", "+ RRAM noise"),
    ("d", "+ Mosaic layout"),
)


def _variant_config(base: TrainConfig, key: str, rram: str, layout: str) -> TrainConfig:
    return {
        "a": dataclasses.replace(base, quantised=False, rram="ideal", layout=None),
        "b": dataclasses.replace(base, quantised=True, rram="ideal", layout=None),
        "c": dataclasses.replace(base, quantised=True, rram=rram, layout=None),
        "d": dataclasses.replace(base, quantised=True, rram=rram, layout=layout),
    }[key]


def run_experiment(base: TrainConfig, out: str | Path, *, rram: str = "mosaic", layout: str = "4x4",
                   tasks: int = 50, devices: int = 10, steps=(1, 10), variants: str = "abcd",
                   progress: bool = True, command: str = "") -> dict:
    """Trains and scores every variant; writes ``results.json`` and ``table.md`` under ``out``."""
    if not variants or set(variants) - {k for k, _ in VARIANTS}:
        raise ConfigError(f"--variants {variants!r} is not allowed; use one or more of a, b, c, d (for example abcd).")
    if tasks < 1 or devices < 0:
        raise ConfigError(f"--tasks {tasks}, --devices {devices}: allowed are tasks >= 1 and devices >= 0.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = load_source(base.data, channels=base.channels, steps=base.steps, progress=progress)
    rows = []
    start = time.perf_counter()
    for key, name in VARIANTS:
        if key not in variants:
            continue
        cfg = _variant_config(base, key, rram, layout)
        if progress:
            print(f"({key}) {name}: meta-training {cfg.iterations} iterations", flush=True)
        summary = train(cfg, out / key, dataset=ds, progress=progress, return_params=True)
        ck = load_checkpoint(out / key)
        draws = devices if key != "a" and cfg.rram != "ideal" else 0
        results = evaluate_steps(ck, ds, cfg, tasks=tasks, steps=steps, devices=draws,
                                 params=summary["params"] if key == "a" else None)
        scored = {}
        for k, r in results.items():
            scored[str(k)] = {m: r[m] for m in r if m.startswith(("seen", "unseen"))}
            if progress:
                print(f"    {k:>2} inner step(s): seen {100 * r['seen_mean']:.1f} %, "
                      f"unseen {100 * r['unseen_mean']:.1f} %", flush=True)
        rows.append({"variant": key, "name": name, "train_s": summary["train_s"], "rram": cfg.rram,
                     "layout": cfg.layout, "inner_lr": round(ck.metadata["inner_lr"], 1),
                     "devices": draws,
                     "connectivity": summary.get("connectivity"), "accuracy": scored})
    result = {"data": base.data, "tasks": tasks, "steps": list(steps), "n_way": base.n_way, "k_shot": base.k_shot,
              "network": f"{base.channels} channels -> {base.neurons} LIF (recurrent) -> {base.n_way} readout, "
                         f"{base.steps} steps", "iterations": base.iterations, "meta_batch": base.meta_batch,
              "total_s": round(time.perf_counter() - start, 1), "command": command, "variants": rows}
    result["acceptance"] = acceptance(result)
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "table.md").write_text(markdown_table(result))
    return result


def acceptance(result: dict) -> dict | None:
    """The experiment's bar on the full-constraint variant (d) against the float ideal one (a)."""
    by = {r["variant"]: r["accuracy"] for r in result["variants"]}
    if not {"a", "d"} <= set(by) or not {"1", "10"} <= set(by["d"]):
        return None
    d1, d10, a1 = by["d"]["1"]["unseen_mean"], by["d"]["10"]["unseen_mean"], by["a"]["1"]["unseen_mean"]
    return {"unseen_1_step": d1, "float_ideal_unseen_1_step": a1, "at_least_60_percent": d1 >= 0.60,
            "gap_to_float_ideal": round(a1 - d1, 4),
            "within_5_points": a1 - d1 <= 0.05, "ten_steps_beat_one": d10 > d1}


def _cell(acc: dict, key: str) -> str:
    return f"{100 * acc[f'{key}_mean']:.1f} ± {100 * acc[f'{key}_std']:.1f}"


def markdown_table(result: dict) -> str:
    steps = result["steps"]
    head = "| variant | " + " | ".join(f"{k} step{'s' if k > 1 else ''}: seen | {k}: unseen" for k in steps) + \
           " | devices | inner rate | training |"
    lines = [head, "|" + "---|" * (4 + 2 * len(steps))]
    for r in result["variants"]:
        cells = " | ".join(f"{_cell(r['accuracy'][str(k)], 'seen')} | {_cell(r['accuracy'][str(k)], 'unseen')}"
                           for k in steps)
        extra = ", ".join(([f"RRAM {r['rram']}"] if r["rram"] != "ideal" else [])
                          + ([f"{r['layout']} tiles"] if r["layout"] else []))
        name = f"{r['name']} ({extra})" if extra else r["name"]
        lines.append(f"| ({r['variant']}) {name} | {cells} | {r['devices'] or '-'} | "
                     f"{r['inner_lr']:.0f} | {r['train_s']:.0f} s |")
    text = [f"{result['n_way']}-way {result['k_shot']}-shot on `{result['data']}`, {result['network']}; "
            f"{result['iterations']} meta-iterations of {result['meta_batch']} tasks per variant; "
            f"accuracy in % on {result['tasks']} meta-test tasks, mean ± standard deviation over tasks"
            " (and sampled devices where a count is given).", "", *lines, ""]
    d = next((r for r in result["variants"] if r["variant"] == "d"), None)
    if d and d.get("connectivity"):
        c = d["connectivity"]
        hops = ", ".join(f"{h} hop(s): {100 * v:.0f} %" for h, v in c["share_per_hop"].items())
        text += [f"Trained connectivity of (d): density {100 * c['density']:.1f} % of W_rec, {hops}; "
                 f"fan-out {c['fanout_tiles_mean']:.2f} tiles on average (max {c['fanout_tiles_max']}).", ""]
    if result.get("acceptance"):
        a = result["acceptance"]
        text += [f"(d) with one inner step: {100 * a['unseen_1_step']:.1f} % on unseen classes "
                 f"({'meets' if a['at_least_60_percent'] else 'misses'} the 60 % bar), "
                 + (f"{100 * a['gap_to_float_ideal']:.1f} points below" if a["gap_to_float_ideal"] > 0 else
                    f"{-100 * a['gap_to_float_ideal']:.1f} points above") + " the float ideal MAML's "
                 f"{100 * a['float_ideal_unseen_1_step']:.1f} % "
                 f"(the bar: no more than 5 points below; {'met' if a['within_5_points'] else 'missed'}); 10 steps "
                 f"{'beat' if a['ten_steps_beat_one'] else 'do not beat'} one.", ""]
    text += [f"Total time: {result['total_s']:.0f} s.", ""]
    if result.get("command"):
        text += ["Regenerate with:", "", "```", result["command"], "```", ""]
    return "\n".join(text)
