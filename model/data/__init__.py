"""Spiking data: SHD (HDF5), FSDD (wav through a cochlea encoder), anyone's labelled events (tonic's
convention), built-in synthetic classes, and few-shot episodes over them. ``load_source("shd:DIR" |
"fsdd:DIR" | "events:FILE" | "synthetic")`` is what the CLI and the training take."""

from __future__ import annotations

from pathlib import Path

from .base import DataError, SpikeDataset, bin_events, strided_channels
from .episodes import PROTOCOLS, Episode, EpisodeSampler, Protocol, protocol_for
from .events import load_events
from .fsdd import CochleaEncoder, load_fsdd
from .shd import load_shd, shd_path
from .synthetic import SyntheticSpec, synthetic_dataset

__all__ = ["DataError", "SpikeDataset", "Episode", "EpisodeSampler", "Protocol", "PROTOCOLS", "CochleaEncoder",
           "SyntheticSpec", "load_source", "load_events", "protocol_for", "load_fsdd", "load_shd", "synthetic_dataset",
           "bin_events", "strided_channels", "shd_path", "SOURCES"]

SOURCES = "shd:DIR, fsdd:DIR, events:FILE or synthetic"


def load_source(source: str, *, split: str = "train", channels: int | None = None, steps: int = 100,
                progress: bool = True) -> SpikeDataset:
    """``shd:DIR`` (the folder with shd_train.h5 / shd_test.h5; ``split`` picks one), ``fsdd:DIR`` (the
    FSDD root or its recordings folder), ``events:FILE`` (labelled event samples, ``model.data.events``)
    or ``synthetic``."""
    kind, _, arg = source.partition(":")
    if kind == "synthetic" and not arg:
        return synthetic_dataset(steps=steps, **({"channels": channels} if channels else {}))
    if kind == "shd" and arg:
        ds = load_shd(shd_path(arg, split) if Path(arg).is_dir() else arg, steps=steps)
        return ds.reduce_channels(channels) if channels else ds
    if kind == "fsdd" and arg:
        return load_fsdd(arg, encoder=CochleaEncoder(channels=channels or 64), steps=steps, progress=progress)
    if kind == "events" and arg:
        ds = load_events(arg, steps=steps)
        return ds.fit_channels(channels) if channels else ds
    raise DataError(f"data source {source!r} is not understood; allowed: {SOURCES}.")
