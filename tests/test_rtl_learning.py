"""The learning engine's first RTL pieces in Amaranth's simulator against model.learning."""

import random

import pytest
import torch
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator
from neuromosaic.model.learning import LFSR, LearningConfig, update_weight
from neuromosaic.model.snn import SRNNConfig
from neuromosaic.rtl.learning import GaloisLFSR, UpdateUnit

CONFIG = SRNNConfig.make(channels=4, neurons=8, outputs=5)


def _run(dut, testbench):
    m = Module()
    m.domains.sync = ClockDomain()
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


def test_lfsr_rtl_steps_through_the_model_sequence():
    cfg = LearningConfig()
    dut = GaloisLFSR(cfg)
    model = LFSR(cfg)
    seen = []

    async def tb(ctx):
        assert ctx.get(dut.state) == cfg.lfsr_seed
        for i in range(300):
            advance = i % 3 != 1
            ctx.set(dut.advance, advance)
            await ctx.tick()
            seen.append((advance, ctx.get(dut.state)))

    _run(dut, tb)
    expected, state = [], cfg.lfsr_seed
    for advance, _ in seen:
        if advance:
            state = model.next()
        expected.append(state)
    assert [s for _, s in seen] == expected


def _update_pairs(seed, count):
    g = random.Random(seed)
    lo, hi = CONFIG.readout_weight_range
    pairs = [(g.randint(-(1 << 34), 1 << 34) >> g.randint(0, 30), g.randint(lo, hi)) for _ in range(count)]
    pairs += [(1 << 36, hi - 1), (-(1 << 36), lo + 1), (0, 0), (-1, 0), (1, 0)]     # rails and tiny values
    return pairs


def _simulate_update(pairs, m_rate, q, *, idle=0.3, backpressure=0.3, seed=0, cfg=LearningConfig()):
    dut = UpdateUnit(CONFIG, cfg)
    got = []
    g = random.Random(seed)

    async def tb(ctx):
        ctx.set(dut.rate.m, m_rate)
        ctx.set(dut.rate.q, q)
        i = 0
        while len(got) < len(pairs):
            offer = i < len(pairs) and g.random() >= idle
            if offer:
                ctx.set(dut.inp.payload.acc, pairs[i][0])
                ctx.set(dut.inp.payload.old, pairs[i][1])
            ctx.set(dut.inp.valid, offer)
            ready = g.random() >= backpressure
            ctx.set(dut.out.ready, ready)
            taken = offer and ctx.get(dut.inp.ready)
            if ready and ctx.get(dut.out.valid):
                got.append(ctx.get(dut.out.payload))
            await ctx.tick()
            if taken:
                i += 1

    _run(dut, tb)
    return got


def _model_update(pairs, m_rate, q, rounding="stochastic"):
    lfsr = LFSR(LearningConfig())
    out = []
    for acc, old in pairs:
        draw = lfsr.draw(q)
        out.append(update_weight(old, acc, m_rate, q, draw if rounding == "stochastic" else 0,
                                 CONFIG.readout_weight_range))
    return out


@pytest.mark.parametrize("m_rate,q", [(200, 13), (255, 16), (131, 27), (1, 0), (97, 40), (255, 63), (3, 1), (170, 15),
                                      (129, 17)])
def test_update_unit_matches_the_model(m_rate, q):
    pairs = _update_pairs(q, 300)
    got = _simulate_update(pairs, m_rate, q, seed=q)
    assert got == _model_update(pairs, m_rate, q)


def test_update_scoreboard_catches_wrong_rounding():
    """A model that floors instead of rounding stochastically (one rounding bit wrong) must disagree."""
    pairs = _update_pairs(7, 200)
    got = _simulate_update(pairs, 200, 13, idle=0.0, backpressure=0.0)
    wrong = _model_update(pairs, 200, 13, rounding="floor")
    assert got != wrong
    assert sum(a != b for a, b in zip(got, wrong)) > 20


# -- whole episodes in Amaranth's simulator -----------------------------------------------------------

