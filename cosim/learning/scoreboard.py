"""The learning designs' scoreboard: the golden model's predictions of an episode
(``model.golden.predict_episode``) checked as the design produces them, with their cycles.

Every logit (output, value) in order, every weight write (output, neuron, old value, new value, and
the cycle: an update taken in cycle ``c`` writes its n-th weight in cycle ``c + UPDATE_LATENCY + n``;
with the readout in a synapse memory, in order no earlier than that), and through the whole network
every hidden spike event. Faults (``FAULTS``) make the model's rounding wrong on purpose, to prove
the scoreboard catches it.
"""

from __future__ import annotations

from collections import Counter, deque

import torch

from ...model.config import unpack_fields
from ...model.episode import ChipEpisode
from ...model.golden import Mismatch, predict_episode
from ...model.learning import LFSR, UPDATE_LATENCY, LearningConfig, logit_fields, weight_write_fields
from ...model.snn import SRNNConfig

__all__ = ["LearningScoreboard", "FAULTS", "ROUNDING_FAULTS", "WRITE_CYCLE_FAULT", "model_lfsr"]


class _RoundingBitFault(LFSR):
    """The most significant bit of every rounding draw inverted: the rounding offset off by half."""

    def draw(self, q):
        d = super().draw(q)
        return d ^ (1 << (q - 1)) if q else d


class _FloorFault(LFSR):
    """No stochastic rounding at all (the draw is always 0), though the LFSR still steps."""

    def draw(self, q):
        super().draw(q)
        return 0


ROUNDING_FAULTS = {"rounding-bit": _RoundingBitFault, "floor": _FloorFault}
# The design right, the model one cycle off on one transfer: the scoreboard expects the first weight write
# of the run's first update one cycle late.
WRITE_CYCLE_FAULT = "write-cycle"
FAULTS = (*ROUNDING_FAULTS, WRITE_CYCLE_FAULT)


def model_lfsr(cfg: LearningConfig, fault: str | None) -> LFSR:
    """The model's rounding PRNG: the rule's own, or a deliberately wrong one (``ROUNDING_FAULTS``;
    the other ``FAULTS`` leave the rule alone)."""
    if fault not in FAULTS and fault is not None:
        raise ValueError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
    return ROUNDING_FAULTS[fault](cfg) if fault in ROUNDING_FAULTS else LFSR(cfg)


