"""The recurrent network (float twin vs integer model) and the MAML engine (gradients, learning)."""

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.data import PROTOCOLS, synthetic_dataset
from neuromosaic.model.maml import MAMLConfig, Params, adapt_readout, calibrate_input_gain, init_params, meta_loss
from neuromosaic.model.snn import FloatSRNN, IntegerSRNN, SRNNConfig

WIDE = dict(current_bits=24, membrane_bits=24, refractory_bits=20, threshold=2048, refractory_jump=4096)


def test_float_twin_equals_integer_srnn():
    c = SRNNConfig.make(channels=12, neurons=10, outputs=4, **WIDE)
    g = torch.Generator().manual_seed(0)
    w_in = torch.randint(-40, 128, (10, 12), generator=g)
    w_rec = torch.randint(-100, 100, (10, 10), generator=g)
    w_out = torch.randint(-128, 128, (4, 10), generator=g)
    x = (torch.rand(60, 5, 12, generator=g) < 0.3).long()
    hidden, logits = IntegerSRNN(c, w_in, w_rec, w_out).run(x)
    assert 0.01 < hidden.float().mean() < 0.5            # the network is neither silent nor saturated
    f = FloatSRNN(c, exact=True)
    fh = f.hidden(x.double(), w_in.double(), w_rec.double())
    assert torch.equal(fh.bool(), hidden)
    assert torch.equal(f.readout(fh, w_out.double()) * (1 << c.logit_shift), logits.double())


def test_recurrence_is_input_events_of_the_core():
    """The integer SRNN is the LIF core with [W_in | W_rec] and its own spikes fed back next step."""
    c = SRNNConfig.make(channels=3, neurons=4, outputs=2, **WIDE)
    net = IntegerSRNN(c, torch.full((4, 3), 127), torch.full((4, 4), -50), torch.zeros(2, 4, dtype=torch.int64))
    x = torch.ones(10, 1, 3, dtype=torch.int64)
    hidden, _ = net.run(x)
    state = net.core.initial_state((1,))
    prev = torch.zeros(1, 4, dtype=torch.int64)
    for t in range(10):
        state, s = net.core.advance(state, torch.cat([x[t], prev], -1))
        assert torch.equal(s, hidden[t])
        prev = s.long()


def test_srnn_config_errors():
    with pytest.raises(ConfigError, match="core.inputs=10 does not equal channels \\+ neurons = 12"):
        from neuromosaic.model.config import LIFConfig
        SRNNConfig(LIFConfig(neurons=4, inputs=10, lanes=1), channels=8, outputs=2)
    with pytest.raises(ConfigError, match="readout_decay_shift=30 is out of range"):
        SRNNConfig.make(channels=2, neurons=2, outputs=2, readout_decay_shift=30)


def _tiny():
    c = SRNNConfig.make(channels=6, neurons=5, outputs=3, lanes=1, **WIDE)
    net = FloatSRNN(c, exact=False)          # ideal: smooth enough for finite differences
    g = torch.Generator().manual_seed(1)
    p = Params(*(t.double().requires_grad_(True) for t in (
        torch.randn(5, 6, generator=g) * 600, torch.randn(5, 5, generator=g) * 100,
        torch.randn(3, 5, generator=g) * 20)))
    return net, p


