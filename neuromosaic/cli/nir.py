"""``neuromosaic nir``: networks in and out through NIR, the Neuromorphic Intermediate Representation."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from .options import UsageError, add_protocol_arguments, output_file, output_folder, protocol_changes

__all__ = ["add_nir_arguments"]


def _write_graph(graph, path: Path) -> None:
    """``nir.write`` through a temporary file beside ``path``, renamed over it when complete."""
    import nir

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nir.write(tmp, graph)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_graph(path: str):
    import nir

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"NIR file {path} does not exist.")
    try:
        return nir.read(p)
    except Exception as e:          # h5py and nir raise many kinds on a file that is not a NIR graph
        raise UsageError(f"{path} is not a readable NIR graph ({type(e).__name__}: {e}).") from None


def cmd_export(args) -> int:
    from ..model.checkpoint import load_checkpoint
    from ..model.nir_export import export_graph
    out = output_file(args.output, "-o")
    ck = load_checkpoint(args.checkpoint)
    graph = export_graph(ck, dt=args.dt, compat=args.compat)
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_graph(graph, out)
    c = ck.config
    kind = ("lossy --compat form (CubaLIF with reset; no refractory, no time reduction)" if args.compat else
            "exact float twin")
    print(f"wrote {out}: {c.channels} channels -> {c.neurons} LIF -> {c.outputs} outputs, {len(graph.nodes)} nodes, "
          f"dt {args.dt} s, {kind}")
    return 0


def _inputs(path: str | None):
    if path is None:
        return None
    import numpy as np
    import torch
    try:
        x = np.load(path)
    except (OSError, ValueError) as e:
        raise UsageError(f"--inputs {path} is not a readable .npy array ({e}).") from None
    if x.ndim == 2:
        x = x[:, None]
    if x.ndim != 3 or not np.issubdtype(x.dtype, np.number) or (x < 0).any() or not np.array_equal(x, np.round(x)):
        raise UsageError(f"--inputs {path} holds {x.dtype} of shape {x.shape}; allowed: non-negative integer event "
                         f"counts [steps, (samples,) channels].")
    return torch.from_numpy(x.astype(np.int64))


def cmd_import(args) -> int:
    from ..model.checkpoint import atomic_write, save_checkpoint
    from ..model.nir_import import WIDTH_DEFAULTS, import_graph
    from ..model.train import TrainConfig
    out = output_folder(args.out, "--out")
    protocol_changes(args)                      # refused before any work
    graph = read_graph(args.file)
    inputs = _inputs(args.inputs)
    widths = {k: getattr(args, k) for k in WIDTH_DEFAULTS}
    ck, report = import_graph(graph, dt=args.dt, lanes=args.lanes, inputs=inputs, **widths)
    c = ck.config
    train = TrainConfig(data=args.data, channels=c.channels, steps=args.steps, neurons=c.neurons, outputs=c.outputs,
                        n_way=c.outputs, k_shot=args.shots, k_query=args.queries, **protocol_changes(args))
    ck.metadata.update({"train": {k: getattr(train, k) for k in ("data", "channels", "steps", "neurons", "outputs",
                                                                  "labels", "n_way", "k_shot", "k_query", "seen",
                                                                  "unseen", "train_groups", "test_groups")},
                        "import": {"file": str(args.file), **{k: v for k, v in report.items() if k != "firing"}}})
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(out, ck)
    atomic_write(out / "import-report.json", json.dumps(report, indent=2).encode())
    f = report["firing"]
    corr = "n/a" if f["count_correlation"] is None else f"{f['count_correlation']:.3f}"
    print(f"wrote the checkpoint {out} ({c.channels} channels -> {c.neurons} LIF -> {c.outputs} outputs) and "
          f"{out / 'import-report.json'}: {report['kind']}, dt {report['dt']:g} s; firing on {f['inputs']} inputs: "
          f"{f['spikes_source']} spikes in the source, {f['spikes_imported']} imported, per-neuron correlation {corr}")
    for note in report["approximations"]:
        print(f"  approximated: {note}")
    return 0


def add_nir_arguments(p: argparse.ArgumentParser) -> None:
    from ..model.nir_export import DEFAULT_DT
    sub = p.add_subparsers(dest="nir_command", required=True)
    e = sub.add_parser("export", help="a checkpoint as a NIR graph (exact: the ideal float twin)")
    e.add_argument("--checkpoint", required=True, help="the checkpoint folder")
    e.add_argument("-o", "--output", required=True, help="the .nir file to write")
    e.add_argument("--dt", type=float, default=DEFAULT_DT, help=f"seconds per step (default {DEFAULT_DT})")
    e.add_argument("--compat", action="store_true", help="the recurrent CubaLIF form snnTorch, Norse and Rockpool "
                   "import (lossy: the refractory trace becomes a reset)")
    e.set_defaults(func=cmd_export)
    i = sub.add_parser("import", help="a NIR graph of one recurrent spiking layer as a checkpoint and an import report")
    i.add_argument("file", help="the .nir file")
    i.add_argument("--out", required=True, help="the checkpoint folder to write")
    i.add_argument("--dt", type=float, default=None, help="seconds per step (default: from the graph, or inferred "
                   "from r = tau_mem / dt)")
    i.add_argument("--lanes", type=int, default=None, help="neurons updated per cycle (default 2, or 1 for an odd "
                   "count)")
    from ..model.nir_import import WIDTH_DEFAULTS
    for k in WIDTH_DEFAULTS:
        i.add_argument(f"--{k.replace('_', '-')}", dest=k, type=int, default=None,
                       help=f"(foreign graphs) default {WIDTH_DEFAULTS[k]}")
    i.add_argument("--inputs", default=None, help="a .npy of event counts [steps, (samples,) channels] on which the "
                   "report compares the firing (default: random events)")
    i.add_argument("--data", default="synthetic", help="the data the network's tasks come from, for eval and cosim "
                   "(default synthetic)")
    i.add_argument("--steps", type=int, default=50, help="time bins per sample of that data (default 50)")
    i.add_argument("--shots", type=int, default=5, help="support samples per class of its tasks (default 5)")
    i.add_argument("--queries", type=int, default=5, help="query samples per class of its tasks (default 5)")
    add_protocol_arguments(i)
    i.set_defaults(func=cmd_import)
