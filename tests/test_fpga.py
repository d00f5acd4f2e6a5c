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


def test_learning_core_builds_for_the_up5k(tmp_path):
    """LIF core + recurrence + learning engine (small network, one lane) placed and routed on the UP5K."""
    import dataclasses

    from neuromosaic.fpga.learning import build_learning
    from neuromosaic.model.snn import NETWORKS
    small = NETWORKS["small"]
    b = build_learning(dataclasses.replace(small, core=small.core.replace(lanes=1)), out_dir=tmp_path)
    assert b.bitstream.exists() and b.bitstream.stat().st_size > 100_000
    r = b.report
    assert 2000 < r["logic_cells"] <= r["logic_cells_available"]
    assert r["dsps"] >= 2 and r["ram_blocks"] >= 2          # multipliers in DSPs, memories in block RAM
    assert r["fmax_mhz"] > r["clock_constraint_mhz"]
    assert r["config"]["network"]["outputs"] == 5
