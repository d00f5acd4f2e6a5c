"""``neuromosaic``: one command line for the model, the RTL, the cosimulation and the FPGA flow."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

from .cosim.learning.scoreboard import FAULTS as LEARNING_FAULTS
from .cosim.lif.scoreboard import FAULTS
from .cosim.mosaic import FAULTS as MOSAIC_FAULTS
from .fpga.board import BOARDS
from .model.config import SEED_LIF, ConfigError, LIFConfig
from .model.data.base import DataError
from .model.router import MeshConfig
from .model.snn import NETWORKS, SRNNConfig

__all__ = ["main"]

PRESETS = {"default": LIFConfig(), "seed": SEED_LIF}


class UsageError(Exception):
    """A bad flag value or input file; printed as one line, exit status 2."""


def _add_config_options(p: argparse.ArgumentParser, default_preset: str = "default") -> None:
    g = p.add_argument_group("core configuration (defaults from --preset)")
    g.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                   help=f"starting configuration (default: {default_preset}; 'seed' is 256 neurons x 256 inputs)")
    for f in dataclasses.fields(LIFConfig):
        g.add_argument("--" + f.name.replace("_", "-"), dest=f"cfg_{f.name}", type=int, default=None,
                       metavar="N", help=f"{f.name} (preset value if omitted)")


def _config(args) -> LIFConfig:
    changes = {f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(LIFConfig)
               if getattr(args, f"cfg_{f.name}") is not None}
    return PRESETS[args.preset].replace(**changes)


def _load_weights(path: str | None, config: LIFConfig):
    if path is None:
        return None
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


def _add_network_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("learning designs: network and learning rule (the core flags above change its LIF core)")
    g.add_argument("--network", choices=sorted(NETWORKS), default="small",
                   help="starting network (default small: 4 channels, 16 neurons, 5 outputs; seed: 256 channels, "
                        "256 neurons, 20 outputs)")
    g.add_argument("--checkpoint", help="a trained network's checkpoint folder: its config instead of --network")
    g.add_argument("--set", action="append", default=[], metavar="FIELD=V",
                   help="change a field of the network (channels, outputs, readout_bits, logit_shift, ...)")
    g.add_argument("--learning-set", action="append", default=[], metavar="FIELD=V",
                   help="change a field of the learning rule (prob_bits, acc_bits, lfsr_seed, ...)")


def _add_mesh_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("Mosaic mesh (route, and the mosaic design)")
    g.add_argument("--grid", default=None, help="neuron tiles RxC (default: the checkpoint's training layout, else 2x2)")
    g.add_argument("--fifo-depth", type=int, default=MeshConfig.fifo_depth,
                   help=f"entries per router in-port FIFO (default {MeshConfig.fifo_depth})")
    for name in ("tile_capacity", "between_capacity", "corner_capacity"):
        g.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                       help=f"most distinct sources per port (default {getattr(MeshConfig, name)}; the neuron count "
                            "for random episodes, which route every neuron to every tile)")


def _parse_sets(items: list[str], allowed: list[str], flag: str) -> dict:
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in allowed:
            raise UsageError(f"{flag} {item!r} is not FIELD=VALUE with a known field; allowed fields: "
                             f"{', '.join(allowed)}.")
        try:
            out[key] = int(value, 0)
        except ValueError:
            out[key] = value
    return out


def _network(args):
    """The SRNNConfig, LearningConfig and checkpoint (or None) of a learning design's flags."""
    from .model.learning import LearningConfig
    ck = None
    if args.checkpoint:
        from .model.checkpoint import load_checkpoint
        ck = load_checkpoint(args.checkpoint)
        base = ck.config
    else:
        base = NETWORKS[args.network]
    if args.cfg_inputs is not None:
        raise UsageError(f"--inputs {args.cfg_inputs} does not apply to a learning design: the core's inputs are "
                         "channels + neurons; use --set channels=N.")
    core = {**base.core.to_dict(), **{f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(LIFConfig)
                                     if getattr(args, f"cfg_{f.name}") is not None}}
    core.pop("inputs")
    net = {f.name: getattr(base, f.name) for f in dataclasses.fields(SRNNConfig) if f.name != "core"}
    net.update(_parse_sets(args.set, sorted(net), "--set"))
    neurons = core.pop("neurons")
    config = SRNNConfig.make(neurons=neurons, **net, **core)
    fields = [f.name for f in dataclasses.fields(LearningConfig)]
    cfg = LearningConfig(**_parse_sets(args.learning_set, fields, "--learning-set"))
    if ck is not None and config != ck.config:
        raise UsageError("the flags change the checkpoint's network config; its weights would not fit. Drop them "
                         "or leave out --checkpoint.")
    return config, cfg, ck


def _describe(config) -> str:
    return (f"{config.channels} channels, {config.neurons} neurons ({config.core.lanes} lanes), "
            f"{config.outputs} outputs")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# -- commands -------------------------------------------------------------------------------------
def _write_verilog(dut, name: str, output: str) -> None:
    from .cosim.runner import generate_verilog
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    Path(output).write_text(generate_verilog(dut, name))


def cmd_verilog(args) -> int:
    if args.design == "learning":
        return _verilog_learning(args)
    if args.design == "mosaic":
        return _verilog_mosaic(args)
    from .rtl.lif import LIFCore
    config = _config(args)
    core = LIFCore(config, _load_weights(args.weights, config))
    name = args.name or "lif_core"
    _write_verilog(core, name, args.output)
    print(f"wrote {args.output}: module {name}, {config.neurons} neurons x {config.inputs} inputs, "
          f"{config.lanes} lanes")
    return 0


