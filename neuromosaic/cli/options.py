"""Flags shared by several designs and verbs, and the configs they describe.

Each ``add_*`` function adds one group of flags to a parser; the matching function turns the parsed
flags into the model's config (``core_config``, ``network``, ``mesh``, ``grid``) or refuses them with
one sentence (:class:`UsageError`). Nothing here imports torch or Amaranth at module level, so that
``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from pathlib import Path

from ..cosim.options import RunOptions
from ..model.config import SEED_LIF, LIFConfig

__all__ = ["UsageError", "RUN_DEFAULTS", "add_core_options", "core_config", "add_network_options", "network",
           "add_mesh_options", "grid", "mesh", "add_run_options", "add_sim_option", "check_run_values", "print_json",
           "describe"]

# "small": the default core's logic (every width, decay and threshold) on 8 neurons of 16 inputs, memories
# small enough for an equivalence checker: mutation testing's default.
PRESETS = {"default": LIFConfig(), "small": LIFConfig(neurons=8, inputs=16), "seed": SEED_LIF}


class UsageError(Exception):
    """A bad flag value or input file; printed as one line, exit status 2."""


RUN_DEFAULTS = RunOptions()


def print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def describe(config) -> str:
    return (f"{config.channels} channels, {config.neurons} neurons ({config.core.lanes} lanes), "
            f"{config.outputs} outputs")


# -- the LIF core --------------------------------------------------------------------------------
def add_core_options(p: argparse.ArgumentParser, *, preset: bool = True, inputs: bool = True,
                     default_preset: str = "default") -> None:
    """One flag per ``LIFConfig`` field (``inputs``: with ``--inputs``; a learning design's core takes
    channels + neurons) and, with ``preset``, ``--preset`` (``default_preset`` unless given)."""
    g = p.add_argument_group("LIF core" + (" (defaults from --preset)" if preset else " (defaults from the network)"))
    if preset:
        g.add_argument("--preset", choices=sorted(PRESETS), default=default_preset,
                       help=f"starting configuration (default: {default_preset}; 'small' is 8 neurons x 16 inputs, "
                            "'seed' 256 neurons x 256 inputs)")
    for f in dataclasses.fields(LIFConfig):
        if f.name != "inputs" or inputs:
            g.add_argument("--" + f.name.replace("_", "-"), dest=f"cfg_{f.name}", type=int, default=None,
                           metavar="N", help=f"{f.name} (default: " + ("the preset's" if preset else "the network's")
                           + ")")


def core_changes(args) -> dict:
    return {f.name: getattr(args, f"cfg_{f.name}") for f in dataclasses.fields(LIFConfig)
            if getattr(args, f"cfg_{f.name}", None) is not None}


def core_config(args) -> LIFConfig:
    """The LIF core of ``--preset`` and the core flags."""
    return PRESETS[args.preset].replace(**core_changes(args))


# -- the learning network ------------------------------------------------------------------------
def add_network_options(p: argparse.ArgumentParser, *, default: str | None = "small") -> None:
    """``--network``, ``--checkpoint``, ``--set`` and ``--learning-set``, and the core flags that change
    the network's LIF core."""
    from ..model.snn import NETWORKS
    g = p.add_argument_group("network and learning rule")
    g.add_argument("--network", choices=sorted(NETWORKS), default=default,
                   help="starting network (small: 4 channels, 16 neurons, 5 outputs; fsdd: 64, 64, 5; seed: 256 "
                        "channels, 256 neurons, 20 outputs)" + (f"; default {default}" if default else ""))
    g.add_argument("--checkpoint", help="a trained network's checkpoint folder: its config instead of --network")
    g.add_argument("--set", action="append", default=[], metavar="FIELD=V",
                   help="change a field of the network (channels, outputs, readout_bits, logit_shift, ...)")
    g.add_argument("--learning-set", action="append", default=[], metavar="FIELD=V",
                   help="change a field of the learning rule (prob_bits, acc_bits, lfsr_seed, ...)")
    add_core_options(p, preset=False, inputs=False)


