"""Mutation testing: mutants of the LIF core's netlist, selected by one control input, against its
regression; the report counts what the checks kill."""

import json

from neuromosaic.cli import main


def test_mutants_of_the_lif_core_are_run_against_its_regression(tmp_path, capsys):
    out = tmp_path / "mutate"
    assert main(["mutate", "lif", "--mutants", "3", "--seed", "1", "--neurons", "8", "--inputs", "12", "--lanes", "2",
                 "--seeds", "1", "--steps", "20", "--sim", "icarus", "--out", str(out)]) == 0
    report = json.loads((out / "lif.json").read_text())
    assert json.loads(capsys.readouterr().out)["mutants"] == report["mutants"] == 3
    assert report["killed"] + report["survived"] == 3 and report["score"] == round(report["killed"] / 3, 4)
    # the checks catch a mutant (a state write off the golden model), and each survivor says where it is
    assert report["killed"] >= 1 and all(why.startswith("icarus:") for why in report["kills"].values())
    assert all(s["source"] and s["mode"] in ("const0", "const1", "inv", "cnot0", "cnot1")
               for s in report["survivors"])
    # one netlist holds them all, behind the control input
    netlist = (out / "lif-netlist" / "mutants.v").read_text()
    assert "input [1:0] mutsel;" in netlist
