"""The integer learning rule of the readout (model part): LFSR, integer softmax,
eligibility, stochastic rounding, and agreement with the float inner step."""

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.learning import (
    LFSR,
    LearningConfig,
    adapt_readout_integer,
    eligibility,
    integer_softmax,
    quantise_rate,
)
from neuromosaic.model.maml import MAMLConfig, adapt_readout
from neuromosaic.model.snn import FloatSRNN, SRNNConfig


def test_lfsr_has_maximal_period_and_a_known_start():
    cfg = LearningConfig()
    lfsr = LFSR(cfg)
    seen = set()
    for _ in range((1 << 16) - 1):
        seen.add(lfsr.next())
    assert len(seen) == (1 << 16) - 1 and 0 not in seen
    assert lfsr.state == cfg.lfsr_seed                        # back at the start after the period
    # the first states, by the Galois rule written out by hand
    s, expected = 0xACE1, []
    for _ in range(4):
        s = (s >> 1) ^ (0xB400 if s & 1 else 0)
        expected.append(s)
    lf = LFSR(cfg)
    assert [lf.next() for _ in range(4)] == expected


def test_integer_softmax_tracks_the_float_softmax():
    cfg = LearningConfig()
    g = torch.Generator().manual_seed(0)
    logits = torch.randint(-40000, 40000, (500, 5), generator=g)
    p = integer_softmax(logits, 12, cfg)
    ref = torch.softmax(logits.double() / 4096, -1) * 4096
    assert (p - ref).abs().max() < 100                    # table of 16 entries: 2.2 % at most
    assert (p.sum(-1) <= 4096).all() and (p.sum(-1) >= 4096 - 5).all() and (p >= 0).all()
    top = logits.argmax(-1, keepdim=True)
    assert torch.equal(p.gather(-1, top).squeeze(-1), p.max(-1).values)     # the largest logit keeps the top


def test_eligibility_is_the_floored_trace_sum():
    h = torch.tensor([[1], [0], [0], [1], [0]]).unsqueeze(1).expand(5, 2, 1).clone()   # [T, B, N]
    tr, total = 0, 0
    for x in [1, 0, 0, 1, 0]:
        tr = tr - (tr >> 3) + (x << 8)
        total += tr
    assert eligibility(h, 3, 8).tolist() == [[total], [total]]
    assert total == 256 + 224 + 196 + (172 + 256) + 375           # the leak works on a single spike


def test_stochastic_rounding_is_unbiased_and_the_rate_is_quantised():
    cfg = LearningConfig()
    m, q = quantise_rate(8e5, 25, 12, cfg)
    c = 8e5 / (25 * 2 ** (12 + 12 + 8))
    assert 128 <= m < 256 and abs(m / 2 ** q - c) / c < 0.01
    lfsr = LFSR(cfg)
    x = 12345                                            # x / 2**q is not an integer
    draws = [(x + lfsr.draw(q)) >> q for _ in range(20000)]
    assert set(draws) <= {x >> q, (x >> q) + 1}
    assert abs(sum(draws) / len(draws) - x / 2 ** q) < 0.01
    with pytest.raises(ConfigError, match="inner rate -1.0 is not positive"):
        quantise_rate(-1.0, 25, 12, cfg)
    with pytest.raises(ConfigError, match="lfsr_seed=0 is not a non-zero 16-bit state"):
        LearningConfig(lfsr_seed=0)


def test_integer_step_follows_the_float_step():
    """On random support activity, one integer step moves the readout as the float inner step does
    (rounded), and the writes come in the engine's order with old and new values."""
    c = SRNNConfig.make(channels=8, neurons=32, outputs=5)
    g = torch.Generator().manual_seed(3)
    hs = (torch.rand(50, 25, 32, generator=g) < 0.05).long()
    labels = torch.arange(5).repeat_interleave(5)
    hs[:, :, :5] |= (torch.rand(50, 25, 5, generator=g) < 0.2).long() * (labels[None, :,
                                                                                None] == torch.arange(5)).long()
    rate = 3e5
    net = FloatSRNN(c, exact=True)
    w0 = torch.zeros(5, 32, dtype=torch.int64)
    with torch.enable_grad():
        wf = adapt_readout(net, w0.double(), hs.double(), labels, MAMLConfig(), rate).detach()
    lo, hi = c.readout_weight_range
    wf = torch.round(wf).clamp(lo, hi)
    writes = []
    wi = adapt_readout_integer(c, w0, hs, labels, rate, writes=writes)
    d = wf - wi
    assert d.abs().max() <= 5 and (d.abs() <= 1).double().mean() > 0.75 and abs(d.mean()) < 0.3
    assert torch.corrcoef(torch.stack([wf.flatten(), wi.double().flatten()]))[0, 1] > 0.99
    assert [(k, j) for _, k, j, _, _ in writes] == [(k, j) for k in range(5) for j in range(32)]
    assert all(new == int(wi[k, j]) and old == 0 for _, k, j, old, new in writes)
    # two steps: the first is the one-step run (same LFSR start), the second starts from its weights
    writes2 = []
    w2 = adapt_readout_integer(c, w0, hs, labels, rate, steps=2, writes=writes2)
    first, second = writes2[:160], writes2[160:]
    assert first == writes
    assert [old for _, _, _, old, _ in second] == [new for _, _, _, _, new in first]
    assert [new for _, _, _, _, new in second] == w2.flatten().tolist()


def test_a_sparse_structure_updates_only_its_synapses():
    """With a synapse memory's structure the update visits the stored synapses alone, in the same
    row-major order, one LFSR draw each: the all-true structure is the plain rule, and a sparse one
    is the plain rule with the other synapses' draws left out."""
    c = SRNNConfig.make(channels=4, neurons=12, outputs=3)
    g = torch.Generator().manual_seed(5)
    hs = (torch.rand(20, 6, 12, generator=g) < 0.3).long()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    structure = torch.rand(3, 12, generator=g) < 0.5
    w0 = torch.randint(-20, 21, (3, 12), generator=g) * structure
    plain, full = [], []
    adapt_readout_integer(c, w0, hs, labels, 2e5, steps=2, writes=plain)
    adapt_readout_integer(c, w0, hs, labels, 2e5, steps=2, writes=full, structure=torch.ones(3, 12, dtype=torch.bool))
    assert full == plain
    writes = []
    w = adapt_readout_integer(c, w0, hs, labels, 2e5, steps=1, writes=writes, structure=structure)
    assert [[k, j] for _, k, j, _, _ in writes] == torch.nonzero(structure).tolist()
    assert torch.equal(w[~structure], torch.zeros_like(w[~structure])) and not torch.equal(w, w0)
    # the LFSR: the sparse run's draws are the first draws of the stream, in the stored order
    lfsr = LFSR(LearningConfig())
    one = adapt_readout_integer(c, w0, hs, labels, 2e5, lfsr=lfsr, structure=structure)
    ref = LFSR(LearningConfig())
    for _ in writes:
        ref.next()
    assert torch.equal(one, w) and lfsr.state == ref.state
    with pytest.raises(ConfigError, match="non-zero weights outside its structure"):
        adapt_readout_integer(c, w0 + 1, hs, labels, 2e5, structure=structure)
    with pytest.raises(ConfigError, match="does not match the \\[3, 12\\] readout"):
        adapt_readout_integer(c, w0, hs, labels, 2e5, structure=structure[:, :5])
