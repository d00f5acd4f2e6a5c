"""Simulator-independent testbenches of the router (``rtl.router.Router``) and the mesh fabric
(``rtl.router.MeshFabric``), checked cycle by cycle against ``model.router``.

Per cycle (:class:`RouterTestbench`, :class:`MeshTestbench`): every cycle the testbench drives the
inputs (random idle cycles on the sources, random backpressure on the sinks), reads what the DUT
shows (each in-port's ready, each out-port's valid and address, and on the fabric every link's
handshake), compares it with the model's state, and then advances the model by the same clock edge.

In the batch harness (:class:`RouterReplay`, :class:`MeshReplay`): each in-port has its own player,
which records the first cycle of every offer and every take; the out-ports, and on the fabric every
link, are recorded. The testbench replays the recorded offers, cycle by cycle, into the same model,
with each sink's ready predicted from the harness's pattern (``harness.ReadyPattern``), and every
take, every transfer and every link handshake must fall in the cycle the model gives it, with its
address; the cycles in which a sink held a word back must add up to the harness's count.

At the end the deliveries are checked against the connectivity itself (each emitted spike reaches
exactly the tiles its source names, once), independently of the model.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict, deque
from dataclasses import dataclass
from functools import partial

from amaranth.hdl import Cat

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
    table_write_fields,
    table_writes,
)
from ..agents import SequenceSource, StreamSink, Watch, stream_ports
from ..options import RunOptions

__all__ = ["RouterTestbench", "MeshTestbench", "RouterReplay", "MeshReplay", "router_scenario", "mesh_scenario",
           "router_table_writes", "links_fired", "router_harness", "mesh_harness", "FAULTS", "ROUTER_OPTIONS",
           "STALL_LIMIT"]

# The router's run defaults: more idle input cycles than the cores' (sparser traffic per port).
ROUTER_OPTIONS = RunOptions(idle=0.3)
# Faults of the model that the scoreboard must catch (each changes one rule of the router).
# ``late-transfer``: the design right, the model one cycle off on one transfer: the checks expect
# the run's first out-port word (the fabric's first delivery) one cycle late.
LATE_FAULT = "late-transfer"
FAULTS = ("fixed-priority", "deeper-fifo", "drop-last-port", LATE_FAULT)
# Cycles without any record after which a batch run reports that the design is stuck.
STALL_LIMIT = 2000


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
                    events: int = 60, empty: float = 0.1, traffic_seed: int | None = None) -> RouterScenario:
    """Random tables (a share ``empty`` of the entries route nowhere) and random traffic, both from
    ``seed``, or the traffic from ``traffic_seed`` when given (other traffic through the same tables)."""
    rng = random.Random(seed)
    n_out = len(out_ports)
    tables = [{s: (0 if rng.random() < empty else rng.randrange(1, 1 << n_out)) for s in range(sources)}
              for _ in in_ports]
    if traffic_seed is not None:
        rng = random.Random(traffic_seed)
    traffic = [[rng.randrange(sources) for _ in range(events)] for _ in in_ports]
    return RouterScenario(tuple(in_ports), tuple(out_ports), sources, fifo_depth, tables, traffic)


def router_table_writes(scenario: RouterScenario) -> list[int]:
    """Every row of every in-port's table, the empty ones too, as packed table writes: after them the
    router routes as the scenario's tables say, whatever its tables held before."""
    fields = table_write_fields(len(scenario.in_ports), len(scenario.out_ports), scenario.sources)
    return [pack_fields(fields, {"port": p, "source": s, "mask": table.get(s, 0)})
            for p, table in enumerate(scenario.tables) for s in range(scenario.sources)]


class _RouterChecks:
    """The model of one router (with the run's fault) and the out-port events its tables ask for."""

    def __init__(self, scenario: RouterScenario, options: RunOptions):
        self.s = scenario
        self.model = _FaultyRouter(scenario.in_ports, scenario.out_ports, scenario.fifo_depth, scenario.tables,
                                   fault=options.fault)
        self.sent = Counter()
        self.expected = Counter()
        self.checked = 0
        self.late = options.fault == LATE_FAULT

    def _account(self, accepted, sent) -> None:
        """One cycle's handshakes: what each accepted event must reach, what went out."""
        for p, addr in accepted:
            mask = self.s.tables[p].get(addr, 0)
            for q in range(len(self.s.out_ports)):
                if mask >> q & 1:
                    self.expected[(q, addr)] += 1
        for q, addr in sent:
            self.sent[(q, addr)] += 1
        self.checked += 1

    def finish(self) -> dict:
        if self.sent != self.expected:
            raise Mismatch(f"out-port events {dict(self.sent)} differ from what the tables name {dict(self.expected)}")
        return {"checked_cycles": self.checked, "events_out": sum(self.sent.values()),
                "events_in": sum(len(t) for t in self.s.traffic)}