def parse_sets(items: list[str], allowed: dict, flag: str) -> dict:
    """``FIELD=VALUE`` items; ``allowed``: field -> its current value, whose type the new one takes
    (an integer field takes only an integer)."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or key not in allowed:
            raise UsageError(f"{flag} {item!r} is not FIELD=VALUE with a known field; allowed fields: "
                             f"{', '.join(sorted(allowed))}.")
        if isinstance(allowed[key], int):
            try:
                out[key] = int(value, 0)
            except ValueError:
                raise UsageError(f"{flag} {item!r}: {key} takes an integer, not {value!r}.") from None
        else:
            out[key] = value
    return out


def network_flags_given(args) -> bool:
    """Whether any flag of :func:`add_network_options` changes the default network."""
    return bool(args.checkpoint or args.network or args.set or args.learning_set or core_changes(args))


def network(args, base_name: str | None = None):
    """The SRNNConfig, LearningConfig and checkpoint (or None) of the network flags (``base_name``:
    the network when ``--network`` is not given)."""
    from ..model.learning import LearningConfig
    from ..model.snn import NETWORKS, SRNNConfig
    ck = None
    if args.checkpoint:
        from ..model.checkpoint import load_checkpoint
        ck = load_checkpoint(args.checkpoint)
        base = ck.config
    else:
        base = NETWORKS[args.network or base_name]
    core = {**base.core.to_dict(), **core_changes(args)}
    core.pop("inputs")
    net = {f.name: getattr(base, f.name) for f in dataclasses.fields(SRNNConfig) if f.name != "core"}
    net.update(parse_sets(args.set, net, "--set"))
    neurons = core.pop("neurons")
    config = SRNNConfig.make(neurons=neurons, **net, **core)
    default = LearningConfig()
    fields = {f.name: getattr(default, f.name) for f in dataclasses.fields(LearningConfig)}
    cfg = LearningConfig(**parse_sets(args.learning_set, fields, "--learning-set"))
    if ck is not None and config != ck.config:
        raise UsageError("the flags change the checkpoint's network config; its weights would not fit. Drop them "
                         "or leave out --checkpoint.")
    return config, cfg, ck


def core_weights(ck):
    """A checkpoint's ``[neurons, channels + neurons]`` core weights."""
    import torch
    return torch.cat([ck.w_in, ck.w_rec], dim=1)


# -- the Mosaic mesh -----------------------------------------------------------------------------
def add_grid_option(p: argparse.ArgumentParser, default: str = "2x2") -> None:
    p.add_argument("--grid", default=None,
                   help=f"neuron tiles RxC (default: the checkpoint's training layout, else {default})")


def add_mesh_options(p: argparse.ArgumentParser) -> None:
    """``--grid`` and the router capacities of a Mosaic."""
    from ..model.router import MeshConfig
    g = p.add_argument_group("Mosaic mesh")
    add_grid_option(g)
    g.add_argument("--fifo-depth", type=int, default=MeshConfig.fifo_depth,
                   help=f"entries per router in-port FIFO (default {MeshConfig.fifo_depth})")
    for name in ("tile_capacity", "between_capacity", "corner_capacity"):
        g.add_argument("--" + name.replace("_", "-"), type=int, default=None,
                       help=f"most distinct sources per port (default {getattr(MeshConfig, name)}; the neuron count "
                            "for random episodes, which route every neuron to every tile)")


def grid(args, ck, neurons: int, default: str = "2x2") -> tuple[int, int]:
    """--grid, or the checkpoint's training layout, or ``default``."""
    text = args.grid or (ck.metadata.get("train", {}).get("layout") if ck is not None else None) or default
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--grid {text!r} is not RxC; allowed: two positive integers such as 2x2.") from None
    if rows < 1 or cols < 1 or neurons % (rows * cols):
        raise UsageError(f"--grid {text}: {rows * cols} tiles do not divide the {neurons} neurons; allowed: a grid "
                         f"whose tile count divides {neurons}.")
    return rows, cols


def mesh(args, ck, neurons: int, dense: bool):
    """The mesh of the flags. A capacity left out is the Mosaic default, or, for ``dense`` (every
    source to every other tile, the random episodes), the neuron count: nothing limits it."""
    from ..model.router import MeshConfig
    rows, cols = grid(args, ck, neurons)
    caps = {name: getattr(args, name) if getattr(args, name) is not None else
            (neurons if dense else getattr(MeshConfig, name))
            for name in ("tile_capacity", "between_capacity", "corner_capacity")}
    return MeshConfig(rows, cols, neurons // (rows * cols), fifo_depth=args.fifo_depth, **caps)


# -- a cosimulation run --------------------------------------------------------------------------
def add_sim_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sim", choices=["verilator", "icarus", "both"], default="verilator",
                   help="the simulator (default verilator)")
    p.add_argument("--waves", action="store_true", help="dump waveforms (FST) into the build folder")


