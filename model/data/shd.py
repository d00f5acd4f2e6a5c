"""Spiking Heidelberg Digits (Cramer et al. 2020): the real HDF5 layout.

    spikes/times[i]  spike times of sample i, seconds (float)
    spikes/units[i]  channel of each spike, 0..699
    labels[i]        class 0..19 (digits 0-9 in English, then in German)
    extra/speaker[i] speaker id
    extra/keys[c]    class names

The files are ``shd_train.h5`` and ``shd_test.h5`` from https://zenkelab.org/datasets/ (gunzip
the ``.h5.gz`` downloads); point the loader at the folder that holds them. Binning follows seed 000's
code: T bins over a window (default 100 over 1.4 s). Spikes outside the window are counted in
``info["events_outside_window"]`` and dropped; none can overflow a bin index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .base import DataError, SpikeDataset, bin_events

__all__ = ["SHD_CHANNELS", "load_shd", "shd_path"]

SHD_CHANNELS = 700
_REQUIRED = ("spikes/times", "spikes/units", "labels", "extra/speaker", "extra/keys")


def shd_path(folder: str | Path, split: str = "train") -> Path:
    if split not in ("train", "test"):
        raise DataError(f"SHD split {split!r} is unknown; allowed: train, test.")
    return Path(folder) / f"shd_{split}.h5"


def load_shd(path: str | Path, *, steps: int = 100, window: float = 1.4,
             channels: int = SHD_CHANNELS) -> SpikeDataset:
    """Loads one SHD file (or ``shd_train.h5`` in a folder) into binned rasters."""
    import h5py

    path = Path(path)
    if path.is_dir():
        path = shd_path(path, "train")
    if not path.exists():
        raise DataError(f"SHD file {path} does not exist; download shd_train.h5.gz / shd_test.h5.gz from "
                        f"https://zenkelab.org/datasets/, gunzip them and pass their folder.")
    if steps < 1 or not window > 0:
        raise DataError(f"steps={steps}, window={window}: allowed are steps >= 1 and a window > 0 seconds.")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataError(f"{path} cannot be read as HDF5 (truncated or not an HDF5 file: {e}).") from None
    with f:
        for key in _REQUIRED:
            if key not in f:
                raise DataError(f"{path} is not laid out as SHD: dataset '{key}' is missing "
                                f"(an SHD file has {', '.join(_REQUIRED)}).")
        try:
            times, units = f["spikes/times"][:], f["spikes/units"][:]
            labels = np.asarray(f["labels"][:], dtype=np.int64)
            speakers = np.asarray(f["extra/speaker"][:])
            keys = [k.decode() if isinstance(k, bytes) else str(k) for k in f["extra/keys"][:]]
        except (OSError, ValueError, TypeError) as e:
            raise DataError(f"{path} is truncated or corrupt: reading it failed ({e}).") from None
    n = len(labels)
    if not len(times) == len(units) == len(speakers) == n:
        raise DataError(f"{path}: {len(times)} spike-time arrays, {len(units)} unit arrays, {n} labels and "
                        f"{len(speakers)} speakers; an SHD file has one of each per sample.")
    if n == 0:
        raise DataError(f"{path} holds no samples.")
    if labels.min() < 0:
        raise DataError(f"{path}: label {int(labels.min())} is negative; allowed: class ids 0..{len(keys) - 1}.")
    rasters = np.zeros((n, steps, channels), dtype=np.uint8)
    outside = 0
    for i in range(n):
        t, u = np.asarray(times[i]), np.asarray(units[i], dtype=np.int64)
        if t.shape != u.shape:
            raise DataError(f"{path}: sample {i} has {t.size} spike times but {u.size} units; they must pair up.")
        if u.size and (u.min() < 0 or u.max() >= channels):
            bad = int(u.max() if u.max() >= channels else u.min())
            raise DataError(f"{path}: sample {i} has unit {bad}; allowed: 0..{channels - 1}.")
        rasters[i], dropped = bin_events(t, u, steps, window, channels)
        outside += dropped
    return SpikeDataset(torch.from_numpy(rasters), torch.from_numpy(labels), [f"speaker{int(s)}" for s in speakers],
                        keys, source=f"shd:{path}",
                        info={"window_s": window, "events_outside_window": outside})