class LearningScoreboard:
    """The predicted logits and weight writes of one episode, checked as the DUT produces them."""

    def __init__(self, config: SRNNConfig, cfg: LearningConfig, name: str = "learning"):
        self.config, self.cfg, self.name = config, cfg, name
        self.checked = Counter()
        self.coverage = Counter()
        self._logits: deque = deque()       # ((output, value), sample description)
        self._writes: deque = deque()       # ((cycle, output, neuron, old, new), inner step)
        self._update_writes: list = []      # writes of the updates not yet taken, in order
        self._hidden: deque = deque()       # (packed output event, sample description), through the core
        self._query_labels: deque = deque()  # the label of each query sample whose logits are to come
        self._query_logits: list = []        # (DUT value, model value) of the current query sample
        self.accuracy = Counter()            # queries, chip_correct (the DUT's logits), model_correct
        self.exact_timing = True
        self.structure: torch.Tensor | None = None   # the stored synapses of a sparse readout memory
        self._late_write: bool | None = None         # WRITE_CYCLE_FAULT: the first update's first write late

    def predict(self, episode: ChipEpisode, fault: str | None = None) -> list[tuple]:
        """Predicts ``episode`` (``model.golden.predict_episode``, with the rounding of ``fault``) and
        expects its logits, weight writes and (through the core) hidden spike events; returns the
        transactions to send, in order."""
        if self._late_write is None:
            self._late_write = fault == WRITE_CYCLE_FAULT
        p = predict_episode(self.config, self.cfg, episode, lfsr=model_lfsr(self.cfg, fault), structure=self.structure)
        self._logits.extend(p.logits)
        self._update_writes.extend(p.update_writes)
        self._hidden.extend(p.hidden)
        self._query_labels.extend(episode.query_labels or [0] * episode.query.shape[1])
        self.coverage.update(p.coverage)
        return p.transactions

    def on_update(self, cycle: int) -> None:
        """An OP_UPDATE was taken in ``cycle``: its writes are due from ``cycle + UPDATE_LATENCY``, one a
        cycle (``exact_timing``), or in that order no earlier (a readout in a synapse memory)."""
        writes, what = self._update_writes.pop(0)
        for i, (k, j, old, new) in enumerate(writes):
            late = int(bool(self._late_write) and i == 0)
            self._writes.append(((cycle + UPDATE_LATENCY + i + late, k, j, old, new), what))
        if writes:
            self._late_write = False

    def _check(self, expected: deque, got, thing: str, fields: str, cycle: int, show=lambda v: v) -> None:
        """Compares what the DUT did with the model's next prediction of that kind."""
        if not expected:
            raise Mismatch(f"{self.name}: unexpected {thing} {fields}={show(got)} in cycle {cycle}: the model "
                           "predicted none.")
        want, what = expected.popleft()
        if got != want:
            raise Mismatch(f"{self.name}: {thing} mismatch in cycle {cycle} ({what}): DUT sent {fields}={show(got)}, "
                           f"model predicts {show(want)}.")

    def on_logit(self, cycle: int, word: int) -> None:
        f = unpack_fields(logit_fields(self.config), word)
        want, what = self._logits[0] if self._logits else (None, "")
        self._check(self._logits, (f["output"], f["value"]), "logit", "(output, value)", cycle)
        self.checked["logits"] += 1
        if what.startswith("query"):
            self._score_query(f["value"], want[1])

    def _score_query(self, got: int, want: int) -> None:
        """A query sample's logits, one by one: once all are in, its class by the chip's logits and by
        the model's (the first largest), each against the label."""
        self._query_logits.append((got, want))
        if len(self._query_logits) == self.config.outputs:
            label = self._query_labels.popleft()
            for who, values in (("chip", [g for g, _ in self._query_logits]), ("model", [w for _, w in
                                                                                       self._query_logits])):
                self.accuracy[f"{who}_correct"] += int(values.index(max(values)) == label)
            self.accuracy["queries"] += 1
            self._query_logits = []

    def on_weight_write(self, cycle: int, word: int) -> None:
        f = unpack_fields(weight_write_fields(self.config), word)
        got = (cycle, f["output"], f["neuron"], f["old"], f["new"])
        if not self.exact_timing and self._writes and self._writes[0][0][0] <= cycle:
            got = (self._writes[0][0][0],) + got[1:]          # any cycle from the earliest on
        self._check(self._writes, got, "weight write", "(cycle, output, neuron, old, new)", cycle)
        self.checked["weight_writes"] += 1

    def on_hidden(self, cycle: int, word: int) -> None:
        fields = self.config.core.output_event_fields
        self._check(self._hidden, word, "hidden spike event", "(address, kind)", cycle,
                    lambda w: tuple(unpack_fields(fields, w).values()))
        self.checked["hidden_events"] += 1

    def discard(self) -> None:
        """Forgets every prediction not yet checked (a run that checks nothing)."""
        for pending in (self._logits, self._writes, self._update_writes, self._hidden, self._query_labels,
                        self._query_logits):
            pending.clear()

    @property
    def idle(self) -> bool:
        return not self._logits and not self._writes and not self._hidden

    def finish(self) -> None:
        if self._hidden:
            raise Mismatch(f"{self.name}: {len(self._hidden)} hidden spike events predicted by the model never "
                           f"happened (next: {self._hidden[0][1]}).")
        if self._logits or self._writes or self._update_writes:
            nxt = self._logits[0] if self._logits else (self._writes[0] if self._writes else "an update")
            raise Mismatch(f"{self.name}: {len(self._logits)} logits and {len(self._writes)} weight writes "
                           f"predicted by the model never happened (next: {nxt}).")