class RouterTestbench(_RouterChecks):
    """One router against :class:`~neuromosaic.model.router.RouterModel`, every output every cycle."""

    def __init__(self, scenario: RouterScenario, port, options: RunOptions):
        super().__init__(scenario, options)
        self.rng = random.Random(options.seed)
        self.idle, self.backpressure = options.idle, options.backpressure
        self.ins = [(port(f"in_{p}__valid"), port(f"in_{p}__ready"), port(f"in_{p}__payload"))
                    for p in scenario.in_ports]
        self.outs = [(port(f"out_{q}__valid"), port(f"out_{q}__ready"), port(f"out_{q}__payload"))
                     for q in scenario.out_ports]
        self.queues = [deque(t) for t in scenario.traffic]
        self.offer = [None] * len(self.ins)
        self.ready = [0] * len(self.outs)
        self.cycle = 0

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
        late, self.late = self.late and any(m.out_valid), self.late and not any(m.out_valid)
        for q, (valid, _, payload) in enumerate(self.outs):
            v = valid.get()
            self._expect(cycle, f"out_{self.s.out_ports[q]}.valid", v, int(m.out_valid[q] and not late))
            if v:
                self._expect(cycle, f"out_{self.s.out_ports[q]}.payload", payload.get(), m.out_addr[q])
        accepted, sent = m.tick([o is not None for o in self.offer], [o or 0 for o in self.offer], self.ready)
        for p, _ in accepted:
            self.offer[p] = None
        self._account(accepted, sent)

    def _expect(self, cycle, what, got, want):
        if got != want:
            raise Mismatch(f"cycle {cycle}: {what} is {got}, the model says {want}")


class _Replay:
    """What a replaying testbench shares: per in-port sources that record offers and takes, sinks
    that record transfers, and the replay of whole cycles once all their records are in.

    ``settle(horizon)`` replays every cycle before ``horizon`` through :meth:`_cycle` (the
    subclass's model step, given the words offered in that cycle and the sinks' ready) and compares
    what the model hands over with the recorded takes and transfers of that cycle."""

    stall_limit = STALL_LIMIT

    def _streams(self, port, inputs: list[str], outputs: list[str], traffic: list, after=None) -> None:
        self.inputs, self.outputs = inputs, outputs
        self.sources = [SequenceSource({n: stream_ports(port, n)}, on_offer=partial(self._offered, i),
                                       on_transfer={n: partial(self._taken, i)}, after=after)
                        for i, n in enumerate(inputs)]
        for source, words in zip(self.sources, traffic):
            source.send(source.names[0], words)
        self.sinks = [StreamSink(*stream_ports(port, n), on_transfer=partial(self._sent, q))
                      for q, n in enumerate(outputs)]
        self.pending = [deque(words) for words in traffic]      # words not yet offered, per input
        self.offer = [None] * len(inputs)                       # the word offered this cycle, per input
        self.offers = [deque() for _ in inputs]                 # recorded first cycles of offers
        self.takes, self.sends = defaultdict(list), defaultdict(list)
        self.held_back = [0] * len(outputs)                     # the model's cycles of a word held back
        self._delayed = []                                      # a transfer the checks expect a cycle late
        self.cycle = 0

    def start(self, item, cycle):
        self.cycle = cycle

    def _offered(self, i, cycle):
        self.offers[i].append(cycle)

    def _taken(self, i, cycle, word):
        self.takes[cycle].append((i, word))

    def _sent(self, q, cycle, word):
        self.sends[cycle].append((q, word))

    def settle(self, horizon: int) -> None:
        for c in range(self.cycle, horizon):
            for i, offers in enumerate(self.offers):
                if offers and offers[0] < c:
                    raise Mismatch(f"cycle {offers[0]}: {self.inputs[i]} began an offer while one was pending.")
                if offers and offers[0] == c:
                    offers.popleft()
                    if self.offer[i] is not None or not self.pending[i]:
                        raise Mismatch(f"cycle {c}: {self.inputs[i]} began an offer the model does not expect.")
                    self.offer[i] = self.pending[i].popleft()
            ready = [sink.pattern.ready(c) for sink in self.sinks]
            taken, sent = self._cycle(c, ready)
            sent, self._delayed = self._delayed + sent, []
            if self.late and sent:
                self.late, self._delayed, sent = False, sent[:1], sent[1:]
            self._compare(c, "takes", self.inputs, taken, self.takes.pop(c, []))
            self._compare(c, "transfers", self.outputs, sent, self.sends.pop(c, []))
            for i, _ in taken:
                self.offer[i] = None
        self.cycle = max(self.cycle, horizon)

    def _compare(self, cycle, what, names, want, got) -> None:
        if sorted(want) != sorted(got):
            show = lambda events: ", ".join(f"{names[i]}:{w}" for i, w in sorted(events)) or "none"   # noqa: E731
            raise Mismatch(f"cycle {cycle}: {what} {show(got)}, the model says {show(want)} ({self._state()})")

    def _check_held_back(self) -> None:
        for name, sink, want in zip(self.outputs, self.sinks, self.held_back):
            if sink.stall_cycles != want:
                raise Mismatch(f"{name} held a word back in {sink.stall_cycles} cycles, the model says {want}")

    @property
    def replayed(self) -> bool:
        """Every source's words taken and every cycle up to the last take replayed."""
        return all(s.done for s in self.sources) and not self.takes and not self.sends


