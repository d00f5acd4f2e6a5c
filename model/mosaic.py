"""Mosaic small-world layout (seed 000): neuron tiles on a grid, the hop matrix H, the layout mask and
penalty that make training prefer short connections, pruning, and statistics of the result.

Geometry (EIS-Hub Mosaic code): tiles sit on a rows x cols grid in row-major order; on the full
(2 rows + 1) x (2 cols + 1) grid a tile occupies an (odd, odd) cell and is surrounded by routers. H[i, j]
is the number of router cells a spike from tile i crosses to reach tile j::

    H = 0            same tile
      = 1            adjacent tiles (one between-tile router)
      = 2d + 1       same row or column, Manhattan distance d > 1 (the path detours around tiles)
      = 2d - 1       otherwise

The mask is M = clip(exp(beta * kron(H, ones(n, n))) - 1, 0, exp(clip)) for n neurons per tile, and the
penalty is mean(M * W_rec**2); intra-tile connections are free.
"""

from __future__ import annotations

import math
from collections import Counter

import torch

from .config import ConfigError

__all__ = ["hop_matrix", "layout_mask", "layout_penalty", "prune", "connectivity_stats", "tile_of"]


def hop_matrix(rows: int, cols: int) -> torch.Tensor:
    if rows < 1 or cols < 1:
        raise ConfigError(f"a {rows}x{cols} tile grid is not allowed; allowed: at least 1x1.")
    k = torch.arange(rows * cols)
    r, c = k // cols, k % cols
    dr = (r.view(-1, 1) - r.view(1, -1)).abs()
    dc = (c.view(-1, 1) - c.view(1, -1)).abs()
    d = dr + dc
    straight = (dr == 0) | (dc == 0)
    h = torch.where(straight, 2 * d + 1, 2 * d - 1)
    h = torch.where(d == 1, torch.ones_like(h), h)
    return torch.where(d == 0, torch.zeros_like(h), h)


def tile_of(neurons: int, tiles: int) -> torch.Tensor:
    """The tile of each neuron: consecutive blocks of neurons // tiles."""
    if tiles < 1 or neurons % tiles:
        raise ConfigError(f"{neurons} neurons do not split over {tiles} tiles; allowed: a divisor of the neuron count.")
    return torch.arange(neurons) // (neurons // tiles)


def layout_mask(rows: int, cols: int, neurons: int, beta: float = 8.0, clip: float = 15.0) -> torch.Tensor:
    """The neuron-level cost [post, pre] of a recurrent connection (0 inside a tile)."""
    h = hop_matrix(rows, cols).double()
    t = tile_of(neurons, rows * cols)
    return (torch.exp(beta * h[t][:, t]) - 1).clamp(0, math.exp(clip))


def layout_penalty(w_rec: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (mask.to(w_rec.dtype) * w_rec ** 2).mean()


@torch.no_grad()
def prune(w: torch.Tensor, threshold: float) -> int:
    """Zeroes weights with |w| < threshold in place; returns how many are zero afterwards."""
    w[w.abs() < threshold] = 0
    return int((w == 0).sum())


def connectivity_stats(w_rec: torch.Tensor, rows: int, cols: int) -> dict:
    """Share of non-zero recurrent weights per hop count, and fan-out: how many other tiles each
    neuron's spikes must reach (what the routers carry)."""
    neurons = w_rec.shape[0]
    h = hop_matrix(rows, cols)
    t = tile_of(neurons, rows * cols)
    nz = w_rec != 0                                  # [post, pre]
    hops = h[t][:, t][nz]
    total = int(nz.sum())
    per_hop = {int(k): v / total for k, v in sorted(Counter(hops.tolist()).items())} if total else {}
    dest_tiles = torch.zeros(neurons, rows * cols, dtype=torch.bool)
    post, pre = torch.nonzero(nz, as_tuple=True)
    dest_tiles[pre, t[post]] = True
    dest_tiles[torch.arange(neurons), t] = False     # the own tile needs no router
    fanout = dest_tiles.sum(1).double()
    return {"nonzero": total, "density": total / w_rec.numel(), "share_per_hop": per_hop,
            "mean_hops_per_connection": float(hops.double().mean()) if total else 0.0,
            "fanout_tiles_mean": float(fanout.mean()), "fanout_tiles_max": int(fanout.max())}


def export_connectivity(w_rec: torch.Tensor, rows: int, cols: int) -> dict:
    """The trained recurrent connectivity as the router compiler reads it (JSON-ready): the grid,
    each neuron's tile (row-major tiles, consecutive neurons), and per source neuron the other tiles
    its spikes must reach with the hop count to each, plus its targets inside its own tile."""
    neurons = w_rec.shape[0]
    tiles = rows * cols
    t = tile_of(neurons, tiles)
    h = hop_matrix(rows, cols)
    nz = w_rec != 0                                  # [post, pre]
    sources = []
    for pre in range(neurons):
        post = torch.nonzero(nz[:, pre]).flatten()
        dest = sorted(set(t[post].tolist()) - {int(t[pre])})
        sources.append({"neuron": pre, "tile": int(t[pre]),
                        "local_targets": [int(q) for q in post if t[q] == t[pre]],
                        "remote_tiles": [{"tile": d, "hops": int(h[t[pre], d]),
                                          "targets": [int(q) for q in post if t[q] == d]} for d in dest]})
    return {"format": "neuromosaic-connectivity", "version": 1, "grid": [rows, cols], "neurons": neurons,
            "neurons_per_tile": neurons // tiles, "tile_of_neuron": t.tolist(), "sources": sources,
            "stats": connectivity_stats(w_rec, rows, cols)}
