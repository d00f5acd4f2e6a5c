"""Meta-training end to end on the built-in data, the CLI, and evaluation of the integer network."""

import json

import pytest

from neuromosaic.cli import main
from neuromosaic.model.checkpoint import load_checkpoint
from neuromosaic.model.config import ConfigError
from neuromosaic.model.train import TrainConfig


def test_train_and_eval_cli(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--iterations", "12", "--layout", "4x4", "--rram", "mosaic", "--out", str(out)]) == 0
    ck = load_checkpoint(out)
    assert ck.metadata["iteration"] == 12 and ck.config.neurons == 64
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 12 and "eval_unseen_mean" in rows[-1]
    assert (out / "curves.png").stat().st_size > 5000
    summary = json.loads((out / "summary.json").read_text())
    # the layout keeps connections short: most non-zero recurrent weights within one hop
    share = summary["connectivity"]["share_per_hop"]
    assert share.get("0", 0) + share.get("1", 0) > 0.8
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--tasks", "4", "--devices", "2", "--inner-steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "2 sampled devices" in text and "unseen" in text


def test_bad_training_options():
    with pytest.raises(ConfigError, match="--rram 'memristor' is unknown; allowed: ideal, mosaic"):
        TrainConfig(rram="memristor")
    with pytest.raises(ConfigError, match="--layout 3x3: 9 tiles must divide the 64 neurons"):
        TrainConfig(layout="3x3")
    with pytest.raises(ConfigError, match="--layout 'four' is not RxC"):
        TrainConfig(layout="four")


def test_eval_of_a_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path)]) == 2
    assert "is not a checkpoint: network.json is missing" in capsys.readouterr().err


def test_bench_train_quick(tmp_path):
    from neuromosaic.bench.train import bench_train
    r = bench_train(quick=True, out=tmp_path)
    assert r["ours"]["tasks_per_s"] > 0 and r["reference_loop"]["tasks_per_s"] > 0
    assert json.loads((tmp_path / "train.json").read_text())["speedup"] == r["speedup"]
