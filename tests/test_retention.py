"""Seed 001's retention experiment: the distance, the integer training, the energy bookkeeping."""

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.energy import Layer, layer_energy
from neuromosaic.model.retention import RetentionConfig, retention_experiment, train_retention, van_rossum

from neuromosaic.cli import main

SMALL = RetentionConfig(inputs=30, hidden=30, outputs=6, steps=40, target_spikes=3, iterations=60)


def test_van_rossum_distance():
    a = torch.zeros(10, 1, dtype=torch.float64)
    b = a.clone()
    b[3, 0] = 1
    assert float(van_rossum(a, a)) == 0.0
    decay = torch.exp(torch.tensor(-1 / 5.0, dtype=torch.float64))
    want = sum(float(decay) ** (2 * k) for k in range(7)) / 5.0        # one spike's trace, squared, summed
    assert float(van_rossum(a, b)) == pytest.approx(want)
    c = a.clone()
    c[4, 0] = 1                                                            # one step late: closer than missing
    assert 0 < float(van_rossum(b, c)) < float(van_rossum(a, b))


def test_integer_training_retains_the_pattern():
    r = train_retention(SMALL, 1.0)
    assert r["retention_error"] < 0.6 * r["history"][0]
    assert r["retention_error"] < 1.0


def test_weights_stay_integers_of_their_width_and_sparse():
    import neuromosaic.model.retention as ret
    seen = []
    original = ret._run

    def spy(x, weights, scale, alpha):
        seen.append([w.detach().clone() for w in weights])
        return original(x, weights, scale, alpha)

    ret._run = spy
    try:
        cfg = RetentionConfig(inputs=20, hidden=20, outputs=4, steps=20, target_spikes=2, iterations=10,
                              weight_bits=4)
        r = train_retention(cfg, 0.3)
    finally:
        ret._run = original
    for ws in seen:
        for w, m in zip(ws, r["masks"]):
            assert torch.equal(w, w.round()) and w.min() >= -8 and w.max() <= 7
            assert not ((w != 0) & ~m).any()                              # no synapse created
    assert r["synapses"] == [round(0.3 * 400), round(0.3 * 80)]


def test_training_energy_is_composed_of_the_passes():
    from neuromosaic.model.retention import training_energy
    cfg = SMALL
    spikes = {"input": 90, "hidden": 45, "output": 10}
    e1 = layer_energy(Layer("fc", inputs=30, outputs=30), "bitmap", 0.5, 8, seed=0)["energy_pj"]
    e2 = layer_energy(Layer("fc", inputs=30, outputs=6), "bitmap", 0.5, 8, seed=1)["energy_pj"]
    want = 3 * e1["forward"] + 1.5 * e2["forward"] + 40 * e2["backward"] + e1["update"] + e2["update"]
    assert training_energy(cfg, 0.5, "bitmap", spikes) == pytest.approx(want)


def test_experiment_rows_and_sparse_efficiency():
    result = retention_experiment(SMALL, (0.2,))                        # the full-density crossbar is added
    rows = {(r["density"], r["organisation"]): r for r in result["rows"]}
    assert len(rows) == 6
    assert rows[(1.0, "dense")]["efficiency"] == 1.0 and rows[(1.0, "dense")]["retention_loss"] == 0.0
    assert rows[(0.2, "bitmap")]["efficiency"] > 1.0 and rows[(0.2, "csr")]["efficiency"] > 1.0


def test_bad_input():
    with pytest.raises(ConfigError, match="density 0 is not allowed"):
        train_retention(SMALL, 0)
    with pytest.raises(ConfigError, match="weight_bits=1 is not allowed; allowed: 2..16"):
        RetentionConfig(weight_bits=1)
    assert main(["retention", "--densities", "0.5,x"]) == 2


def test_cli_retention(tmp_path, capsys):
    png = tmp_path / "r.png"
    assert main(["retention", "--densities", "0.5,1", "--iterations", "5", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "PB-BMP" in out and out.count("\n") == 7
    assert png.read_bytes()[:4] == b"\x89PNG"
