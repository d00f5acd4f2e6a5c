"""What the Mosaic's parts cost on the ULX3S's ECP5-85F (``fpga.estimate``: Yosys ``synth_ecp5`` of
each part alone, its ports as the top's pins): the neuron tile, each shape of mesh node the routing
uses, the readout engine, and their sum; and how many such tiles would fit.
"""

from __future__ import annotations

from pathlib import Path

from ..model.learning import LearningConfig
from ..model.tiles import MosaicConfig
from .estimate import FAMILIES, estimate_parts, mosaic_parts

__all__ = ["ECP5_85F", "mosaic_resources"]

ECP5_85F = FAMILIES["ecp5"]["available"]


def mosaic_resources(mc: MosaicConfig, cfg: LearningConfig = LearningConfig(), out_dir: str | Path =
                     "build/fpga/ecp5-parts") -> dict:
    """The Mosaic ``mc``'s cells on the ECP5-85F, part by part and in all (without the host link),
    the cells per neuron, and how many tiles of this size fit beside one engine, with the mesh nodes'
    cells per tile of this grid."""
    est = estimate_parts(mosaic_parts(mc, cfg), "ulx3s-85f", out_dir)
    engine = est["parts"]["readout engine"]
    resources = [k for k in ECP5_85F if est[k]]
    per_tile = {k: (est[k] - engine[k]) / mc.tiles for k in ECP5_85F}
    fit = min(int((ECP5_85F[k] - engine[k]) // per_tile[k]) for k in resources if per_tile[k])
    return {"device": est["device"], "available": ECP5_85F, "total": {k: est[k] for k in ECP5_85F},
            "per_neuron": {k: round(est[k] / mc.network.neurons, 1) for k in ECP5_85F},
            "parts": est["parts"], "per_tile_with_mesh": per_tile, "tiles_that_fit": max(0, fit),
            "limited_by": min((k for k in resources if per_tile[k]),
                              key=lambda k: (ECP5_85F[k] - engine[k]) / per_tile[k])}