class RouterReplay(_Replay, _RouterChecks):
    """One router in its batch harness (one player per in-port, ``offers`` recorded) against
    :class:`~neuromosaic.model.router.RouterModel`: every take and out-port transfer in its cycle.
    With ``load_tables`` a player first writes every table row through the router's table port
    (:func:`router_table_writes`); the in-ports offer nothing until it is done."""

    def __init__(self, scenario: RouterScenario, port, options: RunOptions, *, load_tables: bool = False):
        _RouterChecks.__init__(self, scenario, options)
        table = None
        if load_tables:
            table = SequenceSource({"table": stream_ports(port, "table")})
            table.send("table", router_table_writes(scenario))
        self._streams(port, [f"in_{p}" for p in scenario.in_ports], [f"out_{q}" for q in scenario.out_ports],
                      scenario.traffic, after=table)
        self.agents = [*([table] if table else []), *self.sources, *self.sinks]

    @property
    def done(self) -> bool:
        return self.replayed and self.model.occupancy() == 0

    def _cycle(self, cycle, ready):
        m = self.model
        for q, r in enumerate(ready):
            self.held_back[q] += bool(m.out_valid[q] and not r)
        accepted, sent = m.tick([o is not None for o in self.offer], [o or 0 for o in self.offer], ready)
        self._account(accepted, sent)
        return accepted, sent

    def _state(self) -> str:
        m = self.model
        return "FIFO levels " + ", ".join(f"in_{p}:{len(f) + v}" for p, f, v in zip(self.s.in_ports, m.fifo,
                                                                                     m.ing_valid))

    def finish(self) -> dict:
        self._check_held_back()
        return _RouterChecks.finish(self)


def router_harness(scenario: RouterScenario, load_tables: bool = False) -> dict:
    """The batch harness around a router: a player per in-port (after one for the table writes with
    ``load_tables``), recording offers and takes, and every out-port recorded."""
    return {"players": [["table"]] * load_tables + [[f"in_{p}"] for p in scenario.in_ports],
            "sinks": [f"out_{q}" for q in scenario.out_ports], "offers": True}


# -- the mesh fabric ----------------------------------------------------------------------------------------

@dataclass
class MeshScenario:
    tables: RoutingTables
    spikes: list            # per tile, its source addresses in injection order


