"""Mosaic layout (hop matrix, mask, statistics) and the memristive device models."""

import math
from collections import deque

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.mosaic import connectivity_stats, hop_matrix, layout_mask, layout_penalty, prune
from neuromosaic.model.rram import PRESETS, Device, noisy_weights, program


def _routers_crossed(rows, cols, a, b):
    """Shortest path from tile a to tile b through router cells of the (2r+1)x(2c+1) grid (tiles at
    (odd, odd) cells, everything else a router): the number of routers on it. Independent of H's formula."""
    if a == b:
        return 0
    R, C = 2 * rows + 1, 2 * cols + 1
    src = (2 * (a // cols) + 1, 2 * (a % cols) + 1)
    dst = (2 * (b // cols) + 1, 2 * (b % cols) + 1)
    is_router = lambda y, x: 0 <= y < R and 0 <= x < C and not (y % 2 and x % 2)   # noqa: E731
    steps = ((1, 0), (-1, 0), (0, 1), (0, -1))
    start = [(src[0] + dy, src[1] + dx) for dy, dx in steps if is_router(src[0] + dy, src[1] + dx)]
    seen, queue = set(start), deque((cell, 1) for cell in start)
    while queue:
        (y, x), n = queue.popleft()
        if abs(y - dst[0]) + abs(x - dst[1]) == 1:
            return n
        for dy, dx in steps:
            nxt = (y + dy, x + dx)
            if is_router(*nxt) and nxt not in seen:
                seen.add(nxt)
                queue.append((nxt, n + 1))
    raise AssertionError("unreachable")


@pytest.mark.parametrize("rows, cols", [(2, 2), (3, 3), (4, 4), (8, 8), (2, 5)])
def test_hop_matrix_counts_routers_crossed(rows, cols):
    h = hop_matrix(rows, cols)
    want = torch.tensor([[_routers_crossed(rows, cols, a, b) for b in range(rows * cols)] for a in range(rows * cols)])
    assert torch.equal(h, want)


def test_hop_matrix_reference_values():
    # row 0 of the 4x4 grid as published (reference, section 1.3), and the 8x8 value set
    assert hop_matrix(4, 4)[0].view(4, 4).tolist() == [[0, 1, 5, 7], [1, 3, 5, 7], [5, 5, 7, 9], [7, 7, 9, 11]]
    assert sorted(set(hop_matrix(8, 8).flatten().tolist())) == [0, 1] + list(range(3, 28, 2))
    with pytest.raises(ConfigError, match="a 0x3 tile grid is not allowed"):
        hop_matrix(0, 3)


def test_mask_penalty_and_stats():
    m = layout_mask(2, 2, 8, beta=8.0)
    # free inside a tile, e^8 - 1 for a neighbour, clipped at e^15 for 3 hops
    assert m[0, 1] == 0 and float(m[0, 2]) == pytest.approx(math.exp(8) - 1, rel=1e-12)
    assert float(m[0, 6]) == pytest.approx(math.exp(15), rel=1e-12)
    w = torch.zeros(8, 8)
    w[1, 0] = 3.0     # same tile
    w[2, 0] = 2.0     # neighbour tile (pre 0 in tile 0, post 2 in tile 1)
    w[6, 0] = 1.0     # diagonal tile: 3 hops
    assert float(layout_penalty(w, m)) == pytest.approx(float((m[2, 0] * 4 + m[6, 0]) / 64), rel=1e-6)
    s = connectivity_stats(w, 2, 2)
    assert s["nonzero"] == 3 and s["share_per_hop"] == {0: 1 / 3, 1: 1 / 3, 3: 1 / 3}
    assert s["fanout_tiles_max"] == 2       # neuron 0 reaches tiles 1 and 3
    assert prune(w, 1.5) == 62 and w[6, 0] == 0


def test_device_levels_noise_and_reproducibility():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(64, 64, generator=g) * 50
    w[w.abs() < 10] = 0
    for name in ("mosaic", "reram-wan2022", "pcm-nandakumar"):
        a, b, c = program(w, PRESETS[name], 1), program(w, PRESETS[name], 1), program(w, PRESETS[name], 2)
        assert torch.equal(a, b) and not torch.equal(a, c), name
        assert torch.equal(a[w == 0], w[w == 0]), name                 # no synapse, no device
        err = (a - w)[w != 0]
        assert 0 < err.std() < 0.3 * w.abs().max(), name
    mosaic_err = (program(w, PRESETS["mosaic"], 3) - w)[w != 0].std()
    assert abs(mosaic_err / (0.05 * w.abs().max()) - 1) < 0.1          # sigma = 0.05 max|W|
    # with few levels, the noiseless mapping lands on the level grid
    coarse = Device("coarse", levels=4, model="gaussian", relative_sigma=0.0, g_max=30.0)
    realised = program(w, coarse, 0)
    step = w.abs().max() / 3
    assert torch.allclose(realised / step, torch.round(realised / step), atol=1e-4)
    with pytest.raises(ConfigError, match="levels=1 is not allowed"):
        Device("x", levels=1)


def test_noise_injection_is_straight_through():
    w = (torch.randn(10, 10) * 20).requires_grad_(True)
    for name in ("mosaic", "reram-wan2022"):
        y = noisy_weights(w, PRESETS[name], torch.Generator().manual_seed(0))
        assert not torch.equal(y.detach(), w.detach())
        (g,) = torch.autograd.grad((y * 3).sum(), w)
        assert torch.equal(g, torch.full_like(w, 3.0))


def test_connectivity_export_matches_the_weights():
    from neuromosaic.model.mosaic import export_connectivity, hop_matrix
    g = torch.Generator().manual_seed(5)
    w = torch.randint(-3, 4, (16, 16), generator=g) * (torch.rand(16, 16, generator=g) < 0.3)
    e = export_connectivity(w, 2, 2)
    assert e["grid"] == [2, 2] and e["neurons_per_tile"] == 4 and e["tile_of_neuron"][5] == 1
    h = hop_matrix(2, 2)
    rebuilt = torch.zeros(16, 16, dtype=torch.bool)
    for src in e["sources"]:
        pre, tile = src["neuron"], src["tile"]
        for q in src["local_targets"]:
            assert e["tile_of_neuron"][q] == tile
            rebuilt[q, pre] = True
        for r in src["remote_tiles"]:
            assert r["tile"] != tile and r["hops"] == int(h[tile, r["tile"]]) and r["targets"]
            for q in r["targets"]:
                assert e["tile_of_neuron"][q] == r["tile"]
                rebuilt[q, pre] = True
    assert torch.equal(rebuilt, w != 0)             # every connection, and no other, is in the export
    assert e["stats"]["nonzero"] == int((w != 0).sum())
