"""NIR graphs in: a recurrent spiking network from another framework as this project's integer network.

Two kinds of graph come in:

- This project's exact export (:mod:`model.nir_export`, recognised by its metadata): the config is
  read back from the metadata and the weights from the Linear nodes, so the network is the one
  exported, bit for bit; the graph's parameters are checked against it.
- One recurrent synaptic LIF layer from anywhere (snnTorch, Norse, Rockpool, ...)::

      Input -> Linear/Affine -> CubaLIF or LIF (+ a recurrent Linear/Affine) -> Linear/Affine [-> LI] -> Output

  flat or with the layer nested one level. Stepped by forward Euler with ``dt`` (given, from the
  metadata, or inferred from ``r = tau_mem / dt``, snnTorch's convention), each time constant
  becomes a decay shift ``round(log2(tau / dt))``; the gains ``dt/tau * r * w_in`` and the per-neuron
  thresholds are folded into the rows of the weights; one scale maps the weights onto the weight bits
  and the threshold onto the membrane. The reset becomes the core's refractory trace (a jump of the
  threshold decaying with the membrane: exactly a reset by subtraction, an approximation of a reset to
  zero). The report says what was approximated, what was zeroed or clipped, and how each neuron's
  firing compares with the source graph's on the same inputs.

Every other graph is refused with one sentence naming the node and what is allowed.
"""

from __future__ import annotations

import json
import math

import nir
import numpy as np
import torch

from .checkpoint import FORMAT, Checkpoint
from .config import ConfigError, signed_range
from .nir_export import export_graph
from .snn import IntegerSRNN, SRNNConfig

__all__ = ["import_graph", "WIDTH_DEFAULTS", "ALLOWED"]

ALLOWED = ("one recurrent layer: Input -> Linear/Affine -> CubaLIF or LIF with a recurrent Linear/Affine -> "
           "Linear/Affine -> LI (optional) -> Output, flat or nested one level")
WIDTH_DEFAULTS = {"weight_bits": 8, "current_bits": 16, "membrane_bits": 16, "readout_weight_bits": 8,
                  "readout_bits": 24}
_LINEAR = (nir.Linear, nir.Affine)
_SPIKING = (nir.CubaLIF, nir.LIF)
_WHY = {nir.Conv1d: "convolutions", nir.Conv2d: "convolutions", nir.Delay: "delays", nir.IF: "integrate-and-fire "
        "neurons without leak", nir.I: "integrators", nir.Flatten: "reshaping", nir.Threshold: "bare thresholds",
        nir.CubaLI: "current-based integrators", nir.Scale: "scalings", nir.AvgPool2d: "pooling",
        nir.SumPool2d: "pooling"}


def _refuse(message: str):
    raise ConfigError(message)


def import_graph(graph: nir.NIRGraph, *, dt: float | None = None, lanes: int | None = None, inputs=None,
                 seed: int = 0, **widths) -> tuple[Checkpoint, dict]:
    """The integer network of ``graph`` and the import report. ``widths``: any of
    :data:`WIDTH_DEFAULTS` (foreign graphs only); ``inputs``: the raster [T, B, channels] on which
    the report compares the firing (default: random events)."""
    unknown = sorted(set(widths) - set(WIDTH_DEFAULTS))
    if unknown:
        _refuse(f"width {unknown[0]!r} is unknown; allowed: {', '.join(WIDTH_DEFAULTS)}.")
    meta = graph.metadata or {}
    if meta.get("format") == FORMAT and meta.get("exact") == "true":
        given = [k for k, v in {"dt": dt, "lanes": lanes, **widths}.items() if v is not None]
        if given:
            _refuse(f"this graph is neuromosaic's exact export and carries its config; {given[0]} applies to "
                    f"graphs from other tools (leave it out).")
        ck, report, source, layer = _own(graph, meta)
    else:
        ck, report, source, layer = _foreign(graph, dt, lanes, {
            k: (WIDTH_DEFAULTS[k] if widths.get(k) is None else widths[k]) for k in WIDTH_DEFAULTS})
    report["firing"] = _firing(source, report["dt"], layer, ck, inputs, seed)
    return ck, report


