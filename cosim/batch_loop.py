"""The batch run loop under cocotb: a testbench's agents played and recorded by the design's harness
(``cosim.harness``), Python woken once per batch of cycles instead of at every clock edge.

The harness runs from its own clock (``Harness(clock=True)``): no Python process toggles it, and
Python waits in whole periods from time 0, so it always runs at a falling edge of the clock, when
every register is stable. At each wake it drains every recorder, sorts the records by cycle (and,
within a cycle, by the order of the agents, as the per-cycle loop samples them) and hands each to
its agent exactly as a per-cycle sample would: a player's records to its source's
:meth:`~.agents.SequenceSource.taken` (and :meth:`~.agents.SequenceSource.offered`), a sink's to
:meth:`~.agents.StreamSink.take`, a monitor's or a watch's to ``observe``. Then it refills the
players and sleeps until one runs low (``h_player_hungry``), or for as many cycles as can pass
without a recorder overflowing (one record per cycle at most), whichever comes first; once every
entry is taken, for short and then doubling spans until the testbench is done. The records, and so
every check, are the same whenever Python wakes; the wake-up points themselves depend only on the
run, so a run is reproducible from its seed.

Only this module and ``cocotb_loop`` import cocotb; they run inside the simulator.
"""

from __future__ import annotations

import itertools
import time

from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from ..model.golden import Mismatch
from .agents import FieldMonitor, SequenceSource, StreamSink, ValidMonitor, Watch
from .harness import CYCLE_BITS, INPUT_LATENCY, PATTERN_BITS, PERIOD_NS, ReadyPattern, lfsr_states
from .options import RunOptions, report_progress

__all__ = ["run_batched", "start_harness", "sleep", "Player", "Recorders", "Wire", "agent_ports", "threshold"]

FIRST_TAIL = 16          # cycles to the first wake once every entry is taken (then doubling)


def threshold(probability: float) -> int:
    """A probability as the pattern LFSR's threshold (``PATTERN_BITS`` bits)."""
    return min((1 << PATTERN_BITS) - 1, round(probability * (1 << PATTERN_BITS)))


def _port(agent) -> str:
    """The DUT port an agent watches (``logits`` for ``logits__valid``)."""
    if isinstance(agent, Watch):
        return agent.port.name
    return agent.valid.name.rsplit("__", 1)[0]


def agent_ports(agents) -> dict:
    """The harness ports a testbench's agents ask for: each source's streams (one player each, in
    the agents' order), the sinks, the monitors and the watches."""
    ports = {"players": [], "sinks": [], "monitors": [], "watches": []}
    for a in agents:
        if isinstance(a, SequenceSource):
            ports["players"].append(list(a.names))
        elif isinstance(a, StreamSink):
            ports["sinks"].append(_port(a))
        elif isinstance(a, (ValidMonitor, FieldMonitor)):
            ports["monitors"].append(_port(a))
        elif isinstance(a, Watch):
            ports["watches"].append(_port(a))
    return ports


class Wire:
    """A harness port or buffer entry read and written through the simulator's own handle: cocotb's
    value objects cost several times the simulator call, and the harness's controls and buffers only
    ever hold 0/1 bits (Amaranth memories start at zero). A write takes effect at once, not at
    cocotb's next read-write phase: the harness uses a buffer entry only after a later write of its
    pointer has made it valid, and Python writes only at falling edges."""
    __slots__ = ("raw", "width")

    def __init__(self, handle):
        self.raw, self.width = handle._handle, len(handle)

    def read(self) -> int:
        return int(self.raw.get_signal_val_binstr(), 2)

    def write(self, value: int) -> None:
        self.raw.set_signal_val_binstr(0, format(value, f"0{self.width}b"))


class _Buffer:
    """One of the harness's buffer memories (``depth`` entries, addressed modulo the depth), each
    entry a :class:`Wire`, looked up on first use."""

    def __init__(self, memory, depth: int):
        self.memory, self.depth = memory, depth
        self.entries: list[Wire | None] = [None] * depth

    def entry(self, index: int) -> Wire:
        slot = index % self.depth
        if self.entries[slot] is None:
            self.entries[slot] = Wire(self.memory[slot])
        return self.entries[slot]

    def read(self, index: int) -> int:
        return self.entry(index).read()

    def write(self, index: int, value: int) -> None:
        self.entry(index).write(value)


