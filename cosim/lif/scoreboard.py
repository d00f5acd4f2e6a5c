"""Scoreboard of the LIF core: pairs every observed transaction with the golden model's prediction.

Checked, in order and with their cycles:

* every state write (phase, block, the ``lanes`` state records, and the cycle given by the core's
  cycle contract: token accepted in cycle c -> block b written in cycle c + WRITE_LATENCY + b; after a reset,
  block b cleared in cycle b). A core with a synapse memory writes a block per result of the spike
  event's forward access, in the order the model memory delivers them, no earlier than cycle
  c + WRITE_LATENCY + 1; its weight loads update the model memory;
* every output event (spiking neuron ids in ascending order, then a TICK), each no earlier than the
  state write that produced it;
* at the end, that nothing the model predicted is missing.

Coverage counts the corner cases that happened (saturation of each state, a potential exactly at
threshold, silent steps, steps with every input) so that a regression can require them.
"""

from __future__ import annotations

from collections import Counter, deque

import torch

from ...model.config import (
    EVENT_SPIKE,
    EVENT_TICK,
    PHASE_ACCUMULATE,
    PHASE_CLEAR,
    PHASE_STEP,
    WRITE_LATENCY,
    LIFConfig,
    unpack_fields,
)
from ...model.golden import Mismatch
from ...model.lif import IntegerLIF, LIFState

__all__ = ["LIFScoreboard", "FAULTS", "WRITE_CYCLE_FAULT", "make_model"]


class _WrongThreshold(IntegerLIF):
    """Fires only strictly above threshold: wrong exactly when U == threshold."""

    def __init__(self, config, weights):
        super().__init__(config, weights)
        self._shifted = IntegerLIF(config.replace(threshold=config.threshold + 1), weights)

    def step(self, state):
        return self._shifted.step(state)


class _MembraneOffByOne(IntegerLIF):
    """Adds one LSB to neuron 0's membrane at every timestep."""

    def step(self, state):
        state, spikes = super().step(state)
        state.membrane[..., 0] += 1
        return state, spikes


class _WrongSaturation(IntegerLIF):
    """Lets the current wrap instead of saturating."""

    def _wrap(self, current):
        lo, hi = self.config.current_range
        return (current - lo) % (hi - lo + 1) + lo

    def accumulate(self, state, pre):
        return LIFState(self._wrap(state.current + self.weights[:, pre]), state.membrane, state.refractory)

    def accumulate_synapse(self, state, post, weight):
        current = state.current.clone()
        current[post] = self._wrap(current[post] + int(weight))
        return LIFState(current, state.membrane, state.refractory)


# The design right, the model one cycle off on one transfer: the scoreboard expects the first state write
# of the run's first spike event one cycle late (the model itself is the rule's own).
WRITE_CYCLE_FAULT = "write-cycle"
FAULTS = {"threshold": _WrongThreshold, "membrane-lsb": _MembraneOffByOne, "saturation": _WrongSaturation,
          WRITE_CYCLE_FAULT: IntegerLIF}


def make_model(config: LIFConfig, weights, fault: str | None = None) -> IntegerLIF:
    """The golden model, or a deliberately wrong one (to prove the scoreboard catches errors)."""
    if fault is None:
        return IntegerLIF(config, weights)
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
    return FAULTS[fault](config, weights)


