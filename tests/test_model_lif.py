"""The integer golden model against an independent scalar reading of its documented equations, and
the float twin against the integer model."""

import random

import pytest
import torch
from neuromosaic.model.config import EVENT_SPIKE, EVENT_TICK, ConfigError, LIFConfig
from neuromosaic.model.lif import FloatLIF, IntegerLIF, decay


def _clamp(x, lo, hi):
    return max(lo, min(hi, x))


def _scalar_reference(config, weights, tokens):
    """Plain Python, one neuron at a time, straight from the equations in model/lif.py."""
    c = config
    n = c.neurons
    cur, mem, ref = [0] * n, [0] * n, [0] * n
    out = []
    for kind, pre in tokens:
        if kind == EVENT_SPIKE:
            for i in range(n):
                cur[i] = _clamp(cur[i] + weights[i][pre], *c.current_range)
        else:
            fired = []
            for i in range(n):
                mem[i] = _clamp(mem[i] - (mem[i] >> c.membrane_decay_shift) + cur[i], *c.membrane_range)
                s = mem[i] - ref[i] >= c.threshold
                ref[i] = _clamp(ref[i] - (ref[i] >> c.refractory_decay_shift) + (c.refractory_jump if s else 0),
                                *c.refractory_range)
                cur[i] = cur[i] - (cur[i] >> c.current_decay_shift)
                if s:
                    fired.append(i)
            out.append((fired, list(cur), list(mem), list(ref)))
    return out


CONFIGS = [
    LIFConfig(),
    LIFConfig(neurons=6, inputs=5, lanes=3, weight_bits=6, current_bits=9, membrane_bits=10, refractory_bits=5,
              current_decay_shift=0, membrane_decay_shift=9, refractory_decay_shift=1, threshold=200,
              refractory_jump=31),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", range(3))
def test_trace_matches_scalar_reference(config, seed):
    rng = random.Random(seed)
    lo, hi = config.weight_range
    weights = [[rng.randint(lo, hi) for _ in range(config.inputs)] for _ in range(config.neurons)]
    tokens = []
    for _ in range(40):
        tokens += [(EVENT_SPIKE, rng.randrange(config.inputs)) for _ in range(rng.randint(0, 3 * config.inputs))]
        tokens.append((EVENT_TICK, 0))
    want = _scalar_reference(config, weights, tokens)
    got = [t for t in IntegerLIF(config, weights).trace(tokens) if t[0] == "tick"]
    assert len(got) == len(want) == 40
    for (_, _, state, fired), (w_fired, w_cur, w_mem, w_ref) in zip(got, want):
        assert fired == w_fired
        assert state.current.tolist() == w_cur
        assert state.membrane.tolist() == w_mem
        assert state.refractory.tolist() == w_ref


def test_decay_floors_like_hardware():
    x = torch.tensor([-17, -1, 0, 1, 15, 16, 17])
    assert decay(x, 4).tolist() == [-15, 0, 0, 1, 15, 15, 16]
    assert decay(x, 0).tolist() == [0] * 7


@pytest.mark.parametrize("config", CONFIGS)
def test_raster_run_equals_event_trace_including_saturation(config):
    """The batched raster path (ascending input order, fast cumsum with a saturating fallback)
    equals the event-by-event trace, also when partial sums saturate."""
    g = torch.Generator().manual_seed(1)
    lo, hi = config.weight_range
    weights = torch.randint(lo, hi + 1, (config.neurons, config.inputs), generator=g)
    raster = torch.randint(0, 9, (30, 4, config.inputs), generator=g)   # heavy: saturates
    model = IntegerLIF(config, weights)
    spikes, _ = model.run(raster)
    for b in range(4):
        tokens = []
        for t in range(30):
            for j in range(config.inputs):
                tokens += [(EVENT_SPIKE, j)] * int(raster[t, b, j])
            tokens.append((EVENT_TICK, 0))
        ticks = [t for t in model.trace(tokens) if t[0] == "tick"]
        assert [t[3] for t in ticks] == [torch.nonzero(spikes[t, b]).flatten().tolist() for t in range(30)]
    # the fallback was exercised
    assert (raster.sum(-1) * hi > config.current_range[1]).any()


def test_float_twin_equals_integer_model_without_saturation():
    c = LIFConfig(neurons=16, inputs=24, lanes=2, current_bits=24, membrane_bits=24, refractory_bits=20,
                  threshold=3000, refractory_jump=5000)
    g = torch.Generator().manual_seed(3)
    weights = torch.randint(-60, 128, (c.neurons, c.inputs), generator=g)
    raster = (torch.rand(50, 3, c.inputs, generator=g) < 0.2).to(torch.int64)
    int_spikes, _ = IntegerLIF(c, weights).run(raster)
    flt_spikes, _ = FloatLIF(c, exact=True)(raster.double(), weights.double())
    assert int_spikes.any() and not int_spikes.all()
    assert torch.equal(flt_spikes.bool(), int_spikes)


def test_float_twin_has_surrogate_gradients():
    c = LIFConfig(neurons=8, inputs=10, lanes=1)
    w = torch.randn(c.neurons, c.inputs, dtype=torch.double) * 400
    w.requires_grad_(True)
    raster = (torch.rand(20, 2, c.inputs) < 0.3).double()
    for exact in (True, False):
        spikes, _ = FloatLIF(c, exact=exact)(raster, w)
        spikes.sum().backward()
        assert w.grad is not None and torch.isfinite(w.grad).all() and w.grad.abs().sum() > 0
        w.grad = None


def test_model_rejects_bad_input():
    c = LIFConfig(neurons=2, inputs=3, lanes=1)
    m = IntegerLIF(c, torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(ConfigError, match="input address 3 is out of range; allowed: 0..2"):
        list(m.trace([(EVENT_SPIKE, 3)]))
    with pytest.raises(ConfigError, match="raster has 4 input channels; allowed: 3"):
        m.run(torch.zeros(5, 4, dtype=torch.int64))
    with pytest.raises(ConfigError, match="weights must be integers"):
        IntegerLIF(c, torch.full((2, 3), 0.5))