def _verilog_learning(args) -> int:
    from .rtl.learning import LearningCore, LearningEngine
    if args.weights:
        raise UsageError("--weights is for the lif design; a learning design takes its weights from --checkpoint.")
    config, cfg, ck = _network(args)
    name = args.name or ("learning_engine" if args.engine else "learning_core")
    if args.engine:
        dut = LearningEngine(config, cfg, None if ck is None else ck.w_out)
    else:
        dut = LearningCore(config, cfg, None if ck is None else _core_weights(ck), None if ck is None else ck.w_out)
    _write_verilog(dut, name, args.output)
    what = "learning engine" if args.engine else "LIF core + learning engine"
    print(f"wrote {args.output}: module {name}, the {what}"
          f" of {_describe(config)}" + (f", weights of {args.checkpoint}" if ck else ""))
    return 0


def _grid(args, ck, neurons: int, default: str = "2x2") -> tuple[int, int]:
    """--grid, or the checkpoint's training layout, or ``default``."""
    grid = args.grid or (ck.metadata.get("train", {}).get("layout") if ck is not None else None) or default
    try:
        rows, cols = (int(v) for v in grid.lower().split("x"))
    except ValueError:
        raise UsageError(f"--grid {grid!r} is not RxC; allowed: two positive integers such as 2x2.") from None
    if rows < 1 or cols < 1 or neurons % (rows * cols):
        raise UsageError(f"--grid {grid}: {rows * cols} tiles do not divide the {neurons} neurons; allowed: a grid "
                         f"whose tile count divides {neurons}.")
    return rows, cols


