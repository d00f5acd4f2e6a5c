"""Meta-training end to end on the built-in data, the CLI, and evaluation of the integer network."""

import json

import pytest
from neuromosaic.model.checkpoint import load_checkpoint
from neuromosaic.model.config import ConfigError
from neuromosaic.model.train import TrainConfig

from neuromosaic.cli import main


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
    exported = json.loads((out / "connectivity.json").read_text())
    assert exported["grid"] == [4, 4] and exported["stats"]["nonzero"] == summary["connectivity"]["nonzero"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(out), "--tasks", "4", "--devices", "2", "--inner-steps", "3"]) == 0
    text = capsys.readouterr().out
    assert "2 sampled devices" in text and "unseen" in text
    assert main(["eval", "--checkpoint", str(out), "--tasks", "3", "--rule", "integer"]) == 0
    assert "the integer learning rule" in capsys.readouterr().out


def test_a_run_replaces_the_previous_one_only_when_it_completes(tmp_path, monkeypatch, capsys):
    from neuromosaic.model import train as training
    out = tmp_path / "run"
    assert main(["train", "--iterations", "2", "--layout", "2x2", "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert {"network.json", "metrics.jsonl", "connectivity.json", "summary.json"} <= set(before)
    calls = []

    def interrupted_after_one(*args, **kw):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return real(*args, **kw)
    real = training.meta_loss
    monkeypatch.setattr(training, "meta_loss", interrupted_after_one)
    assert main(["train", "--iterations", "3", "--out", str(out)]) == 130        # Ctrl-C in the second iteration
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before            # nothing of the old run lost
    monkeypatch.setattr(training, "meta_loss", real)
    assert main(["train", "--data", f"events:{tmp_path / 'none.npz'}", "--out", str(out)]) == 2   # refused
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    capsys.readouterr()
    # a completed run without a layout replaces every file and leaves no stale connectivity.json
    assert main(["train", "--iterations", "1", "--out", str(out)]) == 0
    assert not (out / "connectivity.json").exists() and load_checkpoint(out).metadata["iteration"] == 1
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == []


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
    seed = r["seed000"]
    assert all(seed[m]["s_per_meta_step"] > 0 for m in ("previous", "new", "previous_with_allocator"))
    assert seed["speedup"] == round(seed["previous"]["s_per_meta_step"] / seed["new"]["s_per_meta_step"], 2)


def test_experiment_cli_writes_the_table(tmp_path, capsys):
    out, doc = tmp_path / "exp", tmp_path / "docs" / "table.md"
    rc = main(["experiment", "--iterations", "4", "--tasks", "3", "--devices", "2", "--variants", "abd",
               "--out", str(out), "--docs", str(doc)])
    result = json.loads((out / "results.json").read_text())
    assert [r["variant"] for r in result["variants"]] == ["a", "b", "d"]
    assert result["acceptance"] is not None
    a = result["acceptance"]
    assert rc == (0 if a["at_least_60_percent"] and a["within_5_points"] and a["ten_steps_beat_one"] else 1)
    d = result["variants"][-1]
    assert d["devices"] == 2 and d["layout"] == "4x4" and d["connectivity"]["density"] < 1
    assert result["variants"][1]["devices"] == 0              # (b) has ideal devices: no draws
    for r in result["variants"]:
        for k in ("1", "10"):
            assert 0 <= r["accuracy"][k]["unseen_mean"] <= 1 and r["accuracy"][k]["unseen_std"] >= 0
    text = doc.read_text()
    assert "(a) float ideal MAML" in text and "(d) + Mosaic layout" in text
    assert "neuromosaic experiment --iterations 4" in text          # the command that regenerates it
    assert (out / "a" / "network.json").exists() and (out / "d" / "curves.png").exists()


def test_experiment_refuses_unknown_variants(tmp_path, capsys):
    assert main(["experiment", "--variants", "ax", "--out", str(tmp_path)]) == 2
    assert "--variants 'ax' is not allowed; use one or more of a, b, c, d" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "experiment"])