class Recorders:
    """The harness's record buffers as seen from Python: drained in bulk, dispatched in order."""

    def __init__(self, dut, layout: dict, agents, check: bool = True):
        self.dut, self.depth = dut, layout["depth"]
        self.names = layout["recorders"]
        self.pointers = [Wire(getattr(dut, f"h_record_{p}_wptr")) for p in self.names]
        self.read = [0] * len(self.names)
        self.last_record = 0
        if check:
            self._bind(layout, agents)

    def resync(self) -> None:
        """Skips every record written so far (an earlier run's, on a harness that ran before)."""
        self.read = [p.read() for p in self.pointers]

    def _bind(self, layout: dict, agents) -> None:
        ports = agent_ports(agents)
        names = [f"player_{i}" for i in range(len(ports["players"]))] + ports["sinks"] + ports["monitors"] + \
            ports["watches"]
        if ports["players"] != layout["players"] or ports["sinks"] != layout["sinks"] or names != layout["recorders"]:
            raise AssertionError(f"the testbench's agents ({ports}) do not match the harness ({layout['players']}, "
                                 f"{layout['recorders']}).")
        sources = [a for a in agents if isinstance(a, SequenceSource)]
        by_port = {f"player_{i}": a for i, a in enumerate(sources)}
        for a in agents:
            if isinstance(a, (StreamSink, ValidMonitor, FieldMonitor, Watch)):
                by_port[_port(a)] = a
                if isinstance(a, FieldMonitor):
                    a.widths = layout["record_fields"][_port(a)]
        self.agents = [by_port[p] for p in self.names]
        self.buffers = [_Buffer(getattr(self.dut, f"record_{p}").entries, self.depth) for p in self.names]
        self.players = len(sources)
        self.streams = layout["players"]
        self.offers = layout["offers"]
        self.tag_bits = layout["tag_bits"]

    def _player_records(self, index: int, value: int, records: list) -> None:
        """The records of player ``index`` in one entry: ``(cycle, index, order, tag)``, order 0 for
        the first cycle of an offer and 1 for a take."""
        cycle, rest = value & ((1 << CYCLE_BITS) - 1), value >> CYCLE_BITS
        tag, rest = rest & ((1 << self.tag_bits[index]) - 1), rest >> self.tag_bits[index]
        if self.offers:                 # (tag, offered, taken)
            if rest & 1:
                records.append((cycle, index, 0, tag))
            if rest & 2:
                records.append((cycle, index, 1, tag))
        else:                           # a run of takes: (first cycle, tag, length - 1)
            records.extend((cycle + k, index, 1, tag) for k in range(rest + 1))

    def drain(self) -> int:
        """Dispatches every record written so far, in cycle order (a run of a player's takes as one
        record per take; within a cycle in the agents' order); returns how many."""
        records = []
        mask = (1 << CYCLE_BITS) - 1
        for index, (buffer, pointer) in enumerate(zip(self.buffers, self.pointers)):
            end, start = pointer.read(), self.read[index]
            if end - start > self.depth:
                raise AssertionError(f"the harness's {self.names[index]} recorder overflowed "
                                     f"({end - start} records for {self.depth} entries).")
            if index < self.players:
                for i in range(start, end):
                    self._player_records(index, buffer.read(i), records)
            else:
                for i in range(start, end):
                    v = buffer.read(i)
                    records.append((v & mask, index, 0, v >> CYCLE_BITS))
            self.read[index] = end
        records.sort(key=lambda r: r[:3])
        for cycle, index, order, data in records:
            agent = self.agents[index]
            if index < self.players:
                if order == 0:
                    agent.offered(cycle)
                else:
                    agent.taken(cycle, self.streams[index][data])
            elif isinstance(agent, StreamSink):
                agent.take(cycle, data)
            else:
                agent.observe(cycle, data)
        if records:
            self.last_record = records[-1][0]
        return len(records)

    def skip(self) -> int:
        """Empties the buffers without looking at the records (a run with checking off)."""
        n = 0
        for index, pointer in enumerate(self.pointers):
            end = pointer.read()
            n += end - self.read[index]
            self.read[index] = end
        return n


