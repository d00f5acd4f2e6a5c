"""The LIF core's testbench, independent of the simulator: agents, scoreboard and scenario sequencing.

``port(name)`` returns a :class:`~..agents.Port` for a flattened DUT port name (``events__valid``);
the simulator-specific loops (``cocotb_test`` for cocotb, ``tests/test_rtl_lif.py`` for
Amaranth's simulator) call :meth:`LIFTestbench.drive` and :meth:`LIFTestbench.sample` once a cycle.
"""

from __future__ import annotations

import copy
import random
from typing import Callable

import torch

from ...model import synapse as synapse_model
from ...model.config import (
    EVENT_TICK,
    PHASE_ACCUMULATE,
    WRITE_LATENCY,
    LIFConfig,
    pack_fields,
    signed_range,
    unpack_fields,
)
from ...model.golden import Mismatch
from ..agents import Port, SequenceSource, StreamSink, ValidMonitor, stream_ports
from ..options import RunOptions
from ..synapse.testbench import check_counters
from .scoreboard import LIFScoreboard, make_model
from .stimulus import Scenario

__all__ = ["LIFTestbench", "STALL_LIMIT", "SYNAPSE_FAULT", "HARNESS_PORTS"]

# What the batch harness plays and records around the core (``cosim.harness.Harness``).
HARNESS_PORTS = {"streams": ("weights", "events"), "sinks": ("spikes",), "monitors": ("state_write",)}

SYNAPSE_FAULT = "synapse-weight"   # with a synapse memory: the model memory holds one wrong weight
STALL_LIMIT = 10_000    # cycles without any transfer or state write before the test calls it a hang


