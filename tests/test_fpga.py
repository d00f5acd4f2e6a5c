"""FPGA smoke build: the core in its board wrapper through Yosys, nextpnr and icepack."""

import pytest
from neuromosaic.fpga.board import build
from neuromosaic.model.config import LIFConfig

pytestmark = pytest.mark.fpga


def test_icebreaker_build(tmp_path):
    b = build(LIFConfig(neurons=16, inputs=32, lanes=2), "icebreaker", tmp_path)
    assert b.bitstream.exists() and b.bitstream.stat().st_size > 100_000   # UP5K image is ~104 kB
    r = b.report
    assert r["device"] == "iCE40UP5K"
    assert 100 < r["logic_cells"] < r["logic_cells_available"]
    assert r["fmax_mhz"] > r["clock_constraint_mhz"] == 12.0
    assert r["spram_blocks"] >= 1          # the weight memory lives in SPRAM
    assert (tmp_path / "icebreaker" / "lif_top.report.json").exists()
    # an interrupted build of another design leaves the finished one as it was, and nothing of its own
    out = tmp_path / "icebreaker"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    from amaranth_boards.icebreaker import ICEBreakerPlatform

    def interrupted(self, top, *, build_dir, **kw):
        import pathlib
        pathlib.Path(build_dir).mkdir(parents=True)
        (pathlib.Path(build_dir) / "lif_top.v").write_text("// half a design")
        raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as m:
        m.setattr(ICEBreakerPlatform, "build", interrupted)
        with pytest.raises(KeyboardInterrupt):
            build(LIFConfig(neurons=8, inputs=16, lanes=2), "icebreaker", tmp_path)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_core_beyond_the_block_memory_is_refused_at_once(tmp_path, capsys):
    from neuromosaic.cli import main
    assert main(["fpga", "build", "lif", "--neurons", "2048", "--inputs", "2048", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "its weights need 33,554,432 bits of memory (28.6 x all the 1,171,456 bits of the iCE40UP5K's" in err
    assert err.count("\n") == 1 and not any(tmp_path.iterdir())


def test_unknown_board_is_refused(tmp_path):
    with pytest.raises(ValueError, match="board 'nexys' is unknown; allowed: icebreaker, ulx3s-85f"):
        build(LIFConfig(), "nexys", tmp_path)


def test_board_top_builds_for_the_icebreaker(tmp_path):
    """The board's own chip (the 256-neuron SRNN learning on chip) behind its UART host link, placed and
    routed on the UP5K: bitstream, JSON and markdown report."""
    import json

    from neuromosaic.bench.fpga import CI_CHIPS
    from neuromosaic.fpga.top import board_protocol, build_board
    chip, cfg = CI_CHIPS()["icebreaker"]
    b = build_board(board_protocol("icebreaker", chip, cfg), "icebreaker", tmp_path)
    r = b.report
    assert b.bitstream.exists() and b.bitstream.stat().st_size > 100_000
    assert 1000 < r["logic_cells"] <= r["logic_cells_available"] == 5280
    assert r["spram_blocks"] == 4 and r["config"]["chip"]["core"]["neurons"] == 256
    assert r["fmax_mhz"] > r["clock_constraint_mhz"] == 12.0 and r["critical_path"]
    saved = json.loads((tmp_path / "icebreaker" / "chip.report.json").read_text())
    assert saved["identity"] == r["identity"] and saved["link"]["baud"] == 1_000_000
    md = (tmp_path / "icebreaker" / "chip.report.md").read_text()
    assert "| logic cells |" in md and "Fmax" in md and "Critical path" in md


def test_board_top_builds_for_the_ulx3s(tmp_path):
    """A multi-tile (1 x 2) Mosaic behind its host link on the ECP5-85F."""
    from neuromosaic.bench.fpga import CI_CHIPS
    from neuromosaic.fpga.top import board_protocol, build_board
    chip, cfg = CI_CHIPS()["ulx3s-85f"]
    b = build_board(board_protocol("ulx3s-85f", chip, cfg), "ulx3s-85f", tmp_path)
    r = b.report
    assert b.bitstream.exists() and r["device"] == "LFE5U-85F"
    assert 3000 < r["logic_cells"] < r["logic_cells_available"]
    assert r["config"]["kind"] == "mosaic" and r["config"]["chip"]["mesh"]["cols"] == 2
    assert r["fmax_mhz"] > r["clock_constraint_mhz"] == 25.0
    # the estimate made before synthesis, from the parts alone, is what the build then reports
    assert 0.8 <= r["estimate"]["logic_cells"] / r["logic_cells"] <= 1.2
    assert r["estimate"]["ram_blocks"] == r["ram_blocks"] and r["estimate"]["dsps"] == r["dsps"]


def test_a_chip_too_large_is_refused_before_synthesis(tmp_path, monkeypatch, capsys):
    """On a device made small (the estimate's record of the ECP5), the CI Mosaic is refused from its
    parts' estimate: one sentence with the resource, the need and what there is, exit status 2, and no
    synthesis of the board top started."""
    from neuromosaic.fpga import estimate

    from neuromosaic.cli import main
    monkeypatch.setitem(estimate.FAMILIES["ecp5"], "available",
                        {**estimate.FAMILIES["ecp5"]["available"], "logic_cells": 1000})
    argv = ["fpga", "build", "chip", "--board", "ulx3s-85f", "--grid", "1x2", "--set", "channels=8",
            "--neurons", "4", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neuromosaic: error: the ulx3s-85f build is refused: the chip needs about ")
    assert "logic cells" in err and "LFE5U-85F's 1,000" in err and "Traceback" not in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "ulx3s-85f").exists()


def test_a_design_that_does_not_fit_says_by_how_much(tmp_path):
    from neuromosaic.fpga.board import BuildError
    log = tmp_path / "chip.tim"
    log.write_text("Info: Device utilisation:\nInfo: \t         ICESTORM_LC:    6326/   5280   119%\n"
                   "Info: \t        ICESTORM_RAM:      29/     30    96%\nERROR: Failed to expand region\n")
    e = BuildError.from_log("icebreaker", log)
    assert str(e) == "the icebreaker build failed: the design does not fit: ICESTORM_LC 6,326 of 5,280 (120 %)."
    assert e.utilisation["ICESTORM_RAM"] == (29, 30)
