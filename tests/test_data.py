"""Datasets and episodes: SHD in its exact HDF5 layout, real FSDD recordings, synthetic classes."""

import json
import os
import shutil
import wave
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from neuromosaic.model.data import (
    PROTOCOLS,
    CochleaEncoder,
    DataError,
    EpisodeSampler,
    load_fsdd,
    load_shd,
    load_source,
    synthetic_dataset,
)
from neuromosaic.model.data.fsdd import read_wav

from neuromosaic.cli import main

FSDD = Path(__file__).resolve().parent / "data" / "fsdd"       # the subset shipped with the suite


# -- SHD -----------------------------------------------------------------------------------------
def write_shd(path, samples, keys=None, drop=None):
    """An SHD file exactly as published: vlen float times, vlen uint16 units, labels, extra/."""
    keys = keys or [f"digit-{i}" for i in range(20)]
    with h5py.File(path, "w") as f:
        ft = h5py.vlen_dtype(np.dtype("float32"))
        fu = h5py.vlen_dtype(np.dtype("uint16"))
        times = f.create_dataset("spikes/times", (len(samples),), dtype=ft)
        units = f.create_dataset("spikes/units", (len(samples),), dtype=fu)
        for i, (t, u, _, _) in enumerate(samples):
            times[i], units[i] = np.asarray(t, np.float32), np.asarray(u, np.uint16)
        f.create_dataset("labels", data=np.array([s[2] for s in samples], np.uint16))
        f.create_dataset("extra/speaker", data=np.array([s[3] for s in samples], np.uint16))
        f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
        f.create_dataset("extra/meta_info/gender", data=np.array([b"female"]))
        if drop:
            del f[drop]
    return path


def test_shd_binning_and_window(tmp_path):
    samples = [([0.0, 0.013, 0.0135, 0.71, 1.399, 1.45, 2.5], [0, 5, 5, 699, 3, 3, 1], 7, 2),
               ([0.5], [10], 12, 5)]
    ds = load_shd(write_shd(tmp_path / "shd_train.h5", samples))
    assert ds.rasters.shape == (2, 100, 700) and ds.labels.tolist() == [7, 12]
    r = ds.rasters[0]
    assert r[0, 0] == 1 and r[0, 5] == 2            # 13 and 13.5 ms fall in bin 0 (14 ms wide bins)
    assert r[50, 699] == 1 and r[99, 3] == 1
    assert int(r.sum()) == 5                          # 1.45 s and 2.5 s are outside [0, 1.4)
    assert ds.info["events_outside_window"] == 2
    assert ds.speakers == ["speaker2", "speaker5"] and ds.class_names[12] == "digit-12"
    # the folder form picks shd_train.h5; the test split is asked for by name
    assert load_source(f"shd:{tmp_path}").rasters.shape == (2, 100, 700)
    with pytest.raises(DataError, match="shd_test.h5 does not exist"):
        load_source(f"shd:{tmp_path}", split="test")


def test_shd_strided_channels_and_augmentation(tmp_path):
    samples = [(np.full(700, 0.1), np.arange(700), 1, 0)]
    ds = load_shd(write_shd(tmp_path / "shd_train.h5", samples)).reduce_channels(256)
    assert ds.info["channel_stride"] == 3 and len(ds) == 3      # one copy per offset, as seed 000
    assert ds.rasters.shape == (3, 100, 256)
    # offset o keeps channels o, o+3, ...: 234, 233, 233 of them, zero-padded to 256
    assert [int(ds.rasters[k].sum()) for k in range(3)] == [234, 233, 233]
    assert int(ds.rasters[0, :, 234:].sum()) == 0


@pytest.mark.parametrize("drop", ["spikes/units", "labels", "extra/keys"])
def test_shd_wrong_layout(tmp_path, drop):
    path = write_shd(tmp_path / "x.h5", [([0.1], [1], 0, 0)], drop=drop)
    with pytest.raises(DataError, match=f"not laid out as SHD: dataset '{drop}' is missing"):
        load_shd(path)


def test_shd_truncated_and_missing(tmp_path):
    path = write_shd(tmp_path / "x.h5", [([0.1] * 50, [1] * 50, 0, 0)] * 20)
    data = path.read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.h5 (cannot be read as HDF5|is truncated or corrupt)"):
        load_shd(tmp_path / "cut.h5")
    with pytest.raises(DataError, match="nothere.h5 does not exist; download"):
        load_shd(tmp_path / "nothere.h5")


