"""Energy of a layer's forward, backward and update passes per synapse memory organisation
(seed 001: Schaefer et al., ISCAS 2020), from the access counts of :mod:`.synapse`.

The model (``docs/memory-energy.md`` derives it and compares it with the paper):

* **SRAM access.** A read of a ``width``-bit word from a memory of ``B`` bits costs
  ``width * (e0 + e1 * sqrt(B))``: the per-bit energy grows with the bit-line and word-line length,
  i.e. with the square root of the array. ``e0 = 0.0201 pJ`` and ``e1 = 0.000544 pJ`` are the
  relative least-squares fit of the three 45 nm SRAM figures of M. Horowitz, "Computing's energy
  problem (and what we can do about it)", ISSCC 2014 (64-bit access: 8 KB 10 pJ, 32 KB 20 pJ,
  1 MB 100 pJ), within 5 % of each. A write costs ``write_factor`` (default 1) times the read.
* **Datapath.** Same source, 45 nm: an 8-bit add 0.03 pJ and an 8x8 multiply 0.2 pJ (32-bit: 0.1 and
  3.1 pJ). An ``n``-bit add costs ``0.03 * n / 8`` pJ and an ``a x b`` multiply ``0.2 * a * b / 64``
  (linear and quadratic in the width; 32 bits: 0.12 and 3.2 pJ against Horowitz's 0.1 and 3.1).
* **What a pass computes**, counted per organisation:

  - forward: one accumulation (``accumulator_bits`` add) per weight read;
  - backward: one ``error_bits x W`` multiply and one accumulation per weight read;
  - update: one ``error_bits x error_bits`` multiply and one accumulation per synapse the
    organisation serves (the gradient; a functional kernel word sums those of its synapses), and one
    ``W``-bit add per weight written;
  - metadata: one add of the word's width per read of a pointer, bitmap or index word (the address
    arithmetic, popcount or compare that uses it), and for the functional organisations one add of
    the neuron index's width per weight read (post = pre + offset).

* **Schedules** of the backward and update passes:

  - ``event``: one transposed access per postsynaptic error, then an update access per synapse
    (what :mod:`.synapse` counts: the access the learning engine issues, an error at a time);
  - ``sweep``: the errors of a step are buffered and one pass reads the stored synapses in storage
    order (the forward pass's reads), updating each in place: the update pass writes only.

Energies are in pJ; the layer's synapses are random with the given density (exactly ``round(density
* n)`` of the ``n`` possible ones: matrix entries of an ``fc`` layer, kernel entries of a ``conv``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch

from .config import ConfigError, bits_for
from .synapse import (
    FUNCTIONAL_ORGANISATIONS,
    LABELS,
    MATRIX_ORGANISATIONS,
    conv_extent,
    conv_matrix_pass_counts,
    functional_memories,
    functional_pass_counts,
    matrix_memories,
    matrix_pass_counts,
    organisation_name,
)

__all__ = ["EnergyModel", "Layer", "parse_layer", "layer_structure", "random_mask", "layer_energy", "energy_sweep",
           "PAPER", "paper_comparison", "SCHEDULES", "PASSES"]

SCHEDULES = ("event", "sweep")
PASSES = ("forward", "backward", "update")
HOROWITZ_SRAM = ((8 * 1024 * 8, 10.0), (32 * 1024 * 8, 20.0), (1024 * 1024 * 8, 100.0))   # (bits, pJ per 64-bit read)


@dataclass(frozen=True)
class EnergyModel:
    sram_fixed_pj: float = 0.0201           # per bit accessed
    sram_sqrt_pj: float = 0.000544          # per bit accessed, times sqrt(memory bits)
    write_factor: float = 1.0
    add8_pj: float = 0.03
    mult8x8_pj: float = 0.2
    accumulator_bits: int = 16
    error_bits: int = 8

    def access_pj(self, memory, write: bool = False) -> float:
        per_bit = self.sram_fixed_pj + self.sram_sqrt_pj * math.sqrt(memory.bits)
        return per_bit * memory.width * (self.write_factor if write else 1.0)

    def add_pj(self, bits: int) -> float:
        return self.add8_pj * bits / 8

    def mult_pj(self, a: int, b: int) -> float:
        return self.mult8x8_pj * a * b / 64


@dataclass(frozen=True)
class Layer:
    """``fc``: ``inputs -> outputs``; ``conv``: an ``height x width`` image, ``cin -> cout`` channels,
    a ``k x k`` kernel, stride 1, "same" padding."""

    kind: str
    inputs: int = 0
    outputs: int = 0
    height: int = 0
    width: int = 0
    cin: int = 0
    cout: int = 0
    k: int = 0

    @property
    def npre(self) -> int:
        return self.inputs if self.kind == "fc" else self.cin * self.height * self.width

    @property
    def npost(self) -> int:
        return self.outputs if self.kind == "fc" else self.cout * self.height * self.width

    @property
    def possible(self) -> int:
        """Synapse sites the density applies to: matrix entries (fc) or kernel entries (conv)."""
        return self.inputs * self.outputs if self.kind == "fc" else self.cout * self.cin * self.k * self.k

    def __str__(self) -> str:
        if self.kind == "fc":
            return f"fc:{self.inputs}x{self.outputs}"
        return f"conv:{self.height}x{self.width}x{self.cin}x{self.cout}k{self.k}"


def parse_layer(text: str) -> Layer:
    """``fc:784x128`` (inputs x outputs) or ``conv:28x28x32x32k3`` (height x width x in channels x
    out channels, kernel size)."""
    s = str(text).strip().lower()
    m = re.fullmatch(r"fc:(\d+)x(\d+)", s)
    if m and min(map(int, m.groups())) >= 1:
        return Layer("fc", inputs=int(m[1]), outputs=int(m[2]))
    m = re.fullmatch(r"conv:(\d+)x(\d+)x(\d+)x(\d+)k(\d+)", s)
    if m and min(map(int, m.groups())) >= 1 and int(m[5]) % 2 == 1:
        h, w, cin, cout, k = map(int, m.groups())
        return Layer("conv", height=h, width=w, cin=cin, cout=cout, k=k)
    raise ConfigError(f"layer {text!r} is not understood; allowed: fc:INxOUT (e.g. fc:784x128) or "
                      "conv:HxWxCINxCOUTkK with an odd K (e.g. conv:28x28x32x32k3), every number at least 1.")


def _check(organisation: str, layer: Layer, density: float, bits: int, schedule: str) -> str:
    org = organisation_name(organisation)
    if org in FUNCTIONAL_ORGANISATIONS and layer.kind != "conv":
        raise ConfigError(f"the {LABELS[org]} organisation computes a convolution's addresses and cannot hold "
                          f"layer {layer}; allowed for fc layers: {', '.join(MATRIX_ORGANISATIONS)}.")
    if not 0 < density <= 1:
        raise ConfigError(f"density {density} is not allowed; allowed: more than 0 and at most 1.")
    if not 1 <= bits <= 32:
        raise ConfigError(f"weight bits {bits} are not allowed; allowed: 1..32.")
    if schedule not in SCHEDULES:
        raise ConfigError(f"schedule {schedule!r} is unknown; allowed: {', '.join(SCHEDULES)}.")
    return org


def layer_structure(layer: Layer, density: float, seed: int = 0) -> torch.Tensor:
    """The non-zero pattern: a ``[outputs, inputs]`` mask (fc) or a ``[cout, cin, k, k]`` kernel mask
    (conv) with exactly ``round(density * possible)`` (at least one) set entries."""
    g = torch.Generator().manual_seed(seed)
    if layer.kind == "fc":
        return random_mask((layer.outputs, layer.inputs), density, g)
    return random_mask((layer.cout, layer.cin, layer.k, layer.k), density, g)


def random_mask(shape, density: float, generator: torch.Generator) -> torch.Tensor:
    """A boolean mask of ``shape`` with exactly ``round(density * n)`` (at least one) set entries."""
    n = math.prod(shape)
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=generator)[:max(1, round(density * n))]] = True
    return mask.reshape(shape)


def _counts_and_memories(org: str, layer: Layer, mask: torch.Tensor, bits: int, bitmap_word: int):
    if org in FUNCTIONAL_ORGANISATIONS:
        image = (layer.height, layer.width)
        return (functional_pass_counts(org, mask, image),
                functional_memories(org, tuple(mask.shape), int(mask.sum()), bits))
    if layer.kind == "fc":
        posts, pres = torch.nonzero(mask, as_tuple=True)
        counts = matrix_pass_counts(org, layer.npre, layer.npost, posts, pres, bitmap_word=bitmap_word)
        return counts, matrix_memories(org, layer.npre, layer.npost, posts.numel(), bits, bitmap_word=bitmap_word)
    # a convolution in a matrix organisation: the [Cout, Cin*k*k] receptive-field matrix
    counts = conv_matrix_pass_counts(org, mask, (layer.height, layer.width), bitmap_word=bitmap_word)
    rows = layer.cin * layer.k * layer.k
    return counts, matrix_memories(org, rows, layer.cout, int(mask.sum()), bits, bitmap_word=bitmap_word)


def _synapses(layer: Layer, mask: torch.Tensor) -> int:
    """The layer's non-zero synapses (a kernel entry counts once per pixel pair it connects)."""
    if layer.kind == "fc":
        return int(mask.sum())
    return int((mask.to(torch.int64) * conv_extent(tuple(mask.shape), (layer.height, layer.width))).sum())


