"""The designs of the toolkit, one description each: its flags per verb, its faults, and how to write
its Verilog, cosimulate it against the golden model, build it for a board and run it there.

A description declares its own flags (as Glasgow's applets do), so ``neuromosaic cosim lif --help``
lists the LIF core's flags only and a flag of another design is refused by argparse itself. The
heavy imports (torch, Amaranth, cocotb) happen inside the verbs, when one runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from pathlib import Path

from .options import (
    UsageError,
    add_core_options,
    add_grid_option,
    add_mesh_options,
    add_network_options,
    add_run_options,
    check_fault,
    core_config,
    core_weights,
    describe,
    grid,
    mesh,
    network,
    network_flags_given,
    print_json,
)

__all__ = ["Design", "DESIGNS", "FPGA_DESIGNS"]


class Design:
    """One design: ``name``, a line of ``help``, the ``faults`` its cosimulation can inject (name ->
    what the wrong model does) and the verbs it offers (``verilog``, ``cosim``, ``build``, ``run``:
    a method each, and ``add_<verb>_arguments`` for its flags)."""
    name = ""
    help = ""
    faults: dict[str, str] = {}

    def verbs(self) -> list[str]:
        return [v for v in ("verilog", "cosim", "build", "run") if hasattr(self, v)]

    def add_arguments(self, verb: str, p: argparse.ArgumentParser) -> None:
        getattr(self, f"add_{verb}_arguments")(p)

    def perform(self, verb: str, args) -> int:
        """Runs ``verb`` on the parsed flags; the exit status."""
        return getattr(self, verb)(args)


def _write_verilog(dut, name: str, output: str) -> None:
    from ..cosim.runner import generate_verilog
    from ..model.checkpoint import atomic_write
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(output), generate_verilog(dut, name).encode())


def _add_verilog_output(p: argparse.ArgumentParser, default_name: str) -> None:
    p.add_argument("-o", "--output", required=True, help="Verilog file to write")
    p.add_argument("--name", default=None, help=f"top module name (default {default_name})")


def _add_jobs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=int, default=None,
                   help="simulator processes at once, the episodes shared among them (default: the CPU cores)")


def _jobs(args) -> int:
    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs {args.jobs} is not allowed; use 1 or more.")
    return args.jobs or os.cpu_count() or 1


def _add_episodes(p: argparse.ArgumentParser, default: int) -> None:
    p.add_argument("--episodes", "--tasks", dest="episodes", type=int, default=default,
                   help=f"few-shot episodes; with --checkpoint, its meta-test tasks (default {default})")
    p.add_argument("--first-seed", type=int, default=0, help="seed of the first episode")


def _cosim_each(args, header: str, run, summary: str) -> int:
    """Runs ``run(sim)`` on each simulator of ``--sim``: prints the header, then PASS with ``summary``
    (formatted with the result ``r``, its details ``d`` and its checked counts ``ck``) and the
    coverage, or FAIL with the mismatch. Exit status 1 on a FAIL."""
    from ..cosim.runner import CosimError
    failed = False
    for sim in ["verilator", "icarus"] if args.sim == "both" else [args.sim]:
        print(header.format(sim=sim) + (f", fault injected: {args.fault}" if args.fault else ""), flush=True)
        start = time.perf_counter()
        try:
            r = run(sim)
        except CosimError as e:          # the mismatch; printed without a traceback
            print(f"FAIL {e}")
            failed = True
            continue
        ck = defaultdict(int, r.checked)
        print(f"PASS {sim}: " + summary.format(r=r, d=r.details, ck=ck) + f" matched the golden model "
              f"({r.cycles_per_s:.0f} cycles/s, {time.perf_counter() - start:.1f} s)")
        accuracy = r.details.get("accuracy") or {}
        if accuracy.get("queries"):
            n = accuracy["queries"]
            print(f"  query accuracy on chip {accuracy['chip_correct']}/{n} = {accuracy['chip_correct'] / n:.1%}, "
                  f"golden model {accuracy['model_correct']}/{n} = {accuracy['model_correct'] / n:.1%}")
        if args.waves:
            print(f"  waves in {r.build_dir}")
        print("  coverage: " + ", ".join(f"{k}={v}" for k, v in sorted(r.coverage.items())))
    return 1 if failed else 0


def _options(args):
    """The run options of the flags (a design without a stimulus pattern has no idle flags)."""
    from ..cosim.options import RunOptions
    pattern = {"idle": args.idle, "backpressure": args.backpressure,
               "seed": args.rng_seed} if hasattr(args, "idle") else {}
    return RunOptions(fault=args.fault, waves=args.waves, per_cycle=args.per_cycle, optimise=args.fast_model,
                      **pattern)


class LIFDesign(Design):
    name = "lif"
    help = "the LIF core: random and corner scenarios; on a board, its self-test"
    faults = {"threshold": "fires only strictly above threshold", "membrane-lsb": "one LSB on neuron 0's membrane",
              "saturation": "the current wraps instead of saturating",
              "write-cycle": "the design right, the model's first state write one cycle late"}

    def add_verilog_arguments(self, p):
        _add_verilog_output(p, "lif_core")
        p.add_argument("--weights", help="initial weights, [neurons, inputs] integers (.npy or JSON); default: "
                                         "empty, loaded through the weight port")
        add_core_options(p)

    def verilog(self, args) -> int:
        from ..rtl.lif import LIFCore
        config = core_config(args)
        core = LIFCore(config, _load_weights(args.weights, config))
        name = args.name or "lif_core"
        _write_verilog(core, name, args.output)
        print(f"wrote {args.output}: module {name}, {config.neurons} neurons x {config.inputs} inputs, "
              f"{config.lanes} lanes")
        return 0

    def add_cosim_arguments(self, p):
        p.add_argument("--seeds", type=int, default=4, help="random scenarios (default 4)")
        p.add_argument("--steps", type=int, default=50, help="timesteps per random scenario (default 50)")
        add_run_options(p, self.faults)
        add_core_options(p)

    def cosim(self, args) -> int:
        from ..cosim.lif import run_lif_cosim
        check_fault(args, self.faults, self.name)
        config = core_config(args)
        return _cosim_each(
            args, f"cosim lif on {{sim}}: {args.seeds} seeds x {args.steps} steps + corner cases, "
                  f"{config.neurons} neurons x {config.inputs} inputs, {config.lanes} lanes",
            lambda sim: run_lif_cosim(sim, config, seeds=args.seeds, steps=args.steps, options=_options(args),
                                      name="cli"),
            "{d[scenarios]} scenarios, {r.cycles} cycles, {ck[state_writes]} state writes and {ck[output_events]} "
            "output events")

    def add_build_arguments(self, p):
        _add_board_option(p)
        p.add_argument("--out", default="build/fpga", help="output folder (default build/fpga)")
        add_core_options(p)

    def build(self, args) -> int:
        from ..fpga.board import BuildError, build
        config = core_config(args)
        print(f"building lif for {args.board} ({config.neurons} neurons x {config.inputs} inputs, "
              f"{config.lanes} lanes); Yosys + nextpnr take about a minute...", flush=True)
        try:
            b = build(config, args.board, args.out)
        except BuildError as e:
            print(f"neuromosaic: error: {e}", file=sys.stderr)
            return 1 if e.fits else 2
        print(f"bitstream: {b.bitstream}")
        print_json({k: v for k, v in b.report.items() if k != "config"})
        return 0


def _load_weights(path: str | None, config):
    if path is None:
        return None
    import json

    import numpy as np
    p = Path(path)
    if not p.exists():
        raise UsageError(f"weights file {path} does not exist.")
    try:
        w = np.load(p) if p.suffix == ".npy" else np.array(json.loads(p.read_text()))
    except (ValueError, OSError) as e:
        raise UsageError(f"weights file {path} could not be read as .npy or JSON ({e}).") from None
    if w.ndim != 2 or not np.issubdtype(w.dtype, np.integer):
        raise UsageError(f"weights file {path} holds a {w.ndim}-d {w.dtype} array; allowed: a 2-d integer "
                         f"array [neurons={config.neurons}, inputs={config.inputs}].")
    config.check_weights(w)
    return w


ROUNDING_FAULTS = {"rounding-bit": "the rounding draw's top bit inverted", "floor": "no stochastic rounding"}
WRITE_CYCLE = {"write-cycle": "the design right, the model's first weight write one cycle late"}


class LearningDesign(Design):
    name = "learning"
    help = "the LIF core, its recurrence and the learning engine (LearningCore), or the engine alone"
    faults = {**ROUNDING_FAULTS, **WRITE_CYCLE}

    def add_verilog_arguments(self, p):
        _add_verilog_output(p, "learning_core, or learning_engine")
        p.add_argument("--engine", action="store_true", help="the learning engine alone (hidden spikes in)")
        add_network_options(p)

    def verilog(self, args) -> int:
        from ..rtl.learning import LearningCore, LearningEngine
        config, cfg, ck = network(args)
        name = args.name or ("learning_engine" if args.engine else "learning_core")
        if args.engine:
            dut = LearningEngine(config, cfg, None if ck is None else ck.w_out)
        else:
            dut = LearningCore(config, cfg, None if ck is None else core_weights(ck), None if ck is None else ck.w_out)
        _write_verilog(dut, name, args.output)
        what = "learning engine" if args.engine else "LIF core + learning engine"
        print(f"wrote {args.output}: module {name}, the {what}"
              f" of {describe(config)}" + (f", weights of {args.checkpoint}" if ck else ""))
        return 0

    def add_cosim_arguments(self, p):
        _add_episodes(p, 20)
        p.add_argument("--engine", action="store_true", help="the engine alone, driven with hidden spikes")
        p.add_argument("--shots", type=int, default=25, help="with --checkpoint: support samples per task, the "
                       "classes in turn (default 25: 5-way 5-shot)")
        p.add_argument("--queries", type=int, default=10, help="with --checkpoint: query samples per task (default 10)")
        _add_jobs(p)
        add_run_options(p, self.faults)
        add_network_options(p)

    def cosim(self, args) -> int:
        from ..cosim.learning import run_learning_cosim
        from ..model.episode import checkpoint_episodes
        check_fault(args, self.faults, self.name)
        config, cfg, ck = network(args)
        if ck is not None and args.engine:
            raise UsageError("--engine drives hidden spikes of random episodes; a checkpoint's tasks run through the "
                             "whole network (leave out --engine).")
        through = "the learning engine" if args.engine else "LIF core + learning engine"
        episodes = None
        if ck is None:
            what = f"{args.episodes} random few-shot episodes through {through}"
        else:
            what = (f"{args.episodes} meta-test tasks of {args.checkpoint} ({args.shots} support, {args.queries} "
                    f"query samples each) through {through}")
            print("loading the checkpoint's data ...", flush=True)
            episodes = checkpoint_episodes(ck, args.episodes, seed=args.first_seed, shots=args.shots,
                                           queries=args.queries)
        return _cosim_each(
            args, f"cosim learning on {{sim}}: {what}, {describe(config)}",
            lambda sim: run_learning_cosim(sim, config, cfg, episodes=args.episodes, first_seed=args.first_seed,
                                           episode_list=episodes, core=not args.engine, options=_options(args),
                                           name="cli", workers=_jobs(args)),
            "{d[episodes]} episodes, {r.cycles} cycles, {ck[weight_writes]} weight writes, {ck[logits]} logits"
            + ("" if args.engine else " and {ck[hidden_events]} hidden spike events"))


class MosaicDesign(Design):
    name = "mosaic"
    help = "the network on a grid of neuron tiles and routers, one readout and learning engine"
    faults = {"deaf-tile": "routing tables without any route into the last tile"}

    def add_verilog_arguments(self, p):
        _add_verilog_output(p, "mosaic")
        add_network_options(p)
        add_mesh_options(p)

    def verilog(self, args) -> int:
        from ..model.tiles import MosaicConfig
        from ..rtl.mosaic import Mosaic
        config, cfg, ck = network(args)
        mc = MosaicConfig(config, mesh(args, ck, config.neurons, dense=ck is None))
        dut = Mosaic(mc, cfg, None if ck is None else core_weights(ck), None if ck is None else ck.w_out)
        name = args.name or "mosaic"
        _write_verilog(dut, name, args.output)
        routed = sum(1 for d in dut.tables.destinations if d)
        print(f"wrote {args.output}: module {name}, {mc.mesh.rows}x{mc.mesh.cols} tiles of {mc.neurons_per_tile} "
              f"neurons and {len(mc.mesh.routers())} routers, {describe(config)}; "
              + (f"weights and routes of {args.checkpoint} ({routed} neurons send to other tiles)" if ck else
                 "no weights (load them through core_weights), every neuron routed to every other tile"))
        return 0

    def add_cosim_arguments(self, p):
        _add_episodes(p, 20)
        p.add_argument("--shots", type=int, default=2, help="with --checkpoint: support samples per task (default 2)")
        p.add_argument("--queries", type=int, default=2, help="with --checkpoint: query samples per task (default 2)")
        _add_jobs(p)
        add_run_options(p, self.faults)
        add_network_options(p)
        add_mesh_options(p)

    def cosim(self, args) -> int:
        from ..cosim.mosaic import run_mosaic_cosim
        from ..model.episode import checkpoint_episodes
        from ..model.tiles import MosaicConfig
        check_fault(args, self.faults, self.name)
        config, cfg, ck = network(args)
        mc = MosaicConfig(config, mesh(args, ck, config.neurons, dense=ck is None))
        if ck is None:
            what = (f"{args.episodes} random few-shot episodes (dense random weights, every neuron routed to every "
                    "other tile)")
            episodes, w_rec = None, None
        else:
            what = (f"{args.episodes} meta-test tasks of {args.checkpoint} ({args.shots} support, {args.queries} "
                    "query samples each; its connectivity in the routing tables)")
            print("loading the checkpoint's data ...", flush=True)
            episodes, w_rec = checkpoint_episodes(ck, args.episodes, seed=args.first_seed, shots=args.shots,
                                                  queries=args.queries), ck.w_rec
        return _cosim_each(
            args, f"cosim mosaic on {{sim}}: {mc.mesh.rows}x{mc.mesh.cols} tiles of {mc.neurons_per_tile} neurons, "
                  f"{describe(config)}; {what}",
            lambda sim: run_mosaic_cosim(sim, mc, cfg, episodes=args.episodes, first_seed=args.first_seed,
                                         episode_list=episodes, w_rec=w_rec, options=_options(args), name="cli",
                                         workers=_jobs(args)),
            "{d[episodes]} episodes, {r.cycles} cycles, {ck[hidden_events]} hidden spike events, {ck[logits]} "
            "logits and {ck[weight_writes]} weight writes")


def _add_board_option(p: argparse.ArgumentParser) -> None:
    from ..fpga.boards import BOARDS
    p.add_argument("--board", choices=sorted(BOARDS), default="icebreaker", help="the board (default icebreaker)")


def _add_chip_options(p: argparse.ArgumentParser) -> None:
    """The chip a board carries: the board, its Mosaic grid, the link's baud rate and the network."""
    _add_board_option(p)
    add_grid_option(p, default="4x4")
    p.add_argument("--baud", type=int, default=1_000_000, help="UART baud rate (default 1000000)")
    add_network_options(p, default=None)


