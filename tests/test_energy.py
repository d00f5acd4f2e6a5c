"""The memory-organisation energy model: its figures, its counts against the accesses, the CLI."""

import json
import math

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.energy import (
    HOROWITZ_SRAM,
    PAPER,
    EnergyModel,
    layer_energy,
    layer_structure,
    paper_comparison,
    parse_layer,
)
from neuromosaic.model.synapse import LABELS, PhysicalMemory, make_memory

from neuromosaic.cli import main


def test_sram_model_reproduces_its_source_figures():
    model = EnergyModel()
    for bits, pj in HOROWITZ_SRAM:
        got = model.access_pj(PhysicalMemory("m", bits // 64, 64))
        assert abs(got / pj - 1) < 0.05, (bits, got, pj)
    assert model.add_pj(8) == pytest.approx(0.03) and model.mult_pj(8, 8) == pytest.approx(0.2)
    assert model.mult_pj(32, 32) == pytest.approx(3.2)            # Horowitz: 3.1 pJ


def test_energy_is_counts_times_access_energy_plus_datapath():
    """fc:4x3, Crossbar, all synapses: worked by hand."""
    model = EnergyModel()
    r = layer_energy("fc:4x3", "dense", 1.0, 8, model=model)
    read = (model.sram_fixed_pj + model.sram_sqrt_pj * math.sqrt(12 * 8)) * 8
    acc = 0.03 * 16 / 8
    assert r["passes"]["forward"]["energy_pj"] == pytest.approx(12 * read + 12 * acc)
    assert r["passes"]["backward"]["energy_pj"] == pytest.approx(12 * read + 12 * (acc + 0.2))
    assert r["passes"]["update"]["energy_pj"] == pytest.approx(12 * read + 12 * (0.2 + acc) + 12 * 0.03)
    double = layer_energy("fc:4x3", "dense", 1.0, 8, model=EnergyModel(write_factor=2.0))
    assert double["passes"]["update"]["energy_pj"] == pytest.approx(r["passes"]["update"]["energy_pj"] + 12 * read)


@pytest.mark.parametrize("layer, organisation", [("fc:20x14", o) for o in ("dense", "bitmap", "csr")] +
                         [("conv:5x4x2x3k3", o) for o in LABELS])
def test_counts_are_those_of_the_accesses(layer, organisation):
    """The energy model's counts against a memory holding the same structure, stepped access by access."""
    spec = parse_layer(layer)
    mask = layer_structure(spec, 0.4, seed=3)
    values = torch.randint(1, 100, mask.shape, generator=torch.Generator().manual_seed(1)) * mask
    if spec.kind == "fc":
        mem = make_memory(organisation, values, 8)
    else:
        mem = make_memory(organisation, values, 8, image=(spec.height, spec.width))
    r = layer_energy(spec, organisation, 0.4, 8, seed=3)
    assert [(m["name"], m["depth"], m["width"]) for m in r["memories"]] == \
        [(m.name, m.depth, m.width) for m in mem.memories()]
    for pre in range(mem.pre):
        mem.forward(pre)
    assert r["passes"]["forward"]["counts"] == mem.counts()
    mem.reset_counts()
    for post in range(mem.post):
        mem.transposed(post)
    assert r["passes"]["backward"]["counts"] == mem.counts()
    assert r["synapses"] == int((mem.matrix() != 0).sum())


def test_sweep_schedule_reads_as_forward_and_writes_in_place():
    r = layer_energy("fc:64x32", "csr", 0.3, 6, schedule="sweep")
    e = layer_energy("fc:64x32", "csr", 0.3, 6, schedule="event")
    assert r["passes"]["backward"]["counts"] == r["passes"]["forward"]["counts"]
    assert all(c["reads"] == 0 for c in r["passes"]["update"]["counts"].values())
    assert r["passes"]["update"]["counts"]["weights"]["writes"] == e["passes"]["update"]["counts"]["weights"]["writes"]
    assert r["energy_pj"]["backward"] < e["energy_pj"]["backward"]     # no index scans


def test_energy_follows_density_and_bits():
    forward = {d: {o: layer_energy("fc:100x50", o, d, 8)["energy_pj"]["forward"] for o in ("dense", "bitmap", "csr")}
               for d in (0.1, 0.5, 1.0)}
    assert forward[0.1]["dense"] == forward[1.0]["dense"]                        # the crossbar reads every word
    for o in ("bitmap", "csr"):
        assert forward[0.1][o] < forward[0.5][o] < forward[1.0][o]
    assert forward[1.0]["bitmap"] > forward[1.0]["dense"]                        # the bitmap on top of every weight
    assert layer_energy("fc:100x50", "csr", 0.5, 4)["energy_pj"]["forward"] < \
        layer_energy("fc:100x50", "csr", 0.5, 12)["energy_pj"]["forward"]


def test_paper_comparison_has_every_row_of_the_paper():
    rows = paper_comparison()
    assert len(rows) == sum(len(t) for t in PAPER.values())
    for r in rows:
        if r["label"] == r["base"]:
            assert r["paper_forward_ratio"] == r["event_forward_ratio"] == r["sweep_backward_ratio"] == 1.0
    conv = {r["organisation"]: r for r in rows if r["layer"].startswith("conv")}
    assert conv["func-rowcol"]["paper_backward_ratio"] == pytest.approx(0.432 / 0.745)


@pytest.mark.parametrize("call, message", [
    (lambda: parse_layer("fc:784"), "layer 'fc:784' is not understood; allowed: fc:INxOUT"),
    (lambda: parse_layer("conv:28x28x32x32k4"), "with an odd K"),
    (lambda: layer_energy("fc:10x10", "func-pure"), "cannot hold layer fc:10x10; allowed for fc layers: dense"),
    (lambda: layer_energy("fc:10x10", "csr", 0.0), "density 0.0 is not allowed; allowed: more than 0 and at most 1"),
    (lambda: layer_energy("fc:10x10", "csr", 0.5, 0), "weight bits 0 are not allowed; allowed: 1..32"),
    (lambda: layer_energy("fc:10x10", "csr", schedule="batch"), "schedule 'batch' is unknown"),
    (lambda: layer_energy("fc:10x10", "rle"), "organisation 'rle' is unknown"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ConfigError, match=message):
        call()


def test_cli_energy(tmp_path, capsys):
    assert main(["energy", "--layer", "conv:8x8x4x4k3", "--encoding", "Func-RowCol", "--density", "0.5",
                 "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["label"] == "Func-RowCol" and set(r["passes"]) == {"forward", "backward", "update"}
    assert r["passes"]["forward"]["counts"]["weights"]["reads"] == r["synapses"]
    png = tmp_path / "e.png"
    assert main(["energy", "--layer", "fc:64x16", "--encoding", "csr", "--bits", "4", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "PB-CSR (csr), density 1.0, 4-bit weights" in out and "forward" in out
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["energy", "--layer", "fc:64x16"]) == 2
    assert "energy needs --layer and --encoding" in capsys.readouterr().err
    assert main(["energy", "--layer", "fc:64", "--encoding", "csr"]) == 2
    assert "is not understood" in capsys.readouterr().err


def test_cli_energy_paper_table(capsys):
    assert main(["energy", "--paper"]) == 0
    out = capsys.readouterr().out
    assert out.count("| conv:28x28x32x32k3 |") == 5 and out.count("| fc:784x128 |") == 6
