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


def test_unknown_board_is_refused(tmp_path):
    with pytest.raises(ValueError, match="board 'nexys' is unknown; allowed: icebreaker, ulx3s-85f"):
        build(LIFConfig(), "nexys", tmp_path)
