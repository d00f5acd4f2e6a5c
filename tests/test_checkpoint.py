"""Checkpoint round trip, atomic replacement, and every kind of corruption as one clear error."""

import json

import pytest
import torch
from neuromosaic.model.checkpoint import (
    Checkpoint,
    CheckpointError,
    deployable_weights,
    load_checkpoint,
    save_checkpoint,
)
from neuromosaic.model.snn import IntegerSRNN, SRNNConfig


def _ck(seed=0):
    c = SRNNConfig.make(channels=6, neurons=4, outputs=3)
    g = torch.Generator().manual_seed(seed)
    w = deployable_weights(c, torch.randn(4, 6, generator=g) * 90, torch.randn(4, 4, generator=g) * 300,
                           torch.randn(3, 4, generator=g) * 50)
    return Checkpoint(c, w["w_in"], w["w_rec"], w["w_out"], {"epoch": 3, "note": "test"})


def test_round_trip_runs_the_same_network(tmp_path):
    ck = _ck()
    assert (int(ck.w_rec.min()), int(ck.w_rec.max())) == (-128, 127)   # clamped into the 8-bit range
    save_checkpoint(tmp_path, ck)
    back = load_checkpoint(tmp_path)
    assert back.config == ck.config and back.metadata == ck.metadata
    x = (torch.rand(20, 2, 6) < 0.3).long()
    a = IntegerSRNN(ck.config, ck.w_in, ck.w_rec, ck.w_out).run(x)
    b = IntegerSRNN(back.config, back.w_in, back.w_rec, back.w_out).run(x)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_overwrite_is_atomic_and_cleans_up(tmp_path):
    save_checkpoint(tmp_path, _ck(0))
    save_checkpoint(tmp_path, _ck(1))
    assert len(list(tmp_path.glob("weights-*.npz"))) == 1
    assert not list(tmp_path.glob(".*"))            # no temporary files left behind
    assert torch.equal(load_checkpoint(tmp_path).w_in, _ck(1).w_in)


def test_corruptions_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="is not a checkpoint: network.json is missing"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path, _ck())
    manifest = tmp_path / "network.json"
    good = manifest.read_text()
    weights = next(tmp_path.glob("weights-*.npz"))
    data = weights.read_bytes()

    weights.write_bytes(data[:-10] + b"0123456789")
    with pytest.raises(CheckpointError, match="does not match the checksum .* the weights are corrupt"):
        load_checkpoint(tmp_path)
    weights.write_bytes(data)

    manifest.write_text(good[: len(good) // 2])
    with pytest.raises(CheckpointError, match="is not valid JSON"):
        load_checkpoint(tmp_path)

    m = json.loads(good)
    for change, message in ((dict(version=99), "is version 99; this neuromosaic reads version 1"),
                            (dict(format="other"), "has format 'other'; allowed: 'neuromosaic-srnn'"),
                            (dict(config={**m["config"], "channels": 7}), "holds an impossible config")):
        manifest.write_text(json.dumps({**m, **change}))
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path)

    ck = _ck()
    ck.w_out = ck.w_out[:2]
    with pytest.raises(CheckpointError, match=r"w_out has shape \(2, 4\); the config needs \(3, 4\)"):
        save_checkpoint(tmp_path / "bad", ck)