def _mesh(args, ck, neurons: int, dense: bool) -> MeshConfig:
    """The mesh of the flags. A capacity left out is the Mosaic default, or, for ``dense`` (every
    source to every other tile, the random episodes), the neuron count: nothing limits it."""
    rows, cols = _grid(args, ck, neurons)
    caps = {name: getattr(args, name) if getattr(args, name) is not None else
            (neurons if dense else getattr(MeshConfig, name))
            for name in ("tile_capacity", "between_capacity", "corner_capacity")}
    return MeshConfig(rows, cols, neurons // (rows * cols), fifo_depth=args.fifo_depth, **caps)


def _verilog_mosaic(args) -> int:
    from .model.tiles import MosaicConfig
    from .rtl.mosaic import Mosaic
    if args.weights or args.engine:
        raise UsageError("--weights and --engine are not for the mosaic design; it takes its weights from --checkpoint.")
    config, cfg, ck = _network(args)
    mc = MosaicConfig(config, _mesh(args, ck, config.neurons, dense=ck is None))
    dut = Mosaic(mc, cfg, None if ck is None else _core_weights(ck), None if ck is None else ck.w_out)
    name = args.name or "mosaic"
    _write_verilog(dut, name, args.output)
    routed = sum(1 for d in dut.tables.destinations if d)
    print(f"wrote {args.output}: module {name}, {mc.mesh.rows}x{mc.mesh.cols} tiles of {mc.neurons_per_tile} neurons "
          f"and {len(mc.mesh.routers())} routers, {_describe(config)}; "
          + (f"weights and routes of {args.checkpoint} ({routed} neurons send to other tiles)" if ck else
             "no weights (load them through core_weights), every neuron routed to every other tile"))
    return 0


def _core_weights(ck):
    import torch
    return torch.cat([ck.w_in, ck.w_rec], dim=1)


def _cosim_each(args, header: str, run, summary: str) -> int:
    """Runs ``run(sim)`` on each simulator of ``--sim``: prints the header, then PASS with ``summary``
    (formatted with the result) and the coverage, or FAIL with the mismatch. Exit status 1 on a FAIL."""
    from .cosim.runner import CosimError
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
        ck = defaultdict(int, r["checked"])
        print(f"PASS {sim}: " + summary.format(r=r, ck=ck) + f" matched the golden model ({r['cycles_per_s']:.0f} "
              f"cycles/s, {time.perf_counter() - start:.1f} s)")
        if args.waves:
            print(f"  waves in {r['build_dir']}")
        print("  coverage: " + ", ".join(f"{k}={v}" for k, v in sorted(r["coverage"].items())))
    return 1 if failed else 0


def _cosim_learning(args) -> int:
    from .cosim.learning import run_learning_cosim
    if args.fault and args.fault not in LEARNING_FAULTS:
        raise UsageError(f"--fault {args.fault} is not a learning fault; allowed: "
                         f"{', '.join(sorted(LEARNING_FAULTS))}.")
    if args.episodes < 1:
        raise UsageError(f"--episodes {args.episodes} is not allowed; use 1 or more.")
    config, cfg, _ = _network(args)
    what = "the learning engine" if args.engine else "LIF core + learning engine"
    return _cosim_each(
        args, f"cosim learning on {{sim}}: {args.episodes} random few-shot episodes through {what}, "
              f"{_describe(config)}",
        lambda sim: run_learning_cosim(sim, config, cfg, episodes=args.episodes, first_seed=args.first_seed,
                                       fault=args.fault, idle=args.idle, backpressure=args.backpressure,
                                       rng_seed=args.rng_seed, waves=args.waves, core=not args.engine, name="cli"),
        "{r[episodes]} episodes, {r[cycles]} cycles, {ck[weight_writes]} weight writes, {ck[logits]} logits"
        + ("" if args.engine else " and {ck[hidden_events]} hidden spike events"))


def _cosim_mosaic(args) -> int:
    from .cosim.mosaic import run_mosaic_cosim
    from .model.episode import checkpoint_episodes
    from .model.tiles import MosaicConfig
    if args.fault and args.fault not in MOSAIC_FAULTS:
        raise UsageError(f"--fault {args.fault} is not a mosaic fault; allowed: {', '.join(MOSAIC_FAULTS)}.")
    if args.engine:
        raise UsageError("--engine is for the learning design; the mosaic always runs the whole network.")
    if args.episodes < 1 or args.shots < 1 or args.queries < 1:
        raise UsageError(f"--episodes {args.episodes}, --shots {args.shots}, --queries {args.queries}: each must be "
                         "1 or more.")
    config, cfg, ck = _network(args)
    mc = MosaicConfig(config, _mesh(args, ck, config.neurons, dense=ck is None))
    if ck is None:
        what = f"{args.episodes} random few-shot episodes (dense random weights, every neuron routed to every other tile)"
        episodes, w_rec = None, None
    else:
        what = (f"{args.episodes} meta-test tasks of {args.checkpoint} ({args.shots} support, {args.queries} query "
                "samples each; its connectivity in the routing tables)")
        print("loading the checkpoint's data ...", flush=True)
        episodes, w_rec = checkpoint_episodes(ck, args.episodes, seed=args.first_seed, shots=args.shots,
                                              queries=args.queries), ck.w_rec
    return _cosim_each(
        args, f"cosim mosaic on {{sim}}: {mc.mesh.rows}x{mc.mesh.cols} tiles of {mc.neurons_per_tile} neurons, "
              f"{_describe(config)}; {what}",
        lambda sim: run_mosaic_cosim(sim, mc, cfg, episodes=args.episodes, first_seed=args.first_seed,
                                     episode_list=episodes, w_rec=w_rec, fault=args.fault, idle=args.idle,
                                     backpressure=args.backpressure, rng_seed=args.rng_seed, waves=args.waves,
                                     name="cli"),
        "{r[episodes]} episodes, {r[cycles]} cycles, {ck[hidden_events]} hidden spike events, {ck[logits]} logits "
        "and {ck[weight_writes]} weight writes")


def cmd_cosim(args) -> int:
    if args.design == "learning":
        return _cosim_learning(args)
    if args.design == "mosaic":
        return _cosim_mosaic(args)
    if args.design == "board":
        return _cosim_board(args)
    from .cosim.lif import run_lif_cosim
    if args.fault and args.fault not in FAULTS:
        raise UsageError(f"--fault {args.fault} is not a lif fault; allowed: {', '.join(sorted(FAULTS))}.")
    config = _config(args)
    return _cosim_each(
        args, f"cosim lif on {{sim}}: {args.seeds} seeds x {args.steps} steps + corner cases, "
              f"{config.neurons} neurons x {config.inputs} inputs, {config.lanes} lanes",
        lambda sim: run_lif_cosim(sim, config, seeds=args.seeds, steps=args.steps, fault=args.fault,
                                  idle=args.idle, backpressure=args.backpressure, rng_seed=args.rng_seed,
                                  waves=args.waves, name="cli"),
        "{r[scenarios]} scenarios, {r[cycles]} cycles, {ck[state_writes]} state writes and {ck[output_events]} "
        "output events")


def _board(args):
    """The protocol of the chip that ``--board`` carries and the checkpoint (or None): the network of
    ``--checkpoint``, or of ``--network``/``--set``/``--learning-set`` and the core flags, or the
    board's default; on the ulx3s-85f a Mosaic of ``--grid`` tiles (default: the checkpoint's
    training layout, else 4x4)."""
    from .fpga.top import BOARD_CHIPS, board_chip, board_learning, board_protocol, up5k_network
    flags = args.checkpoint or args.network or args.set or args.learning_set or any(
        getattr(args, f"cfg_{f.name}") is not None for f in dataclasses.fields(LIFConfig))
    network, cfg, ck = None, board_learning(args.board), None
    if flags:
        args.network = args.network or "small"
        network, rule, ck = _network(args)
        if args.learning_set or args.board != "icebreaker":
            cfg = rule
    if args.board == "icebreaker":
        if args.grid:
            raise UsageError(f"--grid {args.grid} is for the ulx3s-85f's Mosaic; the icebreaker carries one "
                             "LearningCore.")
        if network is not None:        # the UP5K's readout widths, unless --set gives them
            network = up5k_network(network, keep={item.partition("=")[0] for item in args.set})
        return board_protocol(args.board, board_chip(args.board, network), cfg, baud=args.baud), ck
    grid = _grid(args, ck, (network or BOARD_CHIPS[args.board]).neurons, default="4x4")
    return board_protocol(args.board, board_chip(args.board, network, grid), cfg, baud=args.baud), ck


def cmd_fpga_build(args) -> int:
    if args.design == "chip":
        return _fpga_build_chip(args)
    if args.checkpoint or args.grid or args.network or args.set or args.learning_set:
        raise UsageError("--checkpoint, --grid, --network, --set and --learning-set are for the chip design (the board "
                         "top with its host link).")
    from .fpga.board import build
    config = _config(args)
    print(f"building {args.design} for {args.board} ({config.neurons} neurons x {config.inputs} inputs, "
          f"{config.lanes} lanes); Yosys + nextpnr take about a minute...", flush=True)
    b = build(config, args.board, args.out)
    print(f"bitstream: {b.bitstream}")
    _print_json({k: v for k, v in b.report.items() if k != "config"})
    return 0


def _fpga_build_chip(args) -> int:
    from .fpga.top import build_board, describe
    protocol, _ = _board(args)
    minutes = "3-6" if args.board == "icebreaker" else "5-60 (the ECP5 placer on a large Mosaic is slow)"
    print(f"building the board top for {args.board}: {describe(protocol)}, UART host link at {protocol.link.baud:,} "
          f"baud; Yosys + nextpnr take {minutes} minutes ...", flush=True)
    start = time.perf_counter()
    b = build_board(protocol, args.board, args.out)
    out = Path(args.out) / args.board
    print(f"bitstream: {b.bitstream} ({time.perf_counter() - start:.0f} s)")
    print(f"report: {out / 'chip.report.json'}, {out / 'chip.report.md'}\n")
    print((out / "chip.report.md").read_text())
    return 0


def cmd_fpga_run(args) -> int:
    """Few-shot episodes on a real board through its serial port, checked against the golden model."""
    from .fpga.host import Chip, LinkError, SerialTransport
    from .fpga.session import run_episodes
    from .model.episode import checkpoint_episodes, random_network_episode
    from .model.golden import Mismatch
    from .fpga.top import describe
    if args.tasks < 1 or args.shots < 1 or args.queries < 1:
        raise UsageError(f"--tasks {args.tasks}, --shots {args.shots}, --queries {args.queries}: each must be 1 or more.")
    protocol, ck = _board(args)
    if ck is None:
        episodes = [random_network_episode(protocol.network, protocol.cfg, i) for i in range(args.tasks)]
    else:
        print("loading the checkpoint's data ...", flush=True)
        episodes = checkpoint_episodes(ck, args.tasks, shots=args.shots, queries=args.queries)
    print(f"{args.board} on {args.port}: {describe(protocol)}; {len(episodes)} episodes", flush=True)

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


def _cosim_board(args) -> int:
    from .cosim.board import run_board_cosim
    from .fpga.protocol import LinkConfig, Protocol
    from .fpga.top import describe
    from .model.tiles import MosaicConfig
    if args.fault and args.fault not in LEARNING_FAULTS:
        raise UsageError(f"--fault {args.fault} is not a board fault; allowed: {', '.join(sorted(LEARNING_FAULTS))}.")
    if args.episodes < 1:
        raise UsageError(f"--episodes {args.episodes} is not allowed; use 1 or more.")
    config, cfg, ck = _network(args)
    chip = MosaicConfig(config, _mesh(args, ck, config.neurons, dense=True)) if args.mosaic else config
    # Four clock cycles per bit, the least the UART takes: the simulation spends its time on the line.
    protocol = Protocol(chip, cfg, LinkConfig(clock_hz=4_000_000, baud=1_000_000, buffer_bytes=args.buffer_bytes))
    return _cosim_each(
        args, f"cosim board on {{sim}}: the board top ({describe(protocol)}) driven through its UART pins by the "
              f"host driver; {args.episodes} random few-shot episodes" + (", then malformed frames" if args.malformed
                                                                          else ""),
        lambda sim: run_board_cosim(sim, protocol, episodes=args.episodes, first_seed=args.first_seed,
                                    fault=args.fault, malformed=args.malformed, waves=args.waves, name="cli"),
        "{r[cycles]} cycles, {r[bytes_sent]} bytes sent and {r[bytes_received]} received; {ck[logits]} logits, "
        "{ck[hidden_events]} hidden spike events and {ck[weight_writes]} weight writes")


def cmd_bench(args) -> int:
    if args.design == "lif":
        from .bench.lif import bench_lif
        _print_json(bench_lif(quick=args.quick, out=args.out))
    elif args.design == "learning":
        from .bench.learning import bench_learning
        _print_json(bench_learning(quick=args.quick, out=args.out, fsdd=args.fsdd))
    elif args.design == "memory":
        from .bench.memory import bench_memory
        _print_json(bench_memory(quick=args.quick, out=args.out))
    elif args.design == "train":
        from .bench.train import bench_train
        _print_json(bench_train(quick=args.quick, out=args.out))
    elif args.design == "router":
        from .bench.router import bench_router
        _print_json(bench_router(quick=args.quick, out=args.out, checkpoint=args.checkpoint))
    elif args.design == "fpga":
        from .bench.fpga import bench_fpga
        _print_json(bench_fpga(quick=args.quick, out=args.out, fsdd=args.fsdd))
    else:
        from .bench.data import bench_data
        _print_json(bench_data(quick=args.quick, out=args.out, fsdd=args.fsdd))
    return 0


def _energy_table(r: dict) -> str:
    mems = ", ".join(f"{m['name']} {m['depth']:,} x {m['width']} bit ({m['read_pj']:.2f} pJ a read)" for m in r["memories"])
    lines = [f"layer {r['layer']}, {r['label']} ({r['organisation']}), density {r['density']}, {r['bits']}-bit weights, "
             f"{r['schedule']} schedule: {r['synapses']:,} synapses",
             f"memories: {mems}",
             f"{'pass':<9} {'energy uJ':>10} {'memory uJ':>10} {'datapath uJ':>12}  reads / writes per memory"]
    for name, p in r["passes"].items():
        rw = ", ".join(f"{m} {c['reads']:,}/{c['writes']:,}" for m, c in p["counts"].items())
        lines.append(f"{name:<9} {p['energy_pj'] * 1e-6:>10.4f} {sum(p['memory_pj'].values()) * 1e-6:>10.4f} "
                     f"{sum(p['datapath_pj'].values()) * 1e-6:>12.4f}  {rw}")
    return "\n".join(lines)


def _paper_table(rows: list[dict]) -> str:
    lines = ["| layer | density | organisation | paper fwd | ours fwd | paper bwd | ours bwd (event) | "
             "ours bwd (sweep) |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['layer']} | {r['density']} | {r['label']} (/ {r['base']}) | "
                     f"{r['paper_forward_ratio']:.2f} | {r['event_forward_ratio']:.2f} | "
                     f"{r['paper_backward_ratio']:.2f} | {r['event_backward_ratio']:.2f} | "
                     f"{r['sweep_backward_ratio']:.2f} |")
    return "\n".join(lines)


DENSITIES = tuple(round(0.05 * i, 2) for i in range(1, 21))
WEIGHT_BITS = tuple(range(2, 13))


def cmd_energy(args) -> int:
    from .model.energy import SCHEDULES, energy_sweep, layer_energy, paper_comparison, parse_layer
    from .plots import energy_png
    if args.paper:
        rows = paper_comparison()
        if args.json:
            _print_json(rows)
        else:
            print("energy relative to the base organisation (Crossbar for fc, PB-CSR for conv); bwd: backward "
                  "plus update")
            print(_paper_table(rows))
        if args.plot_dir:
            out = Path(args.plot_dir)
            for layer in ("fc:784x128", "conv:28x28x32x32k3"):
                print(f"sweeping {layer} over {len(DENSITIES)} densities...", file=sys.stderr, flush=True)
                series = {s: energy_sweep(layer, DENSITIES, (8,), schedule=s) for s in SCHEDULES}
                name = layer.split(":")[0]
                print(energy_png(series, out / f"energy-{name}-density.png", title=f"{layer}, 8-bit weights"),
                      file=sys.stderr)
            series = {layer: energy_sweep(layer, (1.0,), WEIGHT_BITS) for layer in ("fc:784x128", "conv:28x28x32x32k3")}
            print(energy_png(series, out / "energy-bits.png", x="bits", title="density 1, event schedule"),
                  file=sys.stderr)
        return 0
    if args.layer is None or args.encoding is None:
        raise UsageError("energy needs --layer and --encoding (or --paper for the comparison with seed 001).")
    layer = parse_layer(args.layer)
    r = layer_energy(layer, args.encoding, args.density, args.bits, schedule=args.schedule, seed=args.seed)
    if args.json:
        _print_json(r)
    else:
        print(_energy_table(r))
    if args.plot:
        rows = energy_sweep(layer, DENSITIES, (args.bits,), schedule=args.schedule, seed=args.seed)
        path = energy_png({args.schedule: rows}, args.plot, highlight=r["label"],
                          title=f"{layer}, {args.bits}-bit weights")
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_retention(args) -> int:
    from .model.retention import RetentionConfig, retention_experiment
    from .plots import retention_png
    try:
        densities = tuple(float(d) for d in args.densities.split(","))
    except ValueError:
        raise UsageError(f"--densities {args.densities!r} is not a comma-separated list of numbers.") from None
    cfg = RetentionConfig(iterations=args.iterations, weight_bits=args.bits, seed=args.seed)
    result = retention_experiment(cfg, densities, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        _print_json(result)
    else:
        print(f"{'density':>7} {'organisation':<12} {'retention error':>15} {'energy uJ':>10} {'efficiency':>10} "
              f"{'retention loss':>14}")
        for r in result["rows"]:
            print(f"{r['density']:>7g} {r['label']:<12} {r['retention_error']:>15.3f} {r['energy_uj']:>10.3f} "
                  f"{r['efficiency']:>10.2f} {r['retention_loss']:>+14.3f}")
    if args.plot:
        print(f"plot: {retention_png(result, args.plot)}", file=sys.stderr)
    return 0


def _dataset(args):
    from .model.data import load_source
    return load_source(args.source, split=args.split, channels=args.channels, steps=args.steps)


def cmd_data_inspect(args) -> int:
    _print_json(_dataset(args).summary())
    return 0


def cmd_data_raster(args) -> int:
    from .plots import raster_png
    ds = _dataset(args)
    if not 0 <= args.index < len(ds):
        raise UsageError(f"--index {args.index} is out of range; allowed: 0..{len(ds) - 1} ({ds.source}).")
    label = int(ds.labels[args.index])
    name = ds.class_names[label] if label < len(ds.class_names) else str(label)
    path = raster_png([(ds.rasters[args.index], f"{ds.source} sample {args.index}: class {label} ({name}), "
                        f"speaker {ds.speakers[args.index]}", "channel")], args.output)
    print(f"wrote {path}")
    return 0


def cmd_data_encode(args) -> int:
    if not args.source.startswith("fsdd:"):
        raise UsageError(f"data encode takes fsdd:DIR, not {args.source!r}.")
    ds = _dataset(args)
    print(f"{len(ds)} recordings encoded ({ds.channels} channels, {ds.steps} steps); cache: {ds.info['cache']}"
          + (" (already cached)" if ds.info["from_cache"] else ""))
    return 0


def _train_config(args):
    from .model.train import PRESETS as TRAIN_PRESETS
    base = TRAIN_PRESETS[args.preset]
    maml_changes = {k: v for k, v in (("inner_steps", args.inner_steps), ("inner_lr", getattr(args, "inner_lr", None)),
                                      ("readout_init", getattr(args, "readout_init", None)),
                                      ("rate_lambda", getattr(args, "rate_lambda", None))) if v is not None}
    if getattr(args, "fixed_inner_lr", False):
        maml_changes["learn_inner_lr"] = False
    maml = dataclasses.replace(base.maml, **maml_changes)
    changes = {k: v for k, v in (("data", args.data), ("rram", args.rram), ("layout", args.layout),
                                 ("iterations", getattr(args, "iterations", None)),
                                 ("seed", getattr(args, "seed", None))) if v is not None}
    return dataclasses.replace(base, maml=maml, **changes)


def cmd_train(args) -> int:
    from .model.train import init_distributed_from_env, train
    init_distributed_from_env()          # under torchrun: one rank per process
    cfg = _train_config(args)
    s = train(cfg, args.out)
    print(f"trained {s['iterations']} iterations in {s['train_s']} s; checkpoint, metrics.jsonl and curves.png in "
          f"{args.out}")
    _print_json(s["final"])
    return 0


def cmd_eval(args) -> int:
    from .model.checkpoint import load_checkpoint
    from .model.data import load_source
    from .model.train import TrainConfig, evaluate_steps
    ck = load_checkpoint(args.checkpoint)
    saved = ck.metadata.get("train", {})
    base = TrainConfig(**{k: v for k, v in saved.items() if k != "maml"})
    maml = dataclasses.replace(base.maml, **{k: v for k, v in saved.get("maml", {}).items()})
    cfg = dataclasses.replace(base, maml=maml, data=args.data or base.data)
    ds = load_source(cfg.data, split="test", channels=cfg.channels, steps=cfg.steps)
    steps = sorted({args.inner_steps or cfg.maml.inner_steps, 1})
    rows = list(evaluate_steps(ck, ds, cfg, tasks=args.tasks, devices=args.devices, steps=steps, rule=args.rule).items())
    print(f"deployable integer network, {cfg.n_way}-way {cfg.k_shot}-shot, {args.tasks} tasks, "
          f"{'the integer learning rule' if args.rule == 'integer' else 'the float inner step'}"
          + (f", {args.devices} sampled devices" if args.devices else ""))
    print(f"{'inner steps':>12} {'seen':>16} {'unseen':>16}")
    for k, r in rows:
        print(f"{k:>12} {100 * r['seen_mean']:7.2f} +- {100 * r['seen_std']:5.2f} "
              f"{100 * r['unseen_mean']:7.2f} +- {100 * r['unseen_std']:5.2f}")
    return 0


def cmd_experiment(args) -> int:
    import shlex

    from .model.experiment import run_experiment
    base = _train_config(argparse.Namespace(**{**vars(args), "rram": None, "layout": None}))
    command = "neuromosaic " + shlex.join(args.argv)
    r = run_experiment(base, args.out, rram=args.rram, layout=args.layout, tasks=args.tasks, devices=args.devices,
                       variants=args.variants, command=command)
    table = (Path(args.out) / "table.md").read_text()
    print(table)
    if args.docs:
        doc = Path(args.docs)
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(f"# Few-shot accuracy as the hardware constraints are added ({base.data})\n\n"
                       "Written by `neuromosaic experiment`; see `model/experiment.py` for what each variant is and\n"
                       "`docs/meta-learning.md` for why one inner step works (and a second seed).\n\n"
                       + table)
        print(f"wrote {doc}")
    a = r.get("acceptance")
    return 0 if a is None or (a["at_least_60_percent"] and a["within_5_points"] and a["ten_steps_beat_one"]) else 1


def cmd_route(args) -> int:
    """Compiles a checkpoint's recurrent connectivity into the Mosaic routers' tables and prints the
    routing report; a connectivity the routers cannot carry is one sentence and exit status 1."""
    from .model.checkpoint import load_checkpoint
    from .model.router import compile_routes, destination_tiles, routing_report

    ck = load_checkpoint(args.checkpoint)
    mesh = _mesh(args, ck, ck.config.neurons, dense=False)
    rows, cols = mesh.rows, mesh.cols
    tables = compile_routes(mesh, destination_tiles(ck.w_rec, mesh))
    report = routing_report(tables)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"Mosaic {rows}x{cols}: {mesh.neurons_per_tile} neurons per tile, {report['routers']} routers, "
          f"{report['routed_sources']} of {mesh.sources} neurons send to other tiles")
    print("tile destinations per hop count: " + ", ".join(f"{h} hops: {n}" for h, n in
                                                        report["tile_destinations_per_hop"].items())
          + f" (mean {report['mean_hops']:.2f})")
    busiest = sorted(report["ports"], key=lambda p: -p["sources"])[:5]
    print("busiest ports (distinct sources / capacity): " + ", ".join(
        f"{p['node']} {tuple(p['cell'])} {p['port']} {p['sources']}/{p['capacity']}" for p in busiest))
    mem = report["router_memory"]
    print(f"router tables: {mem['table_bits_total']} bits in all, at most {mem['table_bits_per_router_max']} per "
          f"router, {mem['table_entries_used']} entries used; FIFOs at most {mem['fifo_bits_per_router_max']} "
          f"bits per router")
    return 0


def cmd_demo(args) -> int:
    from .demo import demo
    if args.sim not in ("icarus", "verilator"):
        raise UsageError(f"--sim {args.sim} is unknown; allowed: icarus, verilator.")
    return demo(out=args.out, data=args.data, iterations=args.iterations, build=not args.no_build, sim=args.sim)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neuromosaic", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verilog", help="write the Verilog of a core")
    v.add_argument("design", choices=["lif", "learning", "mosaic"],
                   help="lif: the LIF core; learning: LIF core + recurrence + learning engine (LearningCore); "
                        "mosaic: the network on a grid of neuron tiles and routers, one readout and learning engine")
    v.add_argument("-o", "--output", required=True, help="Verilog file to write")
    v.add_argument("--name", default=None, help="top module name (default lif_core, learning_core or learning_engine)")
    v.add_argument("--weights", help="lif: initial weights, [neurons, inputs] integers (.npy or JSON); "
                                     "default: empty, loaded through the weight port")
    v.add_argument("--engine", action="store_true", help="learning: the learning engine alone (hidden spikes in)")
    _add_config_options(v)
    _add_network_options(v)
    _add_mesh_options(v)
    v.set_defaults(func=cmd_verilog)

    c = sub.add_parser("cosim", help="cosimulate a core against the golden model (cocotb)")
    c.add_argument("design", choices=["lif", "learning", "mosaic", "board"],
                   help="lif: random and corner scenarios; learning: random few-shot episodes; mosaic: few-shot "
                        "episodes on the tiled network (random, or a --checkpoint's tasks); board: the board top "
                        "driven through its UART pins by the host driver")
    c.add_argument("--mosaic", action="store_true", help="board: the chip is a Mosaic (--grid), not one LearningCore")
    c.add_argument("--malformed", action="store_true",
                   help="board: then send corrupt, truncated and unknown frames; each must be refused, none executed")
    c.add_argument("--buffer-bytes", type=int, default=64, help="board: the link's frame buffer (default 64)")
    c.add_argument("--sim", choices=["verilator", "icarus", "both"], default="verilator")
    c.add_argument("--seeds", type=int, default=4, help="random scenarios (default 4)")
    c.add_argument("--steps", type=int, default=50, help="timesteps per random scenario (default 50)")
    c.add_argument("--waves", action="store_true", help="dump waveforms (FST) into the build folder")
    c.add_argument("--episodes", type=int, default=20, help="learning: random episodes (default 20)")
    c.add_argument("--first-seed", type=int, default=0, help="learning: seed of the first episode")
    c.add_argument("--engine", action="store_true", help="learning: the engine alone, driven with hidden spikes")
    c.add_argument("--shots", type=int, default=2, help="mosaic with --checkpoint: support samples per task (default 2)")
    c.add_argument("--queries", type=int, default=2, help="mosaic with --checkpoint: query samples per task (default 2)")
    c.add_argument("--fault", choices=sorted(set(FAULTS) | set(LEARNING_FAULTS) | set(MOSAIC_FAULTS)),
                   help="check against a deliberately wrong model, or (mosaic) build wrong routing tables: the run "
                        f"must fail (lif: {', '.join(sorted(FAULTS))}; learning: {', '.join(sorted(LEARNING_FAULTS))}; "
                        f"mosaic: {', '.join(MOSAIC_FAULTS)})")
    c.add_argument("--idle", type=float, default=0.2, help="probability of an idle input cycle")
    c.add_argument("--backpressure", type=float, default=0.3, help="probability of a not-ready output cycle")
    c.add_argument("--rng-seed", type=int, default=0, help="seed of the idle/backpressure pattern")
    _add_config_options(c)
    _add_network_options(c)
    _add_mesh_options(c)
    c.set_defaults(func=cmd_cosim)

    f = sub.add_parser("fpga", help="FPGA flow")
    fsub = f.add_subparsers(dest="fpga_command", required=True)
    fb = fsub.add_parser("build", help="synthesise, place and route; write the bitstream and a JSON report")
    fb.add_argument("design", nargs="?", choices=["chip", "lif"], default="chip",
                    help="chip (default): the board top, the chip behind its UART host link; lif: the LIF core's "
                         "self-test")
    fb.add_argument("--out", default="build/fpga", help="output folder (default build/fpga)")
    fr = fsub.add_parser("run", help="run few-shot episodes on a board through its serial port, checked bit for bit "
                                     "against the golden model")
    fr.add_argument("--port", required=True, help="serial device of the board (e.g. /dev/ttyUSB1)")
    fr.add_argument("--tasks", type=int, default=1, help="episodes (default 1)")
    fr.add_argument("--shots", type=int, default=5, help="checkpoint tasks: support samples (default 5)")
    fr.add_argument("--queries", type=int, default=5, help="checkpoint tasks: query samples (default 5)")
    fr.add_argument("--timeout", type=float, default=2.0, help="seconds to wait for each reply (default 2)")
    for q in (fb, fr):
        q.add_argument("--board", choices=sorted(BOARDS), default="icebreaker")
        q.add_argument("--grid", default=None, help="ulx3s-85f: Mosaic tiles RxC (default: the checkpoint's "
                                                    "layout, else 4x4)")
        q.add_argument("--baud", type=int, default=1_000_000, help="UART baud rate (default 1000000)")
        _add_config_options(q)
        g = q.add_argument_group("chip design: the network (default: the board's, see docs/fpga.md)")
        g.add_argument("--network", choices=sorted(NETWORKS), default=None, help="a named network")
        g.add_argument("--checkpoint", default=None, help="a trained network's checkpoint folder (its config)")
        g.add_argument("--set", action="append", default=[], metavar="FIELD=V", help="change a field of the network")
        g.add_argument("--learning-set", action="append", default=[], metavar="FIELD=V",
                       help="change a field of the learning rule")
    fb.set_defaults(func=cmd_fpga_build)
    fr.set_defaults(func=cmd_fpga_run)

    data = sub.add_parser("data", help="spiking datasets: inspect, plot, encode")
    dsub = data.add_subparsers(dest="data_command", required=True)
    for name, func, helptext in (("inspect", cmd_data_inspect, "counts per class and speaker, spike statistics"),
                                 ("raster", cmd_data_raster, "raster plot of one sample as PNG"),
                                 ("encode", cmd_data_encode, "encode FSDD through the cochlea model into the cache")):
        dp = dsub.add_parser(name, help=helptext)
        dp.add_argument("source", help="shd:DIR, fsdd:DIR or synthetic")
        dp.add_argument("--split", choices=["train", "test"], default="train", help="SHD file to read")
        dp.add_argument("--channels", type=int, default=None,
                        help="SHD: strided reduction to this many channels; FSDD: cochlea channels (default 64)")
        dp.add_argument("--steps", type=int, default=100, help="time bins (default 100)")
        if name == "raster":
            dp.add_argument("--index", type=int, default=0, help="sample index")
            dp.add_argument("-o", "--output", required=True, help="PNG file to write")
        dp.set_defaults(func=func)

    b = sub.add_parser("bench", help="benchmarks that print JSON figures")
    b.add_argument("design", choices=["lif", "learning", "memory", "data", "train", "router", "fpga"])
    b.add_argument("--quick", action="store_true", help="smaller runs (for a smoke test)")
    b.add_argument("--out", default="build/bench", help="where the JSON is also written")
    b.add_argument("--fsdd", default=None, help="bench data and learning: the FSDD folder (default ../shared/data/fsdd)")
    b.add_argument("--checkpoint", default=None, help="bench router: a trained network (default: one trained on the "
                                                       "built-in data with the 4x4 layout)")
    b.set_defaults(func=cmd_bench)

    t = sub.add_parser("train", help="meta-train the SRNN with the hardware in the loop")
    t.add_argument("--data", default=None, help="synthetic (default), fsdd:DIR or shd:DIR")
    t.add_argument("--preset", choices=["synthetic", "seed000"], default="synthetic")
    t.add_argument("--rram", default=None, help="device preset for noise injection (ideal, mosaic, "
                                                "reram-wan2022, pcm-nandakumar)")
    t.add_argument("--layout", default=None, help="Mosaic neuron tiles RxC (layout penalty and pruning)")
    t.add_argument("--inner-steps", type=int, default=None)
    t.add_argument("--inner-lr", type=float, default=None, help="inner rate (initial value when learned)")
    t.add_argument("--fixed-inner-lr", action="store_true", help="do not meta-learn the inner rate")
    t.add_argument("--readout-init", choices=["zero", "learned"], default=None,
                   help="readout at the start of a task: zero (default) or MAML's learned init")
    t.add_argument("--rate-lambda", type=float, default=None, help="weight of the per-sample firing-rate term")
    t.add_argument("--iterations", type=int, default=None)
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--out", required=True, help="folder for the checkpoint, metrics.jsonl and curves.png")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="seen / unseen accuracy of a checkpoint's integer network")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", default=None, help="data source (default: the one it was trained on)")
    e.add_argument("--inner-steps", type=int, default=None)
    e.add_argument("--devices", type=int, default=0, help="sampled RRAM devices (mean and spread)")
    e.add_argument("--tasks", type=int, default=50)
    e.add_argument("--rule", choices=["float", "integer"], default="float",
                   help="adapt the readout by the float inner step (default) or the chip's integer rule")
    e.set_defaults(func=cmd_eval)

    x = sub.add_parser("experiment", help="seed 000's experiment: seen / unseen accuracy of (a) float ideal "
                                          "MAML, (b) the integer network, (c) + RRAM noise, (d) + Mosaic layout")
    x.add_argument("--data", default=None, help="synthetic (default), fsdd:DIR or shd:DIR")
    x.add_argument("--preset", choices=["synthetic", "seed000"], default="synthetic")
    x.add_argument("--rram", default="mosaic", help="device preset of (c) and (d) (default mosaic)")
    x.add_argument("--layout", default="4x4", help="Mosaic neuron tiles RxC of (d) (default 4x4)")
    x.add_argument("--iterations", type=int, default=None)
    x.add_argument("--seed", type=int, default=None)
    x.add_argument("--tasks", type=int, default=50, help="meta-test tasks (default 50)")
    x.add_argument("--devices", type=int, default=10, help="sampled RRAM devices for (c) and (d) (default 10)")
    x.add_argument("--variants", default="abcd", help="which of a, b, c, d to run (default all)")
    x.add_argument("--docs", default=None, help="also write the table to this markdown file")
    x.add_argument("--out", required=True, help="folder for the four checkpoints, results.json and table.md")
    x.set_defaults(func=cmd_experiment, inner_steps=None)

    en = sub.add_parser("energy", help="forward / backward / update energy of a layer per synapse memory "
                                       "organisation (seed 001's model)")
    en.add_argument("--layer", help="fc:INxOUT (e.g. fc:784x128) or conv:HxWxCINxCOUTkK (e.g. conv:28x28x32x32k3)")
    en.add_argument("--encoding", help="dense (Crossbar), bitmap (PB-BMP), csr (PB-CSR), func-pure, func-bmp, "
                                       "func-rowcol (conv layers only)")
    en.add_argument("--density", type=float, default=1.0, help="fraction of synapses present (default 1)")
    en.add_argument("--bits", type=int, default=8, help="weight bits (default 8)")
    en.add_argument("--schedule", choices=["event", "sweep"], default="event",
                    help="backward/update: a transposed access per error (event, default) or one pass over "
                         "the stored synapses (sweep)")
    en.add_argument("--seed", type=int, default=0, help="seed of the random sparsity pattern")
    en.add_argument("--plot", help="PNG: energy vs density of every organisation of this layer")
    en.add_argument("--json", action="store_true", help="print one JSON object")
    en.add_argument("--paper", action="store_true", help="our ratios beside seed 001's (the docs table)")
    en.add_argument("--plot-dir", help="with --paper: write the density and bit sweeps' plots here")
    en.set_defaults(func=cmd_energy)

    rt = sub.add_parser("retention", help="seed 001's experiment: a 2-layer SNN retains a spike pattern "
                                          "(van Rossum) against its training energy per organisation")
    rt.add_argument("--densities", default="0.1,0.25,0.5,1.0", help="weight densities (default 0.1,0.25,0.5,1.0)")
    rt.add_argument("--iterations", type=int, default=200, help="training iterations (default 200)")
    rt.add_argument("--bits", type=int, default=8, help="weight bits (default 8)")
    rt.add_argument("--seed", type=int, default=0)
    rt.add_argument("--plot", help="PNG: retention error vs energy, and the learning curves")
    rt.add_argument("--json", action="store_true", help="print one JSON object")
    rt.set_defaults(func=cmd_retention)

    r = sub.add_parser("route", help="compile a checkpoint's connectivity into Mosaic routing tables; print "
                                     "the routing report")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_mesh_options(r)
    r.set_defaults(func=cmd_route)

    d = sub.add_parser("demo", help="the whole flow: meta-train, integer network, Verilog, a few-shot episode on "
                                    "the RTL through the UART host driver (bit-exact), iCE40 bitstream, summary")
    d.add_argument("--out", default="build/demo")
    d.add_argument("--data", default="synthetic", help="synthetic (default, built in), fsdd:DIR or shd:DIR")
    d.add_argument("--iterations", type=int, default=None, help="meta-training iterations (default 150)")
    d.add_argument("--sim", default="icarus", help="simulator of the episode: icarus (default) or verilator")
    d.add_argument("--no-build", action="store_true", help="skip the bitstream")
    d.set_defaults(func=cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    for name in ("seeds", "steps"):
        if getattr(args, name, 1) < 1:
            print(f"neuromosaic: error: --{name}={getattr(args, name)} is not allowed; use 1 or more.",
                  file=sys.stderr)
            return 2
    for name in ("idle", "backpressure"):
        v = getattr(args, name, 0.0)
        if not 0.0 <= v < 1.0:
            print(f"neuromosaic: error: --{name}={v} is not allowed; use a probability in [0, 1).", file=sys.stderr)
            return 2
    try:
        return args.func(args)
    except (ConfigError, UsageError, DataError) as e:
        print(f"neuromosaic: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
