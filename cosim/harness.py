"""The batch verification harness: an Amaranth wrapper around a design under test that lets a
testbench drive and watch it in bulk, so that the simulator runs many cycles between two wake-ups of
Python instead of stopping at every clock edge.

* A :class:`StreamPlayer` feeds one or more of the design's input streams, in one order, from a
  buffer memory that the testbench fills in bulk: one entry (stream tag, payload) at a time, held
  until it is taken, with idle cycles drawn from a seeded LFSR before each new offer. A harness has
  one player, or one per group of streams that run independently (a router's in-ports).
* A :class:`TransferRecorder` writes every transfer of one monitored port (a stream's valid and
  ready, or a valid-only verification port) with its cycle number into a buffer memory that the
  testbench drains in bulk; each player has one too, for the cycles its entries were taken in
  (run-length coded by :class:`TakeRuns`: one record per run of takes in consecutive cycles), or,
  with ``offers``, for the first cycle of every offer and every take (a testbench that replays the
  design's inputs into a cycle model needs both).
* Each output stream's ready follows an LFSR pattern (backpressure); the pattern's state is a
  top-level output, and :class:`ReadyPattern` predicts it in Python.
* A watched plain output (a word of link handshakes) is recorded whole in every cycle in which a
  strobe of it, given with the port, is high.
* With ``clock=True`` the harness runs from its own free-running clock (:func:`clock_model`, a
  Verilog model scheduled by the simulator itself), so no testbench process toggles ``clk``: between
  two wake-ups of Python the simulator runs at its own speed. The design's reset is then the top-level
  input ``rst``.

Every top-level input (the controls, the design's passed-through inputs and, with its own clock, the
reset) is registered once at the harness's boundary (``INPUT_LATENCY``): what the testbench writes
at a falling edge takes effect one cycle later, and the simulator never re-evaluates the design's
logic for inputs that change only when Python wakes. The one exception is the wake comparator
(``h_player_hungry``), which sees the players' pointers and thresholds as written. The harness's own
registers ignore the reset: the testbench resets the design between items and keeps the cycle
counter, the buffers and the patterns running. Every port of the design that the harness does not
take over appears on the harness's top level under its flattened name (``rate``,
``synapse_counters__reads__0``), so a testbench reads and writes it as before.

The buffers' memories are reached by the simulator's hierarchy (``player_<i>.entries``,
``record_<port>.entries``); :class:`HarnessLayout` names every control and memory and is what the
Python side (``cosim.batch_loop``) reads.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    Elaboratable,
    Instance,
    Module,
    ResetSignal,
    Shape,
    Signal,
    unsigned,
)
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

__all__ = ["CYCLE_BITS", "INPUT_LATENCY", "PATTERN_BITS", "PERIOD_NS", "RUN_BITS", "HarnessLayout", "PatternLFSR",
           "ReadyPattern", "StreamPlayer", "TakeRuns", "TransferRecorder", "Harness", "clock_model", "lfsr_states",
           "port_name", "signature_ports", "xorshift32"]

CYCLE_BITS = 40          # the cycle number of every record: about 3 hours of simulated cycles at 100 MHz
POINTER_BITS = 32        # buffer pointers count entries, never wrap within a run
PATTERN_BITS = 16        # a probability is a threshold on 16 bits of the pattern LFSR
LFSR_BITS = 32
PERIOD_NS = 10           # the clock period, in the simulators' time unit (1 ns)
INPUT_LATENCY = 1        # cycles from a write of a top-level input to its effect (the input registers)
RUN_BITS = 8             # a record of the player's takes covers up to 2**RUN_BITS consecutive entries
CLOCK_MODULE = "harness_clock"


def clock_model() -> str:
    """The Verilog model of the harness's free-running clock: low at time 0, a rising edge at
    ``PERIOD_NS / 2`` and then every ``PERIOD_NS``, so a testbench that waits in whole periods
    from time 0 always wakes at a falling edge, when every register is stable. A simulation model,
    not hardware: Verilator runs it with ``--timing``."""
    half = PERIOD_NS // 2
    return (f"module {CLOCK_MODULE}(output reg clk);\n  initial clk = 1'b0;\n  always #{half} clk = ~clk;\n"
            "endmodule\n")


def lfsr_states(seed: int, count: int) -> list[int]:
    """The initial states of ``count`` pattern LFSRs of a run with ``seed``: distinct and non-zero."""
    states = []
    for i in range(count):
        x = (seed * 0x9E3779B1 + (i + 1) * 0x85EBCA77) & 0xFFFFFFFF
        x ^= x >> 15
        x = (x * 0x2C1B3C6D) & 0xFFFFFFFF
        x ^= x >> 12
        states.append(x or 0x1)
    return states


def _xorshift(x):
    """One step of Marsaglia's xorshift32 (13, 17, 5), a linear generator over GF(2) whose period is
    every non-zero state: three word-wide shift-XORs, cheap for an event-driven simulator (Icarus
    evaluates an XOR network bit by bit)."""
    x = x ^ (x << 13)[:LFSR_BITS]
    x = x ^ (x >> 17)
    return x ^ (x << 5)[:LFSR_BITS]


def xorshift32(x: int) -> int:
    """One step of the pattern LFSR (:func:`_xorshift`) in Python, on a 32-bit state."""
    mask = (1 << LFSR_BITS) - 1
    x ^= (x << 13) & mask
    x ^= x >> 17
    return x ^ ((x << 5) & mask)


class ReadyPattern:
    """The ready of one of the harness's sinks, predicted cycle by cycle in Python: ``state`` is its
    pattern LFSR's state in ``cycle`` (the top-level output ``h_pattern_<sink>``), ``threshold`` the
    backpressure threshold. :meth:`ready` is asked for cycles in increasing order."""

    def __init__(self, state: int, cycle: int, threshold: int):
        self.state, self.cycle, self.threshold = state, cycle, threshold

    def ready(self, cycle: int) -> bool:
        if cycle < self.cycle:
            raise ValueError(f"cycle {cycle} is before the pattern's cycle {self.cycle}; ask in increasing order.")
        while self.cycle < cycle:
            self.state = xorshift32(self.state)
            self.cycle += 1
        return (self.state & ((1 << PATTERN_BITS) - 1)) >= self.threshold


class PatternLFSR(Elaboratable):
    """A 32-bit xorshift LFSR stepped once a cycle; ``hit`` is high in a cycle when its low
    ``PATTERN_BITS`` bits are below ``threshold`` (a probability of ``threshold / 2**16``).
    ``load`` sets the state to ``seed`` (the testbench's per-run state from :func:`lfsr_states`)."""

    def __init__(self):
        self.seed = Signal(LFSR_BITS)
        self.load = Signal()
        self.threshold = Signal(PATTERN_BITS)
        self.hit = Signal()
        self.state = Signal(LFSR_BITS, init=1, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        nxt = _xorshift(self.state)
        with m.If(self.load):
            m.d.sync += self.state.eq(self.seed)
        with m.Else():
            m.d.sync += self.state.eq(nxt)
        m.d.comb += self.hit.eq(self.state[:PATTERN_BITS] < self.threshold)
        return m


class StreamPlayer(Elaboratable):
    """Feeds the input streams ``widths`` (name -> payload bits) in the order of its buffer's
    entries (``tag`` = the stream's index in ``widths``, in the low bits, then the payload), one
    entry offered at a time and held until taken; a new offer waits out the idle draws of ``idle``.

    The testbench writes entries at ``wptr % depth`` and, at least one cycle later, raises ``wptr``
    (the harness's input registers give that cycle): the memory is read through a register, loaded
    at every edge from the entry at the next read pointer. ``rptr`` counts the entries taken.
    ``taken`` pulses in the cycle an entry is taken (with its ``tag``), ``offered`` in the first
    cycle of each offer. A stream without a ready (a valid-only write port) takes every offer at once:
    its ``ready`` stays high."""

    def __init__(self, widths: dict[str, int], depth: int):
        self.names = list(widths)
        self.tag_bits = max(1, (len(widths) - 1).bit_length())
        self.width = self.tag_bits + max(widths.values())
        self.depth = depth
        self.entries = Memory(shape=unsigned(self.width), depth=depth, init=[])
        self.wptr = Signal(POINTER_BITS)
        self.rptr = Signal(POINTER_BITS, reset_less=True)
        self.idle = PatternLFSR()
        self.valid = {n: Signal(name=f"{n}_valid") for n in self.names}
        self.ready = {n: Signal(name=f"{n}_ready") for n in self.names}
        self.payload = Signal(self.width - self.tag_bits)
        self.tag = Signal(self.tag_bits)
        self.taken = Signal()
        self.offered = Signal()

    def elaborate(self, platform):
        m = Module()
        m.submodules.entries = self.entries
        m.submodules.idle = self.idle
        # A registered read of the entry at the next read pointer: no logic hangs combinationally off a
        # memory that the testbench writes through the simulator (it would be re-evaluated at every step).
        read = self.entries.read_port(domain="sync", transparent_for=())
        self.entries.write_port()           # the testbench writes the memory; the port keeps it a RAM
        offering = Signal(reset_less=True)  # an entry offered in an earlier cycle and not yet taken
        have = Signal()
        valid = Signal()
        rptr_next = Signal(POINTER_BITS)
        m.d.comb += [
            rptr_next.eq(self.rptr + self.taken),
            read.addr.eq(rptr_next),
            self.tag.eq(read.data[:self.tag_bits]),
            self.payload.eq(read.data[self.tag_bits:]),
            have.eq(self.wptr != self.rptr),
            valid.eq(have & (offering | ~self.idle.hit) & ~ResetSignal()),
        ]
        ready = Const(0, 1)
        for i, n in enumerate(self.names):
            mine = self.tag == i
            m.d.comb += self.valid[n].eq(valid & mine)
            ready = ready | (mine & self.ready[n])
        m.d.comb += [self.taken.eq(valid & ready), self.offered.eq(valid & ~offering)]
        m.d.sync += [offering.eq(valid & ~ready), self.rptr.eq(rptr_next)]
        return m


class TakeRuns(Elaboratable):
    """Run-length coding of the player's takes: a run is up to ``2**RUN_BITS`` entries of one stream
    taken in consecutive cycles. When a run ends (a cycle without a take, another stream, or a full
    run), ``done`` is high for one cycle with the run's first ``cycle``, its ``tag`` and ``length - 1``
    (``last``): the exact cycle of every take, in one record per run instead of one per take (a
    weight load takes an entry every cycle). The registers ignore the reset: a run that ends as a
    reset begins is still reported."""

    def __init__(self, tag_bits: int):
        self.strobe = Signal()
        self.tag = Signal(tag_bits)
        self.cycle = Signal(CYCLE_BITS)
        self.done = Signal()
        self.start = Signal(CYCLE_BITS, reset_less=True)
        self.run_tag = Signal(tag_bits, reset_less=True)
        self.last = Signal(RUN_BITS, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        running = Signal(reset_less=True)
        extend = Signal()
        full = self.last == (1 << RUN_BITS) - 1
        m.d.comb += [extend.eq(self.strobe & running & (self.tag == self.run_tag) & ~full),
                     self.done.eq(running & ~extend)]
        with m.If(extend):
            m.d.sync += self.last.eq(self.last + 1)
        with m.Elif(self.strobe):
            m.d.sync += [running.eq(1), self.start.eq(self.cycle), self.run_tag.eq(self.tag), self.last.eq(0)]
        with m.Else():
            m.d.sync += running.eq(0)
        return m


class TransferRecorder(Elaboratable):
    """Writes ``(cycle, data)`` at ``wptr % depth`` in every cycle in which ``strobe`` is high (outside
    the reset, unless ``in_reset``), the cycle number in the low ``CYCLE_BITS`` bits; ``wptr`` counts
    the records."""

    def __init__(self, data_bits: int, depth: int, *, in_reset: bool = False):
        self.data_bits, self.depth, self.in_reset = data_bits, depth, in_reset
        self.width = CYCLE_BITS + data_bits
        self.entries = Memory(shape=unsigned(self.width), depth=depth, init=[])
        self.strobe = Signal()
        self.data = Signal(data_bits)
        self.cycle = Signal(CYCLE_BITS)
        self.wptr = Signal(POINTER_BITS, reset_less=True)

    def elaborate(self, platform):
        m = Module()
        m.submodules.entries = self.entries
        write = self.entries.write_port()
        record = self.strobe if self.in_reset else self.strobe & ~ResetSignal()
        m.d.comb += [write.addr.eq(self.wptr), write.data.eq(Cat(self.cycle, self.data)), write.en.eq(record)]
        with m.If(record):
            m.d.sync += self.wptr.eq(self.wptr + 1)
        return m


@dataclass
class HarnessLayout:
    """What the Python side needs to know of a harness: each player's streams (in tag order), the
    recorded ports in dispatch order (``player_<i>`` first: each player's record of its entries, then
    each sink, monitor and watch), the buffers' depth, the players' tag bits, whether the players
    record offers (``offers``) or runs of takes, and the bits of every recorded field."""
    players: list[list[str]]
    recorders: list[str]                 # "player_<i>", then the recorded ports' names
    sinks: list[str]
    watches: list[str]
    depth: int
    tag_bits: list[int]                  # each player's stream tag, in the low bits of each entry
    offers: bool = False
    record_fields: dict = field(default_factory=dict)   # port -> the bits of each recorded field, LSB first


def signature_ports(signature, prefix=()):
    """Every plain port of ``signature`` as (path, member), an array's elements by index
    (``("inject", 0, "valid")``), each member's flow as seen from outside."""
    for name, member in signature.members.items():
        for index in itertools.product(*(range(n) for n in member.dimensions)):
            path = prefix + (name, *index)
            if member.is_signature:
                yield from signature_ports(member.signature, path)
            else:
                yield path, member


def port_name(path) -> str:
    """The flattened name of a port's path (``("inject", 0, "valid")`` -> ``inject__0__valid``), as
    Amaranth names the top level's ports."""
    return "__".join(map(str, path))


def _member(obj, path: str):
    """The member ``path`` (a flattened name: ``trace__wr0``) of ``obj``."""
    for part in path.split("__"):
        obj = obj[int(part)] if part.isdigit() else getattr(obj, part)
    return obj


def _value(obj):
    return obj.as_value() if hasattr(obj, "as_value") else obj


def monitor_fields(dut, port: str) -> list[tuple[str, object]]:
    """The recorded fields of a valid-only port of ``dut``: every member but ``valid``, in order."""
    obj = _member(dut, port)
    return [(name, _value(getattr(obj, name))) for name in obj.signature.members if name != "valid"]


class Harness(Elaboratable):
    """The harness around ``dut`` (an Amaranth component): ``players`` are groups of its input
    streams, each group fed by one :class:`StreamPlayer` in one order (``streams``: one group);
    ``sinks`` its output streams (recorded, with a ready pattern), ``monitors`` its valid-only
    verification ports (``valid``, ``payload``; recorded), ``watches`` plain outputs recorded whole in
    every cycle in which ``strobe(port)`` is high (name -> strobe). ``offers``: the players record
    the first cycle of every offer and every take, not runs of takes. Every other member of ``dut``
    is passed through under its flattened name; inputs among them that are streams left out
    (``valid``) are tied to zero by the testbench as before.

    Controls on the top level: ``h_cycle`` (the cycle counter), ``h_seed_<k>``/``h_seed_load`` (set
    the pattern LFSRs, one state per player then per sink), ``h_idle``/``h_backpressure``
    (thresholds), ``h_player_<i>_wptr``/``_rptr``, ``h_player_hungry`` (high while some player ``i``
    holds fewer than ``h_player_<i>_low`` entries: the testbench sleeps until it rises),
    ``h_record_<port>_wptr``, ``h_stall_<sink>`` (the cycles in which a sink held back a valid word)
    and ``h_pattern_<sink>`` (its ready pattern's state).

    ``clock``: the harness drives its clock domain from :func:`clock_model` (an instance of it; the
    Verilog must include the model) and takes the reset as the input ``rst``; otherwise ``clk`` and
    ``rst`` are the usual inputs (Amaranth's simulator)."""

    def __init__(self, dut, *, streams=(), players=None, sinks=(), monitors=(), watches=None, depth: int = 1024,
                 clock: bool = False, offers: bool = False):
        self.dut, self.depth, self.clock, self.offers = dut, depth, clock, offers
        self.reset = Signal(name="rst") if clock else None
        self.groups = [list(g) for g in players] if players is not None else [list(streams)]
        self.sinks, self.monitors = list(sinks), list(monitors)
        self.watches = dict(watches or {})
        self.streams = [s for g in self.groups for s in g]
        handled = set(self.streams) | set(self.sinks) | set(self.monitors) | set(self.watches)
        self._passed = [(path, member) for path, member in signature_ports(dut.signature)
                        if not any(port_name(path[:n]) in handled for n in range(1, len(path) + 1))]
        self.cycle = Signal(CYCLE_BITS, name="h_cycle", reset_less=True)
        self.seeds = [Signal(LFSR_BITS, name=f"h_seed_{i}") for i in range(len(self.groups) + len(self.sinks))]
        self.seed_load = Signal(name="h_seed_load")
        self.idle = Signal(PATTERN_BITS, name="h_idle")
        self.backpressure = Signal(PATTERN_BITS, name="h_backpressure")
        self.players = [StreamPlayer({s: len(_value(_member(dut, s).payload)) for s in g}, depth) for g in self.groups]
        self.player_wptr = [Signal(POINTER_BITS, name=f"h_player_{i}_wptr") for i in range(len(self.groups))]
        self.player_rptr = [Signal(POINTER_BITS, name=f"h_player_{i}_rptr") for i in range(len(self.groups))]
        self.player_low = [Signal(POINTER_BITS, name=f"h_player_{i}_low") for i in range(len(self.groups))]
        self.player_hungry = Signal(name="h_player_hungry")
        self.runs = [None if offers else TakeRuns(p.tag_bits) for p in self.players]
        self.recorders = {f"player_{i}": TransferRecorder(p.tag_bits + (2 if offers else RUN_BITS), depth,
                                                          in_reset=not offers)
                          for i, p in enumerate(self.players)}
        self.fields = {port: [("payload", len(_value(_member(dut, port).payload)))] for port in self.sinks}
        self.fields.update({port: [(n, len(v)) for n, v in monitor_fields(dut, port)] for port in self.monitors})
        self.fields.update({port: [("value", len(_value(_member(dut, port))))] for port in self.watches})
        for port, fields in self.fields.items():
            self.recorders[port] = TransferRecorder(sum(bits for _, bits in fields), depth)
        self.record_wptr = {p: Signal(POINTER_BITS, name=f"h_record_{p}_wptr") for p in self.recorders}
        self.stalls = {s: Signal(POINTER_BITS, name=f"h_stall_{s}", reset_less=True) for s in self.sinks}
        self.patterns = [PatternLFSR() for _ in self.sinks]
        self.pattern_states = {s: Signal(LFSR_BITS, name=f"h_pattern_{s}") for s in self.sinks}
        self.passed = {port_name(path): Signal(Shape.cast(member.shape).width, name=port_name(path))
                       for path, member in self._passed}

    @property
    def layout(self) -> HarnessLayout:
        return HarnessLayout(self.groups, list(self.recorders), self.sinks, list(self.watches), self.depth,
                             [p.tag_bits for p in self.players], self.offers,
                             {p: [bits for _, bits in f] for p, f in self.fields.items()})

    def ports(self) -> list[Signal]:
        """Every top-level port (for ``verilog.convert(..., ports=...)``)."""
        return [self.cycle, *self.seeds, self.seed_load, self.idle, self.backpressure, *self.player_wptr,
                *self.player_rptr, *self.player_low, self.player_hungry, *self.record_wptr.values(),
                *self.stalls.values(), *self.pattern_states.values(), *self.passed.values(),
                *([self.reset] if self.clock else [])]

    def elaborate(self, platform):
        m = Module()
        dut = self.dut
        registered = {}

        def pin(port: Signal, init: int = 0) -> Signal:
            """A top-level input as the harness and the design see it: one cycle later."""
            if port.name not in registered:
                registered[port.name] = Signal(len(port), name=f"{port.name}_q", init=init, reset_less=True)
                m.d.sync += registered[port.name].eq(port)
            return registered[port.name]

        if self.clock:
            m.domains.sync = ClockDomain()
            m.submodules.clock = Instance(CLOCK_MODULE, o_clk=ClockSignal())
            m.d.comb += ResetSignal().eq(pin(self.reset, init=1))     # in reset from time 0
        m.submodules.dut = dut
        m.d.sync += self.cycle.eq(self.cycle + 1)
        hungry = []
        for i, player in enumerate(self.players):
            m.submodules[f"player_{i}"] = player
            wptr = pin(self.player_wptr[i])
            # The wake compares the inputs as written, not their registers: at the falling edge at
            # which Python goes to sleep every term is low, so the first player to run low raises it.
            hungry.append((self.player_wptr[i] - player.rptr)[:POINTER_BITS] < self.player_low[i])
            m.d.comb += [player.wptr.eq(wptr), self.player_rptr[i].eq(player.rptr),
                         player.idle.threshold.eq(pin(self.idle)), player.idle.seed.eq(pin(self.seeds[i])),
                         player.idle.load.eq(pin(self.seed_load))]
            for s in self.groups[i]:
                port = _member(dut, s)
                m.d.comb += [port.valid.eq(player.valid[s]), port.payload.eq(player.payload),
                             player.ready[s].eq(port.ready if "ready" in port.signature.members else 1)]
        m.d.comb += self.player_hungry.eq(Cat(*hungry).any())
        for i, (s, pattern) in enumerate(zip(self.sinks, self.patterns)):
            port = _member(dut, s)
            m.submodules[f"pattern_{s}"] = pattern
            m.d.comb += [pattern.threshold.eq(pin(self.backpressure)),
                         pattern.seed.eq(pin(self.seeds[len(self.players) + i])),
                         pattern.load.eq(pin(self.seed_load)), port.ready.eq(~pattern.hit),
                         self.pattern_states[s].eq(pattern.state)]
            with m.If(port.valid & pattern.hit & ~ResetSignal()):
                m.d.sync += self.stalls[s].eq(self.stalls[s] + 1)
        for p, rec in self.recorders.items():
            m.submodules[f"record_{p}"] = rec
            m.d.comb += self.record_wptr[p].eq(rec.wptr)
        for i, (player, runs) in enumerate(zip(self.players, self.runs)):
            rec = self.recorders[f"player_{i}"]
            if self.offers:             # the first cycle of every offer and every take
                m.d.comb += [rec.strobe.eq(player.offered | player.taken), rec.cycle.eq(self.cycle),
                             rec.data.eq(Cat(player.tag, player.offered, player.taken))]
            else:                       # one record per run of takes, stamped with its first cycle
                m.submodules[f"runs_{i}"] = runs
                m.d.comb += [runs.strobe.eq(player.taken), runs.tag.eq(player.tag), runs.cycle.eq(self.cycle),
                             rec.strobe.eq(runs.done), rec.cycle.eq(runs.start),
                             rec.data.eq(Cat(runs.run_tag, runs.last))]
        for p in self.sinks:
            port, rec = _member(dut, p), self.recorders[p]
            m.d.comb += [rec.strobe.eq(port.valid & port.ready), rec.cycle.eq(self.cycle),
                         rec.data.eq(_value(port.payload))]
        for p in self.monitors:
            rec = self.recorders[p]
            m.d.comb += [rec.strobe.eq(_member(dut, p).valid), rec.cycle.eq(self.cycle),
                         rec.data.eq(Cat(*(v for _, v in monitor_fields(dut, p))))]
        for p, strobe in self.watches.items():
            port, rec = _member(dut, p), self.recorders[p]
            m.d.comb += [rec.strobe.eq(strobe(port)), rec.cycle.eq(self.cycle), rec.data.eq(_value(port))]
        for (path, member), sig in zip(self._passed, self.passed.values()):
            inner = _value(_member(dut, port_name(path)))
            m.d.comb += (inner.eq(pin(sig)) if member.flow == wiring.In else sig.eq(inner))
        return m