class LIFScoreboard:
    def __init__(self, config: LIFConfig, name: str = "lif", fault: str | None = None):
        """``fault``: with ``WRITE_CYCLE_FAULT`` one predicted write is a cycle late (the run must fail)."""
        self.config = config
        self._late_write = fault == WRITE_CYCLE_FAULT
        self.name = name
        self.coverage: Counter = Counter()
        self.checked = Counter()
        self._model: IntegerLIF | None = None
        self._state: LIFState | None = None
        self._writes: deque = deque()     # (cycle, packed state-write word, exact cycle?)
        self._memory = None               # the model synapse memory of a core that has one
        phase, block, _ = config.state_write_fields
        self._block_shift, self._data_shift = phase.bits, phase.bits + block.bits
        self._outputs: deque = deque()    # (kind, address, not-before cycle)
        fields = config.neuron_state_fields
        self._record_layout = [(f.name, sum(g.bits for g in fields[:k]), (1 << f.bits) - 1)
                               for k, f in enumerate(fields)]
        self._record_bits = config.neuron_state_bits
        self._step_inputs: set = set()
        self._step_events = 0

    # -- driving the prediction -------------------------------------------------------------------
    def reset(self, model: IntegerLIF, first_cycle: int, memory=None) -> None:
        """The DUT left reset; ``first_cycle`` is the first cycle after it. ``memory``: the model
        synapse memory of a core that has one (its contents as the DUT's now are)."""
        self._fail_if_pending("reset")
        self._model, self._state, self._memory = model, model.initial_state(), memory
        for b in range(self.config.blocks):
            self._writes.append((first_cycle + b, self._write_word(PHASE_CLEAR, b, 0), True))
        self._step_inputs, self._step_events = set(), 0

    def on_load(self, cycle: int, post: int, pre: int, value: int) -> None:
        """A weight load of a core with a synapse memory was accepted."""
        self._memory.update(post, pre, value)

    def on_input(self, cycle: int, word: int) -> None:
        """An input token was accepted in ``cycle``."""
        tok = unpack_fields(self.config.input_event_fields, word)
        c = self.config
        if tok["kind"] == EVENT_SPIKE:
            if self._late_write:
                cycle, self._late_write = cycle + 1, False
            self._step_inputs.add(tok["address"])
            self._step_events += 1
            if self._memory is not None:
                for post, weight in self._memory.forward(tok["address"]):
                    self._state = self._model.accumulate_synapse(self._state, post, weight)
                    b = post // c.lanes
                    self._writes.append((cycle + WRITE_LATENCY + 1, self._write_word(
                        PHASE_ACCUMULATE, b, self._packed_blocks(self._state, b)[0]), False))
                return
            self._state = self._model.accumulate(self._state, tok["address"])
            phase = PHASE_ACCUMULATE
        else:
            before = self._state
            self._state, spikes = self._model.step(before)
            phase = PHASE_STEP
            self._cover_step(before, self._state)
            last_write = cycle + WRITE_LATENCY + c.blocks - 1
            for n in torch.nonzero(spikes).flatten().tolist():
                self._outputs.append((EVENT_SPIKE, n, cycle + WRITE_LATENCY + n // c.lanes))
            self._outputs.append((EVENT_TICK, 0, last_write))
        for b, data in enumerate(self._packed_blocks(self._state)):
            self._writes.append((cycle + WRITE_LATENCY + b, self._write_word(phase, b, data), True))

    def _write_word(self, phase: int, block: int, data: int) -> int:
        """The verification port's word (``state_write_fields``) for one write."""
        return phase | (block << self._block_shift) | (data << self._data_shift)

    def _packed_blocks(self, state: LIFState, only: int | None = None) -> list[int]:
        """The state memory words of ``state`` (or of block ``only``), packed as the RTL stores them
        (the layout of ``neuron_state_fields``, lane 0 at the LSB)."""
        c = self.config
        first = 0 if only is None else only * c.lanes          # the records of the blocks asked for only
        last = c.neurons if only is None else first + c.lanes
        if self._record_bits < 63:                             # one record fits an int64: pack them at once
            record = torch.zeros(last - first, dtype=torch.int64)
            for name, offset, mask in self._record_layout:
                record |= (getattr(state, name)[first:last] & mask) << offset
            records = record.tolist()
        else:
            columns = [getattr(state, name)[first:last].tolist() for name, _, _ in self._record_layout]
            records = [sum((v & mask) << offset for v, (_, offset, mask) in zip(values, self._record_layout))
                       for values in zip(*columns)]
        lanes, bits = c.lanes, self._record_bits
        words = []
        for b in range(0, len(records), lanes):
            word = 0
            for lane, rec in enumerate(records[b:b + lanes]):
                word |= rec << (lane * bits)
            words.append(word)
        return words

    def _records(self, word: int) -> list[dict]:
        c = self.config
        return [unpack_fields(c.neuron_state_fields, word >> (l * c.neuron_state_bits)) for l in range(c.lanes)]

    def _cover_step(self, before: LIFState, after: LIFState) -> None:
        c, cov = self.config, self.coverage
        cov["steps"] += 1
        if self._step_events == 0:
            cov["silent_step"] += 1
        if len(self._step_inputs) == c.inputs:
            cov["every_input_step"] += 1
        self._step_inputs, self._step_events = set(), 0
        u = after.membrane - before.refractory
        cov["threshold_exact"] += int((u == c.threshold).sum())
        cov["spikes"] += int((u >= c.threshold).sum())
        for name, (lo, hi) in (("current", c.current_range), ("membrane", c.membrane_range),
                               ("refractory", c.refractory_range)):
            v = before.current if name == "current" else getattr(after, name)
            cov[f"{name}_saturated_high"] += int((v == hi).sum())
            if name != "refractory":
                cov[f"{name}_saturated_low"] += int((v == lo).sum())

    # -- checking observations --------------------------------------------------------------------
    def on_state_write(self, cycle: int, word: int) -> None:
        """A write reported by the verification port in ``cycle`` (its packed payload)."""
        got = (cycle, word)
        if not self._writes:
            raise Mismatch(f"{self.name}: unexpected state write {self._show(got)}: the model predicted none.")
        when, want, exact = self._writes.popleft()
        if word != want or (cycle != when if exact else cycle < when):
            wanted = f"{self._show((when, want))}" + ("" if exact else f" (cycle {when} or later)")
            raise Mismatch(f"{self.name}: state write mismatch in cycle {cycle}: DUT wrote "
                           f"(cycle, phase, block, records)={self._show(got)}, model predicts {wanted}.")
        self.checked["state_writes"] += 1

    def _show(self, write) -> tuple:
        cycle, word = write
        f = unpack_fields(self.config.state_write_fields, word)
        return (cycle, f["phase"], f["block"], self._records(f["data"]))

    def on_output(self, cycle: int, word: int) -> None:
        ev = unpack_fields(self.config.output_event_fields, word)
        got = (ev["kind"], ev["address"] if ev["kind"] == EVENT_SPIKE else 0)
        if not self._outputs:
            raise Mismatch(f"{self.name}: unexpected output event {got} in cycle {cycle}.")
        kind, address, not_before = self._outputs.popleft()
        if got != (kind, address):
            raise Mismatch(f"{self.name}: output mismatch in cycle {cycle}: DUT sent (kind, address)="
                           f"{got}, model predicts {(kind, address)}.")
        if cycle < not_before:
            raise Mismatch(f"{self.name}: output {got} in cycle {cycle} precedes the state write "
                           f"that produces it (cycle {not_before}).")
        self.checked["output_events"] += 1

    def _fail_if_pending(self, when: str) -> None:
        if self._writes or self._outputs:
            raise Mismatch(f"{self.name}: at {when}, {len(self._writes)} state writes and "
                           f"{len(self._outputs)} output events predicted by the model never happened "
                           f"(next: {self._show(self._writes[0][:2]) if self._writes else self._outputs[0]}).")

    def finish(self) -> None:
        self._fail_if_pending("the end of the test")

    @property
    def idle(self) -> bool:
        return not self._writes and not self._outputs