def test_shd_bad_units_and_pairs(tmp_path):
    with pytest.raises(DataError, match="sample 0 has unit 700; allowed: 0..699"):
        load_shd(write_shd(tmp_path / "a.h5", [([0.1], [700], 0, 0)]))
    with pytest.raises(DataError, match="sample 0 has 2 spike times but 1 units"):
        load_shd(write_shd(tmp_path / "b.h5", [([0.1, 0.2], [1], 0, 0)]))


# -- FSDD ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fsdd_subset(tmp_path_factory):
    """Real recordings: digits 0-9 of two speakers, three takes each, in FSDD's own layout (a copy,
    since the tests touch and damage files)."""
    root = tmp_path_factory.mktemp("fsdd")
    (root / "recordings").mkdir()
    for d in range(10):
        for s in ("george", "nicolas"):
            for i in range(3):
                shutil.copy(FSDD / "recordings" / f"{d}_{s}_{i}.wav", root / "recordings")
    return root


def test_fsdd_loads_real_recordings_and_caches(fsdd_subset, tmp_path):
    enc = CochleaEncoder(channels=32)
    ds = load_fsdd(fsdd_subset, encoder=enc, cache_dir=tmp_path, progress=False)
    assert len(ds) == 60 and ds.rasters.shape == (60, 100, 32) and not ds.info["from_cache"]
    assert sorted(set(ds.speakers)) == ["george", "nicolas"] and ds.classes == list(range(10))
    assert int(ds.rasters.sum()) > 60 * 50                      # every recording makes spikes
    again = load_fsdd(fsdd_subset, encoder=enc, cache_dir=tmp_path, progress=False)
    assert again.info["from_cache"] and torch.equal(again.rasters, ds.rasters)
    # a different encoder parameter is a different cache entry
    other = load_fsdd(fsdd_subset, encoder=CochleaEncoder(channels=32, max_rate=100.0), cache_dir=tmp_path,
                      progress=False)
    assert not other.info["from_cache"] and other.info["cache"] != ds.info["cache"]
    # a changed recording invalidates the cache
    wav = next((fsdd_subset / "recordings").glob("*.wav"))
    st = wav.stat()
    os.utime(wav, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not load_fsdd(fsdd_subset, encoder=enc, cache_dir=tmp_path, progress=False).info["from_cache"]
    # a damaged cache file is rebuilt, not trusted: garbage, or a file cut short
    entry = Path(load_fsdd(fsdd_subset, encoder=enc, cache_dir=tmp_path, progress=False).info["cache"])
    good = entry.read_bytes()
    for damaged in (b"garbage", good[: len(good) // 2], good[:-30]):
        entry.write_bytes(damaged)
        rebuilt = load_fsdd(fsdd_subset, encoder=enc, cache_dir=tmp_path, progress=False)
        assert not rebuilt.info["from_cache"] and torch.equal(rebuilt.rasters, ds.rasters)


def test_encoder_is_deterministic_and_spectral():
    audio = read_wav(FSDD / "recordings" / "3_george_2.wav")
    enc = CochleaEncoder(channels=48)
    a, _ = enc.encode(audio, 100, 1.0)
    b, _ = enc.encode(audio, 100, 1.0)
    assert np.array_equal(a, b)
    # a pure tone drives the channels tuned near it hardest; far channels (compressed skirts) much less
    t = np.arange(8000) / 8000
    tone = (np.sin(2 * np.pi * 1000 * t) * 8000).astype(np.int16)
    r, _ = enc.encode(tone, 100, 1.0)
    per_channel = r.sum(axis=0)
    best = int(np.argmax(per_channel))
    assert abs(enc.centre_frequencies[best] - 1000) < 150
    assert per_channel[np.abs(enc.centre_frequencies - 1000) > 800].max() < 0.3 * per_channel[best]


def _write_wav(path, rate=8000, channels=1, width=2, frames=800, truncate=False):
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x01\x00" * frames * channels * (width // 2 or 1))
    if truncate:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 400])


@pytest.mark.parametrize("kw, message", [
    ({"rate": 16000}, "sample rate 16000 Hz; allowed: 8000 Hz"),
    ({"channels": 2}, "has 2 channels; allowed: 1"),
    ({"width": 1}, "8-bit samples; allowed: 16-bit PCM"),
    ({"truncate": True}, "is truncated"),
])
def test_bad_wavs(tmp_path, kw, message):
    _write_wav(tmp_path / "1_george_0.wav", **kw)
    with pytest.raises(DataError, match=message):
        load_fsdd(tmp_path, cache_dir=tmp_path / "cache", progress=False)


def test_fsdd_bad_names_and_speakers(tmp_path, fsdd_subset):
    _write_wav(tmp_path / "george_1.wav")
    with pytest.raises(DataError, match="george_1.wav does not follow the FSDD name pattern"):
        load_fsdd(tmp_path, progress=False)
    with pytest.raises(DataError, match="speaker 'theo' is not in .*; allowed: george, nicolas"):
        load_fsdd(fsdd_subset, speakers=["theo"], progress=False)
    with pytest.raises(DataError, match="FSDD folder .* does not exist"):
        load_fsdd(tmp_path / "none", progress=False)
    with pytest.raises(DataError, match="channels=701 is not allowed; allowed: 1..700"):
        CochleaEncoder(channels=701)


# -- synthetic and episodes ----------------------------------------------------------------------
def test_synthetic_is_deterministic():
    a = synthetic_dataset(classes=6, samples_per_class=5, speakers=2, channels=32, seed=4)
    b = synthetic_dataset(classes=6, samples_per_class=5, speakers=2, channels=32, seed=4)
    c = synthetic_dataset(classes=6, samples_per_class=5, speakers=2, channels=32, seed=5)
    assert torch.equal(a.rasters, b.rasters) and not torch.equal(a.rasters, c.rasters)
    assert len(a) == 60 and a.classes == list(range(6)) and sorted(set(a.speakers)) == ["synth0", "synth1"]
    # classes differ more between each other than samples within a class
    m = a.rasters.float().view(6, 10, -1).mean(1)
    within = (a.rasters.float().view(6, 10, -1) - m.unsqueeze(1)).abs().mean()
    between = (m.unsqueeze(0) - m.unsqueeze(1)).abs().mean()
    assert between > 0.3 * within


def test_episodes_respect_class_and_speaker_splits():
    ds = synthetic_dataset(classes=20, samples_per_class=12, speakers=4, channels=16, steps=20)
    proto = PROTOCOLS["synthetic"]
    train, test = proto.meta_train(ds, seed=1), proto.meta_test(ds, seed=1)
    for i in range(30):
        e = train.episode(i)
        assert set(e.classes) <= set(proto.seen) and len(set(e.classes)) == 5
        assert {ds.speakers[j] for j in e.support_index.tolist() + e.query_index.tolist()} <= set(proto.train_speakers)
        assert not set(e.support_index.tolist()) & set(e.query_index.tolist())
        assert e.support.shape == (25, 20, 16) and e.query.shape == (25, 20, 16)
        assert torch.equal(e.support_labels, ds.labels[e.support_index])
        t = test.episode(i)
        assert {ds.speakers[j] for j in t.query_index.tolist()} <= set(proto.test_speakers)
    # reproducible from the seed, different for another seed
    assert torch.equal(train.episode(3).support_index, proto.meta_train(ds, seed=1).episode(3).support_index)
    assert not torch.equal(train.episode(3).support_index, proto.meta_train(ds, seed=2).episode(3).support_index)
    relabelled = proto.meta_train(ds, seed=1, relabel=True).episode(0)
    assert sorted(set(relabelled.support_labels.tolist())) == list(range(5))
    loader = torch.utils.data.DataLoader(EpisodeSampler(ds, episodes=4), batch_size=None)
    assert len(list(loader)) == 4


def test_fsdd_protocol_speakers_are_disjoint():
    p = PROTOCOLS["fsdd"]
    assert not set(p.train_speakers) & set(p.test_speakers)
    assert not set(p.seen) & set(p.unseen) and sorted(p.seen + p.unseen) == list(range(10))
    shd = PROTOCOLS["shd-seed000"]
    assert shd.unseen == (0, 3, 4, 11, 12) and len(shd.seen) == 15


def test_episode_bad_requests():
    ds = synthetic_dataset(classes=4, samples_per_class=3, speakers=2, channels=8, steps=10)
    with pytest.raises(DataError, match="n_way=5 is larger than the 4 classes available"):
        EpisodeSampler(ds, n_way=5)
    with pytest.raises(DataError, match=r"class 9 is not in synthetic; allowed: \[0, 1, 2, 3\]"):
        EpisodeSampler(ds, n_way=2, classes=[0, 9])
    with pytest.raises(DataError, match="speaker 'bob' is not in synthetic; allowed: synth0, synth1"):
        EpisodeSampler(ds, n_way=2, speakers=["bob"])
    with pytest.raises(DataError, match="class 0 has 3 samples for the chosen speakers; a 2-shot task with 2 "
                                        "queries needs 4"):
        EpisodeSampler(ds, n_way=2, k_shot=2, k_query=2, speakers=["synth0"])


# -- CLI -----------------------------------------------------------------------------------------
def test_cli_data_commands(tmp_path, capsys, fsdd_subset, monkeypatch):
    monkeypatch.setenv("NEUROMOSAIC_CACHE", str(tmp_path / "cache"))
    assert main(["data", "inspect", "synthetic", "--channels", "64"]) == 0
    assert '"samples": 4800' in capsys.readouterr().out
    png = tmp_path / "r.png"
    assert main(["data", "raster", f"fsdd:{fsdd_subset}", "--index", "7", "-o", str(png)]) == 0
    assert png.stat().st_size > 5000
    assert main(["data", "encode", f"fsdd:{fsdd_subset}"]) == 0
    assert "60 recordings encoded" in capsys.readouterr().out
    assert main(["data", "inspect", "mnist"]) == 2
    assert ("data source 'mnist' is not understood; allowed: shd:DIR, fsdd:DIR, events:FILE or synthetic"
            in capsys.readouterr().err)
    assert main(["data", "raster", "synthetic", "--index", "99999", "-o", str(png)]) == 2


def test_bench_data_quick(tmp_path, capsys):
    assert main(["bench", "data", "--quick", "--out", str(tmp_path), "--fsdd", str(FSDD)]) == 0
    import json
    r = json.loads((tmp_path / "data.json").read_text())
    assert r["episodes"]["episodes_per_s"] > 0 and r["training_step_proxy"]["s_per_step"] > 0
    assert [e["channels"] for e in r["fsdd_encoding"]] == [64, 256]
    assert r["fsdd_encoding"][0]["audio_s_per_wall_s"] > 1          # faster than real time


# -- events from anywhere (tonic's convention) -----------------------------------------------------
def _events_of(ds, window_s=1.0, unit="ms", dtype="<f8"):
    """The samples of ``ds`` as one event per count, at the centre of its bin, in an event file's arrays."""
    steps = ds.steps
    scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
    events, counts = [], []
    for r in ds.rasters.numpy():
        t, x = np.nonzero(r)
        reps = r[t, x]
        e = np.zeros(int(reps.sum()), dtype=[("t", dtype), ("x", "<i2"), ("p", "<i1")])
        e["t"], e["x"], e["p"] = np.repeat((t + 0.5) * window_s / steps * scale, reps), np.repeat(x, reps), 1
        events.append(e)
        counts.append(len(e))
    return {"events": np.concatenate(events), "counts": np.array(counts), "labels": ds.labels.numpy(),
            "groups": np.array(ds.speakers), "window_s": window_s, "time_unit": unit}


@pytest.mark.parametrize("suffix", [".npz", ".h5"])
def test_event_files_bin_like_the_rasters_they_came_from(tmp_path, suffix):
    ds = synthetic_dataset(classes=6, samples_per_class=6, speakers=2, channels=24, steps=30, seed=1)
    arrays = _events_of(ds)
    path = tmp_path / f"ev{suffix}"
    if suffix == ".npz":
        np.savez(path, **arrays)
    else:
        with h5py.File(path, "w") as f:
            for k, v in arrays.items():
                f[k] = v.astype("S") if k == "groups" else v
    back = load_source(f"events:{path}", steps=30)
    assert torch.equal(back.rasters, ds.rasters) and torch.equal(back.labels, ds.labels)
    assert back.speakers == ds.speakers and back.info["events_outside_window"] == 0
    # wider networks take the data zero-padded, narrower ones strided
    assert load_source(f"events:{path}", steps=30, channels=32).rasters[..., 24:].sum() == 0
    assert load_source(f"events:{path}", steps=30, channels=12).channels == 12


def test_event_file_protocol_from_the_command_line(tmp_path):
    from neuromosaic.model.data import protocol_for
    ds = synthetic_dataset(classes=6, samples_per_class=6, speakers=2, channels=24, steps=30, seed=1)
    np.savez(tmp_path / "ev.npz", **_events_of(ds))
    ev = load_source(f"events:{tmp_path / 'ev.npz'}", steps=30)
    p = protocol_for("events", ev)
    assert p.seen == (0, 1, 2, 3) and p.unseen == (4, 5) and p.train_speakers is None
    p = protocol_for("events", ev, unseen=[0], train_groups=["synth0"], test_groups=["synth1"])
    assert p.seen == (1, 2, 3, 4, 5) and p.train_speakers == ("synth0",)
    for kw, message in [({"seen": [7]}, "class 7 in --seen is not in events:"),
                        ({"seen": [1], "unseen": [1, 2]}, "class 1 is both seen and unseen"),
                        ({"test_groups": ["bob"]}, "group 'bob' in --test-groups is not in events:.*allowed: "
                                                   "synth0, synth1")]:
        with pytest.raises(DataError, match=message):
            protocol_for("events", ev, **kw)


def test_train_and_eval_on_an_event_file(tmp_path, capsys):
    ds = synthetic_dataset(classes=6, samples_per_class=12, speakers=2, channels=24, steps=30, seed=1)
    np.savez(tmp_path / "ev.npz", **_events_of(ds))
    out = tmp_path / "run"
    data = f"events:{tmp_path / 'ev.npz'}"
    assert main(["train", "--data", data, "--unseen", "5", "--train-groups", "synth0", "--iterations", "2",
                 "--out", str(out)]) == 0
    train = json.loads((out / "network.json").read_text())["metadata"]["train"]
    assert train["unseen"] == [5] and train["train_groups"] == ["synth0"]
    assert main(["eval", "--checkpoint", str(out), "--tasks", "3"]) == 0
    assert "seen" in capsys.readouterr().out
    assert main(["train", "--data", data, "--seen", "a,b", "--iterations", "2", "--out", str(out)]) == 2
    assert "--seen 'a,b' is not a list of class ids" in capsys.readouterr().err


def _bad_events(tmp_path, **change):
    ds = synthetic_dataset(classes=3, samples_per_class=2, speakers=1, channels=8, steps=10, seed=1)
    arrays = {**_events_of(ds), **change}
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(tmp_path / "bad.npz", **arrays)
    return tmp_path / "bad.npz"


@pytest.mark.parametrize("change, message", [
    ({"labels": None}, "lacks the array 'labels'"),
    ({"events": np.zeros(3, dtype=[("t", "<f8"), ("p", "<i1")])}, "the events lack the field 'x'"),
    ({"events": np.zeros(3, dtype=[("t", "<f8"), ("x", "<i2"), ("y", "<i2")])}, "have a field 'y'"),
    ({"time_unit": "ns"}, "time_unit 'ns' is unknown; allowed: us, ms, s"),
    ({"counts": np.array([1, 2])}, "counts has shape (2,); allowed: one non-negative integer per label (6)"),
    ({"counts": np.array([1, 1, 1, 1, 1, 1])}, "the counts add up to 6 events but the file holds"),
    ({"labels": np.array([0, 0, 1, 1, 2, -1])}, "label -1 of sample 5 is not a class of the file"),
    ({"labels": np.array([0, 0, 1, 1, 2, 4]), "classes": np.array(["a", "b", "c"])},
     "label 4 of sample 5 is not a class of the file; allowed: 0..2"),
    ({"channels": 2}, "is outside the sensor; allowed: 0..1"),
    ({"groups": np.array(["a", "b"])}, "2 groups for 6 samples"),
])
def test_bad_event_files(tmp_path, capsys, change, message):
    import re
    path = _bad_events(tmp_path, **change)
    with pytest.raises(DataError, match=re.escape(message)):
        load_source(f"events:{path}", steps=10)
    assert main(["data", "inspect", f"events:{path}", "--steps", "10"]) == 2          # one sentence, no traceback
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_negative_event_times_and_bad_paths(tmp_path):
    path = _bad_events(tmp_path)
    z = dict(np.load(path))
    z["events"]["t"][4] = -2.0
    np.savez(path, **z)
    with pytest.raises(DataError, match=r"sample \d has the negative time -0.002 s"):
        load_source(f"events:{path}", steps=10)
    with pytest.raises(DataError, match="event file .*none.npz does not exist"):
        load_source(f"events:{tmp_path / 'none.npz'}")
    (tmp_path / "ev.csv").write_text("t,x\n")
    with pytest.raises(DataError, match="has the suffix '.csv'; allowed: .npz, .h5, .hdf5"):
        load_source(f"events:{tmp_path / 'ev.csv'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot be read as .npz"):
        load_source(f"events:{tmp_path / 'junk.npz'}")
