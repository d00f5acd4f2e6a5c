"""Labelled event samples from any tool, in the tonic convention, binned like SHD.

A file (``.npz``, or HDF5: ``.h5``, ``.hdf5``) holds:

    events   one structured array of every sample's events, one after the other, with the fields
             ``t`` (time from the sample's start, non-negative) and ``x`` (channel), and optionally
             ``p`` (polarity: events of either polarity count alike) -- tonic's (t, x, p) for audio
    counts   int [samples]: how many of ``events`` belong to each sample, in order
    labels   int [samples]: class ids 0..classes-1
    groups   optional, str or int [samples]: a group per sample (the speaker) for a protocol's splits
    classes  optional, str [classes]: class names (they fix the number of classes)
    channels optional, int: the sensor's channels (default: the largest ``x`` + 1)
    time_unit optional, str: "us" (tonic's, the default), "ms" or "s"
    window_s optional, float: the binning window in seconds (default: the latest event)

Each sample becomes ``steps`` equal bins over the window (``model.data.base.bin_events``); events
past the window are dropped and counted. Anything else in the file is ignored; anything wrong with
what is read is one sentence naming it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DAMAGED_NPZ, DataError, SpikeDataset, bin_events

__all__ = ["load_events", "TIME_UNITS"]

TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
_REQUIRED = ("events", "counts", "labels")


def _read(path: Path) -> dict:
    """The file's arrays by name (only the keys this format uses)."""
    keys = _REQUIRED + ("groups", "classes", "channels", "time_unit", "window_s")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in keys if k in z.files}
        except DAMAGED_NPZ as e:
            raise DataError(f"{path} cannot be read as .npz ({type(e).__name__}: {e}).") from None
    import h5py
    try:
        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in keys if k in f}
    except OSError as e:
        raise DataError(f"{path} cannot be read as HDF5 (truncated or not an HDF5 file: {e}).") from None


def _text(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in np.atleast_1d(values).tolist()]


def load_events(path: str | Path, *, steps: int = 100) -> SpikeDataset:
    """The samples of an event file (see the module docstring) as binned rasters."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"event file {path} does not exist.")
    if path.suffix not in (".npz", ".h5", ".hdf5"):
        raise DataError(f"event file {path} has the suffix {path.suffix!r}; allowed: .npz, .h5, .hdf5.")
    if steps < 1:
        raise DataError(f"steps={steps} is not allowed; allowed: 1 or more.")
    d = _read(path)
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise DataError(f"{path} lacks the array {missing[0]!r}; an event file has {', '.join(_REQUIRED)} "
                        f"(and optionally groups, classes, channels, time_unit, window_s).")
    events, counts, labels = d["events"], np.asarray(d["counts"]), np.asarray(d["labels"])
    fields = events.dtype.names or ()
    for f in ("t", "x"):
        if f not in fields:
            raise DataError(f"{path}: the events lack the field {f!r} (they have {', '.join(fields) or 'none'}); "
                            f"allowed: a structured array with t, x and optionally p (tonic's convention).")
    if "y" in fields:
        raise DataError(f"{path}: the events have a field 'y'; allowed: one-dimensional sensors (t, x, p).")
    n = len(labels)
    if n == 0:
        raise DataError(f"{path} holds no samples.")
    if counts.shape != (n,) or not np.issubdtype(counts.dtype, np.integer) or (counts < 0).any():
        raise DataError(f"{path}: counts has shape {counts.shape}; allowed: one non-negative integer per label ({n}).")
    if int(counts.sum()) != len(events):
        raise DataError(f"{path}: the counts add up to {int(counts.sum())} events but the file holds {len(events)}.")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels are {labels.dtype}; allowed: integer class ids.")
    unit = _text(d.get("time_unit", "us"))[0]
    if unit not in TIME_UNITS:
        raise DataError(f"{path}: time_unit {unit!r} is unknown; allowed: {', '.join(TIME_UNITS)}.")
    t = np.asarray(events["t"], dtype=np.float64) * TIME_UNITS[unit]
    x = np.asarray(events["x"])
    if not np.all(np.isfinite(t)):
        raise DataError(f"{path}: an event time is not finite; allowed: finite times.")
    if not np.issubdtype(x.dtype, np.integer):
        raise DataError(f"{path}: the field x is {x.dtype}; allowed: integer channels.")
    x = x.astype(np.int64)
    sample_of = np.repeat(np.arange(n), counts)
    if len(t) and t.min() < 0:
        i = int(np.argmin(t))
        raise DataError(f"{path}: sample {int(sample_of[i])} has the negative time {t[i]:g} s; allowed: times from "
                        f"the sample's start, 0 or later.")
    names = _text(d["classes"]) if "classes" in d else [str(c) for c in range(int(labels.max()) + 1)]
    if labels.min() < 0 or labels.max() >= len(names):
        bad = int(labels.min() if labels.min() < 0 else labels.max())
        raise DataError(f"{path}: label {bad} of sample {int(np.flatnonzero(labels == bad)[0])} is not a class of the "
                        f"file; allowed: 0..{len(names) - 1}.")
    channels = int(np.asarray(d["channels"])) if "channels" in d else (int(x.max()) + 1 if len(x) else 1)
    if len(x) and (x.min() < 0 or x.max() >= channels):
        bad = int(x.min() if x.min() < 0 else x.max())
        raise DataError(f"{path}: channel x={bad} is outside the sensor; allowed: 0..{channels - 1}.")
    if "window_s" in d:
        window = float(np.asarray(d["window_s"]))
    else:                                           # just past the latest event: it falls in the last bin
        window = float(np.nextafter(t.max(), np.inf)) if len(t) else 0.0
    if not window > 0:
        raise DataError(f"{path}: the window is {window:g} s; allowed: a positive window (give window_s).")
    groups = _text(d["groups"]) if "groups" in d else ["all"] * n
    if len(groups) != n:
        raise DataError(f"{path}: {len(groups)} groups for {n} samples; allowed: one group per sample.")
    rasters = np.zeros((n, steps, channels), dtype=np.uint8)
    ends, outside = np.cumsum(counts), 0
    for i in range(n):
        a, b = ends[i] - counts[i], ends[i]
        rasters[i], dropped = bin_events(t[a:b], x[a:b], steps, window, channels)
        outside += dropped
    return SpikeDataset(torch.from_numpy(rasters), torch.from_numpy(labels.astype(np.int64)), groups, names,
                        source=f"events:{path}", info={"window_s": window, "events_outside_window": outside})