def _weight_memory(org: str) -> str:
    return "kernel" if org == "func-pure" else "weights"


def _schedule(counts: dict, schedule: str, org: str) -> dict:
    if schedule == "event":
        return counts
    weights = _weight_memory(org)
    swept = {name: dict(rw) for name, rw in counts["forward"].items()}
    written = {name: {"reads": 0, "writes": counts["update"][name]["writes"] if name == weights else 0}
               for name in counts["update"]}
    return {"forward": counts["forward"], "backward": swept, "update": written}


def _pass_energy(pass_name: str, org: str, counts: dict, memories: dict, served: int, bits: int, npost: int,
                 model: EnergyModel) -> dict:
    weights = _weight_memory(org)
    memory_pj = {name: rw["reads"] * model.access_pj(memories[name]) +
                 rw["writes"] * model.access_pj(memories[name], write=True) for name, rw in counts.items()}
    weight_reads = counts[weights]["reads"]
    ops = {"add": 0.0, "multiply": 0.0}
    for name, rw in counts.items():
        if name != weights:
            ops["add"] += rw["reads"] * model.add_pj(memories[name].width)
    if org in FUNCTIONAL_ORGANISATIONS:
        ops["add"] += weight_reads * model.add_pj(bits_for(npost))
    acc = model.add_pj(model.accumulator_bits)
    if pass_name == "forward":
        ops["add"] += weight_reads * acc
    elif pass_name == "backward":
        ops["add"] += weight_reads * acc
        ops["multiply"] += weight_reads * model.mult_pj(model.error_bits, bits)
    else:
        ops["add"] += served * acc + counts[weights]["writes"] * model.add_pj(bits)
        ops["multiply"] += served * model.mult_pj(model.error_bits, model.error_bits)
    datapath = ops["add"] + ops["multiply"]
    memory = sum(memory_pj.values())
    return {"counts": counts, "memory_pj": memory_pj, "datapath_pj": ops,
            "energy_pj": memory + datapath}