class LIFTestbench:
    def __init__(self, config: LIFConfig, port: Callable[[str], Port], options: RunOptions, *,
                 scoreboard: bool = True, synapses=None):
        """``synapses``: the model synapse memory of a core built with one (its organisation and
        structure; each scenario brings its contents)."""
        self.config, self.fault = config, options.fault
        seed, idle, backpressure = options.seed, options.idle, options.backpressure
        self._synapses = synapses
        self._port = port
        self._memory = None                        # the scenario's model synapse memory
        rng = random.Random(seed)
        self.scoreboard = LIFScoreboard(config, fault=self.fault) if scoreboard else None
        sb = self.scoreboard
        # Weight loads, then the events: the core serves events before loads.
        self.source = SequenceSource({s: stream_ports(port, s) for s in HARNESS_PORTS["streams"]}, rng=rng, idle=idle,
                                     on_transfer={"weights": self._on_load if sb and synapses else None,
                                                  "events": self._on_input if sb else None})
        self.spikes = StreamSink(*stream_ports(port, "spikes"), rng=rng, backpressure=backpressure,
                                 on_transfer=sb.on_output if sb else None)
        self.agents = [self.source, self.spikes]
        if sb:
            self.agents.append(ValidMonitor(port("state_write__valid"), port("state_write__payload"),
                                            self._on_state_write))
        self.accumulate_cycles: list[int] = []    # cycles with an event-phase write (throughput)
        self.tick_cycles: list[int] = []          # cycles in which a TICK was accepted
        self.first_event_cycle: int | None = None  # the cycle the first spike event was accepted
        phase = config.state_write_fields[0]      # the first field of the verification port's word
        assert phase.name == "phase"
        self._phase_mask = (1 << phase.bits) - 1
        self._last_progress = 0
        self.stall_limit = STALL_LIMIT
        self.ticks_out = 0

    def _on_input(self, cycle: int, word: int) -> None:
        if unpack_fields(self.config.input_event_fields, word)["kind"] == EVENT_TICK:
            self.tick_cycles.append(cycle)
        elif self.first_event_cycle is None:
            self.first_event_cycle = cycle
        self.scoreboard.on_input(cycle, word)

    def _on_load(self, cycle: int, word: int) -> None:
        f = unpack_fields(synapse_model.load_fields(self._synapses), word)
        post = synapse_model.neuron_index(self._synapses, "post", f)
        pre = synapse_model.neuron_index(self._synapses, "pre", f)
        self.scoreboard.on_load(cycle, post, pre, f["value"])

    def _on_state_write(self, cycle: int, word: int) -> None:
        if word & self._phase_mask == PHASE_ACCUMULATE:
            self.accumulate_cycles.append(cycle)
        self.scoreboard.on_state_write(cycle, word)

    def throughput(self) -> dict:
        """Synaptic operations per cycle: over the event phases (from the first to the last
        accumulation write of each step) and over the whole run."""
        c, cyc = self.config, self.accumulate_cycles
        if not cyc:
            return {}
        # Each step's event phase runs from its first to its last accumulation write; a TICK accepted
        # in cycle t separates the writes before t + WRITE_LATENCY from those after.
        spans, start, ticks = 0, cyc[0], iter(t + WRITE_LATENCY for t in self.tick_cycles)
        boundary = next(ticks, None)
        for prev, cur in zip(cyc, cyc[1:]):
            while boundary is not None and boundary < prev:
                boundary = next(ticks, None)
            if boundary is not None and boundary < cur:
                spans += prev - start + 1
                start = cur
        spans += cyc[-1] - start + 1
        sops = len(cyc) * (1 if self._synapses is not None else c.lanes)   # a write per result, or per block
        run = cyc[-1] - cyc[0] + 1
        return {"synaptic_operations": sops, "event_phase_cycles": spans, "sop_per_cycle": sops / spans,
                "run_cycles": run, "sop_per_cycle_with_timesteps": sops / run,
                "first_event_cycle": self.first_event_cycle, "last_write_cycle": cyc[-1]}

    # -- scenario sequencing ----------------------------------------------------------------------
    def start(self, scenario: Scenario, first_cycle: int, load_weights: bool) -> None:
        """Begins ``scenario`` right after a reset whose first free cycle is ``first_cycle``."""
        c = self.config
        memory = None
        if scenario.memory is not None:
            memory = copy.deepcopy(scenario.memory)
            memory.reset_counts()
        self._memory = memory
        if memory is not None and self.fault == SYNAPSE_FAULT:
            # A wrong model memory: its first non-zero synapse holds another value than the DUT's.
            post, pre = torch.nonzero(memory.matrix())[0].tolist()
            weight = int(memory.matrix()[post, pre])
            lo, hi = signed_range(memory.weight_bits)
            memory.update(post, pre, next(v for v in (weight + 1, weight - 1, weight + 2) if v and lo <= v <= hi))
            memory.reset_counts()
        if self.scoreboard:
            model_fault = None if self.fault == SYNAPSE_FAULT else self.fault
            self.scoreboard.reset(make_model(c, scenario.weights, model_fault), first_cycle, memory)
        if memory is not None:
            fields = synapse_model.load_fields(memory)
            self.source.send("weights", (pack_fields(fields, {**synapse_model.neuron_values(memory, "post", post),
                                                   **synapse_model.neuron_values(memory, "pre", pre), "value": v})
                              for post, pre, v in scenario.loads))
        elif load_weights:
            self.source.send("weights", c.weight_load_words(scenario.weights))
        self.source.send("events", [pack_fields(c.input_event_fields, {"kind": k, "address": a})
                                    for k, a in scenario.tokens])
        self._expected_ticks = self.ticks_out + scenario.steps
        self._last_progress = first_cycle

    @property
    def done(self) -> bool:
        busy = not self.source.done
        if self.scoreboard:
            finished = not busy and self.scoreboard.idle
            if finished and self._memory is not None:
                self._check_counters()
            return finished
        return not busy and self.ticks_out >= self._expected_ticks

    def _check_counters(self) -> None:
        """At the end of a scenario: the synapse memory's counters against the model memory's."""
        self.scoreboard.checked["synapse_counters"] += check_counters(
            self._port, "synapse_counters__", self._memory.counts(), "the LIF core's synapse memory")

    # -- the per-cycle hooks ----------------------------------------------------------------------
    def drive(self) -> None:
        for a in self.agents:
            a.drive()

    def sample(self, cycle: int) -> None:
        before = self.source.transfers + self.spikes.transfers
        for a in self.agents:
            a.sample(cycle)
        if self.source.transfers + self.spikes.transfers != before:
            self._last_progress = cycle
            if not self.scoreboard and self.spikes.last_word is not None:
                if unpack_fields(self.config.output_event_fields, self.spikes.last_word)["kind"] == EVENT_TICK:
                    self.ticks_out += 1
                self.spikes.last_word = None
        if cycle - self._last_progress > STALL_LIMIT:
            raise Mismatch(f"the DUT made no progress for {STALL_LIMIT} cycles (cycle {cycle}).")

    def finish(self) -> dict:
        if self.scoreboard:
            self.scoreboard.finish()
            out = {"checked": dict(self.scoreboard.checked), "coverage": dict(self.scoreboard.coverage),
                   "output_stall_cycles": self.spikes.stall_cycles, "throughput": self.throughput()}
            if self._memory is not None:            # the last scenario's accesses per physical memory
                out["synapse_counts"] = self._memory.counts()
            return out
        return {}
