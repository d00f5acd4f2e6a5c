"""The batch run loop under cocotb: a testbench's agents played and recorded by the design's harness
(``cosim.harness``), Python woken once per batch of cycles instead of at every clock edge.

Python runs at the falling edge of the clock, when every register is stable. At each wake it drains
every recorder, sorts the records by cycle (and, within a cycle, by the order of the agents, as the
per-cycle loop samples them) and hands each to its agent exactly as a per-cycle sample would: the
player's records to :meth:`~.agents.SequenceSource.taken`, a sink's to
:meth:`~.agents.StreamSink.take`, a monitor's to :meth:`~.agents.ValidMonitor.observe`. Then it
refills the player and sleeps for as many cycles as can pass without the player running dry (one
entry is taken per cycle at most) or a recorder overflowing (one record per cycle at most). The
records, and so every check, are the same whenever Python wakes; the wake-up points themselves
depend only on the run, so a run is reproducible from its seed.

Only this module and ``cocotb_loop`` import cocotb; they run inside the simulator.
"""

from __future__ import annotations

import itertools
import time

from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, Timer

from ..model.golden import Mismatch
from .agents import FieldMonitor, SequenceSource, StreamSink, ValidMonitor
from .harness import CYCLE_BITS, PATTERN_BITS, lfsr_states
from .options import RunOptions, report_progress

__all__ = ["run_batched", "agent_ports", "threshold"]

PERIOD_NS = 10
FIRST_TAIL = 16          # cycles to the first wake once every input is taken (then doubling)


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


class _Recorders:
    """The harness's record buffers as seen from Python: drained in bulk, dispatched in order."""

    def __init__(self, dut, layout: dict, agents, check: bool = True):
        self.dut, self.depth = dut, layout["depth"]
        self.names = layout["recorders"]
        self.pointers = [getattr(dut, f"h_record_{p}_wptr") for p in self.names]
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
        self.memories = [getattr(self.dut, f"record_{p}").entries for p in self.names]
        self.streams = layout["streams"]

    def drain(self) -> int:
        """Dispatches every record written so far, in cycle order; returns how many."""
        records = []
        mask = (1 << CYCLE_BITS) - 1
        for index, (memory, pointer) in enumerate(zip(self.memories, self.pointers)):
            end, start = int(pointer.value), self.read[index]
            if end - start > self.depth:
                raise AssertionError(f"the harness's {self.names[index]} recorder overflowed "
                                     f"({end - start} records for {self.depth} entries).")
            for i in range(start, end):
                v = memory[i % self.depth].value.to_unsigned()
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
            end = int(pointer.value)
            n += end - self.read[index]
            self.read[index] = end
        return n


class _Player:
    """The harness's player as seen from Python: the source's queue, written ahead into the buffer.
    ``written`` counts the entries ever written (the harness's ``h_player_wptr``); the source counts
    those taken, so the queue's first ``buffered`` words are in the buffer."""

    def __init__(self, dut, layout: dict, source: SequenceSource):
        self.dut, self.depth, self.source = dut, layout["depth"], source
        self.memory = dut.player.entries
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

    def refill(self) -> None:
        buffered = self.buffered
        new = list(itertools.islice(self.source.queue, buffered, self.depth))
        for stream, word in new:
            self.memory[self.written % self.depth].value = (word << self.tag_bits) | self.tags[stream]
            self.written += 1
        if new:
            self.dut.h_player_wptr.value = self.written

    def skip_taken(self) -> None:
        """Takes from the queue what the harness took (a run with checking off dispatches nothing)."""
        for _ in range(int(self.dut.h_player_rptr.value) - self.source.transfers):
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
    dut.rst.value = 1
    dut.h_player_wptr.value = 0
    dut.h_idle.value = threshold(options.idle)
    dut.h_backpressure.value = threshold(options.backpressure)
    for i, state in enumerate(lfsr_states(options.seed, 1 + len(layout["sinks"]))):
        getattr(dut, f"h_seed_{i}").value = state
    for name in idle_inputs:
        getattr(dut, f"{name}__valid").value = 0
    dut.h_seed_load.value = 1
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    await FallingEdge(dut.clk)
    dut.h_seed_load.value = 0
    spans = []
    for index, item in enumerate(items):
        dut.rst.value = 1
        await Timer(2 * PERIOD_NS, unit="ns")
        dut.rst.value = 0
        first = int(dut.h_cycle.value)
        clock["cycle"] = first
        began = time.perf_counter()
        start(tb, index, item, first)
        clock["setup_s"] = clock.get("setup_s", 0.0) + time.perf_counter() - began
        taken_before = source.transfers
        recorders.last_record = first
        tail = FIRST_TAIL
        now = first
        while True:
            player.refill()
            if check and tb.done:
                break
            if not check and now - first >= item_cycles[index]:
                break
            wait = layout["depth"]
            if not player.exhausted:
                wait = min(wait, max(1, player.buffered))
            elif source.done:
                wait, tail = min(wait, tail), min(2 * tail, layout["depth"])
            else:                   # the last entries: half the time they should take at this item's pace
                pace = (now - first) / max(1, source.transfers - taken_before)
                wait = min(wait, max(FIRST_TAIL, int(pace * player.buffered / 2)))
            if check:
                wait = min(wait, max(1, recorders.last_record + stall_limit + 1 - now))
            else:
                wait = min(wait, item_cycles[index] - (now - first))
            await Timer(wait * PERIOD_NS, unit="ns")
            now = int(dut.h_cycle.value)
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