def layer_energy(layer: Layer | str, organisation: str, density: float = 1.0, bits: int = 8, *,
                 schedule: str = "event", model: EnergyModel = EnergyModel(), bitmap_word: int = 16,
                 seed: int = 0, mask: torch.Tensor | None = None) -> dict:
    """Forward, backward and update energy (pJ) and access counts of one layer in one organisation."""
    layer = parse_layer(layer) if isinstance(layer, str) else layer
    org = _check(organisation, layer, density, bits, schedule)
    mask = layer_structure(layer, density, seed) if mask is None else mask
    counts, memories = _counts_and_memories(org, layer, mask, bits, bitmap_word)
    counts = _schedule(counts, schedule, org)
    by_name = {m.name: m for m in memories}
    served = counts["forward"][_weight_memory(org)]["reads"]        # synapses a forward pass delivers
    passes = {p: _pass_energy(p, org, counts[p], by_name, served, bits, layer.npost, model) for p in PASSES}
    return {"layer": str(layer), "organisation": org, "label": LABELS[org], "density": density, "bits": bits,
            "schedule": schedule, "synapses": _synapses(layer, mask),
            "memories": [{"name": m.name, "depth": m.depth, "width": m.width, "bits": m.bits,
                          "read_pj": model.access_pj(m), "write_pj": model.access_pj(m, write=True)}
                         for m in memories],
            "passes": passes,
            "energy_pj": {p: passes[p]["energy_pj"] for p in PASSES}}


