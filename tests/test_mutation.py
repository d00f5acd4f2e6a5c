"""Mutation testing: mutants of a design's netlist, selected by one control input, run against its
regression in one simulation; survivors checked for equivalence; the report counts what the checks
kill."""

import json

import pytest
from neuromosaic.cosim.learning import LEARNING_COVERAGE, MUTATION_RULE, learning_mutation_target
from neuromosaic.cosim.lif import lif_mutation_target, run_lif_cosim
from neuromosaic.cosim.mutation import equivalence, mutant_netlist, mutant_run
from neuromosaic.cosim.router import MUTATION_PATTERNS, router_mutation_target
from neuromosaic.cosim.runner import CosimError
from neuromosaic.cosim.synapse import MUTATION_IDLE, synapse_mutation_target
from neuromosaic.model.config import LIFConfig

from neuromosaic.cli import main

SMALL = ["--neurons", "8", "--inputs", "12", "--lanes", "2"]


def _killed_and_survived(report: dict) -> list[int]:
    """The first mutant the report's sweep killed, and the first that survived (if one did)."""
    return [int(min(report["kills"], key=int))] + [s["mutant"] for s in report["survivors"][:1]]


def test_mutants_of_the_lif_core_are_run_against_its_regression(tmp_path, capsys):
    out = tmp_path / "mutate"
    assert main(["mutate", "lif", "--mutants", "4", "--seed", "1", *SMALL, "--seeds", "1", "--steps", "20",
                 "--depth", "4", "--out", str(out)]) == 0
    report = json.loads((out / "lif.json").read_text())
    assert json.loads(capsys.readouterr().out)["mutants"] == report["mutants"] == 4
    assert report["killed"] + report["survived"] == 4
    assert report["equivalent"] == sum(s["equivalence"] in ("equivalent", "bounded") for s in report["survivors"])
    assert report["score"] == round(report["killed"] / (4 - report["equivalent"]), 4)
    # the checks catch a mutant, and each survivor says where it is and what the equivalence check found
    assert report["killed"] >= 1 and all(why for why in report["kills"].values())
    assert all(s["source"] and s["mode"] in ("const0", "const1", "inv", "cnot0", "cnot1")
               and s["equivalence"] in ("equivalent", "bounded", "differs", "unknown") for s in report["survivors"])
    # one netlist holds them all, behind the control input
    netlist = (out / "lif-netlist" / "mutants.v").read_text()
    assert "input [2:0] mutsel;" in netlist

    # The sweep (every mutant in one simulation, from reset after the one before) gives a mutant it
    # killed and one that survived the verdict a simulation of it alone gives.
    config = LIFConfig(neurons=8, inputs=12, lanes=2)
    target = lif_mutation_target(config, seeds=1, steps=20)
    build = (mutant_run("verilator", target.harness, netlist), target.harness["layout"])
    for mutant in _killed_and_survived(report):
        try:
            run_lif_cosim("verilator", config, seeds=1, steps=20, build=build, mutant=mutant, name=f"solo-{mutant}")
            alone = False
        except CosimError:
            alone = True
        assert alone == (str(mutant) in report["kills"]), mutant


def test_mutants_of_the_router_each_start_from_a_fresh_table_load(tmp_path, capsys):
    out = tmp_path / "mutate"
    assert main(["mutate", "router", "--mutants", "3", "--seeds", "1", "--depth", "4", "--out", str(out)]) == 0
    report = json.loads((out / "router.json").read_text())
    assert report["design"] == "router" and report["mutants"] == 3 and report["killed"] >= 1
    assert report["regression"] == {"tables": 1, "patterns": len(MUTATION_PATTERNS)}
    # Each mutant's verdict is the one a simulation of it alone (after the unmutated design) gives:
    # the tables a mutant wrote wrong, the FIFOs it left full, the stall counts do not carry over.
    target = router_mutation_target(seeds=1)
    run = mutant_run("verilator", target.harness, (out / "router-netlist" / "mutants.v").read_text())
    for mutant in _killed_and_survived(report):
        with run.folder(f"solo-{mutant}") as folder:
            try:
                run.test(target.test_module, target.testcase, {**target.job, "mutants": [0, mutant]}, folder)
            except CosimError:
                pass
            outcome = json.loads((folder / "result.json").read_text())["outcomes"][str(mutant)]
        assert (not outcome["passed"]) == (str(mutant) in report["kills"]), mutant


def _solo_verdicts_agree(target, report: dict, netlist: str) -> None:
    """A mutant the sweep killed and one that survived get the same verdict from a simulation of each
    alone (after the unmutated design): what a mutant leaves in the design's memories does not carry
    over into the next one's run."""
    run = mutant_run("verilator", target.harness, netlist)
    for mutant in _killed_and_survived(report):
        with run.folder(f"solo-{mutant}") as folder:
            try:
                run.test(target.test_module, target.testcase, {**target.job, "mutants": [0, mutant]}, folder)
            except CosimError:
                pass
            outcome = json.loads((folder / "result.json").read_text())["outcomes"][str(mutant)]
        passed = outcome["passed"] and (target.check(outcome) or True)
        assert (not passed) == (str(mutant) in report["kills"]), mutant


