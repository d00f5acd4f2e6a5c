"""NIR graphs executed in discrete time: a forward-Euler node map for nirtorch.

NIR's neurons are ODEs; a simulator steps them. This map steps each node by ``dt`` with forward
Euler, written as the decay a hardware step applies::

    LI:      v <- v * (1 - dt/tau) + (dt/tau) * (v_leak + r * x)
    CubaLI:  I <- I * (1 - dt/tau_syn) + (dt/tau_syn) * (w_in * x)         the synaptic current first,
             v <- v * (1 - dt/tau_mem) + (dt/tau_mem) * (v_leak + r * I)   then the membrane takes it
    LIF, CubaLIF: as LI, CubaLI, then z = v > v_threshold and v <- v_reset where z
    I:       v <- v + dt * r * x
    Threshold: z = x > threshold

The current-then-membrane order is snnTorch's (and this project's). Written this way, with ``dt/tau``
a power of two and ``r``, ``w_in`` its inverse, a step is the same floating-point operations as the
ideal float twin's decays (``model.snn.FloatSRNN(exact=False)``), so an exported network runs here
with the twin's spikes exactly. Every node computes in float64 unless told otherwise.

nirtorch evaluates a graph's nodes in the order it holds them, taking the previous step's output of
a node it has not reached yet (zero at the first step); :func:`run` steps a graph over a raster.
"""

from __future__ import annotations

import nir
import numpy as np
import torch

__all__ = ["node_map", "run"]


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a, dtype=np.float64))


class _Leaky(torch.nn.Module):
    """LI, and LIF when given a threshold: the membrane's Euler step, then the optional spike."""

    def __init__(self, dt, tau, r, v_leak, v_threshold=None, v_reset=None):
        super().__init__()
        k = _t(dt / np.asarray(tau, np.float64))
        self.register_buffer("k", k)
        self.register_buffer("keep", 1.0 - k)
        self.register_buffer("r", _t(r))
        self.register_buffer("v_leak", _t(v_leak))
        self.spiking = v_threshold is not None
        if self.spiking:
            self.register_buffer("v_threshold", _t(v_threshold))
            self.register_buffer("v_reset", _t(v_reset))

    def forward(self, x, state=None):
        v = torch.zeros_like(x) if state is None else state
        v = v * self.keep + self.k * (self.v_leak + self.r * x)
        if not self.spiking:
            return v, v
        z = v > self.v_threshold
        return z.to(x.dtype), torch.where(z, self.v_reset, v)


class _CurrentBased(torch.nn.Module):
    """CubaLI, and CubaLIF when given a threshold: the synaptic current's step, then the membrane's."""

    def __init__(self, dt, node):
        super().__init__()
        k = _t(dt / np.asarray(node.tau_syn, np.float64))
        self.register_buffer("k", k)
        self.register_buffer("keep", 1.0 - k)
        self.register_buffer("w_in", _t(node.w_in))
        spiking = isinstance(node, nir.CubaLIF)
        self.membrane = _Leaky(dt, node.tau_mem, node.r, node.v_leak, node.v_threshold if spiking else None,
                               node.v_reset if spiking else None)

    def forward(self, x, state=None):
        current, v = (torch.zeros_like(x), None) if state is None else state
        current = current * self.keep + self.k * (self.w_in * x)
        out, v = self.membrane(current, v)
        return out, (current, v)


class _Integrator(torch.nn.Module):
    def __init__(self, dt, r):
        super().__init__()
        self.register_buffer("gain", _t(dt * np.asarray(r, np.float64)))

    def forward(self, x, state=None):
        v = torch.zeros_like(x) if state is None else state
        v = v + self.gain * x
        return v, v


class _Threshold(torch.nn.Module):
    def __init__(self, threshold):
        super().__init__()
        self.register_buffer("threshold", _t(threshold))

    def forward(self, x):
        return (x > self.threshold).to(x.dtype)


class _Linear(torch.nn.Module):
    def __init__(self, weight, bias=None):
        super().__init__()
        self.register_buffer("weight", _t(weight))
        self.register_buffer("bias", None if bias is None else _t(bias))

    def forward(self, x):
        y = x @ self.weight.t()
        return y if self.bias is None else y + self.bias


def node_map(dt: float) -> dict:
    """nirtorch's node map for steps of ``dt`` seconds (see the module docstring)."""
    return {
        nir.LI: lambda n: _Leaky(dt, n.tau, n.r, n.v_leak),
        nir.LIF: lambda n: _Leaky(dt, n.tau, n.r, n.v_leak, n.v_threshold, n.v_reset),
        nir.CubaLI: lambda n: _CurrentBased(dt, n),
        nir.CubaLIF: lambda n: _CurrentBased(dt, n),
        nir.I: lambda n: _Integrator(dt, n.r),
        nir.Threshold: lambda n: _Threshold(n.threshold),
        nir.Linear: lambda n: _Linear(n.weight),
        nir.Affine: lambda n: _Linear(n.weight, n.bias),
    }


def run(graph: nir.NIRGraph, x: torch.Tensor, dt: float, probe: str | None = None) -> torch.Tensor:
    """The graph's output at every step of ``x`` [T, B, inputs] (float64): [T, B, outputs]; with
    ``probe``, the output of that top-level node instead."""
    import nirtorch

    module = nirtorch.nir_to_torch(graph, node_map(dt), dtype=torch.float64)
    if probe is not None:
        module = _probed(module, probe)
    state, out = None, []
    for xt in torch.as_tensor(x, dtype=torch.float64).unbind(0):
        y, state = module(xt, state)
        out.append(y)
    return torch.stack(out)


def _probed(module: torch.fx.GraphModule, probe: str) -> torch.fx.GraphModule:
    """``module`` returning the output of its top-level node ``probe`` in place of the graph's output
    (a subgraph's output is its own output node's)."""
    graph, target = module.graph, probe.replace(".", "_")            # nirtorch's names for dotted ones
    call = next((n for n in graph.nodes if n.op == "call_module" and n.target == target), None)
    if call is None:
        raise KeyError(f"node {probe!r} is not a top-level node of the graph")
    firsts = [u for u in call.users if u.op == "call_method" and u.target == "__getitem__" and u.args[1] == 0]
    out = next(n for n in graph.nodes if n.op == "output")
    out.args = ((firsts[0] if firsts else call, out.args[0][-1]),)
    graph.lint()
    return torch.fx.GraphModule(module, graph)