# -- this project's own export --------------------------------------------------------------------
def _own(graph: nir.NIRGraph, meta: dict) -> tuple[Checkpoint, dict, nir.NIRGraph, str]:
    """The checkpoint, the report, the graph to run as the source and its spiking node's name."""
    try:
        config = SRNNConfig.from_dict(json.loads(meta["config"]))
        dt = float(meta["dt"])
    except (KeyError, ValueError, TypeError) as e:
        _refuse(f"the graph's neuromosaic metadata is damaged ({e}); allowed: metadata as neuromosaic nir export "
                f"writes it.")
    weights = {}
    for key, node in (("w_in", "a_w_in"), ("w_rec", "e_w_rec"), ("w_out", "f_w_out")):
        w = np.asarray(getattr(graph.nodes.get(node), "weight", None), dtype=np.float64)
        if w.ndim != 2 or not np.array_equal(w, np.round(w)):
            _refuse(f"node {node!r} does not hold the integer weights of neuromosaic's export; allowed: the graph "
                    f"as neuromosaic nir export wrote it.")
        weights[key] = torch.from_numpy(np.round(w).astype(np.int64))
    try:
        IntegerSRNN(config, weights["w_in"], weights["w_rec"], weights["w_out"])      # shapes and ranges
    except ConfigError as e:
        _refuse(f"the graph's weights do not fit its neuromosaic metadata's config: {e}")
    ck = Checkpoint(config, weights["w_in"], weights["w_rec"], weights["w_out"], {})
    try:
        expected = export_graph(ck, dt)
    except ConfigError as e:
        _refuse(f"the graph's neuromosaic metadata does not describe its weights ({e})")
    for name, node in expected.nodes.items():
        got = graph.nodes.get(name)
        have = got.to_dict() if type(got) is type(node) else None
        if have is None or any(not np.array_equal(np.asarray(v), np.asarray(have.get(k)))
                               for k, v in node.to_dict().items() if isinstance(v, np.ndarray)):
            _refuse(f"node {name!r} differs from what neuromosaic's exact export of its metadata's config writes; "
                    f"allowed: the graph unchanged (or without the metadata, to import it as a foreign graph).")
    if sorted(map(tuple, graph.edges)) != sorted(map(tuple, expected.edges)):
        _refuse("the graph's edges differ from neuromosaic's exact export; allowed: the graph unchanged.")
    report = {"kind": "neuromosaic exact export", "dt": dt, "exact": True, "approximations": []}
    return ck, report, graph, "c_spike"


# -- graphs from other tools ----------------------------------------------------------------------
def _flatten(graph: nir.NIRGraph) -> nir.NIRGraph:
    """One level of nesting undone: a subgraph's nodes become ``outer_inner`` and its Input and
    Output pass-throughs."""
    nodes, edges, entry, exit_ = {}, [], {}, {}
    for name, node in graph.nodes.items():
        if not isinstance(node, nir.NIRGraph):
            nodes[name] = node
            continue
        inner_in = [k for k, v in node.nodes.items() if isinstance(v, nir.Input)]
        inner_out = [k for k, v in node.nodes.items() if isinstance(v, nir.Output)]
        if len(inner_in) != 1 or len(inner_out) != 1:
            _refuse(f"subgraph {name!r} has {len(inner_in)} inputs and {len(inner_out)} outputs; allowed: one of each.")
        for k, v in node.nodes.items():
            if isinstance(v, nir.NIRGraph):
                _refuse(f"node {name}.{k} is a graph nested two levels deep; allowed: {ALLOWED}.")
            if k not in (inner_in[0], inner_out[0]):
                nodes[f"{name}_{k}"] = v
        entry[name] = [f"{name}_{b}" for a, b in node.edges if a == inner_in[0]]
        exit_[name] = [f"{name}_{a}" for a, b in node.edges if b == inner_out[0]]
        edges += [(f"{name}_{a}", f"{name}_{b}") for a, b in node.edges if a != inner_in[0] and b != inner_out[0]]
    for a, b in graph.edges:
        a, b = _inner(graph, a), _inner(graph, b)
        edges += [(s, t) for s in exit_.get(a, [a]) for t in entry.get(b, [b])]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _inner(graph: nir.NIRGraph, name: str) -> str:
    """An edge's end: a node's name (dots allowed), or ``sub.node`` inside the subgraph ``sub``."""
    outer, _, inner = name.partition(".")
    if name in graph.nodes or not isinstance(graph.nodes.get(outer), nir.NIRGraph):
        return name
    return f"{outer}_{inner}"


