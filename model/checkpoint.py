"""Deployable-network checkpoints: integer weights + the config + training metadata, one versioned
format read by the training, the RTL generator and the host driver.

A checkpoint is a folder holding ``network.json`` (format, version, config, metadata, the name and
SHA-256 of the weights file) and ``weights-<sha>.npz`` (integer arrays). The weights file is written
first under a content-derived name, then the manifest is replaced atomically, so a reader sees either
the old checkpoint or the new one, never half of one. Any mismatch is one clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import ConfigError
from .snn import SRNNConfig

__all__ = ["FORMAT", "VERSION", "Checkpoint", "CheckpointError", "save_checkpoint", "load_checkpoint",
           "deployable_weights", "atomic_write"]

FORMAT = "neuromosaic-srnn"
VERSION = 1
MANIFEST = "network.json"


class CheckpointError(ConfigError):
    """A missing, corrupt or mismatched checkpoint."""


@dataclass
class Checkpoint:
    config: SRNNConfig
    w_in: torch.Tensor        # int64 [neurons, channels]
    w_rec: torch.Tensor       # int64 [neurons, neurons]
    w_out: torch.Tensor       # int64 [outputs, neurons]
    metadata: dict = field(default_factory=dict)


def deployable_weights(config: SRNNConfig, w_in, w_rec, w_out) -> dict[str, torch.Tensor]:
    """Float training weights -> the integers the hardware stores (round half to even, then clamp:
    the same rounding the quantisation-aware forward pass uses)."""
    lo, hi = config.core.weight_range
    olo, ohi = config.readout_weight_range
    q = lambda w, a, b: torch.round(w.detach().double()).clamp(a, b).to(torch.int64)   # noqa: E731
    return {"w_in": q(w_in, lo, hi), "w_rec": q(w_rec, lo, hi), "w_out": q(w_out, olo, ohi)}


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(folder: str | Path, ck: Checkpoint) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _check(ck, folder)
    buf = io.BytesIO()
    np.savez(buf, **{k: getattr(ck, k).numpy().astype(np.int64) for k in ("w_in", "w_rec", "w_out")})
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    weights = folder / f"weights-{sha[:16]}.npz"
    if not weights.exists():
        atomic_write(weights, data)
    manifest = {"format": FORMAT, "version": VERSION, "config": ck.config.to_dict(), "metadata": ck.metadata,
                "weights": {"file": weights.name, "sha256": sha}}
    old = _manifest_weights(folder)
    atomic_write(folder / MANIFEST, json.dumps(manifest, indent=2).encode())
    if old and old != weights.name:
        (folder / old).unlink(missing_ok=True)
    return folder


def _manifest_weights(folder: Path) -> str | None:
    try:
        return json.loads((folder / MANIFEST).read_text())["weights"]["file"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def load_checkpoint(folder: str | Path) -> Checkpoint:
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.exists():
        raise CheckpointError(f"{folder} is not a checkpoint: {MANIFEST} is missing.")
    try:
        m = json.loads(path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{path} is not valid JSON ({e}); the checkpoint is corrupt.") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise CheckpointError(f"{path} has format {m.get('format') if isinstance(m, dict) else None!r}; "
                              f"allowed: {FORMAT!r}.")
    if m.get("version") != VERSION:
        raise CheckpointError(f"{path} is version {m.get('version')!r}; this neuromosaic reads version {VERSION}.")
    try:
        config = SRNNConfig.from_dict(m["config"])
        wfile, sha = folder / m["weights"]["file"], m["weights"]["sha256"]
    except (KeyError, TypeError) as e:
        raise CheckpointError(f"{path} lacks {e}; the checkpoint is incomplete.") from None
    except ConfigError as e:
        raise CheckpointError(f"{path} holds an impossible config: {e}") from None
    if not wfile.exists():
        raise CheckpointError(f"{wfile} named by {path} is missing.")
    data = wfile.read_bytes()
    if hashlib.sha256(data).hexdigest() != sha:
        raise CheckpointError(f"{wfile} does not match the checksum in {path}; the weights are corrupt.")
    with np.load(io.BytesIO(data)) as z:
        try:
            arrays = {k: torch.from_numpy(z[k].astype(np.int64)) for k in ("w_in", "w_rec", "w_out")}
        except KeyError as e:
            raise CheckpointError(f"{wfile} lacks the array {e}.") from None
    ck = Checkpoint(config, arrays["w_in"], arrays["w_rec"], arrays["w_out"], m.get("metadata", {}))
    _check(ck, folder)
    return ck


def _check(ck: Checkpoint, where: Path) -> None:
    c = ck.config
    shapes = {"w_in": (c.neurons, c.channels), "w_rec": (c.neurons, c.neurons), "w_out": (c.outputs, c.neurons)}
    ranges = {"w_in": c.core.weight_range, "w_rec": c.core.weight_range, "w_out": c.readout_weight_range}
    for name, shape in shapes.items():
        w = getattr(ck, name)
        if tuple(w.shape) != shape:
            raise CheckpointError(f"{where}: {name} has shape {tuple(w.shape)}; the config needs {shape}.")
        if w.is_floating_point():
            raise CheckpointError(f"{where}: {name} holds floats; a deployable checkpoint holds integers.")
        lo, hi = ranges[name]
        if w.numel() and (int(w.min()) < lo or int(w.max()) > hi):
            raise CheckpointError(f"{where}: {name} has values {int(w.min())}..{int(w.max())}; allowed: {lo}..{hi}.")
