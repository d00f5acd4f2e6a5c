"""``neuromosaic bench memory``: synaptic operations per cycle of the LIF core keeping its weights
in each synapse-memory organisation, at each weight density, beside the memory-bound limit, and each
organisation's size on the iCE40UP5K. Figures are printed, never asserted.

Throughput: the LIF core (``rtl.lif.LIFCore`` with ``synapses=``) takes one event from every input,
back to back (no idle, no backpressure), then a TICK, on Verilator with every state write, output
event and access counter checked against the golden model. ``sop_per_cycle`` counts the non-zero
synapses accumulated per cycle, from taking the first event to issuing the last synaptic operation.
The memory-bound limit is the busiest physical memory of the synapse memory: its reads divided by its
read ports (each memory serves one word a port a cycle), so ``fraction_of_limit`` is how close the
core comes to what its memories allow (goal for the sparse organisations: >= 0.9)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from ..cosim.lif import run_lif_cosim
from ..cosim.lif.stimulus import synapse_memory
from ..cosim.options import FULL_RATE
from ..fpga.synapse import synapse_estimate
from ..model import synapse as model
from ..model.config import WRITE_LATENCY, LIFConfig
from ..rtl.synapse import trace_ports

__all__ = ["bench_memory", "DENSITIES"]

DENSITIES = (0.1, 0.5, 1.0)
SPARSE = ("bitmap", "csr", "func-bmp", "func-rowcol")
LANES = 2
BITMAP_WORD = 8


def _layers(quick: bool) -> dict:
    if quick:
        return {"matrix": {"shape": (32, 24)}, "conv": {"kernel": (2, 2, 3, 3), "image": (6, 6)}}
    return {"matrix": {"shape": (64, 128)}, "conv": {"kernel": (4, 4, 3, 3), "image": (16, 16)}}


def _core(organisation: str, density: float, layer: dict) -> tuple[LIFConfig, dict]:
    """The LIF core of ``layer`` and the arguments of its synapse memory (``stimulus.synapse_memory``)."""
    args = {"organisation": organisation, "density": density}
    if "image" in layer:
        cout, cin, kh, _ = layer["kernel"]
        h, w = layer["image"]
        return LIFConfig(neurons=cout * h * w, inputs=cin * h * w, lanes=LANES), \
            {**args, "image": [h, w], "kernel": kh}
    post, pre = layer["shape"]
    return LIFConfig(neurons=post, inputs=pre, lanes=LANES), {**args, "bitmap_word": BITMAP_WORD}


def _layer_name(memory) -> str:
    if memory.name in model.FUNCTIONAL_ORGANISATIONS:
        cout, cin, kh, kw = memory.kernel_shape
        h, w = memory.image
        return f"conv:{h}x{w}x{cin}x{cout}k{kh}"
    return f"fc:{memory.pre}x{memory.post}"


def throughput(organisation: str, density: float, layer: dict) -> dict:
    """One forward pass of the layer through the LIF core, every event back to back, on Verilator."""
    config, args = _core(organisation, density, layer)
    memory = synapse_memory(config, **args)
    sops = sum(1 for pre in range(memory.pre) for _, w in memory.forward(pre) if w != 0)
    r = run_lif_cosim("verilator", config, seeds=1, steps=1, corners=False,
                      synapses=args, forward_pass=True, name=f"bench-{density}", options=FULL_RATE)
    t, counts = r.details["throughput"], r.details["synapse_counts"]
    ports = {}
    for _, name, write in trace_ports(memory):
        ports[name] = ports.get(name, 0) + (not write)
    bound = max(c["reads"] / ports[name] for name, c in counts.items())
    cycles = t["last_write_cycle"] - WRITE_LATENCY - t["first_event_cycle"]
    out = {"organisation": organisation, "label": model.LABELS[organisation], "layer": _layer_name(memory),
           "density": density, "synapses": sops, "synaptic_operations": t["synaptic_operations"],
           "cycles": cycles, "sop_per_cycle": round(sops / cycles, 4), "memory_bound_cycles": round(bound),
           "memory_bound_sop_per_cycle": round(sops / bound, 4) if bound else 0.0,
           "fraction_of_limit": round(bound / cycles, 4), "reads": {k: v["reads"] for k, v in counts.items()},
           "checked_state_writes": r.checked["state_writes"]}
    if organisation in SPARSE:
        out["fraction_of_limit_goal"] = 0.9
    return out


def bench_memory(quick: bool = False, out: str | Path = "build/bench") -> dict:
    layers = _layers(quick)
    orgs = list(model.ORGANISATIONS)
    result: dict = {"layers": {k: {a: list(v) for a, v in spec.items()} for k, spec in layers.items()},
                    "throughput": [], "ice40up5k": {}}
    with tqdm(total=len(orgs) * (len(DENSITIES) + 1), desc="bench memory", unit="run") as bar:
        for org in orgs:
            layer = layers["conv" if org in model.FUNCTIONAL_ORGANISATIONS else "matrix"]
            for density in DENSITIES:
                bar.set_postfix_str(f"{org} density {density}")
                result["throughput"].append(throughput(org, density, layer))
                bar.update()
            bar.set_postfix_str(f"{org} on iCE40UP5K")
            config, args = _core(org, 0.5, layer)
            memory = synapse_memory(config, **args)
            est = synapse_estimate(memory, "icebreaker", Path(out) / "fpga")
            result["ice40up5k"][org] = {"layer": _layer_name(memory), "density": 0.5,
                                        **{k: est[k] for k in ("luts", "flip_flops", "logic_cells_at_least",
                                                               "ram_blocks", "fits")},
                                        "memory_bits": sum(m.bits for m in memory.memories())}
            bar.update()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "memory.json").write_text(json.dumps(result, indent=2))
    return result
