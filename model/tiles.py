"""The SRNN on a Mosaic of neuron tiles: how the network is cut into tiles, what each tile's
LIF core holds, how its weights are loaded, and the routing tables of its recurrent connectivity.

Partition. The ``rows x cols`` tiles (row-major) hold consecutive blocks of ``neurons_per_tile`` hidden
neurons (``model.mosaic.tile_of``). Tile t's LIF core (:attr:`MosaicConfig.tile_core`) has the tile's
neurons and every input of the network (``channels`` external channels, then the ``neurons`` hidden
neurons by global address) and holds rows ``t * n .. t * n + n - 1`` of ``[W_in | W_rec]``, with the
network's lanes and widths.

A timestep keeps the order of ``model.snn.IntegerSRNN`` for every neuron. The host's external events go
to every tile. Its TICK is taken once every tile has finished the previous step and the mesh is empty;
each tile then replays the previous step's spikes that reached it (its own, and those the mesh
delivered) in ascending global address, and the TICK. A tile receives only the sources with a synapse in
it (the routing tables are compiled from the non-zero recurrent weights); every other source has zero
weight onto its neurons, and adding a zero to a saturated sum changes nothing, so every neuron sees
the model's additions in the model's order: the spikes are the model's, bit for bit. The hidden spikes
of a step reach the readout tile by tile (ascending tiles, each ascending), then one TICK: the stream
of the single core.

The readout and its learning engine are one per chip: the readout integrates the weighted spikes of
every neuron with saturation at each step, which no split into per-tile partial states reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import ConfigError, Field, LIFConfig, bits_for, pack_fields
from .router import MeshConfig, RoutingTables, compile_routes, destination_tiles
from .snn import SRNNConfig

__all__ = ["MosaicConfig", "mosaic_tables"]


@dataclass(frozen=True)
class MosaicConfig:
    """An :class:`SRNNConfig` spread over the tiles of a :class:`MeshConfig` (``mesh.sources`` must be
    the network's neuron count)."""
    network: SRNNConfig
    mesh: MeshConfig

    def __post_init__(self):
        n, mesh = self.network.neurons, self.mesh
        if mesh.sources != n:
            raise ConfigError(f"a {mesh.rows}x{mesh.cols} mesh of {mesh.neurons_per_tile} neurons per tile holds "
                              f"{mesh.sources} neurons, the network has {n}; allowed: tiles x neurons per tile = {n}.")
        lanes = self.network.core.lanes
        if mesh.neurons_per_tile % lanes:
            raise ConfigError(f"{mesh.neurons_per_tile} neurons per tile do not split into the core's lanes={lanes}; "
                              f"allowed: a multiple of {lanes} neurons per tile.")

    @classmethod
    def make(cls, network: SRNNConfig, rows: int, cols: int, **mesh) -> "MosaicConfig":
        """The network on a ``rows x cols`` grid (``mesh``: the other :class:`MeshConfig` settings)."""
        tiles = rows * cols
        if rows < 1 or cols < 1 or network.neurons % tiles:
            raise ConfigError(f"a {rows}x{cols} grid does not split {network.neurons} neurons; allowed: a grid "
                              f"whose tile count divides {network.neurons}.")
        return cls(network, MeshConfig(rows, cols, network.neurons // tiles, **mesh))

    @property
    def tiles(self) -> int:
        return self.mesh.tiles

    @property
    def neurons_per_tile(self) -> int:
        return self.mesh.neurons_per_tile

    @property
    def tile_core(self) -> LIFConfig:
        """Each tile's LIF core: its neurons, every input of the network."""
        return self.network.core.replace(neurons=self.neurons_per_tile)

    def tile_rows(self, t: int) -> slice:
        n = self.neurons_per_tile
        return slice(t * n, (t + 1) * n)

    def tile_weights(self, w_core, t: int) -> torch.Tensor:
        """Tile ``t``'s rows of the network's ``[neurons, channels + neurons]`` weights."""
        w = torch.as_tensor(w_core)
        self.network.core.check_weights(w)
        return w[self.tile_rows(t)]

    @property
    def core_load_fields(self) -> tuple[Field, ...]:
        """A load of one tile's weight word: the tile, then its core's ``weight_load_fields``."""
        return (Field("tile", bits_for(self.tiles)),) + self.tile_core.weight_load_fields

    def core_load_words(self, w_core) -> list[int]:
        """The packed loads that write ``w_core`` ``[neurons, channels + neurons]`` into every tile."""
        core, fields = self.tile_core, self.core_load_fields
        return [pack_fields(fields, {"tile": t, "address": a, "data": d})
                for t in range(self.tiles) for a, d in enumerate(core.weight_words(self.tile_weights(w_core, t)))]

    def to_dict(self) -> dict:
        return {"network": self.network.to_dict(), "mesh": self.mesh.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> "MosaicConfig":
        return cls(SRNNConfig.from_dict(d["network"]), MeshConfig.from_dict(d["mesh"]))


def mosaic_tables(mc: MosaicConfig, w_rec=None) -> RoutingTables:
    """Routing tables for the recurrent weights ``w_rec`` [post, pre] (its non-zero entries), or, without
    them, for every source to every other tile (correct for any weights, at the cost of traffic)."""
    mesh = mc.mesh
    if w_rec is None:
        every = [[t for t in range(mesh.tiles) if t != s // mesh.neurons_per_tile] for s in range(mesh.sources)]
        return compile_routes(mesh, every)
    return compile_routes(mesh, destination_tiles(torch.as_tensor(w_rec), mesh))