from neuromosaic.cosim.learning.amaranth_sim import simulate_learning  # noqa: E402
from neuromosaic.cosim.learning.scoreboard import FAULTS, ROUNDING_FAULTS  # noqa: E402
from neuromosaic.cosim.learning.stimulus import readout_memory  # noqa: E402
from neuromosaic.cosim.options import FULL_RATE, RunOptions  # noqa: E402
from neuromosaic.model.episode import random_episode, random_network_episode  # noqa: E402
from neuromosaic.model.golden import Mismatch  # noqa: E402

# Narrow widths everywhere, one output lane, odd sizes: logits, eligibilities, accumulators and
# weights all reach their rails within a few episodes.
ODD = SRNNConfig.make(channels=3, neurons=7, outputs=4, lanes=1, readout_bits=12, logit_bits=13,
                      readout_weight_bits=6, readout_decay_shift=4, logit_shift=8)
ODD_CFG = LearningConfig(elig_bits=10, acc_bits=18, prob_bits=9, exp_frac_bits=3, exp_table_bits=11, rate_bits=5,
                         trace_frac_bits=5)


def test_engine_episodes_match_the_model():
    cfg = LearningConfig()
    r = simulate_learning(CONFIG, cfg, [random_episode(CONFIG, cfg, s) for s in range(4)], options=RunOptions(seed=1))
    assert r.details["episodes"] == 4 and r.checked["weight_writes"] > 0 and r.checked["logits"] > 0
    assert r.coverage["weights_changed"] > 0


def test_engine_odd_widths_saturate_everything():
    r = simulate_learning(ODD, ODD_CFG, [random_episode(ODD, ODD_CFG, s) for s in range(6)],
                          options=RunOptions(seed=2, idle=0.4, backpressure=0.5))
    cov = r.coverage
    for what in ("logits_saturated", "eligibility_saturated", "accumulator_saturated", "weights_saturated"):
        assert cov[what] > 0, (what, cov)


def test_engine_cycle_contract():
    """The LearningEngine docstring's cycles, with no idle input and no backpressure: from taking an
    END with learning to taking the next command, outputs + neurons + 2 + outputs * (prob_bits + 3) +
    outputs * neurons + 2; an UPDATE writes one weight a cycle from UPDATE_LATENCY on and takes
    outputs * neurons + UPDATE_LATENCY + 1; the logits follow an END at once."""
    from neuromosaic.model.episode import ChipEpisode
    from neuromosaic.model.learning import UPDATE_LATENCY
    cfg = LearningConfig()
    K, N, P = CONFIG.outputs, CONFIG.neurons, cfg.prob_bits
    g = torch.Generator().manual_seed(0)
    raster = (torch.rand(6, 1, N, generator=g) < 0.3).to(torch.int64)
    ep = ChipEpisode("contract", torch.zeros(K, N, dtype=torch.int64), raster, [1], raster, 2.0 ** 16, 1, [1])
    r = simulate_learning(CONFIG, cfg, [ep], options=FULL_RATE)
    t = r.details["timing"]
    (end_learn, end_query), (update,) = t["end_cycles"], t["update_cycles"]
    assert update - end_learn == (K + N + 2) + K * (P + 3) + K * N + 2
    assert t["write_cycles"] == list(range(update + UPDATE_LATENCY, update + UPDATE_LATENCY + K * N))
    spikes_of_query = [c for kind, c in t["segments"] if kind == "spikes"][1]
    assert spikes_of_query - update == K * N + UPDATE_LATENCY + 1     # the pass, its drain, then IDLE
    assert t["logit_cycles"][-K:] == list(range(end_query + 1, end_query + 1 + K))


def test_core_episodes_match_the_model():
    """Through the whole network: input events, the recurrent LIF core, its hidden spikes, the engine."""
    config = SRNNConfig.make(channels=3, neurons=6, outputs=3, lanes=2)
    cfg = LearningConfig()
    r = simulate_learning(config, cfg, [random_network_episode(config, cfg, s) for s in range(3)],
                          options=RunOptions(seed=3))
    assert r.checked["hidden_events"] > 100 and r.coverage["hidden_spikes"] > 0
    assert r.checked["weight_writes"] > 0


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_episode_scoreboard_catches_wrong_rounding(fault):
    cfg = LearningConfig()
    with pytest.raises(Mismatch, match="weight write mismatch"):
        simulate_learning(CONFIG, cfg, [random_episode(CONFIG, cfg, s) for s in range(3)],
                          options=RunOptions(fault=fault))