def _only(graph, kind, what) -> str:
    names = [k for k, v in graph.nodes.items() if isinstance(v, kind)]
    if len(names) != 1:
        _refuse(f"the graph has {len(names)} {what} ({', '.join(names) or 'none'}); allowed: {ALLOWED}.")
    return names[0]


def _structure(g: nir.NIRGraph) -> dict:
    """The names of the layer's parts, or one sentence on why the graph is not such a layer."""
    for name, node in g.nodes.items():
        if not isinstance(node, (nir.Input, nir.Output, nir.LI) + _LINEAR + _SPIKING):
            why = _WHY.get(type(node), "other nodes")
            _refuse(f"node {name!r} is a {type(node).__name__} ({why} are not supported); allowed: {ALLOWED}.")
    inp, out = _only(g, nir.Input, "inputs"), _only(g, nir.Output, "outputs")
    into = lambda n: [a for a, b in g.edges if b == n]           # noqa: E731
    outof = lambda n: [b for a, b in g.edges if a == n]          # noqa: E731
    spiking = [k for k, v in g.nodes.items() if isinstance(v, _SPIKING)]
    for k in spiking[1:] if len(spiking) == 2 else ():
        if outof(k) == [out] and all(set(into(p)) <= set(spiking) for p in into(k)):
            _refuse(f"node {k!r} after the readout weights is a spiking readout ({type(g.nodes[k]).__name__}); "
                    f"allowed: {ALLOWED}.")
    if len(spiking) != 1:
        _refuse(f"the graph has {len(spiking)} spiking layers ({', '.join(spiking) or 'none'}); allowed: {ALLOWED}.")
    core = spiking[0]
    parts = {"input": inp, "core": core, "output": out, "w_in": None, "w_rec": None}
    direct = [p for p in into(core) if not isinstance(g.nodes[p], _LINEAR)]
    if direct:
        _refuse(f"node {direct[0]!r} feeds the spiking layer {core!r} directly; allowed: {ALLOWED}.")
    for p in into(core):
        src = into(p)
        role = "w_in" if src == [inp] else "w_rec" if src == [core] else None
        if role is None or parts[role] is not None:
            _refuse(f"node {p!r} into {core!r} comes from {', '.join(src) or 'nothing'}; allowed: {ALLOWED}.")
        parts[role] = p
    if parts["w_in"] is None:
        _refuse(f"no Linear or Affine node takes the input into {core!r}; allowed: {ALLOWED}.")
    readout = [b for b in outof(core) if b != parts["w_rec"]]
    if len(readout) != 1 or not isinstance(g.nodes[readout[0]], _LINEAR):
        _refuse(f"the spiking layer {core!r} feeds {', '.join(readout) or 'nothing'} besides its recurrence; allowed: "
                f"one Linear or Affine readout.")
    parts["w_out"] = readout[0]
    after = outof(readout[0])
    parts["readout"] = None
    if after != [out]:
        if len(after) != 1 or isinstance(g.nodes[after[0]], _SPIKING):
            _refuse(f"node {', '.join(after) or readout[0]!r} after the readout weights is "
                    f"{'a spiking readout' if after and isinstance(g.nodes[after[0]], _SPIKING) else 'not one LI'}; "
                    f"allowed: {ALLOWED}.")
        if not isinstance(g.nodes[after[0]], nir.LI) or outof(after[0]) != [out]:
            _refuse(f"node {after[0]!r} after the readout weights is not an LI into the output; allowed: {ALLOWED}.")
        parts["readout"] = after[0]
    used = {v for v in parts.values() if v is not None}
    extra = sorted(set(g.nodes) - used)
    if extra:
        _refuse(f"node {extra[0]!r} is not part of the layer; allowed: {ALLOWED}.")
    if outof(inp) != [parts["w_in"]]:
        _refuse(f"the input feeds {', '.join(outof(inp))}; allowed: {ALLOWED}.")
    return parts