def add_run_options(p: argparse.ArgumentParser, faults: dict[str, str], *, stimulus: bool = True) -> None:
    """``--sim``, ``--waves``, ``--fault`` (one of ``faults``: name -> what it breaks), ``--per-cycle``,
    ``--fast-model`` and, with ``stimulus`` (a design whose harness draws idle and backpressure
    cycles), the pattern's probabilities and seed."""
    g = p.add_argument_group("run")
    add_sim_option(g)
    g.add_argument("--fault", metavar="NAME", help="check against a deliberately wrong model; the run must fail ("
                   + "; ".join(f"{k}: {v}" for k, v in faults.items()) + ")")
    if stimulus:
        g.add_argument("--idle", type=float, default=RUN_DEFAULTS.idle,
                       help=f"probability of an idle input cycle (default {RUN_DEFAULTS.idle})")
        g.add_argument("--backpressure", type=float, default=RUN_DEFAULTS.backpressure,
                       help=f"probability of a not-ready output cycle (default {RUN_DEFAULTS.backpressure})")
        g.add_argument("--rng-seed", type=int, default=RUN_DEFAULTS.seed,
                       help="seed of the idle/backpressure pattern")
    g.add_argument("--per-cycle", action="store_true",
                   help="drive and check every cycle from Python (slow; for debugging) instead of through the "
                        "design's batch harness")
    g.add_argument("--fast-model", action="store_true",
                   help="compile the Verilator model for speed (-O2): slower to build, faster to run (long runs)")


def check_fault(args, faults, design: str) -> None:
    if args.fault and args.fault not in faults:
        raise UsageError(f"--fault {args.fault} is not a {design} fault; allowed: {', '.join(faults)}.")


# Every numeric flag of the command line (by its dest) and the values it allows: (lowest, highest),
# either end None for unbounded, ``open`` for a lowest value itself not allowed. Counts stop where the
# work or its memory would not end on any machine this runs on.
NUMERIC_FLAGS = {
    "iterations": (1, 10**6), "mutants": (1, 10**5), "tasks": (1, 10**5), "episodes": (1, 10**5), "devices": (0, 10**4),
    "inner_steps": (1, 1000), "channels": (1, 4096), "steps": (1, 10**5), "seeds": (1, 10**6), "cycles": (1, 10**12),
    "shots": (1, 10**4), "queries": (1, 10**4), "jobs": (1, 1024), "index": (0, None), "bits": (2, 32),
    "seed": (0, 2**63 - 1), "first_seed": (0, 2**31 - 1), "rng_seed": (0, 2**32 - 1), "fifo_depth": (1, 4096),
    "buffer_bytes": (16, 65535), "baud": (1, None), "timeout": ("open", 0.0, 86400.0), "dt": ("open", 0.0, None),
    "inner_lr": ("open", 0.0, 1e12), "rate_lambda": (0.0, 1e12), "density": ("open", 0.0, 1.0),
    "lanes": (1, 64), "weight_bits": (2, 32), "current_bits": (2, 32), "membrane_bits": (2, 32),
    "readout_weight_bits": (2, 32), "readout_bits": (2, 32), "depth": (1, 1000), "ber": (0.0, 1e-3),
    "noise_seed": (0, 2**31 - 1), "neurons": (1, 1 << 16), "ways": (2, 1000), "meta_batch": (1, 10**4),
}


def _check_numeric(name: str, value) -> None:
    spec = NUMERIC_FLAGS.get(name)
    flag = "--" + name.replace("_", "-")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{flag} {value} is not allowed; allowed: a finite number.")
    if spec is None:
        return
    open_low = spec[0] == "open"
    lo, hi = spec[1:] if open_low else spec
    low_bad = lo is not None and (value <= lo if open_low else value < lo)
    if low_bad or (hi is not None and value > hi):
        n = lambda v: f"{v:,}" if isinstance(v, int) else f"{v:g}"          # noqa: E731
        if lo is None:
            allowed = f"at most {n(hi)}"
        elif open_low:
            allowed = f"above {n(lo)}" + ("" if hi is None else f" and at most {n(hi)}")
        else:
            allowed = f"{n(lo)} or more" if hi is None else f"{n(lo)} to {n(hi)}"
        raise UsageError(f"{flag} {n(value)} is not allowed; allowed: {allowed}.")


