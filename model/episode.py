"""A few-shot episode as the chip runs it, and the token streams that carry it.

An episode is what the chip does for one few-shot task: the weights are loaded; for each inner step,
every support sample goes through with learning on (its logits are reported at its end) and an
update is applied; then the query samples go through with learning off. Through the whole network
(``w_core`` and input event rasters given) a sample is its input events and the hidden spikes are the
integer model's (``model.snn.IntegerSRNN``); into the learning engine alone a sample is the hidden
spike raster itself.

Episodes are random (:func:`random_episode`, :func:`random_network_episode`: the distributions vary
with the seed, from silent to saturating) or a trained checkpoint's meta-test tasks
(:func:`checkpoint_episodes`). The same episodes feed the cosimulations, the host driver on a board
and the demo.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from .config import EVENT_SPIKE, EVENT_TICK, ConfigError, pack_fields
from .learning import LearningConfig, quantise_rate
from .snn import IntegerSRNN, SRNNConfig

__all__ = ["ChipEpisode", "random_episode", "random_network_episode", "checkpoint_episodes", "input_tokens",
           "spike_tokens", "MAX_EVENTS"]


@dataclass
class ChipEpisode:
    name: str
    w_out: torch.Tensor          # [outputs, neurons] initial readout
    support: torch.Tensor        # [T, n, neurons] hidden spikes (0/1)
    labels: list[int]            # [n]
    query: torch.Tensor          # [Tq, nq, neurons]
    rate: float | list[float]    # the float inner rate (quantised for the engine), or one per step
    steps: int = 1
    query_labels: list[int] = field(default_factory=list)
    # Through the whole network: the core's weights [neurons, channels + neurons] and the input event
    # counts [T, n, channels] whose hidden spikes (the model's) are ``support`` and ``query``.
    w_core: torch.Tensor | None = None
    support_x: torch.Tensor | None = None
    query_x: torch.Tensor | None = None

    def to_file(self) -> dict:
        """The episode as plain values for ``torch.save``, its integer tensors as compact as their
        values allow (a task's rasters are most of its bytes); :meth:`from_file` restores it."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if torch.is_tensor(v) and not v.is_floating_point():
                small = next((t for t in (torch.int8, torch.int16, torch.int32)
                              if v.numel() == 0 or (int(v.min()) >= torch.iinfo(t).min and
                                                    int(v.max()) <= torch.iinfo(t).max)), torch.int64)
                v = v.to(small)
            out[f.name] = v
        return out

    @classmethod
    def from_file(cls, d: dict) -> "ChipEpisode":
        return cls(**{k: v.long() if torch.is_tensor(v) and not v.is_floating_point() else v for k, v in d.items()})

    @property
    def through_core(self) -> bool:
        return self.w_core is not None

    def rate_at(self, step: int) -> float:
        """The float inner rate of inner step ``step`` (from 0): a schedule's entry (its last for the
        steps beyond), or the one rate."""
        if isinstance(self.rate, (list, tuple)):
            return float(self.rate[min(step, len(self.rate) - 1)])
        return float(self.rate)

    @property
    def scheduled(self) -> bool:
        """Whether the rate changes between inner steps (the host then programs it before each)."""
        return len({self.rate_at(s) for s in range(self.steps)}) > 1

    def quantised_rate(self, config: SRNNConfig, cfg: LearningConfig, step: int = 0) -> tuple[int, int]:
        """The engine's ``(m, q)`` of inner step ``step``'s rate."""
        return quantise_rate(self.rate_at(step), self.support.shape[1], config.logit_shift, cfg)


def random_episode(config: SRNNConfig, cfg: LearningConfig, seed: int) -> ChipEpisode:
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
    return ChipEpisode(f"random-{seed}", w, samples(labels), labels, samples(query_labels), rate, ri(1, 3),
                       query_labels)


MAX_EVENTS = 4      # events per channel and step of a random network episode


def random_network_episode(config: SRNNConfig, cfg: LearningConfig, seed: int) -> ChipEpisode:
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
    return ChipEpisode(f"network-{seed}", base.w_out, net.hidden(support_x).to(torch.int64), base.labels,
                       net.hidden(query_x).to(torch.int64), base.rate, base.steps, base.query_labels,
                       w_core, support_x, query_x)


def _interleaved(labels: torch.Tensor, n: int) -> list[int]:
    """The first ``n`` samples taking the classes in turn (a task lists its samples class by class)."""
    count_of: dict = {}
    rank = []
    for v in labels.tolist():
        count_of[v] = count_of.get(v, 0) + 1
        rank.append(count_of[v])
    return sorted(range(len(rank)), key=lambda i: (rank[i], int(labels[i])))[:n]


def checkpoint_episodes(ck, count: int = 1, *, seed: int = 0, shots: int = 2, queries: int = 2, steps: int = 1,
                        dataset=None) -> list[ChipEpisode]:
    """``count`` meta-test tasks of a checkpoint (its data source and protocol, from its training
    metadata; or ``dataset``) as episodes of the whole network: its weights, ``shots`` support and
    ``queries`` query samples of each task (the classes in turn), its inner rate, ``steps`` inner steps."""
    from .data import load_source
    from .train import TrainConfig, _protocol_for

    train = ck.metadata.get("train")
    if train is None:
        raise ConfigError("the checkpoint has no training metadata (data source, protocol); allowed: a checkpoint "
                          "written by neuromosaic train.")
    cfg = TrainConfig(**{k: v for k, v in train.items() if k in ("data", "channels", "steps", "n_way", "k_shot",
                                                                  "k_query", "labels", "seen", "unseen",
                                                                  "train_groups", "test_groups")})
    ds = dataset or load_source(cfg.data, channels=cfg.channels, steps=cfg.steps, progress=False)
    sampler = _protocol_for(cfg, ds).meta_test(ds, n_way=cfg.n_way, k_shot=cfg.k_shot, k_query=cfg.k_query,
                                                seed=seed, relabel=cfg.labels == "task")
    net = IntegerSRNN(ck.config, ck.w_in, ck.w_rec, ck.w_out)
    w_core = torch.cat([ck.w_in, ck.w_rec], dim=1).to(torch.int64)
    schedule = ck.metadata.get("inner_lr_schedule")
    rate = [float(r) for r in schedule] if schedule else float(ck.metadata.get("inner_lr", 2.0 ** 16))
    out = []
    for i in range(count):
        e = sampler.episode(i)
        s, q = _interleaved(e.support_labels, shots), _interleaved(e.query_labels, queries)
        sx = e.support[s].transpose(0, 1).round().to(torch.int64)                # [T, n, channels]
        qx = e.query[q].transpose(0, 1).round().to(torch.int64)
        out.append(ChipEpisode(f"checkpoint-task-{seed}-{i}", ck.w_out.to(torch.int64),
                               net.hidden(sx).to(torch.int64), e.support_labels[s].tolist(),
                               net.hidden(qx).to(torch.int64), rate, steps, e.query_labels[q].tolist(), w_core, sx, qx))
    return out


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