def _uniform(name: str, field: str, values) -> float:
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0 or not np.all(np.isfinite(v)):
        _refuse(f"node {name!r} has a non-finite {field}; allowed: finite values.")
    if not np.allclose(v, v[0], rtol=1e-9, atol=0):
        _refuse(f"node {name!r} has per-neuron {field} ({v.min():g} to {v.max():g}); allowed: one value for the "
                f"layer (the core has one decay per state).")
    return float(v[0])


def _zero(name: str, field: str, values, what: str) -> None:
    if np.any(np.asarray(values, dtype=np.float64) != 0):
        _refuse(f"node {name!r} has a non-zero {field}; allowed: zero ({what}).")


def _linear(g, name) -> np.ndarray:
    node = g.nodes[name]
    if isinstance(node, nir.Affine):
        _zero(name, "bias", node.bias, "the core has no bias")
    w = np.asarray(node.weight, dtype=np.float64)
    if w.ndim != 2 or not np.all(np.isfinite(w)):
        _refuse(f"node {name!r} has weights of shape {w.shape} with non-finite values; allowed: a finite matrix.")
    return w


def _infer_dt(core_name: str, core, given: float | None, meta: dict) -> tuple[float, str]:
    if given is not None:
        if not (math.isfinite(given) and given > 0):
            _refuse(f"--dt {given} is not allowed; allowed: a positive number of seconds.")
        return float(given), "given"
    if "dt" in meta:
        return float(meta["dt"]), "the graph's metadata"
    field = "tau_mem" if isinstance(core, nir.CubaLIF) else "tau"
    r = _uniform(core_name, "r", core.r)
    if r <= 0 or np.isclose(r, 1.0):
        _refuse(f"dt cannot be inferred from node {core_name!r} (r = {r:g}, not tau_mem / dt); give --dt.")
    dt = _uniform(core_name, field, getattr(core, field)) / r
    return dt, "inferred from r = tau_mem / dt (snnTorch's convention)"


def _shift(name: str, tau: float, dt: float) -> tuple[int, float]:
    """The decay shift nearest ``tau`` at steps of ``dt``, and the time constant it gives."""
    if tau < dt * (1 - 1e-9):
        _refuse(f"node {name!r} has tau = {tau:g} s, shorter than the step dt = {dt:g} s; allowed: tau >= dt.")
    s = max(0, round(math.log2(tau / dt)))
    return s, dt * 2.0 ** s


