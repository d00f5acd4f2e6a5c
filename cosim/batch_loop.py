"""The batch run loop under cocotb: a testbench's agents played and recorded by the design's harness
(``cosim.harness``), Python woken once per batch of cycles instead of at every clock edge.

The harness runs from its own clock (``Harness(clock=True)``): no Python process toggles it, and
Python waits in whole periods from time 0, so it always runs at a falling edge of the clock, when
every register is stable. At each wake it drains every recorder, sorts the records by cycle (and,
within a cycle, by the order of the agents, as the per-cycle loop samples them) and hands each to
its agent exactly as a per-cycle sample would: the player's records to
:meth:`~.agents.SequenceSource.taken`, a sink's to :meth:`~.agents.StreamSink.take`, a monitor's to
:meth:`~.agents.ValidMonitor.observe`. Then it refills the player and sleeps until the player runs
low (``h_player_hungry``), or for as many cycles as can pass without a recorder overflowing (one
record per cycle at most), whichever comes first; once every entry is taken, for short and then
doubling spans until the testbench is done. The records, and so every check, are the same whenever
Python wakes; the wake-up points themselves depend only on the run, so a run is reproducible from
its seed.

Only this module and ``cocotb_loop`` import cocotb; they run inside the simulator.
"""

from __future__ import annotations

import itertools
import time

from cocotb.triggers import First, RisingEdge, Timer
from cocotb.utils import get_sim_time

from ..model.golden import Mismatch
from .agents import FieldMonitor, SequenceSource, StreamSink, ValidMonitor
from .harness import CYCLE_BITS, INPUT_LATENCY, PATTERN_BITS, PERIOD_NS, lfsr_states
from .options import RunOptions, report_progress

__all__ = ["run_batched", "agent_ports", "threshold"]

FIRST_TAIL = 16          # cycles to the first wake once every entry is taken (then doubling)


def threshold(probability: float) -> int:
    """A probability as the pattern LFSR's threshold (``PATTERN_BITS`` bits)."""
    return min((1 << PATTERN_BITS) - 1, round(probability * (1 << PATTERN_BITS)))


def _port(agent) -> str:
    """The DUT port an agent watches (``logits`` for ``logits__valid``)."""
    return agent.valid.name.rsplit("__", 1)[0]


def agent_ports(agents) -> tuple[list[str], list[str], list[str]]:
    """The harness ports a testbench's agents ask for: the source's streams (in its order), the
    sinks and the monitors (in the agents' order)."""
    streams, sinks, monitors = [], [], []
    for a in agents:
        if isinstance(a, SequenceSource):
            streams += a.names
        elif isinstance(a, StreamSink):
            sinks.append(_port(a))
        elif isinstance(a, (ValidMonitor, FieldMonitor)):
            monitors.append(_port(a))
    return streams, sinks, monitors


class _Wire:
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
    entry a :class:`_Wire`, looked up on first use."""

    def __init__(self, memory, depth: int):
        self.memory, self.depth = memory, depth
        self.entries: list[_Wire | None] = [None] * depth

    def entry(self, index: int) -> _Wire:
        slot = index % self.depth
        if self.entries[slot] is None:
            self.entries[slot] = _Wire(self.memory[slot])
        return self.entries[slot]

    def read(self, index: int) -> int:
        return self.entry(index).read()

    def write(self, index: int, value: int) -> None:
        self.entry(index).write(value)


class _Recorders:
    """The harness's record buffers as seen from Python: drained in bulk, dispatched in order."""

    def __init__(self, dut, layout: dict, agents, check: bool = True):
        self.dut, self.depth = dut, layout["depth"]
        self.names = layout["recorders"]
        self.pointers = [_Wire(getattr(dut, f"h_record_{p}_wptr")) for p in self.names]
        self.read = [0] * len(self.names)
        self.last_record = 0
        if check:
            self._bind(layout, agents)

    def _bind(self, layout: dict, agents) -> None:
        streams, sinks, monitors = agent_ports(agents)
        if streams != layout["streams"] or sinks != layout["sinks"] or ["player", *sinks, *monitors] != \
                layout["recorders"]:
            raise AssertionError(f"the testbench's agents ({streams}, {sinks}, {monitors}) do not match the "
                                 f"harness ({layout['streams']}, {layout['sinks']}, {layout['recorders']}).")
        by_port = {}
        for a in agents:
            if isinstance(a, SequenceSource):
                by_port["player"] = a
            elif isinstance(a, (StreamSink, ValidMonitor, FieldMonitor)):
                by_port[_port(a)] = a
                if isinstance(a, FieldMonitor):
                    a.widths = layout["record_fields"][_port(a)]
        self.agents = [by_port[p] for p in self.names]
        self.buffers = [_Buffer(getattr(self.dut, f"record_{p}").entries, self.depth) for p in self.names]
        self.streams = layout["streams"]
        self.tag_mask = (1 << layout["tag_bits"]) - 1
        self.run_shift = CYCLE_BITS + layout["tag_bits"]

    def drain(self) -> int:
        """Dispatches every record written so far, in cycle order (a run of the player's takes as
        one record per take); returns how many."""
        records = []
        mask = (1 << CYCLE_BITS) - 1
        for index, (buffer, pointer) in enumerate(zip(self.buffers, self.pointers)):
            end, start = pointer.read(), self.read[index]
            if end - start > self.depth:
                raise AssertionError(f"the harness's {self.names[index]} recorder overflowed "
                                     f"({end - start} records for {self.depth} entries).")
            if index == 0:          # the player's runs of takes: (first cycle, tag, length - 1)
                for i in range(start, end):
                    v = buffer.read(i)
                    cycle, tag, last = v & mask, (v >> CYCLE_BITS) & self.tag_mask, v >> self.run_shift
                    records.extend((cycle + k, 0, tag) for k in range(last + 1))
            else:
                for i in range(start, end):
                    v = buffer.read(i)
                    records.append((v & mask, index, v >> CYCLE_BITS))
            self.read[index] = end
        records.sort(key=lambda r: (r[0], r[1]))
        for cycle, index, data in records:
            agent = self.agents[index]
            if index == 0:
                agent.taken(cycle, self.streams[data])
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


