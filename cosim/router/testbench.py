"""Simulator-independent testbenches of the router (``rtl.router.Router``) and the mesh fabric
(``rtl.router.MeshFabric``), checked cycle by cycle against ``model.router``.

Every cycle the testbench drives the inputs (random idle cycles on the sources, random backpressure
on the sinks), reads what the DUT shows (each in-port's ready, each out-port's valid and address, and
on the fabric every link's handshake), compares it with the model's state, and then advances the
model by the same clock edge. At the end the fabric's deliveries are checked against the connectivity
itself (each emitted spike reaches exactly the tiles its source names, once), independently of the
model.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from dataclasses import dataclass

from ...model.config import pack_fields
from ...model.golden import Mismatch
from ...model.router import (
    MeshConfig,
    MeshModel,
    RouterModel,
    RoutingTables,
    compile_routes,
    mesh_links,
    mesh_table_fields,
    table_writes,
)
from ..options import RunOptions

__all__ = ["RouterTestbench", "MeshTestbench", "router_scenario", "mesh_scenario", "FAULTS", "ROUTER_OPTIONS"]

# The router's run defaults: more idle input cycles than the cores' (sparser traffic per port).
ROUTER_OPTIONS = RunOptions(idle=0.3)
# Faults of the model that the scoreboard must catch (each changes one rule of the router).
FAULTS = ("fixed-priority", "deeper-fifo", "drop-last-port")


def _drive_streams(rng, idle, backpressure, sources, queues, offer, sinks, ready, hold=False) -> None:
    """One cycle of the sources (an event offered, after a random idle, held until taken; none while
    ``hold``) and of the sinks (ready unless a random backpressure draw says no)."""
    for i, (valid, _, payload) in enumerate(sources):
        if offer[i] is None and queues[i] and not hold and rng.random() >= idle:
            offer[i] = queues[i].popleft()
        valid.set(offer[i] is not None)
        if offer[i] is not None:
            payload.set(offer[i])
    for i, (_, rdy, _) in enumerate(sinks):
        ready[i] = int(rng.random() >= backpressure)
        rdy.set(ready[i])


class _FaultyRouter(RouterModel):
    def __init__(self, *args, fault=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fault = fault
        if fault == "deeper-fifo":
            self.depth += 1

    def tick(self, in_valid, in_addr, out_ready):
        if self.fault == "fixed-priority":
            self.rr = [0] * len(self.out_ports)
        if self.fault == "drop-last-port":
            top = 1 << (len(self.out_ports) - 1)
            for p, f in enumerate(self.fifo):
                if f and f[0][1] & top and f[0][1] != top:
                    f[0] = (f[0][0], f[0][1] & ~top)
        return super().tick(in_valid, in_addr, out_ready)


@dataclass
class RouterScenario:
    in_ports: tuple
    out_ports: tuple
    sources: int
    fifo_depth: int
    tables: list            # per in-port {source: mask}
    traffic: list           # per in-port, the source addresses it offers


def router_scenario(in_ports="NESW", out_ports="NESW", sources: int = 16, fifo_depth: int = 4, seed: int = 0,
                    events: int = 60, empty: float = 0.1) -> RouterScenario:
    """Random tables (a share ``empty`` of the entries route nowhere) and random traffic."""
    rng = random.Random(seed)
    n_out = len(out_ports)
    tables = [{s: (0 if rng.random() < empty else rng.randrange(1, 1 << n_out)) for s in range(sources)}
              for _ in in_ports]
    traffic = [[rng.randrange(sources) for _ in range(events)] for _ in in_ports]
    return RouterScenario(tuple(in_ports), tuple(out_ports), sources, fifo_depth, tables, traffic)


class RouterTestbench:
    """One router against :class:`~neuromosaic.model.router.RouterModel`, every output every cycle."""

    def __init__(self, scenario: RouterScenario, port, options: RunOptions):
        self.s = scenario
        self.rng = random.Random(options.seed)
        self.idle, self.backpressure, fault = options.idle, options.backpressure, options.fault
        self.model = _FaultyRouter(scenario.in_ports, scenario.out_ports, scenario.fifo_depth, scenario.tables,
                                   fault=fault)
        self.ins = [(port(f"in_{p}__valid"), port(f"in_{p}__ready"), port(f"in_{p}__payload"))
                    for p in scenario.in_ports]
        self.outs = [(port(f"out_{q}__valid"), port(f"out_{q}__ready"), port(f"out_{q}__payload"))
                     for q in scenario.out_ports]
        self.queues = [deque(t) for t in scenario.traffic]
        self.offer = [None] * len(self.ins)
        self.ready = [0] * len(self.outs)
        self.sent = Counter()
        self.expected = Counter()
        self.cycle = 0
        self.checked = 0

    def start(self, item, cycle):
        self.cycle = cycle

    @property
    def done(self) -> bool:
        return not any(self.queues) and all(o is None for o in self.offer) and self.model.occupancy() == 0

    def drive(self) -> None:
        _drive_streams(self.rng, self.idle, self.backpressure, self.ins, self.queues, self.offer, self.outs, self.ready)

    def sample(self, cycle: int) -> None:
        m = self.model
        for p, (_, ready, _) in enumerate(self.ins):
            self._expect(cycle, f"in_{self.s.in_ports[p]}.ready", ready.get(), int(m.in_ready(p)))
        for q, (valid, _, payload) in enumerate(self.outs):
            v = valid.get()
            self._expect(cycle, f"out_{self.s.out_ports[q]}.valid", v, int(m.out_valid[q]))
            if v:
                self._expect(cycle, f"out_{self.s.out_ports[q]}.payload", payload.get(), m.out_addr[q])
        accepted, sent = m.tick([o is not None for o in self.offer], [o or 0 for o in self.offer], self.ready)
        for p, addr in accepted:
            self.offer[p] = None
            mask = self.s.tables[p].get(addr, 0)
            for q in range(len(self.outs)):
                if mask >> q & 1:
                    self.expected[(q, addr)] += 1
        for q, addr in sent:
            self.sent[(q, addr)] += 1
        self.checked += 1

    def _expect(self, cycle, what, got, want):
        if got != want:
            raise Mismatch(f"cycle {cycle}: {what} is {got}, the model says {want}")

    def finish(self) -> dict:
        if self.sent != self.expected:
            raise Mismatch(f"out-port events {dict(self.sent)} differ from what the tables name {dict(self.expected)}")
        return {"checked_cycles": self.checked, "events_out": sum(self.sent.values()),
                "events_in": sum(len(t) for t in self.s.traffic)}


# -- the mesh fabric ----------------------------------------------------------------------------------------

@dataclass
class MeshScenario:
    tables: RoutingTables
    spikes: list            # per tile, its source addresses in injection order


def mesh_scenario(rows: int = 2, cols: int = 2, neurons_per_tile: int = 4, fifo_depth: int = 4, seed: int = 0,
                  density: float = 0.5, spikes_per_tile: int = 30, **capacities) -> MeshScenario:
    """Random connectivity (each source reaches each other tile with probability ``density``),
    compiled, and random spikes of each tile's neurons."""
    mesh = MeshConfig(rows, cols, neurons_per_tile, fifo_depth, **capacities)
    rng = random.Random(seed)
    dests = [[t for t in range(mesh.tiles) if t != s // neurons_per_tile and rng.random() < density]
             for s in range(mesh.sources)]
    tables = compile_routes(mesh, dests)
    spikes = [[t * neurons_per_tile + rng.randrange(neurons_per_tile) for _ in range(spikes_per_tile)]
              for t in range(mesh.tiles)]
    return MeshScenario(tables, spikes)


class MeshTestbench:
    """The fabric against :class:`~neuromosaic.model.router.MeshModel`: every link's handshake, every
    injection and delivery, every cycle; then spike conservation against the connectivity. With
    ``load_tables`` the tables are first written through the fabric's table port, one entry a cycle
    (the fabric then starts with empty tables)."""

    def __init__(self, scenario: MeshScenario, port, options: RunOptions, *, load_tables: bool = False):
        self.s = scenario
        mesh = self.mesh = scenario.tables.mesh
        self.rng = random.Random(options.seed)
        self.idle, self.backpressure, fault = options.idle, options.backpressure, options.fault
        self.model = MeshModel(scenario.tables)
        if fault:
            for key, node in self.model.nodes.items():
                faulty = _FaultyRouter(node.in_ports, node.out_ports, node.depth, node.tables, fault=fault)
                self.model.nodes[key] = faulty
        self.writes = deque(table_writes(scenario.tables) if load_tables else ())
        self.table_fields = mesh_table_fields(mesh)
        self.table_valid, self.table_payload = port("table__valid"), port("table__payload")
        self.table_loads = len(self.writes)
        self.links = port("links")
        self.link_bits = 1 + mesh.address_bits
        self._links = mesh_links(mesh)
        self.n_links = len(self._links)
        self.inject = [(port(f"inject__{t}__valid"), port(f"inject__{t}__ready"), port(f"inject__{t}__payload"))
                       for t in range(mesh.tiles)]
        self.deliver = [(port(f"deliver__{t}__valid"), port(f"deliver__{t}__ready"), port(f"deliver__{t}__payload"))
                        for t in range(mesh.tiles)]
        self.queues = [deque(s) for s in scenario.spikes]
        self.offer = [None] * mesh.tiles
        self.ready = [0] * mesh.tiles
        self.emitted, self.delivered = Counter(), Counter()
        self.link_events = 0
        self.checked = 0
        self.latencies = []
        self._pending: dict = {}

    def start(self, item, cycle):
        pass

    @property
    def done(self) -> bool:
        return not any(self.queues) and all(o is None for o in self.offer) and self.model.idle()

    def drive(self) -> None:
        self.table_valid.set(bool(self.writes))
        if self.writes:
            self.table_payload.set(pack_fields(self.table_fields, self.writes[0]))
        _drive_streams(self.rng, self.idle, self.backpressure, self.inject, self.queues, self.offer, self.deliver,
                       self.ready, hold=bool(self.writes))

    def sample(self, cycle: int) -> None:
        if self.writes:
            self.writes.popleft()
        m = self.model
        word = self.links.get()
        seen = []
        for i in range(self.n_links):
            f = word >> (i * self.link_bits)
            if f & 1:
                seen.append((i, (f >> 1) & ((1 << self.mesh.address_bits) - 1)))
        got_ready = [r.get() for _, r, _ in self.inject]
        got_valid = [(v.get(), p.get() if v.get() else None) for v, _, p in self.deliver]
        for t in range(self.mesh.tiles):
            want = m.nodes[("inject", t)].in_ready(0)
            if got_ready[t] != want:
                raise Mismatch(f"cycle {cycle}: tile {t}'s inject.ready is {got_ready[t]}, the model says {int(want)}")
            merge = m.nodes[("merge", t)]
            want = (int(merge.out_valid[0]), merge.out_addr[0] if merge.out_valid[0] else None)
            if got_valid[t] != want:
                raise Mismatch(f"cycle {cycle}: tile {t}'s deliver (valid, address) is {got_valid[t]}, "
                               f"the model says {want}")
        fired = m.tick(self.offer, self.ready)
        if seen != fired["links"]:
            raise Mismatch(f"cycle {cycle}: link handshakes {self._names(seen)} differ from the model's "
                           f"{self._names(fired['links'])}")
        for t, addr in fired["inject"]:
            self.offer[t] = None
            for d in self.s.tables.destinations[addr]:
                self.emitted[(d, addr)] += 1
                self._pending.setdefault((d, addr), deque()).append(cycle)
        for t, addr in fired["deliver"]:
            self.delivered[(t, addr)] += 1
            if self._pending.get((t, addr)):
                self.latencies.append(cycle - self._pending[(t, addr)].popleft())
        self.link_events += len(seen)
        self.checked += 1

    def _names(self, fired) -> list:
        out = []
        for i, addr in fired:
            (src, _), (dst, _) = self._links[i]
            out.append(f"{src}->{dst}:{addr}")
        return out

    def finish(self) -> dict:
        """Spike conservation: every emitted spike reached exactly its destination tiles."""
        if self.delivered != self.emitted:
            lost = self.emitted - self.delivered
            extra = self.delivered - self.emitted
            raise Mismatch(f"spike conservation fails: lost (tile, source) {dict(lost)}, duplicated or stray "
                           f"{dict(extra)}")
        return {"checked_cycles": self.checked, "table_loads": self.table_loads,
                "spikes": sum(len(s) for s in self.s.spikes),
                "deliveries": sum(self.delivered.values()), "link_events": self.link_events,
                "mean_latency": sum(self.latencies) / len(self.latencies) if self.latencies else 0.0}
