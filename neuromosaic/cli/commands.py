"""The verbs that are not about one design: training and evaluation, datasets, the energy and retention
experiments, routing reports, benchmarks and the demo. Each has ``add_<verb>_arguments`` for its flags
and ``cmd_<verb>`` to run it; the heavy imports happen inside."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from .nir import add_nir_arguments
from .options import UsageError, add_mesh_options, add_protocol_arguments, print_json, protocol_changes
from .options import mesh as mesh_of

__all__ = ["COMMANDS"]


# bench name -> (module of ``bench/``, its function, the flags it takes besides quick and out)
BENCHES = {
    "lif": ("lif", "bench_lif", ()),
    "cosim": ("cosim", "bench_cosim", ()),
    "learning": ("learning", "bench_learning", ("fsdd",)),
    "memory": ("memory", "bench_memory", ()),
    "data": ("data", "bench_data", ("fsdd",)),
    "train": ("train", "bench_train", ()),
    "router": ("router", "bench_router", ("checkpoint",)),
    "fpga": ("fpga", "bench_fpga", ("fsdd",)),
}


def cmd_bench(args) -> int:
    import importlib
    module, function, flags = BENCHES[args.design]
    bench = getattr(importlib.import_module(f"..bench.{module}", __package__), function)
    print_json(bench(quick=args.quick, out=args.out, **{k: getattr(args, k) for k in flags}))
    return 0


def _energy_table(r: dict) -> str:
    mems = ", ".join(f"{m['name']} {m['depth']:,} x {m['width']} bit ({m['read_pj']:.2f} pJ a read)"
                     for m in r["memories"])
    lines = [f"layer {r['layer']}, {r['label']} ({r['organisation']}), density {r['density']}, "
             f"{r['bits']}-bit weights, "
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
    from ..model.energy import SCHEDULES, energy_sweep, layer_energy, paper_comparison, parse_layer
    from ..plots import energy_png
    if args.paper:
        rows = paper_comparison()
        if args.json:
            print_json(rows)
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
        print_json(r)
    else:
        print(_energy_table(r))
    if args.plot:
        rows = energy_sweep(layer, DENSITIES, (args.bits,), schedule=args.schedule, seed=args.seed)
        path = energy_png({args.schedule: rows}, args.plot, highlight=r["label"],
                          title=f"{layer}, {args.bits}-bit weights")
        print(f"plot: {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_retention(args) -> int:
    from ..model.retention import RetentionConfig, retention_experiment
    from ..plots import retention_png
    try:
        densities = tuple(float(d) for d in args.densities.split(","))
    except ValueError:
        raise UsageError(f"--densities {args.densities!r} is not a comma-separated list of numbers.") from None
    cfg = RetentionConfig(iterations=args.iterations, weight_bits=args.bits, seed=args.seed)
    result = retention_experiment(cfg, densities, progress=lambda m: print(m, file=sys.stderr, flush=True))
    if args.json:
        print_json(result)
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
    from ..model.data import load_source
    return load_source(args.source, split=args.split, channels=args.channels, steps=args.steps)


def cmd_data_inspect(args) -> int:
    print_json(_dataset(args).summary())
    return 0


def cmd_data_raster(args) -> int:
    from ..plots import raster_png
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


# TrainConfig's shape fields and the flags that set them
_SHAPE_FLAGS = (("channels", "channels"), ("neurons", "neurons"), ("steps", "steps"), ("n_way", "ways"),
                ("k_shot", "shots"), ("k_query", "queries"), ("meta_batch", "meta_batch"))


def _train_config(args):
    from ..model.train import PRESETS as TRAIN_PRESETS
    base = TRAIN_PRESETS[args.preset]
    maml_changes = {k: v for k, v in (("inner_steps", args.inner_steps), ("inner_lr", getattr(args, "inner_lr", None)),
                                      ("readout_init", getattr(args, "readout_init", None)),
                                      ("rate_lambda", getattr(args, "rate_lambda", None))) if v is not None}
    if getattr(args, "fixed_inner_lr", False):
        maml_changes["learn_inner_lr"] = False
    if getattr(args, "rate_schedule", False):
        if getattr(args, "fixed_inner_lr", False):
            raise UsageError("--rate-schedule meta-learns one rate per step; it cannot be combined with "
                             "--fixed-inner-lr.")
        maml_changes["rate_schedule"] = True
    maml = dataclasses.replace(base.maml, **maml_changes)
    changes = {k: v for k, v in (("data", args.data), ("rram", args.rram), ("layout", args.layout),
                                 *protocol_changes(args).items(),
                                 ("iterations", getattr(args, "iterations", None)),
                                 ("seed", getattr(args, "seed", None)),
                                 *((field, getattr(args, flag, None)) for field, flag in _SHAPE_FLAGS))
               if v is not None}
    return dataclasses.replace(base, maml=maml, **changes)


def cmd_train(args) -> int:
    from ..model.train import init_distributed_from_env, train
    init_distributed_from_env()          # under torchrun: one rank per process
    cfg = _train_config(args)
    s = train(cfg, args.out)
    print(f"trained {s['iterations']} iterations in {s['train_s']} s; checkpoint, metrics.jsonl and curves.png in "
          f"{args.out}")
    print_json(s["final"])
    return 0


def cmd_eval(args) -> int:
    from ..model.checkpoint import load_checkpoint
    from ..model.data import load_source
    from ..model.train import TrainConfig, evaluate_steps
    ck = load_checkpoint(args.checkpoint)
    saved = ck.metadata.get("train", {})
    base = TrainConfig(**{k: v for k, v in saved.items() if k != "maml"})
    maml = dataclasses.replace(base.maml, **{k: v for k, v in saved.get("maml", {}).items()})
    cfg = dataclasses.replace(base, maml=maml, data=args.data or base.data)
    ds = load_source(cfg.data, split="test", channels=cfg.channels, steps=cfg.steps)
    steps = sorted({args.inner_steps or cfg.maml.inner_steps, 1})
    rows = list(evaluate_steps(ck, ds, cfg, tasks=args.tasks, devices=args.devices, steps=steps,
                               rule=args.rule).items())
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

    from ..model.experiment import run_experiment
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


def _mutation_target(args):
    """The design of ``mutate`` with its regression, and a line that describes them. The core flags
    and ``--steps`` belong to the LIF core; given for another design they are refused."""
    from ..cosim.board import MUTATION_NOISE, link_mutation_target
    from ..cosim.learning import MUTATION_NETWORK, MUTATION_RULE, learning_mutation_target
    from ..cosim.lif import lif_mutation_target
    from ..cosim.router import MUTATION_PATTERNS, mesh_mutation_target, router_mutation_target
    from ..cosim.synapse import MUTATION_IDLE, synapse_mutation_target
    from .options import core_changes, core_config
    steps = 50 if args.steps is None else args.steps
    if args.organisation is not None and args.design != "synapse":
        raise UsageError(f"--organisation names the memory of mutate synapse; mutate {args.design} has no "
                         "synapse memory to choose.")
    if args.design == "lif":
        config = core_config(args)
        return (lif_mutation_target(config, seeds=args.seeds, steps=steps),
                {"config": config.to_dict(), "regression": {"seeds": args.seeds, "steps": steps}},
                f"the LIF core ({config.neurons} neurons, {config.inputs} inputs, {config.lanes} lanes), each against "
                f"{args.seeds} random scenarios of {steps} steps and the corner cases")
    given = [f"--{k.replace('_', '-')}" for k in core_changes(args)] + ["--preset"] * (args.preset != "small") \
        + ["--steps"] * (args.steps is not None)
    if given:
        raise UsageError(f"{', '.join(given)} set the LIF core's regression; mutate {args.design} takes "
                         f"--seeds, --mutants, --seed, --sim, --jobs, --depth and --out.")
    patterns = len(MUTATION_PATTERNS)
    if args.design == "synapse":
        target = synapse_mutation_target(args.organisation or "dense", seeds=args.seeds)
        organisation = target.name.removeprefix("synapse-")
        return (target, {"organisation": organisation, "regression": {"command_sequences": args.seeds,
                                                                       "idle_rates": list(MUTATION_IDLE)}},
                f"the {organisation} synapse memory, each against {args.seeds} command sequences under "
                f"{len(MUTATION_IDLE)} idle rates")
    if args.design == "learning":
        config, rule = MUTATION_NETWORK, MUTATION_RULE
        return (learning_mutation_target(config, rule, seeds=args.seeds),
                {"config": config.to_dict(), "learning": dataclasses.asdict(rule),
                 "regression": {"episode_sets": args.seeds, "episodes": 3, "patterns": patterns}},
                f"the learning engine ({config.neurons} hidden neurons, {config.outputs} outputs), each against "
                f"{args.seeds} sets of 3 random episodes under {patterns} stream patterns")
    if args.design == "router":
        return (router_mutation_target(seeds=args.seeds), {"regression": {"tables": args.seeds,
                                                                          "patterns": patterns}},
                f"a router (4 in-ports, 4 out-ports, 16 sources, tables written through its table port), each "
                f"against {args.seeds} random tables and their traffic under {patterns} stream patterns")
    if args.design == "link":
        regression = {"episodes": args.seeds, "noise": MUTATION_NOISE}
        return (link_mutation_target(seeds=args.seeds), {"regression": regression},
                f"the host link of a board top (8 channels, 8 neurons, 3 outputs), each against {args.seeds} "
                f"episodes on a clean line with the malformed frames, then on a line with bit errors at "
                f"{MUTATION_NOISE['ber']:g}")
    return (mesh_mutation_target(seeds=args.seeds), {"regression": {"connectivities": args.seeds,
                                                                    "patterns": patterns}},
            f"the 2x2 mesh fabric (4 neurons a tile, tables written through its table port), each against "
            f"{args.seeds} connectivities and their spikes under {patterns} stream patterns")


def cmd_mutate(args) -> int:
    """Mutation testing of a design's RTL against its regression; prints the JSON report and writes it
    to ``--out``/<target>.json (the design; a synapse memory with its organisation: synapse-csr.json).
    Exit status 1, with one FAIL line, when there is no score to give (the
    unmutated design fails its own regression)."""
    from ..cosim.mutation import score
    from ..cosim.runner import CosimError
    from ..model.checkpoint import atomic_write
    out = Path(args.out)
    target, described, line = _mutation_target(args)
    print(f"mutate {args.design}: {args.mutants} mutants of {line} on {args.sim}, seed {args.seed}",
          file=sys.stderr, flush=True)

    def progress(done, total, killed):
        print(f"  {done}/{total} mutants run, {killed} killed", file=sys.stderr, flush=True)

    def survivor_progress(done, total):
        print(f"  {done}/{total} survivors checked for equivalence", file=sys.stderr, flush=True)
    try:
        report = score(target, sim=args.sim, mutants=args.mutants, seed=args.seed, jobs=args.jobs or 1,
                       folder=out / f"{target.name}-netlist", depth=args.depth, progress=progress,
                       survivor_progress=survivor_progress)
    except CosimError as e:             # the unmutated design failed, or Yosys did: no score to give
        print(f"FAIL {e}")
        return 1
    report = {"design": args.design, **described, **report}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{target.name}.json", json.dumps(report, indent=2).encode())
    print_json({k: v for k, v in report.items() if k != "kills"})
    return 0


def cmd_route(args) -> int:
    """Compiles a checkpoint's recurrent connectivity into the Mosaic routers' tables and prints the
    routing report; a connectivity the routers cannot carry is one sentence and exit status 1."""
    from ..model.checkpoint import load_checkpoint
    from ..model.router import compile_routes, destination_tiles, routing_report

    ck = load_checkpoint(args.checkpoint)
    mesh = mesh_of(args, ck, ck.config.neurons, dense=False)
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
    from ..demo import demo
    if args.sim not in ("icarus", "verilator"):
        raise UsageError(f"--sim {args.sim} is unknown; allowed: icarus, verilator.")
    return demo(out=args.out, data=args.data, iterations=args.iterations, build=not args.no_build, sim=args.sim)


# -- the commands' flags --------------------------------------------------------------------------
def add_data_arguments(p: argparse.ArgumentParser) -> None:
    dsub = p.add_subparsers(dest="data_command", required=True)
    for name, func, helptext in (("inspect", cmd_data_inspect, "counts per class and speaker, spike statistics"),
                                 ("raster", cmd_data_raster, "raster plot of one sample as PNG"),
                                 ("encode", cmd_data_encode, "encode FSDD through the cochlea model into the cache")):
        dp = dsub.add_parser(name, help=helptext)
        dp.add_argument("source", help="shd:DIR, fsdd:DIR, events:FILE or synthetic")
        dp.add_argument("--split", choices=["train", "test"], default="train", help="SHD file to read")
        dp.add_argument("--channels", type=int, default=None,
                        help="SHD: strided reduction to this many channels; FSDD: cochlea channels (default 64)")
        dp.add_argument("--steps", type=int, default=100, help="time bins (default 100)")
        if name == "raster":
            dp.add_argument("--index", type=int, default=0, help="sample index")
            dp.add_argument("-o", "--output", required=True, help="PNG file to write")
        dp.set_defaults(func=func)


def add_bench_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("design", choices=list(BENCHES))
    p.add_argument("--quick", action="store_true", help="smaller runs (for a smoke test)")
    p.add_argument("--out", default="build/bench", help="where the JSON is also written")
    p.add_argument("--fsdd", default=None, help="bench data, learning and fpga: the FSDD folder (default "
                                                "../shared/data/fsdd)")
    p.add_argument("--checkpoint", default=None, help="bench router: a trained network (default: one trained on the "
                                                      "built-in data with the 4x4 layout)")
    p.set_defaults(func=cmd_bench)


def _add_training_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None, help="synthetic (default), fsdd:DIR, shd:DIR or events:FILE")
    add_protocol_arguments(p)
    p.add_argument("--preset", choices=["synthetic", "seed000"], default="synthetic")
    p.add_argument("--iterations", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    g = p.add_argument_group("network and task shape (defaults from --preset)")
    for flag, what in (("channels", "input channels"), ("neurons", "recurrent LIF neurons"),
                       ("steps", "time bins per sample"), ("ways", "classes per task"),
                       ("shots", "support samples per class"), ("queries", "query samples per class"),
                       ("meta-batch", "tasks per meta-training iteration")):
        g.add_argument(f"--{flag}", type=int, default=None, metavar="N", help=what)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    _add_training_arguments(p)
    p.add_argument("--rram", default=None, help="device preset for noise injection (ideal, mosaic, "
                                                "reram-wan2022, pcm-nandakumar)")
    p.add_argument("--layout", default=None, help="Mosaic neuron tiles RxC (layout penalty and pruning)")
    p.add_argument("--inner-steps", type=int, default=None)
    p.add_argument("--inner-lr", type=float, default=None, help="inner rate (initial value when learned)")
    p.add_argument("--fixed-inner-lr", action="store_true", help="do not meta-learn the inner rate")
    p.add_argument("--rate-schedule", action="store_true",
                   help="meta-learn one inner rate per inner step (the host programs each before its update)")
    p.add_argument("--readout-init", choices=["zero", "learned"], default=None,
                   help="readout at the start of a task: zero (default) or MAML's learned init")
    p.add_argument("--rate-lambda", type=float, default=None, help="weight of the per-sample firing-rate term")
    p.add_argument("--out", required=True, help="folder for the checkpoint, metrics.jsonl and curves.png")
    p.set_defaults(func=cmd_train)


def add_eval_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", default=None, help="data source (default: the one it was trained on)")
    p.add_argument("--inner-steps", type=int, default=None)
    p.add_argument("--devices", type=int, default=0, help="sampled RRAM devices (mean and spread)")
    p.add_argument("--tasks", type=int, default=50)
    p.add_argument("--rule", choices=["float", "integer"], default="float",
                   help="adapt the readout by the float inner step (default) or the chip's integer rule")
    p.set_defaults(func=cmd_eval)


def add_experiment_arguments(p: argparse.ArgumentParser) -> None:
    _add_training_arguments(p)
    p.add_argument("--rram", default="mosaic", help="device preset of (c) and (d) (default mosaic)")
    p.add_argument("--layout", default="4x4", help="Mosaic neuron tiles RxC of (d) (default 4x4)")
    p.add_argument("--tasks", type=int, default=50, help="meta-test tasks (default 50)")
    p.add_argument("--devices", type=int, default=10, help="sampled RRAM devices for (c) and (d) (default 10)")
    p.add_argument("--variants", default="abcd", help="which of a, b, c, d to run (default all)")
    p.add_argument("--docs", default=None, help="also write the table to this markdown file")
    p.add_argument("--out", required=True, help="folder for the four checkpoints, results.json and table.md")
    p.set_defaults(func=cmd_experiment, inner_steps=None)


def add_energy_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layer", help="fc:INxOUT (e.g. fc:784x128) or conv:HxWxCINxCOUTkK (e.g. conv:28x28x32x32k3)")
    p.add_argument("--encoding", help="dense (Crossbar), bitmap (PB-BMP), csr (PB-CSR), func-pure, func-bmp, "
                                      "func-rowcol (conv layers only)")
    p.add_argument("--density", type=float, default=1.0, help="fraction of synapses present (default 1)")
    p.add_argument("--bits", type=int, default=8, help="weight bits (default 8)")
    p.add_argument("--schedule", choices=["event", "sweep"], default="event",
                   help="backward/update: a transposed access per error (event, default) or one pass over "
                        "the stored synapses (sweep)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random sparsity pattern")
    p.add_argument("--plot", help="PNG: energy vs density of every organisation of this layer")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--paper", action="store_true", help="our ratios beside seed 001's (the docs table)")
    p.add_argument("--plot-dir", help="with --paper: write the density and bit sweeps' plots here")
    p.set_defaults(func=cmd_energy)


def add_retention_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--densities", default="0.1,0.25,0.5,1.0", help="weight densities (default 0.1,0.25,0.5,1.0)")
    p.add_argument("--iterations", type=int, default=200, help="training iterations (default 200)")
    p.add_argument("--bits", type=int, default=8, help="weight bits (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", help="PNG: retention error vs energy, and the learning curves")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_retention)


def add_route_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_mesh_options(p)
    p.set_defaults(func=cmd_route)


def add_mutate_arguments(p: argparse.ArgumentParser) -> None:
    from ..cosim.mutation import EQUIVALENCE_DEPTH
    from ..model.synapse import ORGANISATIONS
    from .options import add_core_options
    p.add_argument("design", choices=["lif", "synapse", "learning", "router", "mesh", "link"],
                   help="the design whose RTL is mutated")
    p.add_argument("--organisation", choices=list(ORGANISATIONS), default=None,
                   help="the synapse memory's organisation (synapse only; default dense)")
    p.add_argument("--mutants", type=int, default=200, help="mutants sampled (default 200)")
    p.add_argument("--seed", type=int, default=1, help="seed of the sampling (default 1)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator", help="the simulator (default "
                   "verilator)")
    p.add_argument("--jobs", type=int, default=None, help="simulator processes at once (default 1)")
    p.add_argument("--seeds", type=int, default=4, help="random scenarios (lif), command sequences (synapse), sets of "
                   "episodes (learning), tables (router) or connectivities (mesh) with their traffic, or episodes "
                   "on each line (link) of the regression (default 4)")
    p.add_argument("--steps", type=int, default=None, help="timesteps per scenario of the LIF core (default 50)")
    p.add_argument("--depth", type=int, default=EQUIVALENCE_DEPTH, help="cycles from reset the equivalence "
                   f"check of a survivor looks at (default {EQUIVALENCE_DEPTH})")
    p.add_argument("--out", default="build/mutate", help="folder of the JSON report and the mutant netlist")
    add_core_options(p, default_preset="small")
    p.set_defaults(func=cmd_mutate)


def add_soak_arguments(p: argparse.ArgumentParser) -> None:
    from ..cosim.soak import SOAK_DESIGNS
    p.add_argument("design", choices=list(SOAK_DESIGNS), help="the design whose cosimulation is soaked")
    p.add_argument("--cycles", type=int, required=True, help="clock cycles to check in all (e.g. 100000000)")
    p.add_argument("--seeds", type=int, default=20, help="rounds at least, each from its own seed (default 20)")
    p.add_argument("--first-seed", type=int, default=0, help="the first round's seed (default 0)")
    p.add_argument("--sim", choices=["verilator", "icarus"], default="verilator", help="the simulator (default "
                   "verilator)")
    p.add_argument("--out", default="build/soak", help="folder of the JSON report (<design>.json)")
    p.set_defaults(func=cmd_soak)


def cmd_soak(args) -> int:
    """Soaks a design (``cosim.soak``): rounds from successive seeds until ``--cycles`` are checked;
    prints the JSON report and writes it to ``--out``/<design>.json. Exit status 1, with one FAIL line
    naming the seed, when a round fails."""
    from ..cosim.soak import soak
    from ..model.checkpoint import atomic_write
    out = Path(args.out)
    print(f"soak {args.design} on {args.sim}: {args.cycles:,} cycles over at least {args.seeds} seeds from seed "
          f"{args.first_seed}", file=sys.stderr, flush=True)

    def progress(report):
        r = report["rounds"][-1]
        print(f"  seed {r['seed']}: {r['cycles']:,} cycles; {report['cycles']:,} of {args.cycles:,} in "
              f"{report['wall_s']:.0f} s", file=sys.stderr, flush=True)
    report = soak(args.design, sim=args.sim, cycles=args.cycles, seeds=args.seeds, first_seed=args.first_seed,
                  progress=progress)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / f"{args.design}.json", json.dumps(report, indent=2).encode())
    print_json({k: v for k, v in report.items() if k != "rounds"})
    failure = report["failure"]
    if failure:
        print(f"FAIL seed {failure['seed']}: {failure['error']} (again: neuromosaic soak {args.design} --first-seed "
              f"{failure['seed']} --seeds 1 --cycles 1)")
        return 1
    return 0


def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="build/demo")
    p.add_argument("--data", default="synthetic", help="synthetic (default, built in), fsdd:DIR or shd:DIR")
    p.add_argument("--iterations", type=int, default=None, help="meta-training iterations (default 150)")
    p.add_argument("--sim", default="icarus", help="simulator of the episode: icarus (default) or verilator")
    p.add_argument("--no-build", action="store_true", help="skip the bitstream")
    p.set_defaults(func=cmd_demo)


# name -> (help, the function that adds its flags)
COMMANDS = {
    "train": ("meta-train the SRNN with the hardware in the loop", add_train_arguments),
    "eval": ("seen / unseen accuracy of a checkpoint's integer network", add_eval_arguments),
    "experiment": ("seed 000's experiment: seen / unseen accuracy of (a) float ideal MAML, (b) the integer network, "
                   "(c) + RRAM noise, (d) + Mosaic layout", add_experiment_arguments),
    "data": ("spiking datasets: inspect, plot, encode", add_data_arguments),
    "energy": ("forward / backward / update energy of a layer per synapse memory organisation (seed 001's model)",
               add_energy_arguments),
    "retention": ("seed 001's experiment: a 2-layer SNN retains a spike pattern (van Rossum) against its training "
                  "energy per organisation", add_retention_arguments),
    "nir": ("networks in and out through NIR: export a checkpoint, import a graph from snnTorch, Norse, Rockpool, ...",
            add_nir_arguments),
    "mutate": ("mutation testing: mutants of a design's netlist (Yosys mutate) against its regression; JSON "
               "report", add_mutate_arguments),
    "soak": ("a long constrained-random cosimulation of a design across seeds until N cycles are checked; JSON "
             "report", add_soak_arguments),
    "route": ("compile a checkpoint's connectivity into Mosaic routing tables; print the routing report",
              add_route_arguments),
    "bench": ("benchmarks that print JSON figures", add_bench_arguments),
    "demo": ("the whole flow: meta-train, integer network, Verilog, a few-shot episode on the RTL through the UART "
             "host driver (bit-exact), iCE40 bitstream, summary", add_demo_arguments),
}
