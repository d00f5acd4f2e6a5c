"""Free Spoken Digit Dataset recordings turned into spikes by a cochlea-like encoder.

Encoder (deterministic, vectorised over channels), per recording:

1. the waveform is normalised to unit RMS (an automatic gain control);
2. a bank of 4th-order gammatone band-pass filters (scipy's IIR design) with centre frequencies
   equally spaced on the ERB-rate scale (Glasberg & Moore: 21.4 log10(1 + 0.00437 f)) between
   ``f_min`` and ``f_max``: log-like spacing, as along the basilar membrane;
3. half-wave rectification, averaging over frames of ``1 / frame_rate`` s, and cube-root
   compression (Stevens' power law), scaled so the loudest frame of the recording is 1;
4. per channel an integrate-and-fire neuron driven by that envelope: it fires at up to
   ``max_rate`` spikes/s and subtracts its threshold when it fires (a leak ``tau`` damps quiet noise);
5. the spikes are binned like SHD: ``steps`` bins over ``window`` seconds from the recording's start.

Results are cached on disk, keyed by every encoder parameter and by the recordings' names, sizes and
modification times, so changing any of them re-encodes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import DAMAGED_NPZ, DataError, SpikeDataset, bin_events

__all__ = ["CochleaEncoder", "FSDD_SPEAKERS", "fsdd_files", "read_wav", "load_fsdd", "default_cache_dir"]

FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
MAX_CHANNELS = 700


def default_cache_dir() -> Path:
    return Path(os.environ.get("NEUROMOSAIC_CACHE", Path.home() / ".cache" / "neuromosaic"))


@dataclass(frozen=True)
class CochleaEncoder:
    channels: int = 64
    sample_rate: int = 8000
    f_min: float = 100.0
    f_max: float = 3600.0
    frame_rate: float = 1000.0
    max_rate: float = 200.0          # spikes per second of a channel at full envelope
    tau: float = 0.05                # leak of the spike generator, seconds

    def __post_init__(self):
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise DataError(f"channels={self.channels} is not allowed; allowed: 1..{MAX_CHANNELS}.")
        if not 0 < self.f_min < self.f_max < self.sample_rate / 2:
            raise DataError(f"f_min={self.f_min}, f_max={self.f_max} Hz: allowed are 0 < f_min < f_max < "
                            f"{self.sample_rate / 2} Hz (half the sample rate).")
        if self.sample_rate % self.frame_rate:
            raise DataError(f"frame_rate={self.frame_rate} Hz must divide sample_rate={self.sample_rate} Hz.")

    @property
    def centre_frequencies(self) -> np.ndarray:
        erb = lambda f: 21.4 * np.log10(1 + 0.00437 * f)          # noqa: E731
        inv = lambda e: (10 ** (e / 21.4) - 1) / 0.00437           # noqa: E731
        return inv(np.linspace(erb(self.f_min), erb(self.f_max), self.channels))

    def envelope(self, audio: np.ndarray) -> np.ndarray:
        """Compressed band envelopes [frames, channels] in 0..1."""
        from scipy.signal import gammatone, lfilter
        x = audio.astype(np.float64)
        x = x / (np.sqrt(np.mean(x ** 2)) + 1e-12)
        hop = int(self.sample_rate // self.frame_rate)
        frames = len(x) // hop
        env = np.empty((frames, self.channels))
        for c, fc in enumerate(self.centre_frequencies):
            b, a = gammatone(fc, "iir", fs=self.sample_rate)
            y = np.maximum(lfilter(b, a, x)[:frames * hop], 0.0)
            env[:, c] = y.reshape(frames, hop).mean(axis=1)
        env = np.cbrt(env)
        return env / (env.max() + 1e-12)

    def spike_times(self, audio: np.ndarray):
        """Spike times (s) and channels of an integrate-and-fire neuron per channel."""
        env = self.envelope(audio)
        dt = 1.0 / self.frame_rate
        decay = np.exp(-dt / self.tau)
        drive = env * (self.max_rate * dt)
        v = np.zeros(self.channels)
        times, units = [], []
        for k in range(env.shape[0]):
            v = v * decay + drive[k]
            fired = np.nonzero(v >= 1.0)[0]
            if fired.size:
                v[fired] -= 1.0
                times.append(np.full(fired.size, k * dt))
                units.append(fired)
        if not times:
            return np.zeros(0), np.zeros(0, dtype=np.int64)
        return np.concatenate(times), np.concatenate(units)

    def encode(self, audio: np.ndarray, steps: int, window: float) -> tuple[np.ndarray, int]:
        t, u = self.spike_times(audio)
        return bin_events(t, u, steps, window, self.channels)


def read_wav(path: Path, sample_rate: int = 8000) -> np.ndarray:
    try:
        with wave.open(str(path), "rb") as w:
            rate, chans, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as e:
        raise DataError(f"{path} is not a readable WAV file ({e}).") from None
    if rate != sample_rate:
        raise DataError(f"{path} has sample rate {rate} Hz; allowed: {sample_rate} Hz.")
    if chans != 1:
        raise DataError(f"{path} has {chans} channels; allowed: 1 (mono).")
    if width != 2:
        raise DataError(f"{path} has {8 * width}-bit samples; allowed: 16-bit PCM.")
    if len(raw) < 2 * n or n == 0:
        raise DataError(f"{path} is truncated: its header announces {n} samples, {len(raw) // 2} are there.")
    return np.frombuffer(raw, dtype="<i2")


def fsdd_files(folder: str | Path, speakers=None) -> list[tuple[Path, int, str, int]]:
    """(path, digit, speaker, index) of every recording, sorted. ``folder`` is the dataset's root or
    its ``recordings`` folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"FSDD folder {folder} does not exist.")
    rec = folder / "recordings" if (folder / "recordings").is_dir() else folder
    out = []
    for p in sorted(rec.glob("*.wav")):
        m = _NAME.match(p.name)
        if not m:
            raise DataError(f"{p.name} does not follow the FSDD name pattern {{digit}}_{{speaker}}_{{index}}.wav.")
        out.append((p, int(m.group(1)), m.group(2), int(m.group(3))))
    if not out:
        raise DataError(f"{rec} holds no .wav recordings.")
    if speakers is not None:
        present = sorted({s for _, _, s, _ in out})
        unknown = [s for s in speakers if s not in present]
        if unknown:
            raise DataError(f"speaker {unknown[0]!r} is not in {rec}; allowed: {', '.join(present)}.")
        out = [f for f in out if f[2] in speakers]
    return out


