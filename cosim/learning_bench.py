"""The learning engine's testbench, independent of the simulator: random few-shot episodes, the
scoreboard, and the sequencing of an episode's transactions.

An episode is what the chip does for one few-shot task: the weights are loaded; for each inner
step, every support sample goes through with learning on (its logits are reported at its end) and an
update is applied; then the query samples go through with learning off. Through the whole network
(``LearningCore``: an episode with ``w_core`` and input rasters) a sample is its input events, and the
scoreboard also checks every hidden spike of the LIF core against ``model.snn.IntegerSRNN``; into the
engine alone (``LearningEngine``) a sample is the hidden spike raster itself. The scoreboard predicts,
with ``model.learning``, every logit (output, value) and every weight write (output, neuron, old
value, new value, and the cycle: an update taken in cycle ``c`` writes its n-th weight in cycle
``c + UPDATE_LATENCY + n``), and fails on the first difference.

With the readout in a synapse memory (``synapses``: ``readout_memory``), the writes are checked in
order without fixed cycles, and a sparse organisation's structure restricts the episode: its
readout is zero outside the structure, only stored synapses are loaded, and the model updates only
those (``adapt_readout_integer(structure=)``), as the engine's transposed accesses do. With the
core's weights in a synapse memory (``core_synapses``: ``core_memory``), the episode's core weights
are restricted to its structure too (the hidden rasters recomputed by ``model.snn.IntegerSRNN``)
and loaded as updates of the stored synapses.

``port(name)`` returns a :class:`~.harness.Port` for a flattened DUT port name (``spikes__valid``);
``cosim/learning_tb.py`` (cocotb) and ``simulate_learning`` (Amaranth) call :meth:`drive` and
:meth:`sample` once a cycle.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

import torch

from ..model import synapse as synapse_model
from ..model.config import EVENT_SPIKE, EVENT_TICK, ConfigError, pack_fields, signed_range, unpack_fields
from ..model.learning import (LFSR, OP_END, OP_UPDATE, UPDATE_LATENCY, LearningConfig, adapt_readout_integer,
                              command_fields, eligibility, integer_softmax, logit_fields, quantise_rate,
                              rate_fields, readout_load_fields, weight_write_fields)
from ..model.snn import IntegerSRNN, SRNNConfig, integer_readout
from .harness import Port, StreamSink, StreamSource, ValidMonitor
from .scoreboard import Mismatch
from .stimulus import synapse_memory

__all__ = ["Episode", "random_episode", "random_network_episode", "readout_memory", "core_memory",
           "LearningScoreboard", "LearningTestbench", "FAULTS", "stream_inputs"]


@dataclass
class Episode:
    name: str
    w_out: torch.Tensor          # [outputs, neurons] initial readout
    support: torch.Tensor        # [T, n, neurons] hidden spikes (0/1)
    labels: list[int]            # [n]
    query: torch.Tensor          # [Tq, nq, neurons]
    rate: float                  # the float inner rate (quantised for the engine)
    steps: int = 1
    query_labels: list[int] = field(default_factory=list)
    # Through the whole network: the core's weights [neurons, channels + neurons] and the input event
    # counts [T, n, channels] whose hidden spikes (the model's) are ``support`` and ``query``.
    w_core: torch.Tensor | None = None
    support_x: torch.Tensor | None = None
    query_x: torch.Tensor | None = None

    @property
    def through_core(self) -> bool:
        return self.w_core is not None

    def quantised_rate(self, config: SRNNConfig, cfg: LearningConfig) -> tuple[int, int]:
        return quantise_rate(self.rate, self.support.shape[1], config.logit_shift, cfg)


def random_episode(config: SRNNConfig, cfg: LearningConfig, seed: int) -> Episode:
    """A random task: 2..outputs classes, 1..3 shots, 4..24 steps, 1..3 inner steps, spike rates
    that depend on the class and the neuron, a zero or random initial readout, and an inner rate
    from 2**10 to 2**24 (from tiny updates to saturating ones)."""
    g = torch.Generator().manual_seed(seed)
    K, N = config.outputs, config.neurons

    def ri(lo, hi):
        return int(torch.randint(lo, hi + 1, (1,), generator=g))

    ways, shots, T = ri(2, K), ri(1, 3), ri(4, 24)
    classes = torch.randperm(K, generator=g)[:ways]
    profile = torch.rand(K, N, generator=g) * float(torch.empty(1).uniform_(0.05, 0.6, generator=g))

    def samples(labels):
        p = profile[torch.as_tensor(labels)]                                   # [n, N]
        return (torch.rand(T, len(labels), N, generator=g) < p).to(torch.int64)

    labels = classes.repeat_interleave(shots)[torch.randperm(ways * shots, generator=g)].tolist()
    query_labels = classes[torch.randint(0, ways, (ri(1, 4),), generator=g)].tolist()
    lo, hi = config.readout_weight_range
    w = torch.zeros(K, N, dtype=torch.int64) if ri(0, 3) == 0 else torch.randint(lo, hi + 1, (K, N), generator=g)
    rate = 2.0 ** float(torch.empty(1).uniform_(10, 24, generator=g))
    return Episode(f"random-{seed}", w, samples(labels), labels, samples(query_labels), rate, ri(1, 3), query_labels)


MAX_EVENTS = 4      # events per channel and step of a random network episode


def random_network_episode(config: SRNNConfig, cfg: LearningConfig, seed: int) -> Episode:
    """A random task through the whole network: random core weights with a random excitatory bias,
    input rates that depend on the class and the channel, 0..MAX_EVENTS events per channel and step; the
    hidden spikes are the integer model's (as :func:`random_episode` for the rest)."""
    g = torch.Generator().manual_seed(seed ^ 0x5EED)
    c = config
    lo, hi = c.core.weight_range
    bias = int(torch.randint(hi // 4, hi + 1, (1,), generator=g))
    w_core = (torch.randint(lo, hi + 1, (c.neurons, c.core.inputs), generator=g) + bias).clamp(lo, hi)
    profile = torch.rand(c.outputs, c.channels, generator=g) * float(torch.empty(1).uniform_(0.2, 1.0, generator=g))
    base = random_episode(config, cfg, seed)

    def inputs(labels, steps):
        p = profile[torch.as_tensor(labels)]
        return (torch.rand((MAX_EVENTS,) + (steps, len(labels), c.channels), generator=g) < p).sum(0)

    support_x = inputs(base.labels, base.support.shape[0])
    query_x = inputs(base.query_labels, base.query.shape[0])
    net = IntegerSRNN(c, w_core[:, :c.channels], w_core[:, c.channels:], base.w_out)
    return Episode(f"network-{seed}", base.w_out, net.hidden(support_x).to(torch.int64), base.labels,
                   net.hidden(query_x).to(torch.int64), base.rate, base.steps, base.query_labels,
                   w_core, support_x, query_x)


def readout_memory(config: SRNNConfig, synapses) -> synapse_model.SynapseMemory | None:
    """The model synapse memory a ``LearningEngine`` keeps its readout in, from a testbench job's
    ``synapses``: None (none), an organisation name, or ``{"organisation", "density" (of stored
    synapses, default 1), "seed", "bitmap_word"}``. Its structure is random at that density; its
    initial weights are random non-zero values (each episode loads its own)."""
    if synapses is None or isinstance(synapses, synapse_model.SynapseMemory):
        return synapses
    spec = {"organisation": synapses} if isinstance(synapses, str) else dict(synapses)
    org = synapse_model.organisation_name(spec.pop("organisation"))
    density, seed = float(spec.pop("density", 1.0)), int(spec.pop("seed", 0))
    bitmap_word = int(spec.pop("bitmap_word", 8))
    if spec:
        raise ConfigError(f"readout synapses {sorted(spec)} are unknown; allowed: organisation, density, seed, "
                          "bitmap_word.")
    if not 0.0 < density <= 1.0:
        raise ConfigError(f"readout density {density} is not allowed; allowed: 0 < density <= 1.")
    K, N = config.outputs, config.neurons
    g = torch.Generator().manual_seed(3000 + seed)
    lo, hi = config.readout_weight_range
    values = torch.randint(1, hi + 1, (K, N), generator=g) * (1 - 2 * torch.randint(0, 2, (K, N), generator=g))
    stored = torch.rand(K, N, generator=g) < density
    w = values.clamp(lo, hi) * (stored if org != "dense" else torch.ones_like(stored))
    return synapse_model.make_memory(org, w, config.readout_weight_bits,
                                     **({"bitmap_word": bitmap_word} if org == "bitmap" else {}))


def core_memory(config: SRNNConfig, synapses) -> synapse_model.SynapseMemory | None:
    """The model synapse memory a ``LearningCore``'s LIF core keeps its ``[neurons, channels +
    neurons]`` weights in, from a testbench job's ``core_synapses``: None (none), an organisation
    name, or the arguments of ``stimulus.synapse_memory`` (``organisation``, ``density`` of stored
    synapses, ``seed``, ``bitmap_word``) for ``config.core``."""
    if synapses is None or isinstance(synapses, synapse_model.SynapseMemory):
        return synapses
    spec = {"organisation": synapses} if isinstance(synapses, str) else dict(synapses)
    return synapse_memory(config.core, **spec)


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


def _model_lfsr(cfg: LearningConfig, fault: str | None) -> LFSR:
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
        self.final_w: torch.Tensor | None = None
        self.exact_timing = True
        self.structure: torch.Tensor | None = None   # the stored synapses of a sparse readout memory

    def predict(self, episode: Episode, fault: str | None = None) -> list[tuple]:
        """Runs the model over ``episode``; returns its transactions in order:
        ``("sample", hidden raster, input raster or None, label, learn)`` and ``("update", step)``.
        Through the core, every sample's hidden spike stream is expected too."""
        c, cfg = self.config, self.cfg
        lfsr = _model_lfsr(cfg, fault)
        w = episode.w_out.clone()
        plan = []
        n = episode.support.shape[1]
        for step in range(episode.steps):
            logits = integer_readout(c, episode.support, w)
            for i in range(n):
                what = f"step {step} support sample {i}"
                self._expect_logits(logits[i], what)
                plan.append(self._sample(episode.support[:, i], episode.support_x, i, episode.labels[i], 1, what))
            self._cover_accumulation(episode, logits)
            writes = []
            w_new = adapt_readout_integer(c, w, episode.support, torch.tensor(episode.labels), episode.rate, cfg,
                                          steps=1, lfsr=lfsr, writes=writes, structure=self.structure)
            lo, hi = c.readout_weight_range
            self.coverage["weights_saturated"] += int(((w_new == lo) | (w_new == hi)).sum())
            self.coverage["weights_changed"] += int((w_new != w).sum())
            self.coverage["weights_written_zero"] += sum(1 for *_, new in writes if new == 0)
            self._update_writes.append(([(k, j, old, new) for _, k, j, old, new in writes], f"inner step {step}"))
            plan.append(("update", step))
            w = w_new
        logits = integer_readout(c, episode.query, w)
        for i in range(episode.query.shape[1]):
            what = f"query sample {i}"
            self._expect_logits(logits[i], what)
            label = episode.query_labels[i] if episode.query_labels else 0
            plan.append(self._sample(episode.query[:, i], episode.query_x, i, label, 0, what))
        self.final_w = w
        return plan

    def _sample(self, hidden, x, i, label, learn, what) -> tuple:
        if x is not None:
            self.coverage["hidden_spikes"] += int(hidden.sum())
            self._hidden.extend((word, what) for word in spike_tokens(self.config, hidden))
        return ("sample", hidden, None if x is None else x[:, i], label, learn)

    def _cover_accumulation(self, episode: Episode, logits: torch.Tensor) -> None:
        """Counts eligibilities and accumulators at their saturation bounds (without saturation
        they would have gone past)."""
        c, cfg = self.config, self.cfg
        raw = eligibility(episode.support, c.readout_decay_shift, cfg.trace_frac_bits)
        self.coverage["eligibility_saturated"] += int((raw > (1 << cfg.elig_bits) - 1).sum())
        elig = raw.clamp(max=(1 << cfg.elig_bits) - 1)
        onehot = torch.nn.functional.one_hot(torch.tensor(episode.labels), c.outputs).to(torch.int64)
        err = (onehot << cfg.prob_bits) - integer_softmax(logits, c.logit_shift, cfg)
        lo, hi = signed_range(cfg.acc_bits)
        partial = torch.cumsum(err.unsqueeze(2) * elig.unsqueeze(1), 0)          # running sums, unsaturated
        self.coverage["accumulator_saturated"] += int(((partial < lo) | (partial > hi)).any(0).sum())

    def _expect_logits(self, values: torch.Tensor, what: str) -> None:
        lo, hi = self.config.logit_range
        self.coverage["logits_saturated"] += int(((values == lo) | (values == hi)).sum())
        for k, v in enumerate(values.tolist()):
            self._logits.append(((k, v), what))

    def take_update_writes(self) -> list[list[tuple]]:
        """The predicted writes of every update not yet taken, per update, in order: (output, neuron,
        old, new); the scoreboard then expects none (for a check that sees only their digest)."""
        out = [writes for writes, _ in self._update_writes]
        self._update_writes = []
        return out

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


def spike_tokens(config: SRNNConfig, raster: torch.Tensor) -> list[int]:
    """The hidden spike stream of one sample (raster [T, N]): each step's spiking neurons in
    ascending order, then a TICK, packed as the LIF core's output events."""
    fields = config.core.output_event_fields
    out = []
    for row in raster.tolist():
        out += [pack_fields(fields, {"kind": EVENT_SPIKE, "address": j}) for j, s in enumerate(row) if s]
        out.append(pack_fields(fields, {"kind": EVENT_TICK, "address": 0}))
    return out


def input_tokens(config: SRNNConfig, raster: torch.Tensor) -> list[int]:
    """The external input stream of one sample (event counts [T, channels]): each step's events in
    ascending channel order, repeats adjacent, then a TICK, packed as the LIF core's input events."""
    fields = config.core.input_event_fields
    out = []
    for row in raster.tolist():
        for ch, count in enumerate(row):
            out += [pack_fields(fields, {"kind": EVENT_SPIKE, "address": ch})] * int(count)
        out.append(pack_fields(fields, {"kind": EVENT_TICK, "address": 0}))
    return out


def stream_inputs(core: bool) -> tuple[str, ...]:
    """The DUT's input streams: of a ``LearningCore`` (``core``) or of a ``LearningEngine``."""
    return ("events", "command", "weights", "core_weights") if core else ("spikes", "command", "weights")


class LearningTestbench:
    """Drives episodes into a ``LearningCore`` (``core=True``: input events, the core's weights,
    hidden spikes checked) or a ``LearningEngine`` (hidden spikes driven) and checks everything."""

    def __init__(self, config: SRNNConfig, cfg: LearningConfig, port: Callable[[str], Port], *, seed: int = 0,
                 idle: float = 0.2, backpressure: float = 0.3, fault: str | None = None, core: bool = False,
                 synapses=None, core_synapses=None, core_loads: Callable | None = None):
        """``synapses``: the engine keeps its readout in that synapse memory (``readout_memory``; its
        update writes then have no fixed cycles, only their order; a sparse one restricts the
        episodes to its structure). ``core_synapses``: the LIF core of a ``LearningCore`` keeps its
        weights in that one (``core_memory``). ``core_loads``: the packed ``core_weights`` loads of an
        episode's ``w_core`` for a DUT that loads them its own way (a ``Mosaic``:
        ``MosaicConfig.core_load_words``); by default the LIF core's weight words."""
        self.config, self.cfg, self.fault, self.core = config, cfg, fault, core
        self.core_loads = core_loads
        rng = random.Random(seed)
        self.sb = LearningScoreboard(config, cfg)
        memory = readout_memory(config, synapses)
        self.sb.exact_timing = memory is None
        self.sb.structure = None if memory is None or memory.name == "dense" else memory.structure()
        self.core_memory = core_memory(config, core_synapses)
        if self.core_memory is not None and not core:
            raise ValueError("core_synapses applies to a LearningCore (core=True), not to the engine alone.")

        def source(name, on_transfer=None):
            return StreamSource(port(f"{name}__valid"), port(f"{name}__ready"), port(f"{name}__payload"),
                                rng=rng, idle=idle, on_transfer=on_transfer)

        self.rate = port("rate")
        self.weights = source("weights")
        self.spikes = source("events" if core else "spikes")
        self.command = source("command", self._on_command)
        self.logits = StreamSink(port("logits__valid"), port("logits__ready"), port("logits__payload"),
                                 rng=rng, backpressure=backpressure, on_transfer=self._on_logit)
        self.sources = {"load": self.weights, "spikes": self.spikes, "command": self.command}
        self.agents = [self.weights, self.spikes, self.command, self.logits,
                       ValidMonitor(port("weight_write__valid"), port("weight_write__payload"), self._on_write)]
        if core:
            self.sources["core_load"] = source("core_weights")
            self.agents += [self.sources["core_load"],
                            ValidMonitor(port("hidden__valid"), port("hidden__payload"), self.sb.on_hidden)]
        self._plan: deque = deque()
        self._last_progress = 0
        self.stall_limit = 4 * config.outputs * config.neurons + 20_000
        # Timing, for the benchmark: the cycle of each segment's first transfer, of every OP_UPDATE,
        # OP_END, logit and weight write.
        self.segments: list[tuple[str, int]] = []
        self._segment = None
        self.update_cycles: list[int] = []
        self.end_cycles: list[int] = []
        self.logit_cycles: list[int] = []
        self.write_cycles: list[int] = []

    def _on_logit(self, cycle: int, word: int) -> None:
        self.sb.on_logit(cycle, word)
        self.logit_cycles.append(cycle)

    def _on_write(self, cycle: int, word: int) -> None:
        self.sb.on_weight_write(cycle, word)
        self.write_cycles.append(cycle)

    def _on_command(self, cycle: int, word: int) -> None:
        if unpack_fields(command_fields(self.config), word)["op"] == OP_UPDATE:
            self.update_cycles.append(cycle)
            self.sb.on_update(cycle)
        else:
            self.end_cycles.append(cycle)

    def start(self, episode: Episode, first_cycle: int) -> None:
        """Begins ``episode`` right after a reset whose first free cycle is ``first_cycle``."""
        self.sb.finish()                # nothing of the previous episode may be left
        c = self.config
        if self.core and not episode.through_core:
            raise ValueError(f"episode {episode.name} has no core weights and input rasters; the LearningCore "
                             "needs them (random_network_episode).")
        structure = self.sb.structure
        if structure is not None:       # a sparse readout: the episode's weights on its structure
            episode = dataclasses.replace(episode, w_out=episode.w_out * structure)
        cm = self.core_memory
        if cm is not None:              # the core's weights on its memory's structure, the hidden spikes anew
            w_core = episode.w_core * cm.structure()
            net = IntegerSRNN(c, w_core[:, :c.channels], w_core[:, c.channels:], episode.w_out)
            episode = dataclasses.replace(episode, w_core=w_core, support=net.hidden(episode.support_x).long(),
                                          query=net.hidden(episode.query_x).long())
        m, q = episode.quantised_rate(c, self.cfg)
        self.rate.set(pack_fields(rate_fields(self.cfg), {"m": m, "q": q}))
        self.sb.final_w = None
        plan = self.sb.predict(episode, self.fault) if self.core else \
            self.sb.predict(dataclasses.replace(episode, support_x=None, query_x=None), self.fault)
        self._plan = deque()
        if self.core and cm is not None:
            fields, w = synapse_model.load_fields(cm), episode.w_core.tolist()
            self._plan.append(("core_load", [
                pack_fields(fields, {**synapse_model.neuron_values(cm, "post", post),
                                     **synapse_model.neuron_values(cm, "pre", pre), "value": w[post][pre]})
                for post, pre in torch.nonzero(cm.structure()).tolist()]))
        elif self.core and self.core_loads is not None:
            self._plan.append(("core_load", list(self.core_loads(episode.w_core))))
        elif self.core:
            fields = c.core.weight_load_fields
            self._plan.append(("core_load", [pack_fields(fields, {"address": a, "data": d})
                                             for a, d in enumerate(c.core.weight_words(episode.w_core))]))
        lf = readout_load_fields(c)
        w = episode.w_out.tolist()
        self._plan.append(("load", [pack_fields(lf, {"output": k, "neuron": j, "value": w[k][j]})
                                    for k in range(c.outputs) for j in range(c.neurons)
                                    if structure is None or structure[k, j]]))
        cf = command_fields(c)
        for item in plan:
            if item[0] == "sample":
                _, raster, x, label, learn = item
                self._plan.append(("spikes", input_tokens(c, x) if self.core else spike_tokens(c, raster)))
                self._plan.append(("command", [pack_fields(cf, {"op": OP_END, "label": label, "learn": learn})]))
            else:
                self._plan.append(("command", [pack_fields(cf, {"op": OP_UPDATE, "label": 0, "learn": 0})]))
        self._last_progress = first_cycle

    @property
    def _sources_done(self) -> bool:
        return all(src.done for src in self.sources.values())

    @property
    def done(self) -> bool:
        return not self._plan and self._sources_done and self.sb.idle

    def drive(self) -> None:
        # One segment at a time: the next sample's events must not overtake this sample's END.
        if self._plan and self._sources_done:
            kind, words = self._plan.popleft()
            self.sources[kind].send(words)
            self._segment = (kind, self.sources[kind], self.sources[kind].transfers)
        for a in self.agents:
            a.drive()

    def sample(self, cycle: int) -> None:
        before = self._progress()
        for a in self.agents:
            a.sample(cycle)
        if self._segment and self._segment[1].transfers > self._segment[2]:
            self.segments.append((self._segment[0], cycle))
            self._segment = None
        if self._progress() != before:
            self._last_progress = cycle
        if cycle - self._last_progress > self.stall_limit:
            raise Mismatch(f"the learning {'core' if self.core else 'engine'} made no progress for "
                           f"{self.stall_limit} cycles (cycle {cycle}).")

    def _progress(self) -> tuple:
        return (tuple(src.transfers for src in self.sources.values()), self.logits.transfers,
                self.sb.checked["weight_writes"], self.sb.checked["hidden_events"])

    def finish(self) -> dict:
        self.sb.finish()
        return {"checked": dict(self.sb.checked), "coverage": dict(self.sb.coverage),
                "logit_stall_cycles": self.logits.stall_cycles, "timing": self.timing()}

    def timing(self) -> dict:
        return {"segments": self.segments, "update_cycles": self.update_cycles, "end_cycles": self.end_cycles,
                "logit_cycles": self.logit_cycles, "write_cycles": self.write_cycles}
