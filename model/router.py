"""The Mosaic mesh (seed 000): geometry, the routing compiler and the cycle-level router model.

Geometry (``model.mosaic``; EIS-Hub routing code). A ``rows x cols`` grid of neuron tiles sits on a
full grid of ``(2 rows + 1) x (2 cols + 1)`` cells: tile ``(r, c)`` at cell ``(2r + 1, 2c + 1)``,
every other cell a router, between-tile routers (one odd coordinate) and corner routers (both even).
Every cell has the ports N, E, S, W (in and out) that face a cell of the grid.

**Routes.** A spike leaves its tile as an address event (the global source neuron) and is delivered
to every other tile that holds one of its targets (intra-tile connections never leave the tile). The
routes of one source form a tree in which every router cell is entered at most once, so a router's
table is indexed by the source alone, and every path turns at most once between routers:

* a tile directly north or south: into the between-tile router on that side, then into the tile;
* every other destination in the source's column or to its east: into the east *spine*, the router
  column ``x = 2c + 2``; along it north or south; a tile in column ``c`` or ``c + 1`` is entered from
  the spine (west or east); a tile further east is reached along a *branch*, the router row next to
  its row on the source's side (the row above it when it lies south or level, below it when north),
  turning off the spine once and entering the tile from that row;
* destinations to the west: the mirror image through the west spine ``x = 2c``.

Each destination's path crosses exactly ``H[source tile, destination tile]`` routers (the hop matrix of
``model.mosaic``).

**Router (cycle level).** The RTL in ``rtl/router.py`` implements exactly this, register for
register. Each in-port has an ingress register and a FIFO of ``fifo_depth`` entries; the port is
ready while ``fifo entries + ingress valid < fifo_depth`` (registered state only, so no ready path
runs combinationally through a router). An accepted event waits one cycle in the ingress register,
during which its in-port's table (indexed by source address, one bit per out-port) is read; it then
enters the FIFO with its out-port mask. Each out-port has a one-entry output register (valid and
payload held until the neighbour takes them) and a round-robin pointer over the in-ports: when its
register is empty or being emptied, it takes the head of the first in-port, from the pointer on,
whose head still needs this out-port, and the pointer moves past that in-port. A head leaves its FIFO
in the cycle its last needed out-port takes it (at once for an empty mask). So an event crosses a
router in three cycles when nothing blocks it, and every out-port sends one event per cycle.

A tile connects through two such routers: an *injector* (in-port L: the core's spikes; out-ports:
the tile's sides) and a *merger* (in-ports: the tile's sides; out-port L: the core). A merger has no
table: the routes bring a tile only sources it takes, so every event that reaches it is delivered.

**What is built.** Only the nodes, in-ports, out-ports and turns that some route can use exist
(:func:`mesh_nodes`), and an in-port's table keeps only the sources of the tiles whose routes enter
there; a table entry outside these is dropped when loaded, in this model as in the RTL.
"""

from __future__ import annotations

import functools
import random
from collections import Counter, deque
from dataclasses import dataclass, field

import torch

from .config import ConfigError, Field, _check_int, bits_for
from .mosaic import hop_matrix, tile_of

__all__ = ["N", "E", "S", "W", "DIRECTIONS", "LOCAL", "MeshConfig", "RoutingTables", "RoutingError",
           "compile_routes", "RouterModel", "MeshModel", "routing_report", "destination_tiles", "route_tree",
           "mesh_links", "node_order", "mesh_nodes", "NodePorts", "node_tables", "node_mask", "full_ports",
           "table_write_fields", "mesh_table_fields", "table_writes", "run_traffic", "routing_energy"]

N, E, S, W = range(4)
DIRECTIONS = "NESW"
LOCAL = "L"
_STEP = {N: (-1, 0), E: (0, 1), S: (1, 0), W: (0, -1)}


def opposite(d: int) -> int:
    return (d + 2) % 4


class RoutingError(ConfigError):
    """Connectivity that the routers cannot carry within their capacities."""


