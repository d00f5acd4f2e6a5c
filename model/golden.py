"""The golden model's predictions of what a chip does for one episode, and the error of a chip (or a
simulation of one) that does something else.

:func:`predict_episode` runs the integer network and the integer learning rule over an episode and
returns, in order, every logit the chip must report, every weight write of every update, every
hidden spike event (through the whole network), the final readout and the corner cases the
episode reaches. A cycle-accurate scoreboard (``cosim``) checks these with their cycles; the host
driver's board session (``fpga.session``) checks them from what comes back over the link.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from .config import signed_range
from .episode import ChipEpisode, spike_tokens
from .learning import LFSR, LearningConfig, adapt_readout_integer, eligibility, integer_softmax
from .snn import SRNNConfig, integer_readout

__all__ = ["Mismatch", "EpisodePrediction", "predict_episode"]


class Mismatch(AssertionError):
    """The design did something the golden model did not predict."""


@dataclass
class EpisodePrediction:
    """What the chip must do for one episode, each item with the sample or step it belongs to.

    ``transactions``: what is sent to the chip, in order: ``("sample", hidden raster, input raster or
    None, label, learn)`` and ``("update", step)``. ``logits``: ``((output, value), what)`` in the
    order reported. ``update_writes``: per update, ``([(output, neuron, old, new), ...], what)`` in
    write order. ``hidden``: ``(packed output event, what)`` through the whole network."""
    transactions: list = field(default_factory=list)
    logits: list = field(default_factory=list)
    update_writes: list = field(default_factory=list)
    hidden: list = field(default_factory=list)
    final_w: torch.Tensor | None = None
    coverage: Counter = field(default_factory=Counter)


def predict_episode(config: SRNNConfig, cfg: LearningConfig, episode: ChipEpisode, *, lfsr: LFSR | None = None,
                    structure: torch.Tensor | None = None) -> EpisodePrediction:
    """The golden model over ``episode``. Through the core (the episode has input rasters), every
    sample's hidden spike stream is predicted too. ``lfsr``: the rounding PRNG (default: the rule's
    own, from its seed); ``structure``: the stored synapses of a sparse readout memory (only those
    are updated)."""
    c = config
    lfsr = LFSR(cfg) if lfsr is None else lfsr
    p = EpisodePrediction()
    w = episode.w_out.clone()
    n = episode.support.shape[1]
    lo, hi = c.readout_weight_range
    for step in range(episode.steps):
        logits = integer_readout(c, episode.support, w)
        for i in range(n):
            what = f"step {step} support sample {i}"
            _expect_logits(p, c, logits[i], what)
            p.transactions.append(_sample(p, c, episode.support[:, i], episode.support_x, i, episode.labels[i], 1,
                                          what))
        _cover_accumulation(p, c, cfg, episode, logits)
        writes = []
        w_new = adapt_readout_integer(c, w, episode.support, torch.tensor(episode.labels), episode.rate_at(step), cfg,
                                      steps=1, lfsr=lfsr, writes=writes, structure=structure)
        p.coverage["weights_saturated"] += int(((w_new == lo) | (w_new == hi)).sum())
        p.coverage["weights_changed"] += int((w_new != w).sum())
        p.coverage["weights_written_zero"] += sum(1 for *_, new in writes if new == 0)
        p.update_writes.append(([(k, j, old, new) for _, k, j, old, new in writes], f"inner step {step}"))
        p.transactions.append(("update", step))
        w = w_new
    logits = integer_readout(c, episode.query, w)
    for i in range(episode.query.shape[1]):
        what = f"query sample {i}"
        _expect_logits(p, c, logits[i], what)
        label = episode.query_labels[i] if episode.query_labels else 0
        p.transactions.append(_sample(p, c, episode.query[:, i], episode.query_x, i, label, 0, what))
    p.final_w = w
    return p


def _sample(p: EpisodePrediction, config: SRNNConfig, hidden, x, i, label, learn, what) -> tuple:
    if x is not None:
        p.coverage["hidden_spikes"] += int(hidden.sum())
        p.hidden.extend((word, what) for word in spike_tokens(config, hidden))
    return ("sample", hidden, None if x is None else x[:, i], label, learn)


def _expect_logits(p: EpisodePrediction, config: SRNNConfig, values: torch.Tensor, what: str) -> None:
    lo, hi = config.logit_range
    p.coverage["logits_saturated"] += int(((values == lo) | (values == hi)).sum())
    p.logits.extend(((k, v), what) for k, v in enumerate(values.tolist()))


def _cover_accumulation(p: EpisodePrediction, config: SRNNConfig, cfg: LearningConfig, episode: ChipEpisode,
                        logits: torch.Tensor) -> None:
    """Counts eligibilities and accumulators at their saturation bounds (without saturation they
    would have gone past)."""
    raw = eligibility(episode.support, config.readout_decay_shift, cfg.trace_frac_bits)
    p.coverage["eligibility_saturated"] += int((raw > (1 << cfg.elig_bits) - 1).sum())
    elig = raw.clamp(max=(1 << cfg.elig_bits) - 1)
    onehot = torch.nn.functional.one_hot(torch.tensor(episode.labels), config.outputs).to(torch.int64)
    err = (onehot << cfg.prob_bits) - integer_softmax(logits, config.logit_shift, cfg)
    lo, hi = signed_range(cfg.acc_bits)
    partial = torch.cumsum(err.unsqueeze(2) * elig.unsqueeze(1), 0)          # running sums, unsaturated
    p.coverage["accumulator_saturated"] += int(((partial < lo) | (partial > hi)).any(0).sum())