def _board_protocol(args):
    """The protocol of the chip that ``--board`` carries and the checkpoint (or None): the network of
    ``--checkpoint``, or of ``--network``/``--set``/``--learning-set`` and the core flags, or the
    board's default; on the ulx3s-85f a Mosaic of ``--grid`` tiles (default: the checkpoint's
    training layout, else 4x4)."""
    from ..fpga.boards import BOARDS
    from ..fpga.top import board_chip, board_protocol
    spec = BOARDS[args.board]
    net, cfg, ck = None, spec.learning, None
    if network_flags_given(args):
        net, rule, ck = network(args, base_name="small")
        if args.learning_set:      # the board's learning widths, unless given
            cfg = rule
    if not spec.mosaic:
        if args.grid:
            mosaics = ", ".join(b.name for b in BOARDS.values() if b.mosaic)
            raise UsageError(f"--grid {args.grid} is for the {mosaics}'s Mosaic; the {spec.name} carries one "
                             "LearningCore.")
        if net is not None:        # the board's readout widths, unless --set gives them
            net = spec.fitted(net, keep={item.partition("=")[0] for item in args.set})
        return board_protocol(args.board, board_chip(args.board, net), cfg, baud=args.baud), ck
    rows, cols = spec.default_grid
    tiles = grid(args, ck, (net or spec.chip).neurons, default=f"{rows}x{cols}")
    return board_protocol(args.board, board_chip(args.board, net, tiles), cfg, baud=args.baud), ck


