"""``neuromosaic``: one command line for the model, the RTL, the cosimulation and the FPGA flow.

The parser is built lazily: every verb and design is listed with its help line, but only the verb
(and design) on the command line get their flags, so that ``--help`` answers at once and each design
offers exactly its own flags (``designs``). Bad flag values and files are one line on stderr and exit
status 2; Ctrl-C is one line and exit status 130.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..model.config import ConfigError
from .commands import COMMANDS
from .designs import DESIGNS, FPGA_DESIGNS
from .options import UsageError, check_run_values

__all__ = ["main", "build_parser"]

DESIGN_VERBS = {"verilog": "write the Verilog of a design", "cosim": "cosimulate a design against the golden model "
                "(cocotb on Verilator or Icarus)"}


def _add_designs(sub, verb: str, designs: dict, chosen: str | None) -> None:
    """A sub-command per design that offers ``verb``; only the ``chosen`` one gets its flags."""
    for name, design in designs.items():
        if verb in design.verbs():
            p = sub.add_parser(name, help=design.help, description=design.help)
            p.set_defaults(func=lambda args, d=design, v=verb: d.perform(v, args))
            if name == chosen:
                design.add_arguments(verb, p)


def _word(argv: list[str], i: int) -> str | None:
    return argv[i] if len(argv) > i and not argv[i].startswith("-") else None


def build_parser(argv: list[str] = ()) -> argparse.ArgumentParser:
    """The parser, with the flags of the verb and design that ``argv`` names."""
    p = argparse.ArgumentParser(prog="neuromosaic", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"neuromosaic {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    verb = _word(argv, 0)
    for name, help_text in DESIGN_VERBS.items():
        vp = sub.add_parser(name, help=help_text, description=help_text)
        _add_designs(vp.add_subparsers(dest="design", required=True, metavar="DESIGN"), name, DESIGNS,
                     _word(argv, 1) if verb == name else None)
    f = sub.add_parser("fpga", help="FPGA flow: build a design for a board, run the chip on one")
    fsub = f.add_subparsers(dest="fpga_command", required=True)
    fb = fsub.add_parser("build", help="synthesise, place and route; write the bitstream and a JSON report "
                                       "(chip: the board top, the default; lif: the LIF core's self-test)")
    _add_designs(fb.add_subparsers(dest="design", required=True, metavar="DESIGN"), "build", FPGA_DESIGNS,
                 _word(argv, 2) if verb == "fpga" and _word(argv, 1) == "build" else None)
    fr = fsub.add_parser("run", help="run few-shot episodes on a board through its serial port, checked bit for bit "
                                     "against the golden model")
    fr.set_defaults(func=lambda args: FPGA_DESIGNS["chip"].perform("run", args))
    if verb == "fpga" and _word(argv, 1) == "run":
        FPGA_DESIGNS["chip"].add_arguments("run", fr)
    for name, (help_text, add_arguments) in COMMANDS.items():
        cp = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:
            add_arguments(cp)
    return p


def _with_default_design(argv: list[str]) -> list[str]:
    """``fpga build`` without a design builds the chip."""
    if argv[:2] == ["fpga", "build"] and (len(argv) == 2 or argv[2] not in FPGA_DESIGNS and argv[2] not in
                                          ("-h", "--help")):
        return argv[:2] + ["chip"] + argv[2:]
    return argv


def main(argv=None) -> int:
    argv = _with_default_design(list(sys.argv[1:] if argv is None else argv))
    try:
        args = build_parser(argv).parse_args(argv)
    except SystemExit as e:            # --help, or argparse's usage error (exit status 2)
        return e.code if isinstance(e.code, int) else 2
    args.argv = argv
    try:
        check_run_values(args)
        return args.func(args)
    except (ConfigError, UsageError) as e:
        print(f"neuromosaic: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:            # Ctrl-C: one line and the shell's status for SIGINT
        print("neuromosaic: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        from ..model.data.base import DataError
        if isinstance(e, DataError):
            print(f"neuromosaic: error: {e}", file=sys.stderr)
            return 2
        raise
