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

__all__ = ["LearningScoreboard", "FAULTS", "model_lfsr"]


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


FAULTS = {"rounding-bit": _RoundingBitFault, "floor": _FloorFault}


def model_lfsr(cfg: LearningConfig, fault: str | None) -> LFSR:
    """The model's rounding PRNG: the rule's own, or a deliberately wrong one (``FAULTS``)."""
    if fault is None:
        return LFSR(cfg)
    if fault not in FAULTS:
        raise ValueError(f"fault {fault!r} is unknown; allowed: {', '.join(FAULTS)}.")
    return FAULTS[fault](cfg)


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
        self.exact_timing = True
        self.structure: torch.Tensor | None = None   # the stored synapses of a sparse readout memory

    def predict(self, episode: ChipEpisode, fault: str | None = None) -> list[tuple]:
        """Predicts ``episode`` (``model.golden.predict_episode``, with the rounding of ``fault``) and
        expects its logits, weight writes and (through the core) hidden spike events; returns the
        transactions to send, in order."""
        p = predict_episode(self.config, self.cfg, episode, lfsr=model_lfsr(self.cfg, fault), structure=self.structure)
        self._logits.extend(p.logits)
        self._update_writes.extend(p.update_writes)
        self._hidden.extend(p.hidden)
        self.coverage.update(p.coverage)
        return p.transactions

    def on_update(self, cycle: int) -> None:
        """An OP_UPDATE was taken in ``cycle``: its writes are due from ``cycle + UPDATE_LATENCY``, one a
        cycle (``exact_timing``), or in that order no earlier (a readout in a synapse memory)."""
        writes, what = self._update_writes.pop(0)
        for i, (k, j, old, new) in enumerate(writes):
            self._writes.append(((cycle + UPDATE_LATENCY + i, k, j, old, new), what))

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
        self._check(self._logits, (f["output"], f["value"]), "logit", "(output, value)", cycle)
        self.checked["logits"] += 1

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