class BoardDesign(Design):
    name = "board"
    help = "the board top: the chip behind its UART host link, driven by the host driver"
    faults = ROUNDING_FAULTS         # the link has no cycle contract

    def add_cosim_arguments(self, p):
        _add_episodes(p, 20)
        p.add_argument("--mosaic", action="store_true", help="the chip is a Mosaic (--grid), not one LearningCore")
        p.add_argument("--malformed", action="store_true",
                       help="then send corrupt, truncated and unknown frames; each must be refused, none executed")
        p.add_argument("--buffer-bytes", type=int, default=64, help="the link's frame buffer (default 64)")
        p.add_argument("--ber", type=float, default=0.0,
                       help="bit errors per bit put on both directions of the line (default 0; e.g. 1e-4): the "
                            "driver must get every frame through and the episodes stay bit-exact")
        p.add_argument("--noise-seed", type=int, default=0, help="the draw of the bit errors (default 0)")
        p.add_argument("--timeout", type=float, default=0.05,
                       help="seconds of the chip's clock the driver waits for an answer before it sends again "
                            "(default 0.05)")
        add_run_options(p, self.faults, stimulus=False)
        add_network_options(p)
        add_mesh_options(p)

    def cosim(self, args) -> int:
        from ..cosim.board import run_board_cosim
        from ..fpga.protocol import LinkConfig, Protocol
        from ..fpga.top import describe as describe_chip
        from ..model.tiles import MosaicConfig
        check_fault(args, self.faults, self.name)
        config, cfg, ck = network(args)
        chip = MosaicConfig(config, mesh(args, ck, config.neurons, dense=True)) if args.mosaic else config
        # Four clock cycles per bit, the least the UART takes: the simulation spends its time on the line.
        protocol = Protocol(chip, cfg, LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=args.buffer_bytes))
        return _cosim_each(
            args, f"cosim board on {{sim}}: the board top ({describe_chip(protocol)}) driven through its UART pins "
                  f"by the host driver; {args.episodes} random few-shot episodes"
                  + (", then malformed frames" if args.malformed else "")
                  + (f", bit errors at {args.ber:g} per bit both ways" if args.ber else ""),
            lambda sim: run_board_cosim(sim, protocol, episodes=args.episodes, first_seed=args.first_seed,
                                        malformed=args.malformed, options=_options(args), ber=args.ber,
                                        noise_seed=args.noise_seed, timeout=args.timeout, name="cli"),
            "{r.cycles} cycles, {d[link][frames]} frames ({d[bytes_sent]} bytes) sent and {d[link][records]} records "
            "({d[bytes_received]} bytes) received; {ck[logits]} logits, {ck[hidden_events]} hidden spike events and "
            "{ck[weight_writes]} weight writes"
            + ("; {d[noise][bit_errors][rx]} bit errors on the line to the chip and {d[noise][bit_errors][tx]} from "
               "it: {d[link][retransmissions]} frames sent again, {d[link][records_damaged]} damaged and "
               "{d[link][records_lost]} lost records detected, the logits asked for again "
               "{d[link][logits_asked_again]} times;" if args.ber else ""))

    def add_build_arguments(self, p):
        p.add_argument("--out", default="build/fpga", help="output folder (default build/fpga)")
        _add_chip_options(p)

    def build(self, args) -> int:
        from ..fpga.board import BuildError
        from ..fpga.boards import BOARDS
        from ..fpga.top import build_board
        from ..fpga.top import describe as describe_chip
        protocol, _ = _board_protocol(args)
        minutes = BOARDS[args.board].build_minutes
        print(f"building the board top for {args.board}: {describe_chip(protocol)}, UART host link at "
              f"{protocol.link.actual_baud:,.0f} baud; the estimate first, then Yosys + nextpnr ({minutes} "
              "minutes) ...",
              flush=True)
        start = time.perf_counter()

        def progress(message):
            print(f"  estimate: {message}", flush=True)
        try:
            b = build_board(protocol, args.board, args.out, progress=progress)
        except BuildError as e:
            print(f"neuromosaic: error: {e}", file=sys.stderr)
            return 1 if e.fits else 2
        out = Path(args.out) / args.board
        print(f"bitstream: {b.bitstream} ({time.perf_counter() - start:.0f} s)")
        print(f"report: {out / 'chip.report.json'}, {out / 'chip.report.md'}\n")
        print((out / "chip.report.md").read_text())
        return 0

    def add_run_arguments(self, p):
        p.add_argument("--port", required=True, help="serial device of the board (e.g. /dev/ttyUSB1)")
        p.add_argument("--tasks", type=int, default=1, help="episodes (default 1)")
        p.add_argument("--shots", type=int, default=5, help="checkpoint tasks: support samples (default 5)")
        p.add_argument("--queries", type=int, default=5, help="checkpoint tasks: query samples (default 5)")
        p.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply (default 2)")
        _add_chip_options(p)

    def run(self, args) -> int:
        """Few-shot episodes on a real board through its serial port, checked against the golden model."""
        from ..fpga.host import Chip, LinkError, SerialTransport
        from ..fpga.session import run_episodes
        from ..fpga.top import describe as describe_chip
        from ..model.episode import checkpoint_episodes, random_network_episode
        from ..model.golden import Mismatch
        protocol, ck = _board_protocol(args)
        if ck is None:
            episodes = [random_network_episode(protocol.network, protocol.cfg, i) for i in range(args.tasks)]
        else:
            print("loading the checkpoint's data ...", flush=True)
            episodes = checkpoint_episodes(ck, args.tasks, shots=args.shots, queries=args.queries)
        print(f"{args.board} on {args.port}: {describe_chip(protocol)}; {len(episodes)} episodes", flush=True)

        def progress(i, r):
            right = sum(p == q for p, q in zip(r["predictions"], r["query_labels"]))
            print(f"episode {i + 1}/{len(episodes)}: bit-exact ({r['checked']['logits']} logits, "
                  f"{r['checked']['hidden_events']} hidden events, {r['checked']['weight_writes']} weight writes); "
                  f"query {right}/{len(r['predictions'])} right", flush=True)

        try:
            transport = SerialTransport(args.port, protocol.link.baud)
            run_episodes(Chip(protocol, transport, timeout=args.timeout), protocol, episodes, progress=progress)
        except LinkError as e:
            print(f"FAIL link: {e}")
            return 1
        except Mismatch as e:
            print(f"FAIL {e}")
            return 1
        return 0


BOARD = BoardDesign()
LIF = LIFDesign()
DESIGNS = {d.name: d for d in (LIF, LearningDesign(), MosaicDesign(), BOARD)}
# ``fpga build`` builds the board's chip (the board top) or the LIF core's self-test.
FPGA_DESIGNS = {"chip": BOARD, "lif": LIF}