RRAM = LearningConfig(level_shift=2, write_noise_bits=3)


@pytest.mark.parametrize("m_rate,q", [(200, 13), (255, 16), (131, 27), (1, 0), (97, 40), (255, 61)])
def test_update_unit_with_rram_emulation_matches_the_model(m_rate, q):
    """Levels 4 apart and write noise: the RTL's two draws per weight are the model's, bit for bit."""
    from neuromosaic.model.learning import apply_update
    pairs = _update_pairs(q + 100, 300)
    got = _simulate_update(pairs, m_rate, q, seed=q, cfg=RRAM)
    acc = torch.tensor([[a for a, _ in pairs]])
    w = torch.tensor([[o for _, o in pairs]])
    want = apply_update(w, acc, m_rate, q, LFSR(RRAM), CONFIG.readout_weight_range)
    assert got == want[0].tolist()


def test_rram_emulation_keeps_weights_on_levels_and_adds_noise():
    from neuromosaic.model.learning import apply_update, level_bounds

    class Silent(LFSR):
        """The same draws, but every noise draw (each second one) at the centre: no noise."""
        calls = 0

        def draw(self, q):
            d = super().draw(q)
            self.calls += 1
            return 1 << (q - 1) if self.calls % 2 == 0 else d

    g = torch.Generator().manual_seed(0)
    lo, hi = level_bounds(CONFIG.readout_weight_range, RRAM.level_shift)
    w = torch.randint(lo // 4, hi // 4 + 1, (5, 64), generator=g) * 4
    acc = torch.randint(-(1 << 24), 1 << 24, (5, 64), generator=g)
    acc[:, :8] = 0                                              # not programmed: untouched
    noisy = apply_update(w, acc, 200, 28, LFSR(RRAM), CONFIG.readout_weight_range)
    clean = apply_update(w, acc, 200, 28, Silent(RRAM), CONFIG.readout_weight_range)
    assert bool((noisy % 4 == 0).all()) and bool((clean % 4 == 0).all())
    assert int(noisy.max()) <= hi == 124
    assert torch.equal(noisy[:, :8], w[:, :8])
    diff = (noisy - clean)[:, 8:] // 4                          # in levels
    assert int((diff != 0).sum()) > 100 and int(diff.min()) >= -4 and int(diff.max()) <= 3
    assert abs(float(diff.float().mean())) < 0.6                 # uniform in -4..3: mean -0.5 before rails


def test_engine_episodes_with_rram_emulation():
    r = simulate_learning(CONFIG, RRAM, [random_episode(CONFIG, RRAM, s) for s in range(3)], options=RunOptions(seed=4))
    assert r.checked["weight_writes"] > 0 and r.coverage["weights_changed"] > 0


def test_level_shift_leaving_one_level_is_refused():
    from neuromosaic.model.config import ConfigError
    with pytest.raises(ConfigError, match="level_shift=8 leaves fewer than 2 levels for 8-bit weights"):
        UpdateUnit(CONFIG, LearningConfig(level_shift=8))


# -- the readout in a synapse memory ---------------------------------------------------------

def test_engine_with_synapse_memory_matches_the_model():
    """Spikes are forward accesses (one output's weight a cycle into its drive); an update is, per
    output, a transposed access whose (neuron, weight) pairs go through the update unit, then an
    update command per new weight: the same weights, logits and LFSR draws as the model."""
    cfg = LearningConfig()
    eps = [random_episode(CONFIG, cfg, s) for s in range(4)]
    r = simulate_learning(CONFIG, cfg, eps, synapses="dense", options=RunOptions(seed=1))
    plain = simulate_learning(CONFIG, cfg, eps, options=RunOptions(seed=1))
    assert r.checked == plain.checked and r.checked["weight_writes"] > 0
    assert r.coverage["weights_changed"] > 0


def test_engine_with_synapse_memory_odd_widths():
    simulate_learning(ODD, ODD_CFG, [random_episode(ODD, ODD_CFG, s) for s in range(3)], synapses="dense",
                      options=RunOptions(seed=2, idle=0.4, backpressure=0.5))


@pytest.mark.parametrize("fault", sorted(ROUNDING_FAULTS))     # its writes have a lower bound, not a cycle
def test_engine_with_synapse_memory_catches_wrong_rounding(fault):
    cfg = LearningConfig()
    with pytest.raises(Mismatch, match="weight write mismatch"):
        simulate_learning(CONFIG, cfg, [random_episode(CONFIG, cfg, s) for s in range(3)],
                          synapses="dense", options=RunOptions(fault=fault))


@pytest.mark.parametrize("organisation", ["bitmap", "csr"])
def test_engine_with_a_sparse_readout_updates_only_stored_synapses(organisation):
    """A sparse readout (half the synapses stored): loads, forward and transposed accesses and
    updates touch the stored synapses alone, and the weights, logits and LFSR draws are the model's
    with the structure (a weight that becomes zero stays stored)."""
    cfg = LearningConfig()
    eps = [random_episode(CONFIG, cfg, s) for s in range(4)]
    spec = {"organisation": organisation, "density": 0.5, "seed": 3}
    r = simulate_learning(CONFIG, cfg, eps, synapses=spec, options=RunOptions(seed=1))
    stored = int(readout_memory(CONFIG, spec).structure().sum())
    assert 0 < stored < CONFIG.outputs * CONFIG.neurons
    assert r.checked["weight_writes"] == stored * sum(e.steps for e in eps)     # dense: every weight a step
    assert r.coverage["weights_changed"] > 0 and r.coverage["weights_written_zero"] > 0


def test_sparse_readout_catches_wrong_rounding():
    cfg = LearningConfig()
    with pytest.raises(Mismatch, match="weight write mismatch"):
        simulate_learning(CONFIG, cfg, [random_episode(CONFIG, cfg, s) for s in range(3)],
                          synapses={"organisation": "csr", "density": 0.5}, options=RunOptions(fault="floor"))


def test_engine_refuses_a_readout_memory_that_does_not_fit():
    from neuromosaic.model.config import ConfigError
    from neuromosaic.model.synapse import make_memory
    from neuromosaic.rtl.learning import LearningEngine
    with pytest.raises(ConfigError, match="a sparse readout's structure comes with its memory"):
        LearningEngine(CONFIG, LearningConfig(), synapses="csr")
    K, N = CONFIG.outputs, CONFIG.neurons
    with pytest.raises(ConfigError, match=f"allowed: {K} outputs, {N} neurons"):
        LearningEngine(CONFIG, LearningConfig(), synapses=make_memory("bitmap", torch.ones(K, N + 1), 8))
    with pytest.raises(ConfigError, match="convolution cannot hold the readout"):
        LearningEngine(CONFIG, LearningConfig(), synapses=make_memory("csr", torch.ones(2, 1, 3, 3), 8, image=(2, 2)))
    with pytest.raises(ConfigError, match="either as w_out= or in the synapse memory"):
        LearningEngine(CONFIG, LearningConfig(), w_out=torch.zeros(K, N),
                       synapses=make_memory("csr", torch.ones(K, N), 8))


def test_learning_core_with_synapse_memories():
    """The whole network with the LIF core's weights in a CSR memory and the readout in a bitmap
    one (both half sparse): core loads are updates of the stored synapses, every hidden spike is
    the integer model's on the sparse core weights, every logit and weight write the model's."""
    cfg = LearningConfig()
    eps = [random_network_episode(CONFIG, cfg, s) for s in range(3)]
    r = simulate_learning(CONFIG, cfg, eps, synapses={"organisation": "bitmap", "density": 0.6},
                          core_synapses={"organisation": "csr", "density": 0.5}, options=RunOptions(seed=2))
    assert r.checked["hidden_events"] > 0 and r.checked["weight_writes"] > 0
    assert r.coverage["hidden_spikes"] > 0 and r.coverage["weights_changed"] > 0