def _cache_key(files, encoder: CochleaEncoder, steps: int, window: float) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": dataclasses.asdict(encoder), "steps": steps, "window": window,
                         "version": 1}, sort_keys=True).encode())
    for p, *_ in files:
        st = p.stat()
        h.update(f"{p.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:16]


def load_fsdd(folder: str | Path, *, encoder: CochleaEncoder | None = None, steps: int = 100, window: float = 1.0,
              speakers=None, cache_dir: str | Path | None = None, progress: bool = True) -> SpikeDataset:
    encoder = encoder or CochleaEncoder()
    if steps < 1 or not window > 0:
        raise DataError(f"steps={steps}, window={window}: allowed are steps >= 1 and a window > 0 seconds.")
    files = fsdd_files(folder, speakers)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"fsdd-{_cache_key(files, encoder, steps, window)}.npz"
    if path.exists():
        try:
            with np.load(path) as z:
                rasters, outside = z["rasters"], int(z["outside"])
        except DAMAGED_NPZ:
            rasters = None          # a damaged cache entry is rebuilt, never trusted
    else:
        rasters = None
    cached = rasters is not None
    if not cached:
        from tqdm import tqdm
        rasters = np.zeros((len(files), steps, encoder.channels), dtype=np.uint8)
        outside = 0
        for i, (p, *_rest) in enumerate(tqdm(files, desc=f"encoding FSDD ({encoder.channels} channels)",
                                             unit="wav", disable=not progress)):
            rasters[i], dropped = encoder.encode(read_wav(p, encoder.sample_rate), steps, window)
            outside += dropped
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp.npz")
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, rasters=rasters, outside=outside)
        os.replace(tmp, path)          # atomic: a reader never sees half a cache file
    return SpikeDataset(torch.from_numpy(rasters), torch.tensor([d for _, d, _, _ in files]),
                        [s for _, _, s, _ in files], DIGIT_NAMES, source=f"fsdd:{folder}",
                        info={"encoder": dataclasses.asdict(encoder), "window_s": window,
                              "events_outside_window": outside, "cache": str(path), "from_cache": cached})
