"""The learning engine's first RTL pieces in Amaranth's simulator against model.learning."""

import random

import pytest
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


def _simulate_update(pairs, m_rate, q, *, idle=0.3, backpressure=0.3, seed=0):
    dut = UpdateUnit(CONFIG)
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


@pytest.mark.parametrize("m_rate,q", [(200, 13), (255, 16), (131, 27), (1, 0), (97, 40)])
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