def organisations_for(layer: Layer) -> tuple[str, ...]:
    return MATRIX_ORGANISATIONS + (FUNCTIONAL_ORGANISATIONS if layer.kind == "conv" else ())


def energy_sweep(layer: Layer | str, densities, bits_list=(8,), organisations=None, *, schedule: str = "event",
                 model: EnergyModel = EnergyModel(), seed: int = 0) -> list[dict]:
    """``layer_energy`` rows (without counts) over densities x bits x organisations; one structure
    per density shared by every organisation."""
    layer = parse_layer(layer) if isinstance(layer, str) else layer
    organisations = organisations or organisations_for(layer)
    rows = []
    for density in densities:
        mask = layer_structure(layer, density, seed)
        for org in organisations:
            for bits in bits_list:
                r = layer_energy(layer, org, density, bits, schedule=schedule, model=model, mask=mask)
                rows.append({k: r[k] for k in ("layer", "organisation", "label", "density", "bits", "schedule",
                                                 "synapses", "energy_pj")})
    return rows


# Seed 001's per-layer energies (uJ, forward and backward; 8-bit weights), from the paper's data file
# iscas_figs/"patrick_results 23.56.54.csv" as gathered in ../shared/reference/digital-neuromorphic-anchors.md
# section 3: the paper's figures, for comparing ratios (not our output).
PAPER = {
    ("fc:784x128", 1.0): {"dense": (1.656, 4.289), "bitmap": (1.737, 4.930), "csr": (4.189, 7.644)},
    ("fc:784x128", 0.25): {"dense": (1.656, 4.289), "bitmap": (0.393, 2.326), "csr": (0.749, 2.444)},
    ("conv:28x28x32x32k3", 1.0): {"bitmap": (0.2035, 0.507), "csr": (0.1758, 0.745), "func-rowcol": (0.1862, 0.432),
                                  "func-bmp": (0.4045, 0.625), "func-pure": (0.2896, 0.425)},
}
PAPER_BASE = {"fc": "dense", "conv": "csr"}      # what the ratios are taken against


def paper_comparison(model: EnergyModel = EnergyModel(), seed: int = 0) -> list[dict]:
    """For each of the paper's rows: its forward and backward energy relative to the layer's base
    organisation (Crossbar for fc, PB-CSR for conv), and ours under both schedules (backward: our
    backward plus update, as the paper's backward pass includes the weight update)."""
    rows = []
    for (layer_text, density), table in PAPER.items():
        layer = parse_layer(layer_text)
        base = PAPER_BASE[layer.kind]
        mask = layer_structure(layer, density, seed)
        ours = {s: {org: layer_energy(layer, org, density, 8, schedule=s, model=model, mask=mask)["energy_pj"]
                    for org in table} for s in SCHEDULES}
        for org, (fwd, bwd) in table.items():
            row = {"layer": layer_text, "density": density, "organisation": org, "label": LABELS[org],
                   "base": LABELS[base], "paper_forward_uj": fwd, "paper_backward_uj": bwd,
                   "paper_forward_ratio": fwd / table[base][0], "paper_backward_ratio": bwd / table[base][1]}
            for s in SCHEDULES:
                e, b = ours[s][org], ours[s][base]
                row[f"{s}_forward_uj"] = e["forward"] * 1e-6
                row[f"{s}_backward_uj"] = (e["backward"] + e["update"]) * 1e-6
                row[f"{s}_forward_ratio"] = e["forward"] / b["forward"]
                row[f"{s}_backward_ratio"] = (e["backward"] + e["update"]) / (b["backward"] + b["update"])
            rows.append(row)
    return rows