def test_mutants_of_a_synapse_memory_each_start_from_its_built_weights(tmp_path, capsys):
    out = tmp_path / "mutate"
    assert main(["mutate", "synapse", "--organisation", "csr", "--mutants", "4", "--seeds", "1", "--depth", "4",
                 "--out", str(out)]) == 0
    report = json.loads((out / "synapse-csr.json").read_text())
    assert report["organisation"] == "csr" and report["mutants"] == 4 and report["killed"] >= 1
    assert report["regression"] == {"command_sequences": 1, "idle_rates": list(MUTATION_IDLE)}
    # every run begins by writing back the weights the memory was built with
    target = synapse_mutation_target("csr", seeds=1)
    assert target.job["scenario"]["restore"] and len(target.job["variants"]) == len(MUTATION_IDLE)
    _solo_verdicts_agree(target, report, (out / "synapse-csr-netlist" / "mutants.v").read_text())


def test_mutants_of_the_learning_engine_against_saturating_episodes(tmp_path):
    out = tmp_path / "mutate"
    assert main(["mutate", "learning", "--mutants", "3", "--depth", "4", "--out", str(out)]) == 0
    report = json.loads((out / "learning.json").read_text())
    assert report["mutants"] == 3 and report["killed"] >= 1
    assert report["learning"]["elig_bits"] == MUTATION_RULE.elig_bits
    target = learning_mutation_target(seeds=4)
    _solo_verdicts_agree(target, report, (out / "learning-netlist" / "mutants.v").read_text())
    # a regression whose episodes never saturate a corner is refused, naming the corner
    quiet = {"passed": True, "variants": [{"coverage": {k: 1 for k in LEARNING_COVERAGE if k != "logits_saturated"}}]}
    with pytest.raises(CosimError, match="logits_saturated never happened"):
        target.check(quiet)


def test_mutate_organisation_belongs_to_the_synapse_memory(capsys):
    assert main(["mutate", "router", "--organisation", "csr"]) == 2
    assert "--organisation names the memory of mutate synapse" in capsys.readouterr().err


def test_mutants_of_the_board_top_are_of_its_host_link_alone(tmp_path):
    """The link's target mutates the cells of the board top's host link, not the chip behind it nor
    the line's test equipment."""
    from neuromosaic.cosim.board import link_mutation_target
    target = link_mutation_target(seeds=1)
    _, mutations = mutant_netlist(target.harness, 40, 1, tmp_path, target.cells)
    assert len(mutations) == 40
    assert all(" -cell $flatten\\top.\\link." in f" {m.command}" for m in mutations), \
        [m.command for m in mutations if "\\link." not in m.command]
    assert target.job["variants"] == [{"malformed": True}, {"noise": {"ber": 3e-4, "seed": 1}}]


def test_mutate_refuses_the_core_flags_for_another_design(capsys):
    assert main(["mutate", "mesh", "--neurons", "8", "--steps", "10"]) == 2
    assert "--neurons, --steps set the LIF core's regression" in capsys.readouterr().err


# A registered 4-bit sum whose carry is never used, and a flag raised 12 cycles after reset (the count's
# increment is 5 bits wide, its carry dropped, on a wire named as Amaranth's Verilog names its own).
TINY = r"""
module \t.dut (clk, rst, a, b, o, late);
  input clk; input rst; input [3:0] a; input [3:0] b; output [3:0] o; output late;
  reg [3:0] r = 4'h0;
  reg [3:0] n = 4'h0;
  wire [4:0] sum;
  assign sum = a + b;
  always @(posedge clk) r <= rst ? 4'h0 : sum[3:0];
  wire [4:0] \$7 ;
  assign \$7 = n + 5'h1;
  always @(posedge clk) n <= rst ? 4'h0 : n == 4'hc ? n : \$7 [3:0];
  assign o = r;
  assign late = n == 4'hc;
endmodule
module t (clk, rst, a, b, o, late);
  input clk; input rst; input [3:0] a; input [3:0] b; output [3:0] o; output late;
  \t.dut dut (.clk(clk), .rst(rst), .a(a), .b(b), .o(o), .late(late));
endmodule
"""


@pytest.fixture(scope="module")
def tiny_mutants(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    harness = {"top": "t", "verilog": TINY}
    _, mutations = mutant_netlist(harness, 1000, 1, folder)
    return harness, mutations, folder


def _pick(mutations, *parts):
    return next(m for m in mutations if all(p in m.command for p in parts))


def test_a_mutant_no_input_can_expose_is_proved_equivalent(tiny_mutants):
    harness, mutations, folder = tiny_mutants
    carry = _pick(mutations, "$add", "-wire sum -wirebit 4 ", "-mode inv")
    assert equivalence(harness, carry, folder, depth=4) == "equivalent"


def test_a_mutant_of_a_generated_wire_no_input_can_expose_is_proved_equivalent(tiny_mutants):
    harness, mutations, folder = tiny_mutants
    increment_carry = _pick(mutations, "$add", "-wire \\$7 -wirebit 4 ", "-mode inv")
    assert equivalence(harness, increment_carry, folder, depth=4) == "equivalent"


def test_a_mutant_that_changes_an_output_is_told_apart(tiny_mutants):
    harness, mutations, folder = tiny_mutants
    low_bit = _pick(mutations, "$add", "-wire sum -wirebit 0 ", "-mode inv")
    assert equivalence(harness, low_bit, folder, depth=4) == "differs"


def test_a_difference_beyond_the_bound_is_reported_bounded_not_equivalent(tiny_mutants):
    harness, mutations, folder = tiny_mutants
    # the flag's compare with bit 3 of the count stuck at 0: it never rises, 13 cycles after reset
    line = TINY.splitlines().index("  assign late = n == 4'hc;") + 1
    never_late = _pick(mutations, "-cell $eq$", "-port A -portbit 3 ", "-mode const0", f"-src harness.v:{line}.")
    assert equivalence(harness, never_late, folder, depth=6) == "bounded"
    assert equivalence(harness, never_late, folder, depth=16) == "differs"