class Player:
    """One of the harness's players as seen from Python: a source's queue, written ahead into the
    buffer. ``written`` counts the entries ever written (the harness's ``h_player_<i>_wptr``); the
    source counts those whose take has been dispatched, so the queue's first ``buffered`` words are
    in the buffer. The harness's ``h_player_<i>_rptr`` counts the takes themselves: a run of takes is
    recorded when it ends, so the harness may have taken more than the records say. A held source
    (waiting for another) gets no entries."""

    def __init__(self, dut, layout: dict, index: int, source: SequenceSource):
        self.dut, self.depth, self.source = dut, layout["depth"], source
        self.buffer = _Buffer(getattr(dut, f"player_{index}").entries, self.depth)
        self.wptr, self.rptr, self.low = (Wire(getattr(dut, f"h_player_{index}_{n}")) for n in ("wptr", "rptr", "low"))
        self.tags = {s: i for i, s in enumerate(layout["players"][index])}
        self.tag_bits = layout["tag_bits"][index]
        self.base = self.written = 0

    def rebase(self) -> None:
        """Starts the queue at the harness's read pointer: whatever an earlier run left in the buffer
        is dropped (its pointers never reset; a run on a harness that ran before starts here)."""
        self.base = self.written = self.rptr.read()
        self.wptr.write(self.written)

    @property
    def buffered(self) -> int:
        return self.written - self.base - self.source.transfers

    @property
    def exhausted(self) -> bool:
        """Every queued word is in the buffer."""
        return self.buffered >= len(self.source.queue)

    @property
    def drained(self) -> bool:
        """Every queued word is in the buffer and the harness has taken them all."""
        return self.exhausted and self.rptr.read() == self.written

    def refill(self) -> None:
        """Writes the next queued words into every entry the harness has taken."""
        if self.source.held:
            return
        buffered = self.buffered
        free = self.depth - (self.written - self.rptr.read())
        new = list(itertools.islice(self.source.queue, buffered, buffered + free))
        for stream, word in new:
            self.buffer.write(self.written, (word << self.tag_bits) | self.tags[stream])
            self.written += 1
        if new:
            self.wptr.write(self.written)

    def set_low(self) -> None:
        """When this player wakes Python: while it holds under a quarter of its buffer, or, once it
        has the whole queue, when it runs dry; never while it is drained or held."""
        if self.source.held or self.drained:
            self.low.write(0)
        else:
            self.low.write(1 if self.exhausted else self.depth // 4 + 1)

    def skip_taken(self) -> None:
        """Takes from the queue what the harness took (a run with checking off dispatches nothing)."""
        for _ in range(self.rptr.read() - self.base - self.source.transfers):
            self.source.queue.popleft()
            self.source.transfers += 1


async def sleep(dut, cycles: int) -> None:
    """Sleeps ``cycles`` or until a player runs low (``h_player_hungry`` rises), whichever comes
    first; returns at a falling edge of the clock."""
    await First(Timer(cycles * PERIOD_NS, unit="ns"), RisingEdge(dut.h_player_hungry))
    phase = get_sim_time("ns") % PERIOD_NS
    if phase:           # woken at the rising edge in which a player ran low
        await Timer(PERIOD_NS - phase, unit="ns")


async def start_harness(dut, players, layout: dict, options: RunOptions, idle_inputs=()) -> None:
    """Sets up the harness at time 0, or at a falling edge after an earlier run: the design in reset,
    nothing to play (each player rebased at the harness's read pointer), the patterns' thresholds
    and seeds of ``options`` loaded; returns at the next falling edge, the reset still on."""
    dut.rst.value = 1
    for player in players:
        player.wptr.write(player.written)
        player.low.write(0)
    dut.h_idle.value = threshold(options.idle)
    dut.h_backpressure.value = threshold(options.backpressure)
    for i, state in enumerate(lfsr_states(options.seed, len(players) + len(layout["sinks"]))):
        getattr(dut, f"h_seed_{i}").value = state
    for name in idle_inputs:
        getattr(dut, f"{name}__valid").value = 0
    dut.h_seed_load.value = 1
    await Timer(PERIOD_NS, unit="ns")       # the harness's own clock: one rising edge, then a falling one
    dut.h_seed_load.value = 0
    for player in players:                  # the reset holds now: nothing more is taken
        player.rebase()


async def run_batched(dut, tb, items, start, layout: dict, options: RunOptions, clock: dict, *,
                      idle_inputs=(), check: bool = True, item_cycles=None) -> list[int]:
    """Runs ``items`` one after the other on the harness ``dut``, each after two cycles of reset:
    ``start(tb, index, item, cycle)`` begins one (``cycle``: the first cycle after the reset), then
    the harness plays the sources' queues and the loop dispatches the records until ``tb.done``.
    Each sink agent gets its ready pattern (``pattern``: a :class:`~.harness.ReadyPattern`) before
    ``start``. A testbench with a ``settle(cycle)`` method is told after each drain that every record
    of the cycles before ``cycle`` has been dispatched. ``idle_inputs``: passed-through input streams
    held idle. ``check=False`` (with ``item_cycles``, the cycles each item took in a checked run):
    the same stimulus with nothing dispatched, for the simulator's own speed. Returns the cycles each
    item took; ``clock["cycle"]`` follows the run and ``clock["setup_s"]`` sums the seconds spent in
    ``start``."""
    sources = [a for a in tb.agents if isinstance(a, SequenceSource)]
    recorders = Recorders(dut, layout, tb.agents, check)
    players = [Player(dut, layout, i, source) for i, source in enumerate(sources)]
    sinks = {_port(a): a for a in tb.agents if isinstance(a, StreamSink)}
    settle = getattr(tb, "settle", None) if check else None
    stall_limit = tb.stall_limit
    h_cycle = Wire(dut.h_cycle)
    await start_harness(dut, players, layout, options, idle_inputs)
    stalls = {name: getattr(dut, f"h_stall_{name}") for name in sinks}
    stalls_before = {name: int(h.value) for name, h in stalls.items()}     # an earlier run's, on this harness
    spans = []
    for index, item in enumerate(items):
        dut.rst.value = 1
        await Timer(2 * PERIOD_NS, unit="ns")
        if index == 0:                      # an earlier run's last records are written by now
            recorders.resync()
        dut.rst.value = 0
        now = h_cycle.read()
        first = now + INPUT_LATENCY      # the design's first cycle out of reset
        clock["cycle"] = first
        for name, sink in sinks.items():
            sink.pattern = ReadyPattern(Wire(getattr(dut, f"h_pattern_{name}")).read(), now,
                                        threshold(options.backpressure))
        began = time.perf_counter()
        start(tb, index, item, first)
        clock["setup_s"] = clock.get("setup_s", 0.0) + time.perf_counter() - began
        recorders.last_record = first
        tail = FIRST_TAIL
        now = first
        while True:
            for player in players:
                player.refill()
            if check and tb.done:
                break
            if not check and now - first >= item_cycles[index]:
                break
            wait = layout["depth"]          # no recorder can fill up meanwhile (one record a cycle at most)
            if check:
                wait = min(wait, max(1, recorders.last_record + stall_limit + 1 - now))
            else:
                wait = min(wait, item_cycles[index] - (now - first))
            if all(s.done for s in sources) or all(p.drained for p in players):
                wait, tail = min(wait, tail), min(2 * tail, layout["depth"])    # the item's last outputs are due
                await Timer(wait * PERIOD_NS, unit="ns")
            else:                           # or until a player runs low
                for player in players:
                    player.set_low()
                await sleep(dut, wait)
            now = h_cycle.read()
            clock["cycle"] = now
            if check:
                if recorders.drain():
                    tail = FIRST_TAIL
                if settle is not None:
                    settle(now)
                if now - recorders.last_record > stall_limit:
                    raise Mismatch(f"the DUT made no progress for {stall_limit} cycles (cycle {now}).")
            else:
                recorders.skip()
                for player in players:
                    player.skip_taken()
        spans.append(now - first)
        report_progress(clock, index + 1)
    for name, sink in sinks.items():
        sink.stall_cycles = (int(stalls[name].value) - stalls_before[name]) % (1 << len(stalls[name]))
    return spans