def _foreign(graph: nir.NIRGraph, dt, lanes, widths) -> tuple[Checkpoint, dict, nir.NIRGraph, str]:
    """The checkpoint, the report, the flattened graph to run as the source and its spiking node's name."""
    g = _flatten(graph)
    parts = _structure(g)
    core_name, core = parts["core"], g.nodes[parts["core"]]
    _zero(core_name, "v_leak", core.v_leak, "the core has no leak potential")
    _zero(core_name, "v_reset", core.v_reset, "the core's refractory trace stands in for a reset to zero")
    dt, dt_source = _infer_dt(core_name, core, dt, graph.metadata or {})
    notes = []
    w_in, w_out = _linear(g, parts["w_in"]), _linear(g, parts["w_out"])
    neurons, channels, outputs = w_in.shape[0], w_in.shape[1], w_out.shape[0]
    w_rec = _linear(g, parts["w_rec"]) if parts["w_rec"] else np.zeros((neurons, neurons))
    if parts["w_rec"] is None:
        notes.append("the layer has no recurrent weights: imported as zeros")
    if w_rec.shape != (neurons, neurons) or w_out.shape[1] != neurons:
        _refuse(f"the weights do not chain: {parts['w_in']} {w_in.shape}, {parts['w_rec']} {w_rec.shape}, "
                f"{parts['w_out']} {w_out.shape}; allowed: [N, C], [N, N], [O, N].")
    r = np.broadcast_to(np.asarray(core.r, np.float64), (neurons,))
    theta = np.broadcast_to(np.asarray(core.v_threshold, np.float64), (neurons,))
    if np.any(theta <= 0) or not np.all(np.isfinite(theta)):
        _refuse(f"node {core_name!r} has thresholds {theta.min():g} to {theta.max():g}; allowed: positive values.")
    if isinstance(core, nir.CubaLIF):
        tau_mem, tau_syn = _uniform(core_name, "tau_mem", core.tau_mem), _uniform(core_name, "tau_syn", core.tau_syn)
        s_syn, tau_syn_q = _shift(core_name, tau_syn, dt)
        gain = (dt / tau_syn) * np.broadcast_to(np.asarray(core.w_in, np.float64), (neurons,))
    else:
        tau_mem, tau_syn, s_syn, tau_syn_q = _uniform(core_name, "tau", core.tau), None, 0, None
        gain = np.ones(neurons)
    s_mem, tau_mem_q = _shift(core_name, tau_mem, dt)
    gain = gain * (dt / tau_mem) * r * (theta.max() / theta)      # per row: Euler's gains, thresholds made equal
    if not np.allclose(theta, theta[0]):
        notes.append("per-neuron thresholds folded into the rows of the weights")
    notes.append("the reset to zero is replaced by the refractory trace (a jump of the threshold, decaying with "
                 "the membrane: exact for a reset by subtraction)")
    core_w = np.concatenate([w_in, w_rec], axis=1) * gain[:, None]
    wmax = signed_range(widths["weight_bits"])[1]
    vmax = signed_range(widths["membrane_bits"])[1]
    peak = float(np.abs(core_w).max())
    if peak == 0:
        _refuse(f"the weights into {core_name!r} are all zero; allowed: a network with non-zero input weights.")
    scale = min(wmax / peak, (vmax // 2) / theta.max())
    q_core, zeroed, clipped = _quantise(core_w, scale, wmax)
    threshold = math.floor(theta.max() * scale) + 1                 # V > theta, for integer V
    ro_name = parts["readout"]
    if ro_name:
        ro = g.nodes[ro_name]
        _zero(ro_name, "v_leak", ro.v_leak, "the readout has no leak potential")
        s_out, tau_out_q = _shift(ro_name, _uniform(ro_name, "tau", ro.tau), dt)
        out_gain = (dt / _uniform(ro_name, "tau", ro.tau)) * np.broadcast_to(np.asarray(ro.r, np.float64), (outputs,))
    else:
        s_out, tau_out_q, out_gain = 0, None, np.ones(outputs)
        notes.append("no LI after the readout weights: the readout keeps no memory (decay shift 0)")
    out_w = w_out * out_gain[:, None]
    romax = signed_range(widths["readout_weight_bits"])[1]
    out_peak = float(np.abs(out_w).max()) or 1.0
    q_out, zeroed_out, clipped_out = _quantise(out_w, romax / out_peak, romax)
    lanes = lanes or (2 if neurons % 2 == 0 else 1)       # the LIF core's default where it divides
    try:
        config = SRNNConfig.make(
            channels=channels, neurons=neurons, outputs=outputs, lanes=lanes, weight_bits=widths["weight_bits"],
            current_bits=widths["current_bits"], membrane_bits=widths["membrane_bits"],
            refractory_bits=widths["membrane_bits"] - 1, current_decay_shift=s_syn, membrane_decay_shift=s_mem,
            refractory_decay_shift=s_mem, threshold=threshold, refractory_jump=threshold,
            readout_bits=widths["readout_bits"], readout_weight_bits=widths["readout_weight_bits"],
            readout_decay_shift=s_out)
    except ConfigError as e:
        _refuse(f"the imported network does not fit the core: {e}")
    w = torch.from_numpy(q_core)
    ck = Checkpoint(config, w[:, :channels].clone(), w[:, channels:].clone(), torch.from_numpy(q_out), {})
    report = {
        "kind": "foreign graph", "exact": False, "dt": dt, "dt_source": dt_source,
        "layer": {"node": core_name, "type": type(core).__name__, "channels": channels, "neurons": neurons,
                  "outputs": outputs},
        "shifts": {"current_decay_shift": s_syn, "membrane_decay_shift": s_mem, "readout_decay_shift": s_out},
        "time_constants_s": {"tau_syn": [tau_syn, tau_syn_q], "tau_mem": [tau_mem, tau_mem_q],
                             "tau_readout": [float(_uniform(ro_name, "tau", g.nodes[ro_name].tau)) if ro_name else None,
                                             tau_out_q]},
        "scale": scale, "readout_scale": romax / out_peak, "threshold": threshold,
        "weights": {"zeroed": zeroed, "clipped": clipped, "readout_zeroed": zeroed_out,
                    "readout_clipped": clipped_out, "total": int(core_w.size + out_w.size)},
        "approximations": notes,
    }
    return ck, report, g, core_name


def _quantise(w: np.ndarray, scale: float, limit: int) -> tuple[np.ndarray, int, int]:
    """Integers of ``w * scale`` within +-``limit``, how many non-zero weights became zero, how many clipped."""
    scaled = w * scale
    q = np.clip(np.round(scaled), -limit, limit).astype(np.int64)
    return q, int(((q == 0) & (w != 0)).sum()), int((np.abs(np.round(scaled)) > limit).sum())


def _firing(flat: nir.NIRGraph, dt: float, probe: str, ck: Checkpoint, inputs, seed: int) -> dict:
    """Per-neuron spike counts of the source graph (forward Euler) and the integer network on the
    same input events, and their correlation."""
    from .nir_euler import run

    c = ck.config
    if inputs is None:
        gen = torch.Generator().manual_seed(seed)
        inputs = (torch.rand(100, 8, c.channels, generator=gen) < 0.2).to(torch.int64)
    inputs = torch.as_tensor(inputs)
    if inputs.ndim != 3 or inputs.shape[-1] != c.channels:
        _refuse(f"the firing inputs have shape {tuple(inputs.shape)}; allowed: [steps, samples, {c.channels}] "
                f"(the graph's channels).")
    source = run(flat, inputs.double(), dt, probe=probe)
    ours = IntegerSRNN(c, ck.w_in, ck.w_rec, ck.w_out).hidden(inputs.round().to(torch.int64))
    a, b = source.sum((0, 1)).numpy(), ours.sum((0, 1)).double().numpy()
    corr = float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else None
    return {"inputs": list(inputs.shape), "spikes_source": int(a.sum()), "spikes_imported": int(b.sum()),
            "identical_rasters": bool(torch.equal(source.to(torch.int64), ours.to(torch.int64))),
            "count_correlation": corr, "per_neuron_source": a.astype(int).tolist(),
            "per_neuron_imported": b.astype(int).tolist()}
