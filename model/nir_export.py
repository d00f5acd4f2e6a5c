"""A checkpoint's network as a NIR graph (the Neuromorphic Intermediate Representation).

The exact export is the ideal float twin (``FloatSRNN(exact=False)``: no rounding, no saturation)
in NIR's float semantics, stepped by forward Euler with step ``dt``. A decay ``x - (x >> s)`` is
``1 - dt/tau`` with ``tau = dt * 2**s``; gains ``2**s`` undo Euler's ``dt/tau`` on the inputs. NIR has
no refractory, rounding or saturation primitive, so the layer is a composite, its nodes named so that
their alphabetical order (the order ``nir.read`` returns) is an evaluation order::

    input -> a_w_in (Linear) -> b_core (CubaLI: the current, then the membrane V)
    b_core -> c_spike (Threshold)          <- d_refractory (LI, of the spikes: -R of the last step)
    c_spike -> d_refractory, e_w_rec (Linear, back into b_core), f_w_out (Linear)
    f_w_out -> g_readout (LI) -> h_logit (I: the sum over time, times 2**-logit_shift) -> output

``V - R >= theta`` becomes ``V + (-R) > theta'`` with ``theta'`` the float64 just below ``theta``: the
same decision for every float64 value. ``dt``, the update order and the full config go into the
graph's metadata, from which :mod:`model.nir_import` rebuilds the integer network bit for bit.

``compat=True`` writes the recurrent CubaLIF form that snnTorch, Norse and Rockpool import (input ->
Linear -> a subgraph of CubaLIF and its recurrent Linear -> Linear -> LI -> output). It is lossy: the
refractory trace becomes a reset to zero and the readout's sum over time is left to the reader.
"""

from __future__ import annotations

import json

import nir
import numpy as np

from .. import __version__
from .checkpoint import FORMAT, Checkpoint
from .config import ConfigError

__all__ = ["export_graph", "UPDATE_ORDER", "DEFAULT_DT"]

DEFAULT_DT = 1e-3      # seconds per step when none is given

UPDATE_ORDER = ("per step: I = I*(1-dt/tau_syn) + input; V = V*(1-dt/tau_mem) + I; spike = V - R >= threshold "
                "(R of the previous step); R = R*(1-dt/tau_ref) + refractory_jump*spike; readout "
                "O = O*(1-dt/tau_out) + W_out spike; logit = sum over steps of O / 2**logit_shift")


def _full(n: int, value: float) -> np.ndarray:
    return np.full(n, float(value), dtype=np.float64)


def _decay(n: int, dt: float, shift: int, gain: float = 1.0) -> dict:
    """tau and r of a decay ``1 - 2**-shift`` whose input enters with ``gain``."""
    return {"tau": _full(n, dt * 2.0 ** shift), "r": _full(n, gain * 2.0 ** shift), "v_leak": _full(n, 0.0)}


def export_graph(ck: Checkpoint, dt: float = DEFAULT_DT, compat: bool = False) -> nir.NIRGraph:
    """The checkpoint's network as a NIR graph with steps of ``dt`` seconds (see the module docstring)."""
    if not (isinstance(dt, float | int) and np.isfinite(dt) and dt > 0):
        raise ConfigError(f"dt={dt!r} is not allowed; allowed: a positive number of seconds.")
    c = ck.config
    if c.readout_reduce != "sum" and not compat:
        raise ConfigError(f"readout_reduce={c.readout_reduce!r} has no NIR primitive; allowed: sum (or --compat, "
                          f"which leaves the reduction to the reader).")
    graph = _compat(ck, float(dt)) if compat else _exact(ck, float(dt))
    graph.metadata = {"producer": f"neuromosaic {__version__}", "format": FORMAT, "dt": float(dt),
                      "update_order": UPDATE_ORDER, "config": json.dumps(c.to_dict(), sort_keys=True),
                      "exact": "false" if compat else "true",
                      **({"lossy": "the refractory trace is replaced by a reset to zero; the readout is not "
                                   "reduced over time"} if compat else {})}
    return graph


def _weights(ck: Checkpoint) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(getattr(ck, k).numpy().astype(np.float64) for k in ("w_in", "w_rec", "w_out"))


def _exact(ck: Checkpoint, dt: float) -> nir.NIRGraph:
    c, core = ck.config, ck.config.core
    n, o = c.neurons, c.outputs
    w_in, w_rec, w_out = _weights(ck)
    syn, mem = _decay(n, dt, core.current_decay_shift), _decay(n, dt, core.membrane_decay_shift)
    nodes = {
        "input": nir.Input(input_type=np.array([c.channels])),
        "a_w_in": nir.Linear(weight=w_in),
        "b_core": nir.CubaLI(tau_syn=syn["tau"], tau_mem=mem["tau"], r=mem["r"], v_leak=mem["v_leak"],
                             w_in=syn["r"]),
        "c_spike": nir.Threshold(threshold=_full(n, np.nextafter(float(core.threshold), -np.inf))),
        "d_refractory": nir.LI(**_decay(n, dt, core.refractory_decay_shift, -float(core.refractory_jump))),
        "e_w_rec": nir.Linear(weight=w_rec),
        "f_w_out": nir.Linear(weight=w_out),
        "g_readout": nir.LI(**_decay(o, dt, c.readout_decay_shift)),
        "h_logit": nir.I(r=_full(o, 2.0 ** -c.logit_shift / dt)),
        "output": nir.Output(output_type=np.array([o])),
    }
    edges = [("input", "a_w_in"), ("a_w_in", "b_core"), ("e_w_rec", "b_core"), ("b_core", "c_spike"),
             ("d_refractory", "c_spike"), ("c_spike", "d_refractory"), ("c_spike", "e_w_rec"),
             ("c_spike", "f_w_out"), ("f_w_out", "g_readout"), ("g_readout", "h_logit"), ("h_logit", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


def _compat(ck: Checkpoint, dt: float) -> nir.NIRGraph:
    c, core = ck.config, ck.config.core
    n, o = c.neurons, c.outputs
    w_in, w_rec, w_out = _weights(ck)
    syn, mem = _decay(n, dt, core.current_decay_shift), _decay(n, dt, core.membrane_decay_shift)
    lif = nir.CubaLIF(tau_syn=syn["tau"], tau_mem=mem["tau"], r=mem["r"], v_leak=mem["v_leak"], w_in=syn["r"],
                      v_threshold=_full(n, core.threshold), v_reset=_full(n, 0.0))
    recurrent = nir.NIRGraph(
        nodes={"input": nir.Input(input_type=np.array([n])), "lif": lif, "w_rec": nir.Linear(weight=w_rec),
               "output": nir.Output(output_type=np.array([n]))},
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    nodes = {"input": nir.Input(input_type=np.array([c.channels])), "a_w_in": nir.Linear(weight=w_in),
             "b_recurrent": recurrent, "c_w_out": nir.Linear(weight=w_out),
             "d_readout": nir.LI(**_decay(o, dt, c.readout_decay_shift)),
             "output": nir.Output(output_type=np.array([o]))}
    edges = [("input", "a_w_in"), ("a_w_in", "b_recurrent"), ("b_recurrent", "c_w_out"), ("c_w_out", "d_readout"),
             ("d_readout", "output")]
    return nir.NIRGraph(nodes=nodes, edges=edges)
