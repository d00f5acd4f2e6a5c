"""Soak: rounds of a design's cosimulation from successive seeds until the cycles asked for are
checked; a failing round ends it and is named by its seed."""

import json

import pytest
from neuromosaic.cosim import soak as soak_module
from neuromosaic.cosim.options import CosimResult
from neuromosaic.cosim.runner import CosimError

from neuromosaic.cli import main


def test_a_soak_round_of_the_router_is_a_checked_cosimulation(tmp_path, capsys):
    out = tmp_path / "soak"
    assert main(["soak", "router", "--cycles", "1", "--seeds", "1", "--first-seed", "3", "--out", str(out)]) == 0
    report = json.loads((out / "router.json").read_text())
    assert report["failure"] is None and report["seeds"] == 1 and report["rounds"][0]["seed"] == 3
    assert report["cycles"] == report["rounds"][0]["cycles"] > 10_000
    assert json.loads(capsys.readouterr().out)["cycles"] == report["cycles"]


def test_soak_runs_until_the_cycles_and_the_seeds_are_reached_and_stops_at_a_failure(monkeypatch):
    ran = []

    def round_(design, sim, seed):
        ran.append(seed)
        if seed == 12:
            raise CosimError("router: transfer mismatch in cycle 7\nmore")
        return CosimResult(sim, 100, 1.0, 100.0)
    monkeypatch.setattr(soak_module, "soak_round", round_)
    report = soak_module.soak("router", cycles=250, seeds=2, first_seed=5)
    assert ran == [5, 6, 7] and report["cycles"] == 300 and report["failure"] is None
    report = soak_module.soak("router", cycles=10_000, seeds=1, first_seed=10)
    assert report["seeds"] == 2 and report["failure"] == {"seed": 12, "error": "router: transfer mismatch in cycle 7"}


@pytest.mark.parametrize("argv, message", [
    (["soak", "router", "--cycles", "0"], "--cycles 0 is not allowed; allowed: 1 to 1,000,000,000,000."),
    (["soak", "mesh", "--cycles", "10", "--seeds", "0"], "--seeds 0 is not allowed"),
    (["soak", "lif", "--cycles", "10", "--first-seed", "-1"], "--first-seed -1 is not allowed"),
])
def test_soak_refuses_bad_counts(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
