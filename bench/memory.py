"""``neuromosaic bench memory``: synaptic operations per cycle of the synapse memory's forward
accesses in each organisation and weight density, beside the memory-bound limit, and each
organisation's size on the iCE40UP5K. Figures are printed, never asserted.

Throughput: every presynaptic neuron sends one event, back to back (no idle), on the RTL under
Verilator with every access and result checked against the model. ``sop_per_cycle`` counts the
non-zero synapses delivered per cycle, from taking the first event to the last access or result. The
memory-bound limit is the busiest physical memory: its accesses divided by its read ports (each
memory serves one word a port a cycle), so ``fraction_of_limit`` is how close the organisation's
schedule comes to what its memories allow (goal for the sparse organisations: >= 0.9)."""

from __future__ import annotations

import json
from pathlib import Path

from tqdm import tqdm

from ..cosim.synapse import run_synapse_cosim
from ..cosim.synapse_bench import synapse_scenario
from ..fpga.synapse import synapse_estimate
from ..model import synapse as model
from ..rtl.synapse import trace_ports

__all__ = ["bench_memory", "DENSITIES"]

DENSITIES = (0.1, 0.5, 1.0)
SPARSE = ("bitmap", "csr", "func-bmp", "func-rowcol")


def _layers(quick: bool) -> dict:
    if quick:
        return {"matrix": {"shape": (32, 24)}, "conv": {"kernel": (2, 2, 3, 3), "image": (6, 6)}}
    return {"matrix": {"shape": (64, 128)}, "conv": {"kernel": (4, 4, 3, 3), "image": (16, 16)}}


def _layer_name(memory) -> str:
    if memory.name in model.FUNCTIONAL_ORGANISATIONS:
        cout, cin, kh, kw = memory.kernel_shape
        h, w = memory.image
        return f"conv:{h}x{w}x{cin}x{cout}k{kh}"
    return f"fc:{memory.pre}x{memory.post}"


def throughput(organisation: str, density: float, layer: dict, seed: int = 0) -> dict:
    """One forward pass of the layer, every event back to back, on Verilator."""
    memory = synapse_scenario(organisation, seed, density=density, forward_only=True, **layer).memory
    r = run_synapse_cosim("verilator", organisation, seed=seed, density=density, idle=0.0, forward_only=True,
                          name=f"bench-{density}", **layer)
    sops = sum(1 for pre in range(memory.pre) for _, w in memory.forward(pre) if w != 0)
    ports = {}
    for _, name, write in trace_ports(memory):
        ports[name] = ports.get(name, 0) + (not write)
    bound = max(c["reads"] / ports[name] for name, c in r["counts"].items())
    cycles = max(r["last_result"] or 0, r["last_access"] or 0) - r["first_command"]
    out = {"organisation": organisation, "label": model.LABELS[organisation], "layer": _layer_name(memory),
           "density": density, "synapses": sops, "results": r["results"], "cycles": cycles,
           "sop_per_cycle": round(sops / cycles, 4), "memory_bound_cycles": round(bound),
           "memory_bound_sop_per_cycle": round(sops / bound, 4) if bound else 0.0,
           "fraction_of_limit": round(bound / cycles, 4), "reads": {k: v["reads"] for k, v in r["counts"].items()},
           "checked_accesses": r["checked"]["accesses"]}
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
            memory = synapse_scenario(org, 0, density=0.5, forward_only=True, **layer).memory
            est = synapse_estimate(memory, "icebreaker", Path(out) / "fpga")
            result["ice40up5k"][org] = {"layer": _layer_name(memory), "density": 0.5,
                                        **{k: est[k] for k in ("luts", "flip_flops", "logic_cells_at_least",
                                                               "ram_blocks", "fits")},
                                        "memory_bits": sum(m.bits for m in memory.memories())}
            bar.update()
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "memory.json").write_text(json.dumps(result, indent=2))
    return result