@dataclass(frozen=True)
class MeshConfig:
    """The mesh: the tile grid, neurons per tile (source addresses are the global neuron indices,
    tile-major), each router in-port's FIFO depth, and the capacities of the compiler: the most
    distinct sources one port of a tile, a between-tile router and a corner router may carry (the
    Mosaic routing crossbars' sizes; defaults from the routing-aware training notebook, Nt=32, R_1=32,
    R_0=8)."""
    rows: int = 2
    cols: int = 2
    neurons_per_tile: int = 16
    fifo_depth: int = 4
    tile_capacity: int = 32
    between_capacity: int = 32
    corner_capacity: int = 8

    def __post_init__(self):
        _check_int("rows", self.rows, 1, 64)
        _check_int("cols", self.cols, 1, 64)
        _check_int("neurons_per_tile", self.neurons_per_tile, 1, 1 << 12)
        _check_int("fifo_depth", self.fifo_depth, 1, 64)
        for name in ("tile_capacity", "between_capacity", "corner_capacity"):
            _check_int(name, getattr(self, name), 0, 1 << 20)

    @property
    def tiles(self) -> int:
        return self.rows * self.cols

    @property
    def sources(self) -> int:
        return self.tiles * self.neurons_per_tile

    @property
    def address_bits(self) -> int:
        return bits_for(self.sources)

    @property
    def shape(self) -> tuple[int, int]:
        """The full grid of cells."""
        return 2 * self.rows + 1, 2 * self.cols + 1

    def tile_cell(self, tile: int) -> tuple[int, int]:
        return 2 * (tile // self.cols) + 1, 2 * (tile % self.cols) + 1

    def cell_tile(self, cell: tuple[int, int]) -> int | None:
        y, x = cell
        return (y // 2) * self.cols + x // 2 if y % 2 and x % 2 else None

    def routers(self) -> list[tuple[int, int]]:
        """Router cells, row-major over the full grid."""
        h, w = self.shape
        return [(y, x) for y in range(h) for x in range(w) if not (y % 2 and x % 2)]

    def router_kind(self, cell: tuple[int, int]) -> str:
        return "corner" if cell[0] % 2 == 0 and cell[1] % 2 == 0 else "between"

    def ports(self, cell: tuple[int, int]) -> tuple[int, ...]:
        """The directions in which ``cell`` has a neighbour cell."""
        h, w = self.shape
        return tuple(d for d in range(4) if 0 <= cell[0] + _STEP[d][0] < h and 0 <= cell[1] + _STEP[d][1] < w)

    def neighbour(self, cell, d: int) -> tuple[int, int]:
        return cell[0] + _STEP[d][0], cell[1] + _STEP[d][1]

    def capacity(self, cell) -> int:
        if self.cell_tile(cell) is not None:
            return self.tile_capacity
        return self.corner_capacity if self.router_kind(cell) == "corner" else self.between_capacity

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "MeshConfig":
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(f"unknown mesh setting(s) {sorted(unknown)}; allowed: "
                              f"{sorted(cls.__dataclass_fields__)}.")
        return cls(**d)


# -- routes ---------------------------------------------------------------------------------------------

def _walk(mesh: MeshConfig, cell, d: int, steps: int, hops: list) -> tuple[int, int]:
    for _ in range(steps):
        hops.append((cell, d))
        cell = mesh.neighbour(cell, d)
    return cell


def route_path(mesh: MeshConfig, src_tile: int, dst_tile: int) -> tuple[int, list]:
    """The path of one destination: the tile's exit side and the list of (router cell, out-port)
    it takes, the last of which enters the destination tile."""
    (y0, x0), (y1, x1) = mesh.tile_cell(src_tile), mesh.tile_cell(dst_tile)
    if src_tile == dst_tile:
        raise ConfigError(f"tile {src_tile} routes nothing to itself; intra-tile connections stay in the tile.")
    hops: list = []
    if x0 == x1 and abs(y1 - y0) == 2:                       # the tile straight north or south
        d = S if y1 > y0 else N
        _walk(mesh, mesh.neighbour((y0, x0), d), d, 1, hops)
        return d, hops
    east = x1 >= x0
    side = E if east else W
    cell = mesh.neighbour((y0, x0), side)                    # onto the spine
    spine_x = cell[1]
    if abs(x1 - spine_x) == 1:                               # the tile is beside the spine
        vertical = S if y1 > y0 else N
        cell = _walk(mesh, cell, vertical, abs(y1 - y0), hops)
        hops.append((cell, E if x1 > spine_x else W))
        return side, hops
    branch_y = y1 - 1 if y1 >= y0 else y1 + 1               # the router row beside the tile, source side
    cell = _walk(mesh, cell, S if branch_y > y0 else N, abs(branch_y - y0), hops)
    cell = _walk(mesh, cell, side, abs(x1 - spine_x), hops)
    hops.append((cell, S if branch_y < y1 else N))
    return side, hops


def destination_tiles(w_rec: torch.Tensor, mesh: MeshConfig) -> list[list[int]]:
    """Per source neuron, the other tiles holding one of its targets (``w_rec`` is [post, pre])."""
    if tuple(w_rec.shape) != (mesh.sources, mesh.sources):
        raise ConfigError(f"a recurrent matrix of shape {tuple(w_rec.shape)} does not fit a {mesh.rows}x{mesh.cols} "
                          f"mesh of {mesh.neurons_per_tile} neurons per tile; allowed: "
                          f"{mesh.sources}x{mesh.sources}.")
    t = tile_of(mesh.sources, mesh.tiles)
    nz = w_rec != 0
    out = []
    for pre in range(mesh.sources):
        tiles = set(t[nz[:, pre]].tolist()) - {int(t[pre])}
        out.append(sorted(tiles))
    return out


def route_tree(mesh: MeshConfig, source: int, tiles) -> tuple[set, dict]:
    """The multicast tree of one source: the tile's exit sides and {router cell: out-ports}."""
    src_tile = source // mesh.neurons_per_tile
    exits, cells = set(), {}
    for dst in tiles:
        side, hops = route_path(mesh, src_tile, dst)
        exits.add(side)
        for cell, d in hops:
            cells.setdefault(cell, set()).add(d)
    return exits, cells


@dataclass(frozen=True)
class NodePorts:
    """The ports of one mesh node that the routing can use: in-port and out-port names (N, E, S, W or
    L); per in-port, the out-ports an event entering there may leave by (``turns``) and the tiles whose
    spikes can enter there (``tiles``, ascending: its table holds only their sources)."""
    ins: tuple
    outs: tuple
    turns: dict
    tiles: dict

    def allowed(self, p: int) -> tuple[int, ...]:
        """The indices (into ``outs``) of the out-ports in-port ``p`` may use, ascending."""
        return tuple(q for q, o in enumerate(self.outs) if o in self.turns[self.ins[p]])


@functools.lru_cache(maxsize=64)
def mesh_nodes(mesh: MeshConfig) -> dict:
    """Every node that the routes of ``route_path`` can use, {node key: :class:`NodePorts`}, in
    ``node_order``: a router cell appears when some route crosses it, with only the in-ports such
    routes enter by and the out-ports they leave by; an injector with the sides routes leave its tile
    by, a merger with the sides they enter it by. A router the routing cannot reach is not built (of
    the 65 routers of a 4 x 4 mesh, 47 are used, with 260 of the 796 turns of their full ports)."""
    turns: dict = {}                      # node key -> {in name: set of out names}
    tiles: dict = {}                      # node key -> {in name: set of source tiles}
    for s in range(mesh.tiles):
        for d in range(mesh.tiles):
            if s == d:
                continue
            side, hops = route_path(mesh, s, d)
            steps = [(("inject", s), LOCAL, DIRECTIONS[side])]
            came = opposite(side)
            for cell, out in hops:
                steps.append((("router", cell), DIRECTIONS[came], DIRECTIONS[out]))
                came = opposite(out)
            steps.append((("merge", d), DIRECTIONS[came], LOCAL))
            for key, into, out in steps:
                turns.setdefault(key, {}).setdefault(into, set()).add(out)
                tiles.setdefault(key, {}).setdefault(into, set()).add(s)
    order = "NESW" + LOCAL
    nodes = {}
    for key in node_order(mesh):
        if key in turns:
            per = turns[key]
            ins = tuple(sorted(per, key=order.index))
            outs = tuple(sorted(set().union(*per.values()), key=order.index))
            nodes[key] = NodePorts(ins, outs, {p: frozenset(per[p]) for p in ins},
                                   {p: tuple(sorted(tiles[key][p])) for p in ins})
    return nodes


def full_ports(mesh: MeshConfig, key) -> tuple[tuple, tuple]:
    """A node's in-port and out-port names over every neighbour cell (the table writes' indexing)."""
    kind, where = key
    if kind == "router":
        ports = tuple(DIRECTIONS[d] for d in mesh.ports(where))
        return ports, ports
    sides = tuple(DIRECTIONS[d] for d in mesh.ports(mesh.tile_cell(where)))
    return ((LOCAL,), sides) if kind == "inject" else (sides, (LOCAL,))


def node_mask(mesh: MeshConfig, key, in_port: str, mask: int) -> int:
    """A table mask over a node's full out-ports (as compiled and written) as the used node keeps it:
    over ``mesh_nodes``' out-ports, only the turns ``in_port`` can take (the others dropped)."""
    node = mesh_nodes(mesh)[key]
    full = full_ports(mesh, key)[1]
    return sum(1 << q for q, o in enumerate(node.outs)
               if o in node.turns[in_port] and o in full and mask >> full.index(o) & 1)


def node_tables(tables: "RoutingTables", key) -> list[dict]:
    """The tables of a used node, per in-port of ``mesh_nodes``: {source: mask over its out-ports},
    for the sources of the tiles that can enter there (an entry for another source is not kept);
    empty for a merger, which has none."""
    mesh = tables.mesh
    node = mesh_nodes(mesh)[key]
    kind, where = key
    if kind == "merge":                   # a merger has no table
        return [{} for _ in node.ins]
    if kind == "router":
        per = {DIRECTIONS[d]: t for d, t in tables.routers.get(where, {}).items()}
    else:
        per = {LOCAL: tables.injectors.get(where, {})}
    out = []
    for p in node.ins:
        masks = {s: node_mask(mesh, key, p, m) for s, m in per.get(p, {}).items()
                 if s // mesh.neurons_per_tile in node.tiles[p]}
        out.append({s: m for s, m in masks.items() if m})
    return out


@dataclass
class RoutingTables:
    """The compiled routes: per router cell and in-port, {source: out-port mask}; per tile, the
    injector's {source: side mask} and the merger's {side: sources it takes}. Masks are over the
    node's out-ports in N, E, S, W order (bit i = the i-th existing out-port)."""
    mesh: MeshConfig
    destinations: list                    # per source, its destination tiles
    routers: dict = field(default_factory=dict)     # cell -> in-port dir -> {source: mask}
    injectors: dict = field(default_factory=dict)   # tile -> {source: mask}
    mergers: dict = field(default_factory=dict)     # tile -> in-port dir -> {source: 1}
    usage: dict = field(default_factory=dict)       # (cell, "in"|"out", dir) -> distinct sources

    def mask_bits(self, ports, dirs) -> int:
        return sum(1 << i for i, d in enumerate(ports) if d in dirs)


def compile_routes(mesh: MeshConfig, destinations) -> RoutingTables:
    """Routing tables for ``destinations`` (per source neuron, the other tiles its spikes must reach).
    Raises :class:`RoutingError` naming the first port whose distinct sources exceed its capacity."""
    if len(destinations) != mesh.sources:
        raise ConfigError(f"{len(destinations)} sources given for a mesh of {mesh.sources} neurons; allowed: exactly "
                          f"{mesh.sources}.")
    tables = RoutingTables(mesh, [sorted(set(int(t) for t in d)) for d in destinations])
    usage: Counter = Counter()
    for source, tiles in enumerate(tables.destinations):
        src_tile = source // mesh.neurons_per_tile
        for t in tiles:
            if not 0 <= t < mesh.tiles:
                raise ConfigError(f"source {source} names tile {t}; allowed: 0..{mesh.tiles - 1}.")
        if not tiles:
            continue
        exits, cells = route_tree(mesh, source, tiles)
        tile_cell = mesh.tile_cell(src_tile)
        tables.injectors.setdefault(src_tile, {})[source] = tables.mask_bits(mesh.ports(tile_cell), exits)
        for d in exits:
            usage[(tile_cell, "out", d)] += 1
        for cell, outs in cells.items():
            came = _entry_port(mesh, cell, source, exits, cells)
            usage[(cell, "in", came)] += 1
            tables.routers.setdefault(cell, {}).setdefault(came, {})[source] = \
                tables.mask_bits(mesh.ports(cell), outs)
            for d in outs:
                usage[(cell, "out", d)] += 1
                nxt = mesh.neighbour(cell, d)
                tile = mesh.cell_tile(nxt)
                if tile is not None:
                    usage[(nxt, "in", opposite(d))] += 1
                    tables.mergers.setdefault(tile, {}).setdefault(opposite(d), {})[source] = 1
    tables.usage = dict(usage)
    for (cell, way, d), n in sorted(usage.items()):
        cap = mesh.capacity(cell)
        if n > cap:
            tile = mesh.cell_tile(cell)
            what = f"tile {tile}" if tile is not None else f"the {mesh.router_kind(cell)} router at cell {cell}"
            raise RoutingError(f"port {way}_{DIRECTIONS[d]} of {what} would carry {n} distinct sources; "
                               "allowed: at most "
                               f"{cap} (raise its capacity, use a larger grid, or prune long connections).")
    return tables


def _entry_port(mesh, cell, source, exits, cells) -> int:
    """The in-port through which a source's tree enters ``cell`` (unique: the tree has no merges)."""
    src_cell = mesh.tile_cell(source // mesh.neurons_per_tile)
    found = []
    for side in range(4):                 # the in-port on ``side`` takes what its neighbour sends towards us
        prev, move = mesh.neighbour(cell, side), opposite(side)
        if (prev == src_cell and move in exits) or move in cells.get(prev, ()):
            found.append(side)
    assert len(found) == 1, (cell, source, found)
    return found[0]


# -- the cycle-level router ------------------------------------------------------------------------------

class RouterModel:
    """One router (or a tile's injector or merger), cycle by cycle, as ``rtl.router.Router``.

    ``in_ports`` / ``out_ports`` are names ("N", "E", "S", "W" or "L"); ``tables[in-port index]`` maps a
    source to its out-port mask (absent sources read 0). With ``takes_all`` there are no tables: every
    event leaves by every out-port (a tile's merger: the routes bring it only what its core takes).
    Outputs are functions of the state alone (:meth:`in_ready`, :attr:`out_valid`, :attr:`out_addr`);
    :meth:`tick` advances one clock edge."""

    def __init__(self, in_ports, out_ports, fifo_depth: int, tables=None, takes_all: bool = False):
        self.in_ports, self.out_ports, self.depth = tuple(in_ports), tuple(out_ports), fifo_depth
        self.takes_all = takes_all
        self.tables = [dict(t) for t in (tables or [{} for _ in self.in_ports])]
        n_in, n_out = len(self.in_ports), len(self.out_ports)
        self.ing_valid = [False] * n_in
        self.ing_addr = [0] * n_in
        self.fifo = [deque() for _ in range(n_in)]
        self.done = [0] * n_in
        self.out_valid = [False] * n_out
        self.out_addr = [0] * n_out
        self.rr = [0] * n_out

    def in_ready(self, p: int) -> bool:
        return len(self.fifo[p]) + self.ing_valid[p] < self.depth

    def occupancy(self) -> int:
        return sum(len(f) + v for f, v in zip(self.fifo, self.ing_valid)) + sum(self.out_valid)

    def tick(self, in_valid, in_addr, out_ready) -> tuple[list, list]:
        """One clock edge. Returns the handshakes of this cycle: [(in-port, addr)], [(out-port, addr)]."""
        n_in = len(self.in_ports)
        accepted = [(p, in_addr[p]) for p in range(n_in) if in_valid[p] and self.in_ready(p)]
        sent = [(q, self.out_addr[q]) for q in range(len(self.out_ports)) if self.out_valid[q] and out_ready[q]]
        need = [(self.fifo[p][0][1] & ~self.done[p]) if self.fifo[p] else 0 for p in range(n_in)]
        granted = [0] * n_in
        for q in range(len(self.out_ports)):
            if self.out_valid[q] and not out_ready[q]:
                continue
            winner = next((p for p in ((self.rr[q] + i) % n_in for i in range(n_in)) if need[p] >> q & 1), None)
            if winner is None:
                self.out_valid[q] = False
                continue
            self.out_valid[q], self.out_addr[q] = True, self.fifo[winner][0][0]
            self.rr[q] = (winner + 1) % n_in
            granted[winner] |= 1 << q
        for p in range(n_in):
            if self.fifo[p]:
                if need[p] & ~granted[p] == 0:
                    self.fifo[p].popleft()
                    self.done[p] = 0
                else:
                    self.done[p] |= granted[p]
            if self.ing_valid[p]:
                every = (1 << len(self.out_ports)) - 1
                mask = every if self.takes_all else self.tables[p].get(self.ing_addr[p], 0)
                self.fifo[p].append((self.ing_addr[p], mask))
            self.ing_valid[p] = False
        for p, addr in accepted:
            self.ing_valid[p], self.ing_addr[p] = True, addr
        return accepted, sent


# -- the mesh ----------------------------------------------------------------------------------------------

class MeshModel:
    """Every router of a mesh plus each tile's injector and merger, connected, cycle by cycle.

    Nodes are ``("router", cell)``, ``("inject", tile)`` and ``("merge", tile)``; ``links`` lists
    every connection ``(from node, out-port index) -> (to node, in-port index)`` in a fixed order (the
    RTL's link-monitor order). :meth:`tick` takes the tiles' offered spikes and the cores' ready and
    returns every handshake of the cycle."""

    def __init__(self, tables: RoutingTables):
        mesh = self.mesh = tables.mesh
        self.nodes: dict = {key: RouterModel(node.ins, node.outs, mesh.fifo_depth, node_tables(tables, key),
                                             takes_all=key[0] == "merge")
                            for key, node in mesh_nodes(mesh).items()}
        self.links = mesh_links(mesh)
        self.cycle = 0

    def tick(self, offered, core_ready) -> dict:
        """``offered[t]``: the source address tile ``t`` offers its injector (None for none);
        ``core_ready[t]``: whether tile ``t``'s core takes a delivered event. Returns {"inject": [(t,
        addr)], "deliver": [(t, addr)], "links": [(link index, addr)]} for this cycle."""
        inputs = {key: ([False] * len(n.in_ports), [0] * len(n.in_ports)) for key, n in self.nodes.items()}
        readies = {key: [False] * len(n.out_ports) for key, n in self.nodes.items()}
        for (src, q), (dst, p) in self.links:
            a, b = self.nodes[src], self.nodes[dst]
            inputs[dst][0][p], inputs[dst][1][p] = a.out_valid[q], a.out_addr[q]
            readies[src][q] = b.in_ready(p)
        for t in range(self.mesh.tiles):
            if offered[t] is not None and ("inject", t) in inputs:
                inputs[("inject", t)][0][0], inputs[("inject", t)][1][0] = True, offered[t]
            if ("merge", t) in readies:
                readies[("merge", t)][0] = bool(core_ready[t])
        fired = {}
        for key, node in self.nodes.items():
            fired[key] = node.tick(inputs[key][0], inputs[key][1], readies[key])
        # A tile without an injector (no route leaves it: a 1 x 1 mesh) has its spikes taken at once.
        injected = [(t, a) for t in range(self.mesh.tiles) if ("inject", t) in fired
                    for _, a in fired[("inject", t)][0]]
        injected += [(t, offered[t]) for t in range(self.mesh.tiles)
                     if ("inject", t) not in fired and offered[t] is not None]
        result = {"inject": sorted(injected),
                  "deliver": [(t, a) for t in range(self.mesh.tiles) if ("merge", t) in fired
                              for _, a in fired[("merge", t)][1]],
                  "links": []}
        for i, ((src, q), _) in enumerate(self.links):
            for qq, a in fired[src][1]:
                if qq == q:
                    result["links"].append((i, a))
        self.cycle += 1
        return result

    def idle(self) -> bool:
        return all(n.occupancy() == 0 for n in self.nodes.values())


def mesh_links(mesh: MeshConfig) -> list:
    """Every directed connection between the nodes of ``mesh_nodes`` in a fixed order: for each node
    in ``node_order`` (routers row-major, then the injectors), its out-ports in N, E, S, W order;
    ``(from node, out-port index) -> (to node, in-port index)``."""
    nodes = mesh_nodes(mesh)
    links = []
    for key, node in nodes.items():
        if key[0] == "merge":
            continue
        cell = key[1] if key[0] == "router" else mesh.tile_cell(key[1])
        for q, name in enumerate(node.outs):
            d = DIRECTIONS.index(name)
            nxt = mesh.neighbour(cell, d)
            tile = mesh.cell_tile(nxt)
            dst = ("router", nxt) if tile is None else ("merge", tile)
            links.append(((key, q), (dst, nodes[dst].ins.index(DIRECTIONS[opposite(d)]))))
    return links


def node_order(mesh: MeshConfig) -> list:
    """The nodes of a mesh in table-write order: routers (row-major), then injectors, then mergers."""
    return ([("router", c) for c in mesh.routers()] + [("inject", t) for t in range(mesh.tiles)]
            + [("merge", t) for t in range(mesh.tiles)])


def table_write_fields(in_ports: int, out_ports: int, sources: int) -> tuple[Field, ...]:
    """A router's table write: which in-port's table, the source address, the out-port mask."""
    return (Field("port", bits_for(in_ports)), Field("source", bits_for(sources)), Field("mask", out_ports))


def mesh_table_fields(mesh: MeshConfig) -> tuple[Field, ...]:
    """A table write on the mesh: the node (``node_order``), then a router's fields (masks of 4 bits,
    the widest node; narrower nodes take the low bits)."""
    return (Field("node", bits_for(len(node_order(mesh)))),) + table_write_fields(4, 4, mesh.sources)


def table_writes(tables: RoutingTables, *, every_source: bool = False) -> list[dict]:
    """Every non-zero table entry of compiled routes as mesh table writes (what the host loads): the
    routers' and the injectors'; a merger has no table (it delivers whatever reaches it). With
    ``every_source`` the zero entries too, for every source at every table (a node ignores a write
    of a source it keeps no row for): a load that leaves nothing of what the tables held before."""
    mesh, writes = tables.mesh, []
    for i, (kind, where) in enumerate(node_order(mesh)):
        if kind == "router":
            per = [tables.routers.get(where, {}).get(d, {}) for d in mesh.ports(where)]
        elif kind == "inject":
            per = [tables.injectors.get(where, {})]
        else:
            continue
        for p, entries in enumerate(per):
            if every_source:
                entries = {s: entries.get(s, 0) for s in range(mesh.sources)}
            for source, mask in sorted(entries.items()):
                if mask or every_source:
                    writes.append({"node": i, "port": p, "source": source, "mask": mask})
    return writes


# -- traffic and the report -----------------------------------------------------------------------------

def run_traffic(tables: RoutingTables, spikes, *, seed: int = 0, backpressure: float = 0.0, max_cycles: int = 10 ** 6,
                on_cycle=None) -> dict:
    """Injects ``spikes`` (per tile, a list of (earliest cycle, source) in order) into a
    :class:`MeshModel`, with the cores refusing a delivery with probability ``backpressure``; runs
    until every event is delivered. Returns the deliveries, the latencies (from the injection, and
    from the earliest cycle, queueing at the source included) and the per-link counts; raises
    ConfigError if an event is lost or duplicated (which would be a model bug)."""
    mesh = tables.mesh
    model = MeshModel(tables)
    rng = random.Random(seed)
    queues = [deque(s) for s in spikes]
    pending: dict = {}                    # (destination tile, source) -> (injection, earliest) cycles in flight
    latencies, offered_latencies, deliveries, expected, link_counts = [], [], Counter(), Counter(), Counter()
    while any(queues) or not model.idle():
        if model.cycle >= max_cycles:
            raise ConfigError(f"traffic did not drain in {max_cycles} cycles; allowed: a run that drains.")
        offered = [q[0][1] if q and q[0][0] <= model.cycle else None for q in queues]
        ready = [rng.random() >= backpressure for _ in range(mesh.tiles)]
        cycle = model.cycle
        fired = model.tick(offered, ready)
        if on_cycle:
            on_cycle(cycle, offered, ready, fired)
        for t, a in fired["inject"]:
            earliest, _ = queues[t].popleft()
            for d in tables.destinations[a]:
                expected[(d, a)] += 1
                pending.setdefault((d, a), deque()).append((cycle, earliest))
        for t, a in fired["deliver"]:
            deliveries[(t, a)] += 1
            if pending.get((t, a)):
                injected, earliest = pending[(t, a)].popleft()
                latencies.append(cycle - injected)
                offered_latencies.append(cycle - earliest)
        for i, _ in fired["links"]:
            link_counts[i] += 1
    if deliveries != expected:
        raise ConfigError("deliveries differ from the connectivity (an event lost or duplicated).")
    return {"cycles": model.cycle, "deliveries": sum(deliveries.values()), "latencies": latencies,
            "offered_latencies": offered_latencies, "link_counts": link_counts}


def routing_report(tables: RoutingTables, spike_counts=None) -> dict:
    """The compiler's report: connections and delivered destinations per hop count, port usage
    (distinct sources) against capacity, and router table memory. With ``spike_counts`` (per source)
    the port loads in events and the router traversals are counted too."""
    mesh = tables.mesh
    h = hop_matrix(mesh.rows, mesh.cols)
    hops = Counter()
    for source, tiles in enumerate(tables.destinations):
        for t in tiles:
            hops[int(h[source // mesh.neurons_per_tile, t])] += 1
    ports = []
    for (cell, way, d), n in sorted(tables.usage.items()):
        tile = mesh.cell_tile(cell)
        ports.append({"cell": list(cell), "node": f"tile {tile}" if tile is not None else mesh.router_kind(cell),
                      "port": f"{way}_{DIRECTIONS[d]}", "sources": n, "capacity": mesh.capacity(cell)})
    table_bits = sum(len(mesh.ports(c)) ** 2 * mesh.sources for c in mesh.routers())
    used = sum(len(per) for per_cell in tables.routers.values() for per in per_cell.values())
    report = {"grid": [mesh.rows, mesh.cols], "neurons_per_tile": mesh.neurons_per_tile, "sources": mesh.sources,
              "routers": len(mesh.routers()), "routed_sources": sum(1 for d in tables.destinations if d),
              "tile_destinations_per_hop": {str(k): v for k, v in sorted(hops.items())},
              "mean_hops": (sum(k * v for k, v in hops.items()) / max(1, sum(hops.values()))),
              "ports": ports,
              "max_port_sources": max((p["sources"] for p in ports), default=0),
              "router_memory": {"table_bits_total": table_bits, "table_bits_per_router_max":
                                max(len(mesh.ports(c)) ** 2 * mesh.sources for c in mesh.routers()),
                                "table_entries_used": used,
                                "fifo_bits_per_router_max": 4 * mesh.fifo_depth * (mesh.address_bits + 4)}}
    if spike_counts is not None:
        report["traversals"] = sum(int(spike_counts[s]) * len(route_tree(mesh, s, d)[1])
                                   for s, d in enumerate(tables.destinations) if d)
    return report


def _traversal_pj(mesh: MeshConfig, n_out: int, sends: int, energy) -> float:
    """One event through one node: its in-port table read, the FIFO write and read, and a write of
    the output register of each of the ``sends`` out-ports it takes (memories of this mesh's sizes)."""
    from .synapse import PhysicalMemory
    a = mesh.address_bits
    table = PhysicalMemory("table", mesh.sources, n_out)
    fifo = PhysicalMemory("fifo", mesh.fifo_depth, a + n_out)
    out = PhysicalMemory("out", 1, a)
    return (energy.access_pj(table) + energy.access_pj(fifo, write=True) + energy.access_pj(fifo)
            + sends * energy.access_pj(out, write=True))


def routing_energy(tables: RoutingTables, spike_counts, energy=None) -> dict:
    """Energy of routing ``spike_counts[source]`` events of each source through ``tables``: each event
    crosses its tile's injector, every router of its multicast tree and the merger of every destination
    tile (:func:`_traversal_pj` each; ``model.energy.EnergyModel`` prices the memories). Wires and
    control logic are not in the model. Returns pJ in all and per event, and router traversals."""
    from .energy import EnergyModel
    energy = energy or EnergyModel()
    mesh = tables.mesh
    total, traversals, events = 0.0, 0, 0
    for source, tiles in enumerate(tables.destinations):
        n = int(spike_counts[source])
        if not tiles or not n:
            continue
        exits, cells = route_tree(mesh, source, tiles)
        tile_cell = mesh.tile_cell(source // mesh.neurons_per_tile)
        per = _traversal_pj(mesh, len(mesh.ports(tile_cell)), len(exits), energy)
        for cell, outs in cells.items():
            per += _traversal_pj(mesh, len(mesh.ports(cell)), len(outs), energy)
        per += len(tiles) * _traversal_pj(mesh, 1, 1, energy)
        total += n * per
        traversals += n * (len(cells) + 1 + len(tiles))
        events += n
    return {"pj": total, "events": events, "pj_per_event": total / events if events else 0.0,
            "node_traversals": traversals}