def test_maml_gradient_matches_finite_differences():
    """d(query loss after the inner step)/d(readout weights), second order, against central
    differences of the same function."""
    net, p = _tiny()
    g = torch.Generator().manual_seed(2)
    hs = (torch.rand(8, 6, 5, generator=g) < 0.4).double()      # hidden spikes [T, n, N]
    hq = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    ys, yq = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 1, 0, 0, 1, 2])
    cfg = MAMLConfig(inner_lr=3.0, inner_steps=2)

    def outer(w_out):
        w = adapt_readout(net, w_out, hs, ys, cfg)
        return torch.nn.functional.cross_entropy(net.readout(hq, w), yq)

    w0 = p.w_out.detach().clone().requires_grad_(True)
    (analytic,) = torch.autograd.grad(outer(w0), w0)
    numeric = torch.zeros_like(w0)
    eps = 1e-4
    for idx in [(0, 0), (1, 3), (2, 4), (0, 2)]:
        wp, wm = w0.detach().clone(), w0.detach().clone()
        wp[idx] += eps
        wm[idx] -= eps
        numeric[idx] = (outer(wp) - outer(wm)) / (2 * eps)
        assert abs(numeric[idx] - analytic[idx]) < 1e-5 + 1e-3 * abs(numeric[idx]), idx
    # first order drops the dependence of the inner gradient on w_out: a different gradient
    fo = MAMLConfig(inner_lr=3.0, inner_steps=2, first_order=True)
    w1 = w0.detach().clone().requires_grad_(True)
    loss_fo = torch.nn.functional.cross_entropy(net.readout(hq, adapt_readout(net, w1, hs, ys, fo)), yq)
    (first,) = torch.autograd.grad(loss_fo, w1)
    assert not torch.allclose(first, analytic)


def test_meta_training_reduces_the_query_loss():
    ds = synthetic_dataset(classes=20, samples_per_class=10, speakers=4, channels=24, steps=30)
    train = PROTOCOLS["synthetic"].meta_train(ds, seed=0)
    c = SRNNConfig.make(channels=24, neurons=24, outputs=20)
    net = FloatSRNN(c, exact=True)
    p = init_params(net, seed=0)
    e = train.episode(0)
    calibrate_input_gain(net, p, torch.cat([e.support, e.query]).transpose(0, 1))
    cfg = MAMLConfig()
    opt = torch.optim.Adam(p.trained(cfg), lr=cfg.outer_lr)
    fixed = train.batch(1000, 4)
    with torch.no_grad():
        before = meta_loss(net, p, fixed, cfg)[0].item()
    for it in range(25):
        loss, _ = meta_loss(net, p, train.batch(4 * it, 4), cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = meta_loss(net, p, fixed, cfg)[0].item()
    assert after < before - 0.1


def test_gradient_of_the_learned_inner_rate_matches_finite_differences():
    net, _ = _tiny()
    g = torch.Generator().manual_seed(3)
    hs = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    hq = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    ys, yq = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 1, 0, 0, 1, 2])
    cfg = MAMLConfig(inner_steps=2)
    w0 = torch.zeros(3, 5, dtype=torch.float64)

    def outer(log_lr):
        w = adapt_readout(net, w0, hs, ys, cfg, log_lr.exp())
        return torch.nn.functional.cross_entropy(net.readout(hq, w), yq)

    log_lr = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    (analytic,) = torch.autograd.grad(outer(log_lr), log_lr)
    eps = 1e-5
    numeric = (outer(log_lr.detach() + eps) - outer(log_lr.detach() - eps)) / (2 * eps)
    assert abs(float(analytic)) > 1e-4
    assert abs(float(numeric - analytic)) < 1e-6 + 1e-4 * abs(float(numeric))


def test_one_step_from_a_zero_readout_is_a_prototype_classifier():
    """The design claim of model/maml.py: from zero, one inner step sets output c's row to
    lr / n * sum_i (y_ic - 1/C) F_i, with F the readout's time-summed filtered spikes; so the adapted
    readout scores a query by its dot product with the class means minus their average."""
    net, _ = _tiny()
    c = net.config
    g = torch.Generator().manual_seed(4)
    hs = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    ys = torch.tensor([0, 1, 2, 0, 1, 2])
    lr = 7.0e3
    w = adapt_readout(net, torch.zeros(3, 5, dtype=torch.float64), hs, ys, MAMLConfig(inner_lr=lr), lr)
    o, features = torch.zeros(6, 5, dtype=torch.float64), torch.zeros(6, 5, dtype=torch.float64)
    for t in range(hs.shape[0]):
        o = o - o / (1 << c.readout_decay_shift) + hs[t]
        features += o
    err = torch.nn.functional.one_hot(ys, 3).double() - 1 / 3
    expected = lr * err.t() @ features / (6 * (1 << c.logit_shift))
    assert torch.allclose(w, expected)
    means = torch.stack([features[ys == k].mean(0) for k in range(3)])
    assert torch.allclose(w, lr * 2 / (6 * (1 << c.logit_shift)) * (means - means.mean(0)))


