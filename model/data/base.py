"""The one in-memory form every spiking data source is turned into: binned event-count rasters.

A :class:`SpikeDataset` holds ``rasters`` [samples, T, channels] (uint8 event counts per bin; a count
never wraps, it saturates at 255), integer ``labels``, a ``speakers`` name per sample and the class
names. It is a ``torch.utils.data.Dataset`` whose items are ``(raster [T, C] float32, label)``, the
layout the models take (tonic's convention: a transform turns events into a [time, channel] raster).
"""

from __future__ import annotations

import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["DataError", "SpikeDataset", "bin_events", "strided_channels", "DAMAGED_NPZ"]

# What reading a truncated or corrupt .npz raises (zip, zlib and array errors alike).
DAMAGED_NPZ = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error)


class DataError(ValueError):
    """Malformed or missing data, or a request the data cannot satisfy. One sentence naming the
    bad value and what is allowed."""


def bin_events(times: np.ndarray, units: np.ndarray, steps: int, window: float, channels: int):
    """Counts events into ``steps`` equal bins over ``[0, window)`` seconds. Returns the uint8
    raster [steps, channels] and how many events fell outside the window (dropped, never wrapped
    into a bin). Units must already be checked to lie in ``0..channels-1``."""
    times = np.asarray(times, dtype=np.float64)
    units = np.asarray(units, dtype=np.int64)
    bins = np.floor(times * (steps / window)).astype(np.int64)
    inside = (times >= 0) & (bins < steps)
    counts = np.zeros(steps * channels, dtype=np.int64)
    np.add.at(counts, bins[inside] * channels + units[inside], 1)
    return np.minimum(counts, 255).astype(np.uint8).reshape(steps, channels), int((~inside).sum())


def strided_channels(raster: torch.Tensor, stride: int, offset: int, out_channels: int) -> torch.Tensor:
    """Seed 000's channel reduction ("spatial sampling at regular intervals"): every ``stride``-th
    channel from ``offset``, zero-padded or cut to ``out_channels``. Each offset is one augmentation."""
    if not 0 <= offset < stride:
        raise DataError(f"channel offset {offset} is not allowed for stride {stride}; allowed: 0..{stride - 1}.")
    picked = raster[..., offset::stride][..., :out_channels]
    return torch.nn.functional.pad(picked, (0, out_channels - picked.shape[-1]))


@dataclass
class SpikeDataset(torch.utils.data.Dataset):
    rasters: torch.Tensor                 # [N, T, C] uint8
    labels: torch.Tensor                  # [N] int64
    speakers: list[str]
    class_names: list[str]
    source: str = ""
    info: dict = field(default_factory=dict)   # e.g. events outside the window, encoder parameters

    def __post_init__(self):
        n = self.rasters.shape[0]
        if self.labels.shape != (n,) or len(self.speakers) != n:
            raise DataError(f"{self.source}: {n} rasters, {tuple(self.labels.shape)} labels and "
                            f"{len(self.speakers)} speakers do not match; each sample needs one of each.")

    def __len__(self) -> int:
        return self.rasters.shape[0]

    def __getitem__(self, i):
        return self.rasters[i].float(), int(self.labels[i])

    @property
    def steps(self) -> int:
        return self.rasters.shape[1]

    @property
    def channels(self) -> int:
        return self.rasters.shape[2]

    @property
    def classes(self) -> list[int]:
        return sorted(set(self.labels.tolist()))

    def reduce_channels(self, channels: int, augment: bool = True) -> "SpikeDataset":
        """Strided sub-sampling to ``channels``; with ``augment`` every offset is kept, so the
        dataset grows by the stride (seed 000's code does this for SHD's 700 -> 256)."""
        if channels >= self.channels:
            return self
        stride = -(-self.channels // channels)
        offsets = range(stride) if augment else [0]
        parts = [strided_channels(self.rasters, stride, o, channels) for o in offsets]
        k = len(parts)
        return SpikeDataset(torch.cat(parts), self.labels.repeat(k), self.speakers * k, self.class_names,
                            self.source, {**self.info, "channel_stride": stride, "channel_offsets": k})

    def fit_channels(self, channels: int) -> "SpikeDataset":
        """:meth:`reduce_channels` to fewer channels; to more, zero channels appended (inputs that
        never fire), so that the data fits a network of ``channels`` inputs either way."""
        if channels <= self.channels:
            return self.reduce_channels(channels)
        pad = torch.nn.functional.pad(self.rasters, (0, channels - self.channels))
        return SpikeDataset(pad, self.labels, self.speakers, self.class_names, self.source,
                            {**self.info, "padded_channels": channels - self.channels})

    def summary(self) -> dict:
        """Counts per class and speaker, and spike statistics (for ``neuromosaic data inspect``)."""
        per_sample = self.rasters.sum(dim=(1, 2), dtype=torch.int64).double()
        active = (self.rasters > 0).any(dim=1).sum(dim=1).double()
        names = self.class_names
        return {
            "source": self.source, "samples": len(self), "steps": self.steps, "channels": self.channels,
            "classes": {(names[c] if c < len(names) else str(c)): n
                        for c, n in sorted(Counter(self.labels.tolist()).items())},
            "speakers": dict(sorted(Counter(self.speakers).items())),
            "spikes_per_sample": {"mean": round(float(per_sample.mean()), 1), "std": round(float(per_sample.std()), 1),
                                  "min": int(per_sample.min()), "max": int(per_sample.max())},
            "active_channels_per_sample": round(float(active.mean()), 1),
            "rate_per_channel_per_step": round(float(per_sample.mean()) / (self.steps * self.channels), 4),
            **self.info,
        }
