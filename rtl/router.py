"""The small-world router and the mesh fabric of the Mosaic, register for register the
cycle model of ``model.router`` (its docstring states the behaviour).

Router ports
------------
in_<P> : In(stream of address)     one per in-port name (N, E, S, W or L); ready is registered state
out_<Q> : Out(stream of address)   one per out-port name; valid and payload come from a register
table : In(valid, payload of ``table_write_fields``)   writes one in-port's mask of one source
fifo_level : Out(one count per in-port)                FIFO entries, for the checks and the formal proof

Each in-port's table (one word per source, only the bits of the turns it may take) and its FIFO
(a head read combinationally, a write at the tail) are memories, which the ECP5 holds in distributed
RAM: the FIFO's depth costs almost no logic.

A :class:`MeshFabric` holds the nodes of a ``MeshConfig`` that the routing can use (routers, each
tile's injector and merger), wired as ``model.router.mesh_links``, with one table-write port for all
of them and a link monitor (every link's handshake and address per cycle) for the testbench.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model.config import bits_for
from ..model.router import (
    MeshConfig,
    NodePorts,
    full_ports,
    mesh_links,
    mesh_nodes,
    mesh_table_fields,
    node_order,
    node_tables,
    table_write_fields,
)
from . import layouts

__all__ = ["Router", "MeshFabric", "mesh_node", "table_write"]


def table_write(fields) -> wiring.Signature:
    """A table write: valid and the packed fields; always taken, one per cycle."""
    return wiring.Signature({"valid": Out(1), "payload": Out(layouts.struct(fields))})


class Router(wiring.Component):
    """``in_ports`` -> ``out_ports`` (names) for ``sources`` source addresses, ``fifo_depth`` entries
    per in-port FIFO; ``tables`` (optional, per in-port {source: mask}) is the tables' reset content;
    ``turns`` (optional, per in-port the out-port indices it may use; default all) limits what each
    in-port's table stores: a mask bit of another out-port is dropped when written. ``source_tiles``
    (optional, per in-port the tiles whose spikes can enter there) limits its entries to those tiles'
    sources: another source's write is dropped and it reads 0. With ``neurons_per_tile`` a power of two
    the table has rows for those sources only; otherwise a row per source, the others never written.
    With ``takes_all`` there are no tables (writes are ignored): every event takes every turn of its
    in-port (a tile's merger), a cycle after it was taken, as with a table."""

    def __init__(self, in_ports, out_ports, sources: int, fifo_depth: int, tables=None, turns=None,
                 source_tiles=None, neurons_per_tile: int = 1, takes_all: bool = False):
        self.takes_all = takes_all
        self.in_ports, self.out_ports = tuple(in_ports), tuple(out_ports)
        self.sources, self.fifo_depth = sources, fifo_depth
        self.source_tiles = None if source_tiles is None else tuple(tuple(t) for t in source_tiles)
        self.neurons_per_tile = neurons_per_tile
        # per in-port, the out-ports (indices) its table may name; the others' bits are not stored
        every = tuple(range(len(self.out_ports)))
        self.turns = tuple(tuple(t) for t in turns) if turns is not None else (every,) * len(self.in_ports)
        self.address_bits = bits_for(sources)
        self.tables = tables
        members = {f"in_{p}": In(stream.Signature(self.address_bits)) for p in self.in_ports}
        members.update({f"out_{q}": Out(stream.Signature(self.address_bits)) for q in self.out_ports})
        self.table_fields = table_write_fields(len(self.in_ports), len(self.out_ports), sources)
        members["table"] = In(table_write(self.table_fields))
        members["fifo_level"] = Out(data.ArrayLayout(range(fifo_depth + 1), len(self.in_ports)))
        super().__init__(members)
        # The in-ports' state, created here so that a proof harness can state invariants over it.
        entry = data.StructLayout({"addr": self.address_bits, "mask": len(self.out_ports)})
        self.state = [{
            "ing_valid": Signal(name=f"ing_valid_{p}"),
            "ing_addr": Signal(self.address_bits, name=f"ing_addr_{p}"),
            "fifo": memory.Memory(shape=entry, depth=fifo_depth, init=[]),     # distributed RAM
            "head": Signal(range(fifo_depth), name=f"head_{p}"),
            "tail": Signal(range(fifo_depth), name=f"tail_{p}"),
            "done": Signal(len(self.out_ports), name=f"done_{p}"),
        } for p in range(len(self.in_ports))]

    @property
    def _rows_by_tile(self) -> bool:
        """Whether the tables keep rows for their tiles' sources only (the tile is the address's top bits)."""
        n = self.neurons_per_tile
        return self.source_tiles is not None and not n & (n - 1)

    def _rows(self, p: int) -> list[int]:
        """The sources in-port ``p``'s table has a row for, in row order."""
        if not self._rows_by_tile:
            return list(range(self.sources))
        n = self.neurons_per_tile
        return [t * n + i for t in self.source_tiles[p] for i in range(n)]

    def _row(self, m, p: int, source, what: str):
        """(row, hit): the table row of ``source`` at in-port ``p``, and whether it has one."""
        if self.source_tiles is None:
            return source, Const(1)
        n, tiles = self.neurons_per_tile, self.source_tiles[p]
        if not self._rows_by_tile:          # a row per source; only the tiles' sources have an entry
            return source, Cat((source >= t * n) & (source < (t + 1) * n) for t in tiles).any()
        shift = (n - 1).bit_length()
        row = Signal(range(max(2, len(tiles) * self.neurons_per_tile)), name=f"{what}_row_{p}")
        hit = Signal(name=f"{what}_hit_{p}")
        with m.Switch(source[shift:]):
            for i, t in enumerate(tiles):
                with m.Case(t):
                    m.d.comb += [hit.eq(1), row.eq(Cat(source[:shift], Const(i, bits_for(len(tiles)))))]
        return row, hit

    def _lookup(self, m, p: int, port, accept, mask_read) -> None:
        """In-port ``p``'s table: written through ``table``, read with the event ``accept`` takes, its
        stored bits (the in-port's turns) at their out-ports in ``mask_read`` the next cycle."""
        turns = self.turns[p]
        packed = lambda mask: sum((mask >> q & 1) << i for i, q in enumerate(turns))   # noqa: E731
        rows = self._rows(p)
        init = [packed((self.tables[p] if self.tables else {}).get(s, 0)) for s in rows]
        m.submodules[f"table_{self.in_ports[p]}"] = table = memory.Memory(shape=max(1, len(turns)),
                                                                          depth=max(2, len(rows)), init=init)
        wr = table.write_port()
        rd = table.read_port()
        write_row, write_hit = self._row(m, p, self.table.payload.source, "write")
        read_row, read_hit = self._row(m, p, port.payload, "read")
        read_hit_q = Signal(name=f"read_hit_{p}")            # the row read holds the source's entry
        m.d.comb += [wr.addr.eq(write_row),
                     wr.data.eq(Cat(self.table.payload.mask[q] for q in turns) if turns else 0),
                     wr.en.eq(self.table.valid & (self.table.payload.port == p) & write_hit),
                     rd.addr.eq(read_row), rd.en.eq(accept)]
        with m.If(accept):
            m.d.sync += read_hit_q.eq(read_hit)
        m.d.comb += [mask_read[q].eq(rd.data[i] & read_hit_q) for i, q in enumerate(turns)]

    def elaborate(self, platform):
        m = Module()
        n_in, n_out, depth = len(self.in_ports), len(self.out_ports), self.fifo_depth
        ins = [getattr(self, f"in_{p}") for p in self.in_ports]
        outs = [getattr(self, f"out_{q}") for q in self.out_ports]

        heads, counts, need = [], [], []
        fifos = []
        for p, port in enumerate(ins):
            turns = self.turns[p]
            st = self.state[p]
            ing_valid, ing_addr, head, tail, done = (st[k] for k in ("ing_valid", "ing_addr", "head", "tail", "done"))
            fifo_wr, fifo_rd = st["fifo"].write_port(), st["fifo"].read_port(domain="comb")
            m.submodules[f"fifo_{self.in_ports[p]}"] = st["fifo"]
            count = self.fifo_level[p]
            accept = Signal(name=f"accept_{p}")
            m.d.comb += [port.ready.eq(count + ing_valid < depth), accept.eq(port.valid & port.ready)]
            mask_read = Signal(n_out, name=f"mask_read_{p}")     # the event's mask, while it is in ingress
            if self.takes_all:
                m.d.comb += [mask_read[q].eq(1) for q in turns]
            else:
                self._lookup(m, p, port, accept, mask_read)
            m.d.sync += ing_valid.eq(accept)
            with m.If(accept):
                m.d.sync += ing_addr.eq(port.payload)
            head_entry = fifo_rd.data
            m.d.comb += fifo_rd.addr.eq(head)
            n = Signal(n_out, name=f"need_{p}")
            allowed = sum(1 << q for q in turns)            # constant: the turns this in-port can take
            m.d.comb += n.eq(Mux(count != 0, head_entry.mask & allowed & ~done, 0))
            heads.append(head_entry)
            counts.append(count)
            need.append(n)
            fifos.append((fifo_wr, head, tail, count, done, ing_valid, ing_addr, mask_read))

        granted = [[Signal(name=f"grant_{p}_{q}") for q in range(n_out)] for p in range(n_in)]
        for q, port in enumerate(outs):
            # Round robin over the in-ports whose turns include this out-port (the others never need it).
            candidates = [p for p in range(n_in) if q in self.turns[p]]
            wins = {p: Signal(name=f"win_{p}_{q}") for p in candidates}      # one-hot: the winner
            rr = Signal(range(n_in), name=f"rr_{q}")
            if len(candidates) > 1:
                with m.Switch(rr):
                    for r in range(n_in):
                        with m.Case(r):
                            order = [p for p in ((r + i) % n_in for i in range(n_in)) if p in wins]
                            with m.If(need[order[0]][q]):
                                m.d.comb += wins[order[0]].eq(1)
                            for p in order[1:]:
                                with m.Elif(need[p][q]):
                                    m.d.comb += wins[p].eq(1)
            elif candidates:
                m.d.comb += wins[candidates[0]].eq(need[candidates[0]][q])
            found = Cat(*wins.values()).any()
            free = ~port.valid | port.ready
            with m.If(free):
                m.d.sync += port.valid.eq(found)
                for p in candidates:
                    with m.If(wins[p]):
                        m.d.sync += [port.payload.eq(heads[p].addr), rr.eq((p + 1) % n_in)]
            for p in candidates:
                m.d.comb += granted[p][q].eq(free & wins[p])

        for p, (fifo_wr, head, tail, count, done, ing_valid, ing_addr, mask_read) in enumerate(fifos):
            got = Cat(granted[p])
            pop = Signal(name=f"pop_{p}")
            m.d.comb += pop.eq((count != 0) & ((need[p] & ~got) == 0))
            with m.If(pop):
                m.d.sync += [done.eq(0), head.eq(Mux(head == depth - 1, 0, head + 1))]
            with m.Elif(count != 0):
                m.d.sync += done.eq(done | got)
            with m.If(ing_valid):
                m.d.sync += tail.eq(Mux(tail == depth - 1, 0, tail + 1))
            m.d.comb += [fifo_wr.en.eq(ing_valid), fifo_wr.addr.eq(tail),
                         fifo_wr.data.addr.eq(ing_addr), fifo_wr.data.mask.eq(mask_read)]
            m.d.sync += count.eq(count + ing_valid - pop)
        return m


def mesh_node(mesh: MeshConfig, key, ports: NodePorts, tables=None) -> Router:
    """The :class:`Router` of node ``key`` of ``mesh`` with its used ``ports`` (``mesh_nodes``): only
    their turns and their tiles' sources in its tables (``tables``, a ``RoutingTables``: their reset
    content), no table at all for a merger."""
    return Router(ports.ins, ports.outs, mesh.sources, mesh.fifo_depth, node_tables(tables, key) if tables else None,
                  [ports.allowed(p) for p in range(len(ports.ins))], [ports.tiles[p] for p in ports.ins],
                  mesh.neurons_per_tile, takes_all=key[0] == "merge")


class MeshFabric(wiring.Component):
    """The nodes of ``mesh`` that the routing can use (``model.router.mesh_nodes``: routers, each
    tile's injector and merger, with only their used ports and turns), connected as
    ``model.router.mesh_links`` (``tables``: an optional ``RoutingTables`` for the reset content).
    Table writes address nodes by ``node_order`` and ports and masks over a node's full ports, as
    compiled; bits of unused turns are not stored.

    inject : In(array of streams, one per tile)    the core's spikes (source addresses)
    deliver : Out(array of streams, one per tile)  the events a tile's core takes
    table : In(valid, payload of ``mesh_table_fields``)   writes any node's table
    links : Out(array of (fire, addr), one per link)      the handshakes of every link, this cycle
    busy : Out(1)              an event is somewhere in the fabric (an ingress register, a FIFO, an out-port)
    """

    def __init__(self, mesh: MeshConfig, tables=None):
        self.mesh, self.tables = mesh, tables
        self.links_order = mesh_links(mesh)
        self.node_order = node_order(mesh)
        self.table_fields = mesh_table_fields(mesh)
        a = mesh.address_bits
        super().__init__({
            "inject": In(stream.Signature(a)).array(mesh.tiles),
            "deliver": Out(stream.Signature(a)).array(mesh.tiles),
            "table": In(table_write(self.table_fields)),
            "links": Out(data.ArrayLayout(data.StructLayout({"fire": 1, "addr": a}), len(self.links_order))),
            "busy": Out(1),
        })

    def _table_write(self, m, i: int, key, node: Router) -> None:
        """Routes the table writes for node ``i`` of ``node_order`` (indexed over its full ports) to
        ``node``: the in-port's index among the used ones, the mask's bits of the used out-ports;
        a write to an in-port the routing never enters is dropped."""
        full_ins, full_outs = full_ports(self.mesh, key)
        w, port = self.table.payload, node.table.payload
        used = Signal(name=f"table_used_{i}")
        with m.Switch(w.port):
            for p, name in enumerate(node.in_ports):
                with m.Case(full_ins.index(name)):
                    m.d.comb += [used.eq(1), port.port.eq(p)]
        m.d.comb += [node.table.valid.eq(self.table.valid & (w.node == i) & used),
                     port.source.eq(w.source),
                     port.mask.eq(Cat(w.mask[full_outs.index(name)] for name in node.out_ports))]

    def elaborate(self, platform):
        m = Module()
        nodes = {}
        used = mesh_nodes(self.mesh)
        for i, key in enumerate(self.node_order):
            if key not in used:
                continue
            kind, where = key
            name = f"{kind}_{where[0]}_{where[1]}" if kind == "router" else f"{kind}_{where}"
            nodes[key] = m.submodules[name] = node = mesh_node(self.mesh, key, used[key], self.tables)
            if not node.takes_all:
                self._table_write(m, i, key, node)
        for i, ((src, q), (dst, p)) in enumerate(self.links_order):
            a, b = nodes[src], nodes[dst]
            out = getattr(a, f"out_{a.out_ports[q]}")
            inp = getattr(b, f"in_{b.in_ports[p]}")
            m.d.comb += [inp.valid.eq(out.valid), inp.payload.eq(out.payload), out.ready.eq(inp.ready),
                         self.links[i].fire.eq(out.valid & inp.ready), self.links[i].addr.eq(out.payload)]
        for t in range(self.mesh.tiles):       # a tile no route leaves or enters has no injector or merger
            if ("inject", t) in nodes:
                wiring.connect(m, wiring.flipped(self.inject[t]), nodes[("inject", t)].in_L)
            else:
                m.d.comb += self.inject[t].ready.eq(1)
            if ("merge", t) in nodes:
                wiring.connect(m, nodes[("merge", t)].out_L, wiring.flipped(self.deliver[t]))
        held = []
        for node in nodes.values():
            held += [level != 0 for level in node.fifo_level] + [st["ing_valid"] for st in node.state]
            held += [getattr(node, f"out_{q}").valid for q in node.out_ports]
        m.d.comb += self.busy.eq(Cat(*held).any())
        return m