def mesh_scenario(rows: int = 2, cols: int = 2, neurons_per_tile: int = 4, fifo_depth: int = 4, seed: int = 0,
                  density: float = 0.5, spikes_per_tile: int = 30, spike_seed: int | None = None,
                  **capacities) -> MeshScenario:
    """Random connectivity (each source reaches each other tile with probability ``density``),
    compiled, and random spikes of each tile's neurons, both from ``seed``, or the spikes from
    ``spike_seed`` when given (other traffic through the same connectivity)."""
    mesh = MeshConfig(rows, cols, neurons_per_tile, fifo_depth, **capacities)
    rng = random.Random(seed)
    dests = [[t for t in range(mesh.tiles) if t != s // neurons_per_tile and rng.random() < density]
             for s in range(mesh.sources)]
    tables = compile_routes(mesh, dests)
    if spike_seed is not None:
        rng = random.Random(spike_seed)
    spikes = [[t * neurons_per_tile + rng.randrange(neurons_per_tile) for _ in range(spikes_per_tile)]
              for t in range(mesh.tiles)]
    return MeshScenario(tables, spikes)


class _MeshChecks:
    """The model of the fabric (with the run's fault in every router) and spike conservation: each
    spike that enters must reach exactly the tiles its source names, once."""

    def __init__(self, scenario: MeshScenario, options: RunOptions, load_tables: bool, every_source: bool = False):
        self.s = scenario
        mesh = self.mesh = scenario.tables.mesh
        self.model = MeshModel(scenario.tables)
        if options.fault:
            for key, node in self.model.nodes.items():
                self.model.nodes[key] = _FaultyRouter(node.in_ports, node.out_ports, node.depth, node.tables,
                                                      node.takes_all, fault=options.fault)
        self.writes = deque(table_writes(scenario.tables, every_source=every_source) if load_tables else ())
        self.table_fields = mesh_table_fields(mesh)
        self.table_loads = len(self.writes)
        self.link_bits = 1 + mesh.address_bits
        self._links = mesh_links(mesh)
        self.n_links = len(self._links)
        self.emitted, self.delivered = Counter(), Counter()
        self.link_events = 0
        self.checked = 0
        self.latencies = []
        self._pending: dict = {}
        self.late = options.fault == LATE_FAULT

    def _decode_links(self, word: int) -> list:
        """The fired links in a word of the ``links`` port: [(link index, address)]."""
        seen = []
        for i in range(self.n_links):
            f = word >> (i * self.link_bits)
            if f & 1:
                seen.append((i, (f >> 1) & ((1 << self.mesh.address_bits) - 1)))
        return seen

    def _account(self, cycle: int, fired: dict) -> None:
        for t, addr in fired["inject"]:
            for d in self.s.tables.destinations[addr]:
                self.emitted[(d, addr)] += 1
                self._pending.setdefault((d, addr), deque()).append(cycle)
        for t, addr in fired["deliver"]:
            self.delivered[(t, addr)] += 1
            if self._pending.get((t, addr)):
                self.latencies.append(cycle - self._pending[(t, addr)].popleft())
        self.link_events += len(fired["links"])
        self.checked += 1

    def _names(self, fired) -> list:
        out = []
        for i, addr in fired:
            (src, _), (dst, _) = self._links[i]
            out.append(f"{src}->{dst}:{addr}")
        return out

    def _check_links(self, cycle: int, seen: list, want: list) -> None:
        if seen != want:
            raise Mismatch(f"cycle {cycle}: link handshakes {self._names(seen)} differ from the model's "
                           f"{self._names(want)}")

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


class MeshTestbench(_MeshChecks):
    """The fabric against :class:`~neuromosaic.model.router.MeshModel`: every link's handshake, every
    injection and delivery, every cycle; then spike conservation against the connectivity. With
    ``load_tables`` the tables are first written through the fabric's table port, one entry a cycle
    (the fabric then starts with empty tables)."""

    def __init__(self, scenario: MeshScenario, port, options: RunOptions, *, load_tables: bool = False):
        super().__init__(scenario, options, load_tables)
        mesh = self.mesh
        self.rng = random.Random(options.seed)
        self.idle, self.backpressure = options.idle, options.backpressure
        self.table_valid, self.table_payload = port("table__valid"), port("table__payload")
        self.links = port("links")
        self.inject = [(port(f"inject__{t}__valid"), port(f"inject__{t}__ready"), port(f"inject__{t}__payload"))
                       for t in range(mesh.tiles)]
        self.deliver = [(port(f"deliver__{t}__valid"), port(f"deliver__{t}__ready"), port(f"deliver__{t}__payload"))
                        for t in range(mesh.tiles)]
        self.queues = [deque(s) for s in scenario.spikes]
        self.offer = [None] * mesh.tiles
        self.ready = [0] * mesh.tiles

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
        seen = self._decode_links(self.links.get())
        got_ready = [r.get() for _, r, _ in self.inject]
        got_valid = [(v.get(), p.get() if v.get() else None) for v, _, p in self.deliver]
        merging = any(m.nodes[("merge", t)].out_valid[0] for t in range(self.mesh.tiles))
        late, self.late = self.late and merging, self.late and not merging
        for t in range(self.mesh.tiles):
            want = m.nodes[("inject", t)].in_ready(0)
            if got_ready[t] != want:
                raise Mismatch(f"cycle {cycle}: tile {t}'s inject.ready is {got_ready[t]}, the model says {int(want)}")
            merge = m.nodes[("merge", t)]
            shown = merge.out_valid[0] and not late
            want = (int(shown), merge.out_addr[0] if shown else None)
            if got_valid[t] != want:
                raise Mismatch(f"cycle {cycle}: tile {t}'s deliver (valid, address) is {got_valid[t]}, "
                               f"the model says {want}")
        fired = m.tick(self.offer, self.ready)
        self._check_links(cycle, seen, fired["links"])
        for t, _ in fired["inject"]:
            self.offer[t] = None
        self._account(cycle, fired)


class MeshReplay(_Replay, _MeshChecks):
    """The fabric in its batch harness (a player per tile's injector, after one for the table writes
    with ``load_tables``; every delivery and every cycle with a link handshake recorded) against
    :class:`~neuromosaic.model.router.MeshModel`: every injection, delivery and link handshake in its
    cycle; then spike conservation. The injectors offer nothing until the tables are written;
    ``every_source``: the load writes the empty entries too (``model.router.table_writes``)."""

    def __init__(self, scenario: MeshScenario, port, options: RunOptions, *, load_tables: bool = False,
                 every_source: bool = False):
        _MeshChecks.__init__(self, scenario, options, load_tables, every_source)
        tiles = self.mesh.tiles
        table = None
        if load_tables:
            table = SequenceSource({"table": stream_ports(port, "table")})
            table.send("table", [pack_fields(self.table_fields, w) for w in self.writes])
        self._streams(port, [f"inject__{t}" for t in range(tiles)], [f"deliver__{t}" for t in range(tiles)],
                      scenario.spikes, after=table)
        self.seen_links = {}
        watch = Watch(port("links"), self._links_seen)
        self.agents = [*([table] if table else []), *self.sources, *self.sinks, watch]

    def _links_seen(self, cycle, word):
        self.seen_links[cycle] = self._decode_links(word)

    @property
    def done(self) -> bool:
        return self.replayed and self.model.idle()

    def _cycle(self, cycle, ready):
        m = self.model
        for t, r in enumerate(ready):
            self.held_back[t] += bool(m.nodes[("merge", t)].out_valid[0] and not r)
        fired = m.tick(list(self.offer), ready)
        self._check_links(cycle, self.seen_links.pop(cycle, []), fired["links"])
        self._account(cycle, fired)
        return fired["inject"], fired["deliver"]

    def _state(self) -> str:
        busy = [f"{k[0]} {k[1]}" for k, n in self.model.nodes.items() if n.occupancy()]
        return "events held in " + (", ".join(busy) or "no node")

    def finish(self) -> dict:
        self._check_held_back()
        return _MeshChecks.finish(self)


def links_fired(links):
    """The strobe of the fabric's ``links`` port in its harness: some link fired this cycle."""
    return Cat(*(links[i].fire for i in range(links.shape().length))).any()


def mesh_harness(scenario: MeshScenario, load_tables: bool) -> dict:
    """The batch harness around the fabric: a player per injector (after one for the table writes),
    every delivery recorded, and the cycles with a link handshake."""
    tiles = scenario.tables.mesh.tiles
    return {"players": [["table"]] * load_tables + [[f"inject__{t}"] for t in range(tiles)],
            "sinks": [f"deliver__{t}" for t in range(tiles)], "watches": {"links": links_fired}, "offers": True}