class _Player:
    """The harness's player as seen from Python: the source's queue, written ahead into the buffer.
    ``written`` counts the entries ever written (the harness's ``h_player_wptr``); the source counts
    those whose take has been dispatched, so the queue's first ``buffered`` words are in the buffer.
    The harness's ``h_player_rptr`` counts the takes themselves: a run of takes is recorded when it
    ends, so the harness may have taken more than the records say."""

    def __init__(self, dut, layout: dict, source: SequenceSource):
        self.dut, self.depth, self.source = dut, layout["depth"], source
        self.buffer = _Buffer(dut.player.entries, self.depth)
        self.wptr, self.rptr, self.low = (_Wire(getattr(dut, f"h_player_{n}")) for n in ("wptr", "rptr", "low"))
        self.tags = {s: i for i, s in enumerate(layout["streams"])}
        self.tag_bits = layout["tag_bits"]
        self.written = 0

    @property
    def buffered(self) -> int:
        return self.written - self.source.transfers

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
        buffered = self.buffered
        free = self.depth - (self.written - self.rptr.read())
        new = list(itertools.islice(self.source.queue, buffered, buffered + free))
        for stream, word in new:
            self.buffer.write(self.written, (word << self.tag_bits) | self.tags[stream])
            self.written += 1
        if new:
            self.wptr.write(self.written)

    async def sleep(self, cycles: int, low: int) -> None:
        """Sleeps ``cycles`` or until the player holds no more than ``low`` entries, whichever comes
        first; returns at a falling edge of the clock."""
        self.low.write(low)
        await First(Timer(cycles * PERIOD_NS, unit="ns"), RisingEdge(self.dut.h_player_hungry))
        phase = get_sim_time("ns") % PERIOD_NS
        if phase:           # woken at the rising edge in which the player ran low
            await Timer(PERIOD_NS - phase, unit="ns")

    def skip_taken(self) -> None:
        """Takes from the queue what the harness took (a run with checking off dispatches nothing)."""
        for _ in range(self.rptr.read() - self.source.transfers):
            self.source.queue.popleft()
            self.source.transfers += 1


async def run_batched(dut, tb, items, start, layout: dict, options: RunOptions, clock: dict, *,
                      idle_inputs=(), check: bool = True, item_cycles=None) -> list[int]:
    """Runs ``items`` one after the other on the harness ``dut``, each after two cycles of reset:
    ``start(tb, index, item, cycle)`` begins one (``cycle``: the first cycle after the reset), then
    the harness plays the source's queue and the loop dispatches the records until ``tb.done``.
    ``idle_inputs``: passed-through input streams held idle. ``check=False`` (with ``item_cycles``,
    the cycles each item took in a checked run): the same stimulus with nothing dispatched, for the
    simulator's own speed. Returns the cycles each item took; ``clock["cycle"]`` follows the run and
    ``clock["setup_s"]`` sums the seconds spent in ``start``."""
    source = next(a for a in tb.agents if isinstance(a, SequenceSource))
    recorders = _Recorders(dut, layout, tb.agents, check)
    player = _Player(dut, layout, source)
    sinks = {_port(a): a for a in tb.agents if isinstance(a, StreamSink)}
    stall_limit = tb.stall_limit
    h_cycle = _Wire(dut.h_cycle)
    dut.rst.value = 1
    player.wptr.write(0)
    player.low.write(0)
    dut.h_idle.value = threshold(options.idle)
    dut.h_backpressure.value = threshold(options.backpressure)
    for i, state in enumerate(lfsr_states(options.seed, 1 + len(layout["sinks"]))):
        getattr(dut, f"h_seed_{i}").value = state
    for name in idle_inputs:
        getattr(dut, f"{name}__valid").value = 0
    dut.h_seed_load.value = 1
    await Timer(PERIOD_NS, unit="ns")       # the harness's own clock: one rising edge, then a falling one
    dut.h_seed_load.value = 0
    spans = []
    for index, item in enumerate(items):
        dut.rst.value = 1
        await Timer(2 * PERIOD_NS, unit="ns")
        dut.rst.value = 0
        first = h_cycle.read() + INPUT_LATENCY      # the design's first cycle out of reset
        clock["cycle"] = first
        began = time.perf_counter()
        start(tb, index, item, first)
        clock["setup_s"] = clock.get("setup_s", 0.0) + time.perf_counter() - began
        recorders.last_record = first
        tail = FIRST_TAIL
        now = first
        while True:
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
            if source.done or player.drained:   # every entry taken: the item's last outputs are due
                wait, tail = min(wait, tail), min(2 * tail, layout["depth"])
                await Timer(wait * PERIOD_NS, unit="ns")
            else:                           # or until the player runs low (dry, once it has the whole queue)
                await player.sleep(wait, 0 if player.exhausted else layout["depth"] // 4)
            now = h_cycle.read()
            clock["cycle"] = now
            if check:
                if recorders.drain():
                    tail = FIRST_TAIL
                if now - recorders.last_record > stall_limit:
                    raise Mismatch(f"the DUT made no progress for {stall_limit} cycles (cycle {now}).")
            else:
                recorders.skip()
                player.skip_taken()
        spans.append(now - first)
        report_progress(clock, index + 1)
    for name, sink in sinks.items():
        sink.stall_cycles = int(getattr(dut, f"h_stall_{name}").value)
    return spans