@pytest.mark.parametrize("flag, value, allowed", [
    ("--channels", "0", "1 to 4,096"), ("--neurons", "0", "1 to 65,536"), ("--steps", "0", "1 to 100,000"),
    ("--ways", "1", "2 to 1,000"), ("--shots", "0", "1 to 10,000"), ("--queries", "0", "1 to 10,000"),
    ("--meta-batch", "0", "1 to 10,000")])
def test_a_shape_flag_out_of_range_is_refused(command, flag, value, allowed, tmp_path, capsys):
    assert main([command, flag, value, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert f"{flag} {value} is not allowed; allowed: {allowed}." in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()                # refused before any work


def test_train_takes_the_network_and_task_shape(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--channels", "12", "--neurons", "16", "--steps", "20", "--ways", "3", "--shots", "2",
                 "--queries", "3", "--meta-batch", "2", "--iterations", "1", "--out", str(out)]) == 0
    ck = load_checkpoint(out)
    assert (ck.config.channels, ck.config.neurons, ck.config.outputs) == (12, 16, 3)
    cfg = json.loads((out / "summary.json").read_text())["config"]
    assert (cfg["steps"], cfg["n_way"], cfg["k_shot"], cfg["k_query"], cfg["meta_batch"]) == (20, 3, 2, 3, 2)
    # more ways than the protocol's seen classes: one sentence, and the folder as it was
    assert main(["train", "--ways", "30", "--iterations", "1", "--out", str(out)]) == 2
    assert "n_way=30 is larger than the 15 classes available" in capsys.readouterr().err
    assert load_checkpoint(out).config.neurons == 16


def test_train_config_refuses_an_impossible_shape():
    with pytest.raises(ConfigError, match="n_way=1 is out of range; allowed: 2..1048576"):
        TrainConfig(n_way=1)
    with pytest.raises(ConfigError, match="meta_batch=0 is out of range"):
        TrainConfig(meta_batch=0)


def test_the_rate_schedule_is_in_the_checkpoint_and_the_evaluation(tmp_path, capsys):
    import torch
    from neuromosaic.model.data import load_source
    from neuromosaic.model.learning import LFSR, LearningConfig, adapt_readout_integer
    from neuromosaic.model.train import evaluate_steps, inner_rates
    out = tmp_path / "run"
    assert main(["train", "--rate-schedule", "--inner-steps", "2", "--iterations", "2", "--channels", "12",
                 "--neurons", "16", "--steps", "20", "--meta-batch", "2", "--out", str(out)]) == 0
    ck = load_checkpoint(out)
    schedule = ck.metadata["inner_lr_schedule"]
    assert len(schedule) == 2 and schedule[0] != schedule[1] and ck.metadata["inner_lr"] == schedule[0]
    cfg = TrainConfig(**{k: v for k, v in ck.metadata["train"].items() if k != "maml"})
    assert inner_rates(ck, cfg) == schedule
    ds = load_source("synthetic", channels=12, steps=20)
    r = evaluate_steps(ck, ds, cfg, tasks=2, steps=(1, 3), rule="integer")
    assert r[3]["inner_lr_schedule"] == [round(v, 1) for v in schedule]
    # the integer rule takes step k at the schedule's rate k (the last beyond it)
    g = torch.Generator().manual_seed(0)
    hidden = (torch.rand(20, 4, 16, generator=g) < 0.2).long()
    labels = torch.tensor([0, 1, 2, 0])
    whole = adapt_readout_integer(ck.config, ck.w_out, hidden, labels, schedule, steps=3, lfsr=LFSR(LearningConfig()))
    lfsr, w = LFSR(LearningConfig()), ck.w_out
    for rate in (schedule[0], schedule[1], schedule[1]):
        w = adapt_readout_integer(ck.config, w, hidden, labels, rate, steps=1, lfsr=lfsr)
    assert torch.equal(whole, w)
    assert main(["train", "--rate-schedule", "--fixed-inner-lr", "--out", str(tmp_path / "x")]) == 2
    assert "--rate-schedule meta-learns one rate per step; it cannot be combined with --fixed-inner-lr" \
        in capsys.readouterr().err