def test_maml_config_errors():
    with pytest.raises(ConfigError, match="readout_init='random' is unknown; allowed: zero, learned"):
        MAMLConfig(readout_init="random")
    with pytest.raises(ConfigError, match="inner_lr=0.0, inner_steps=1: allowed are inner_lr > 0"):
        MAMLConfig(inner_lr=0.0)


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("engine", ["inplace", "fused"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_recurrent_engines_equal_the_step_by_step_graph(exact, engine, dtype):
    """Each engine (one autograd node, hand-written BPTT) gives the same spikes and the same weight
    gradients as autograd through the twin's step-by-step operations, with every clamp, the
    refractory jump and the recurrence active; in float32 on the integer grid the in-place engine
    takes its int8 products."""
    c = SRNNConfig.make(channels=12, neurons=10, outputs=4, current_bits=9, membrane_bits=12, refractory_bits=12,
                        threshold=300, refractory_jump=600)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(40, 6, 12, generator=g) < 0.3).to(dtype) * torch.randint(1, 3, (40, 6, 12), generator=g)
    w_in = (torch.randn(10, 12, generator=g) * 120).to(dtype).requires_grad_(True)
    w_rec = (torch.randn(10, 10, generator=g) * 60).to(dtype).requires_grad_(True)
    upstream = torch.randn(40, 6, 10, generator=g).to(dtype)
    assert (x[0] @ w_in.detach().t()).abs().max() > c.core.current_range[1]     # the current clamp engages
    results = []
    for e in (engine, "graph"):
        h = FloatSRNN(c, exact=exact, engine=e).hidden(x, w_in, w_rec)
        results.append((h, *torch.autograd.grad((h * upstream).sum(), (w_in, w_rec))))
    (h1, gi1, gr1), (h0, gi0, gr0) = results
    assert 0.02 < h0.mean() < 0.5 and torch.equal(h1, h0)
    assert gi0.abs().max() > 0 and gr0.abs().max() > 0
    tol = dict(rtol=1e-9, atol=1e-12) if dtype == torch.float64 else dict(rtol=1e-4, atol=1e-3)
    assert torch.allclose(gi1, gi0, **tol) and torch.allclose(gr1, gr0, **tol)


def test_event_counts_take_the_int8_path_only_when_exact():
    from neuromosaic.model.recurrent import event_counts
    x = torch.tensor([[0.0, 3.0], [127.0, 1.0]])
    assert torch.equal(event_counts(x), x.to(torch.int8))
    assert event_counts(x + 0.5) is None                  # not integer
    assert event_counts(x * 2) is None                    # above 127
    assert event_counts(-x) is None                       # negative
    assert torch.equal(event_counts(x.long()), x.to(torch.int8))


def test_an_unknown_engine_is_refused():
    with pytest.raises(ConfigError, match="engine='jit' is unknown; allowed: inplace, fused, graph"):
        FloatSRNN(SRNNConfig.make(channels=2, neurons=2, outputs=2), engine="jit")


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("maml", [MAMLConfig(), MAMLConfig(inner_steps=3, first_order=True),
                                  MAMLConfig(inner_steps=2, readout_init="learned", inner_lr=3000.0),
                                  MAMLConfig(inner_steps=3, rate_schedule=True)])
def test_the_batched_meta_loss_equals_the_per_task_loop(exact, maml, monkeypatch):
    """The closed-form inner loop over all tasks at once (and the in-place recurrent layer) give the
    loss, accuracy and gradients of the per-task formulation (vmap over tasks, fused layer), with the
    readout's clamps engaged (a narrow potential and logit accumulator)."""
    import neuromosaic.model.maml as maml_module
    features, saturated = maml_module._readout_features, []

    def recorded(net, h, w):
        value, f = features(net, h, w)
        clamped = value.abs() * (1 << net.config.logit_shift) >= net.config.logit_range[1]
        saturated.append(float(clamped.float().mean()))
        return value, f

    monkeypatch.setattr(maml_module, "_readout_features", recorded)
    ds = synthetic_dataset(classes=20, samples_per_class=8, speakers=4, channels=16, steps=30)
    episodes = PROTOCOLS["synthetic"].meta_train(ds, relabel=True).batch(0, 3)
    c = SRNNConfig.make(channels=16, neurons=20, outputs=5, readout_bits=9, logit_bits=10, logit_shift=4)
    results = []
    for engine, batched in (("inplace", True), ("fused", False)):
        net = FloatSRNN(c, exact=exact, engine=engine)
        p = init_params(net, seed=1, dtype=torch.float64, cfg=maml)
        with torch.no_grad():
            p.w_in.mul_(3.0)
            if maml.readout_init == "learned":
                p.w_out.mul_(20.0).clamp_(*c.readout_weight_range)
            if maml.rate_schedule:                                  # a different rate for each step
                p.log_inner_lr.add_(torch.tensor([0.0, -1.0, 0.5], dtype=torch.float64))
        loss, acc = meta_loss(net, p, episodes, maml, batched=batched)
        grads = torch.autograd.grad(loss, p.trained(maml))
        results.append((loss, acc, grads))
    (l1, a1, g1), (l0, a0, g0) = results
    assert 0.1 < max(saturated) < 0.9 or not exact             # some logits clamp, not all
    assert torch.allclose(l1, l0, rtol=1e-10) and a1 == a0
    for new, old in zip(g1, g0):
        assert old.abs().max() > 0 and torch.allclose(new, old, rtol=1e-7, atol=1e-9 * old.abs().max())


def test_the_rate_schedule_gives_each_step_its_rate_and_its_gradient():
    """With a schedule the inner loop takes step k at rate k (the last for the steps beyond), and the
    query loss's gradient by each step's log rate matches central differences."""
    from neuromosaic.model.maml import step_rate
    assert step_rate([1.0, 2.0], 0) == 1.0 and step_rate([1.0, 2.0], 5) == 2.0 and step_rate(3.0, 4) == 3.0
    net, _ = _tiny()
    g = torch.Generator().manual_seed(5)
    hs = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    hq = (torch.rand(8, 6, 5, generator=g) < 0.4).double()
    ys, yq = torch.tensor([0, 1, 2, 0, 1, 2]), torch.tensor([2, 1, 0, 0, 1, 2])
    cfg = MAMLConfig(inner_steps=3, rate_schedule=True)
    w0 = torch.zeros(3, 5, dtype=torch.float64)
    # step by step at the scheduled rates equals the loop
    rates = torch.tensor([5000.0, 9000.0, 2000.0], dtype=torch.float64)
    w = w0
    for k in range(3):
        w = adapt_readout(net, w, hs, ys, MAMLConfig(inner_steps=1), float(rates[k]))
    assert torch.allclose(adapt_readout(net, w0, hs, ys, cfg, rates), w)

    def outer(log_lr):
        w = adapt_readout(net, w0, hs, ys, cfg, log_lr.exp())
        return torch.nn.functional.cross_entropy(net.readout(hq, w), yq)

    log_lr = rates.log().requires_grad_(True)
    (analytic,) = torch.autograd.grad(outer(log_lr), log_lr)
    assert (analytic.abs() > 1e-5).all()
    for k in range(3):
        e = torch.zeros(3, dtype=torch.float64)
        e[k] = 1e-5
        numeric = (outer(log_lr.detach() + e) - outer(log_lr.detach() - e)) / 2e-5
        assert abs(float(numeric - analytic[k])) < 1e-6 + 1e-4 * abs(float(numeric))


def test_a_schedule_needs_a_learned_rate():
    with pytest.raises(ConfigError, match="rate_schedule=True needs a learned inner rate"):
        MAMLConfig(rate_schedule=True, learn_inner_lr=False)
    p = init_params(FloatSRNN(SRNNConfig.make(channels=2, neurons=4, outputs=2)),
                    cfg=MAMLConfig(inner_steps=4, rate_schedule=True, inner_lr=1000.0))
    assert p.log_inner_lr.shape == (4,) and p.inner_lr_values(MAMLConfig()) == pytest.approx([1000.0] * 4)