# The flags (by dest) that name what a command writes: a file, or a folder.
OUTPUT_FILES = ("output", "plot", "docs")
OUTPUT_FOLDERS = ("out", "plot_dir")


def _writable_ancestor(p: Path, flag: str) -> None:
    """The nearest existing folder above ``p`` (where the missing ones will be made) is a writable folder."""
    above = next((a for a in p.absolute().parents if a.exists()), None)
    if above is None or not above.is_dir():
        raise UsageError(f"{flag} {p}: {above} is a file, not a folder; allowed: a path under a folder.")
    if not os.access(above, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {p}: the folder {above} is not writable.")


def output_file(path: str, flag: str) -> Path:
    """A file a command may write (its missing folders made): not a folder, under a writable folder."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path} is a folder; allowed: a file name.")
    if p.exists() and not os.access(p, os.W_OK):
        raise UsageError(f"{flag} {path} is not writable.")
    _writable_ancestor(p, flag)
    return p


def output_folder(path: str, flag: str) -> Path:
    """A folder a command may write into (made if missing): not a file, under a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{flag} {path} is a file; allowed: a folder (made if missing).")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: the folder is not writable.")
    _writable_ancestor(p, flag)
    return p


def _flag(args, dest: str) -> str:
    """How the user wrote the flag of ``dest`` (``-o`` or ``--output``, ``--out``, ...)."""
    spelled = [a.split("=")[0] for a in getattr(args, "argv", []) if a.startswith("-")]
    names = {"output": ("-o", "--output")}.get(dest, ("--" + dest.replace("_", "-"),))
    return next((a for a in spelled if a in names), names[-1])


def check_run_values(args) -> None:
    """Refuses, before any work, every numeric flag outside :data:`NUMERIC_FLAGS` (or not finite),
    probabilities outside [0, 1), and output paths that cannot be written (:func:`output_file`,
    :func:`output_folder`)."""
    for dest in OUTPUT_FILES + OUTPUT_FOLDERS:
        value = getattr(args, dest, None)
        if isinstance(value, str):
            (output_file if dest in OUTPUT_FILES else output_folder)(value, _flag(args, dest))
    for name, value in vars(args).items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            _check_numeric(name, value)
    for name in ("idle", "backpressure"):
        v = getattr(args, name, 0.0)
        if not (math.isfinite(v) and 0.0 <= v < 1.0):
            raise UsageError(f"--{name}={v} is not allowed; use a probability in [0, 1).")


def add_protocol_arguments(p: argparse.ArgumentParser) -> None:
    """The few-shot protocol's classes and groups (speakers), for data without a protocol of its own
    (``events:FILE``) or to change one."""
    g = p.add_argument_group("few-shot protocol (default: the data's own; for events: the first three quarters "
                             "of the classes seen, every group in both phases)")
    g.add_argument("--seen", default=None, metavar="C,C,...", help="classes of meta-training (ids)")
    g.add_argument("--unseen", default=None, metavar="C,C,...", help="classes held out until the meta-test (ids)")
    g.add_argument("--train-groups", default=None, metavar="G,G,...", help="groups (speakers) of meta-training")
    g.add_argument("--test-groups", default=None, metavar="G,G,...", help="groups (speakers) of the meta-test")


def protocol_changes(args) -> dict:
    """The protocol flags that were given, as ``TrainConfig`` fields."""
    out = {}
    for flag in ("seen", "unseen", "train_groups", "test_groups"):
        text = getattr(args, flag, None)
        if text is None:
            continue
        items = [t.strip() for t in text.split(",") if t.strip()]
        name = "--" + flag.replace("_", "-")
        if not items:
            raise UsageError(f"{name} {text!r} names nothing; allowed: a comma-separated list.")
        if flag in ("seen", "unseen"):
            try:
                items = [int(t) for t in items]
            except ValueError:
                raise UsageError(f"{name} {text!r} is not a list of class ids; allowed: integers such as "
                                 f"0,1,2.") from None
        out[flag] = tuple(items)
    return out
