"""N-way K-shot episodes, class and speaker splits, and the named protocols.

An :class:`EpisodeSampler` draws tasks from a :class:`SpikeDataset` restricted to some classes and
speakers: ``n_way`` classes without replacement, then ``k_shot`` support and ``k_query`` query samples
per class, all distinct. Episode ``i`` is a pure function of ``(seed, i)``, so a run is reproducible
and the sampler splits across ``torch.utils.data`` workers (it is an ``IterableDataset``).

Labels are global class ids by default, as in seed 000's code (the readout keeps one output per class
of the whole dataset); ``relabel=True`` gives per-task labels 0..n_way-1 in the order of ``classes``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import DataError, SpikeDataset

__all__ = ["Episode", "EpisodeSampler", "Protocol", "PROTOCOLS", "protocol_for"]


@dataclass
class Episode:
    support: torch.Tensor          # [n_way * k_shot, T, C] float32
    support_labels: torch.Tensor   # [n_way * k_shot]
    query: torch.Tensor            # [n_way * k_query, T, C]
    query_labels: torch.Tensor
    classes: list[int]             # global class ids, in task order
    support_index: torch.Tensor    # dataset indices (for tests and debugging)
    query_index: torch.Tensor


class EpisodeSampler(torch.utils.data.IterableDataset):
    def __init__(self, dataset: SpikeDataset, *, n_way: int = 5, k_shot: int = 5, k_query: int = 5,
                 classes=None, speakers=None, relabel: bool = False, seed: int = 0, episodes: int | None = None):
        if n_way < 1 or k_shot < 1 or k_query < 0:
            raise DataError(f"n_way={n_way}, k_shot={k_shot}, k_query={k_query}: allowed are n_way >= 1, "
                            f"k_shot >= 1, k_query >= 0.")
        present_classes = dataset.classes
        classes = present_classes if classes is None else sorted(int(c) for c in classes)
        for c in classes:
            if c not in present_classes:
                raise DataError(f"class {c} is not in {dataset.source}; allowed: {present_classes}.")
        present_speakers = sorted(set(dataset.speakers))
        if speakers is not None:
            for s in speakers:
                if s not in present_speakers:
                    raise DataError(f"speaker {s!r} is not in {dataset.source}; allowed: "
                                    f"{', '.join(present_speakers)}.")
        if n_way > len(classes):
            raise DataError(f"n_way={n_way} is larger than the {len(classes)} classes available ({classes}); "
                            f"allowed: n_way <= {len(classes)}.")
        keep_speaker = set(speakers) if speakers is not None else None
        self._pools = {}
        for c in classes:
            idx = [i for i in torch.nonzero(dataset.labels == c).flatten().tolist()
                   if keep_speaker is None or dataset.speakers[i] in keep_speaker]
            if len(idx) < k_shot + k_query:
                raise DataError(f"class {c} has {len(idx)} samples for the chosen speakers; a {k_shot}-shot task "
                                f"with {k_query} queries needs {k_shot + k_query}.")
            self._pools[c] = torch.tensor(idx)
        self.dataset, self.classes, self.speakers = dataset, classes, speakers
        self.n_way, self.k_shot, self.k_query = n_way, k_shot, k_query
        self.relabel, self.seed, self.episodes = relabel, seed, episodes

    def episode(self, i: int) -> Episode:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + i)
        chosen = [self.classes[j] for j in torch.randperm(len(self.classes), generator=g)[:self.n_way].tolist()]
        sup, qry = [], []
        for c in chosen:
            pool = self._pools[c]
            pick = pool[torch.randperm(len(pool), generator=g)[:self.k_shot + self.k_query]]
            sup.append(pick[:self.k_shot])
            qry.append(pick[self.k_shot:])
        sup, qry = torch.cat(sup), torch.cat(qry)
        labels = self.dataset.labels
        if self.relabel:
            task = {c: k for k, c in enumerate(chosen)}
            s_lab = torch.tensor([task[int(x)] for x in labels[sup]])
            q_lab = torch.tensor([task[int(x)] for x in labels[qry]], dtype=torch.int64)
        else:
            s_lab, q_lab = labels[sup].clone(), labels[qry].clone()
        r = self.dataset.rasters
        return Episode(r[sup].float(), s_lab, r[qry].float(), q_lab, chosen, sup, qry)

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        start, step = (0, 1) if info is None else (info.id, info.num_workers)
        i = start
        while self.episodes is None or i < self.episodes:
            yield self.episode(i)
            i += step

    def batch(self, first: int, count: int) -> list[Episode]:
        return [self.episode(i) for i in range(first, first + count)]


@dataclass(frozen=True)
class Protocol:
    """A few-shot protocol: which classes meta-training sees, which are held out, and which speakers
    each phase uses. Meta-test tasks draw from all classes; accuracy is reported separately on
    queries of seen and of unseen classes (seed 000's code)."""
    name: str
    seen: tuple[int, ...]
    unseen: tuple[int, ...]
    train_speakers: tuple[str, ...] | None = None
    test_speakers: tuple[str, ...] | None = None

    def meta_train(self, dataset: SpikeDataset, **kw) -> EpisodeSampler:
        return EpisodeSampler(dataset, classes=self.seen, speakers=self.train_speakers, **kw)

    def meta_test(self, dataset: SpikeDataset, **kw) -> EpisodeSampler:
        return EpisodeSampler(dataset, classes=self.seen + self.unseen, speakers=self.test_speakers, **kw)


PROTOCOLS = {
    # Seed 000 (meta-mosaic): SHD, classes {0, 3, 4, 11, 12} held out; meta-test on shd_test.h5.
    "shd-seed000": Protocol("shd-seed000", seen=tuple(c for c in range(20) if c not in (0, 3, 4, 11, 12)),
                            unseen=(0, 3, 4, 11, 12)),
    # Ours on FSDD: digits {0, 3, 4} held out; speakers split between meta-training and meta-test.
    "fsdd": Protocol("fsdd", seen=(1, 2, 5, 6, 7, 8, 9), unseen=(0, 3, 4),
                     train_speakers=("george", "jackson", "lucas"), test_speakers=("nicolas", "yweweler")),
    # Built-in synthetic data: the last quarter of the classes and speakers held out.
    "synthetic": Protocol("synthetic", seen=tuple(range(15)), unseen=tuple(range(15, 20)),
                          train_speakers=("synth0", "synth1", "synth2"), test_speakers=("synth3",)),
}


def protocol_for(kind: str, dataset: SpikeDataset, *, seen=None, unseen=None, train_groups=None,
                 test_groups=None) -> Protocol:
    """The protocol of data of ``kind`` ("shd", "fsdd", "synthetic", "events"), with any of its
    classes and groups (speakers) replaced by those given, checked against ``dataset``. Event files
    have no named protocol: the first three quarters of their classes are seen unless given, and
    every group serves both phases."""
    base = PROTOCOLS.get("shd-seed000" if kind == "shd" else kind)
    classes = dataset.classes
    if base is None:
        cut = max(1, (3 * len(classes)) // 4)
        base = Protocol(kind, seen=tuple(classes[:cut]), unseen=tuple(classes[cut:]))
    for flag, chosen in (("--seen", seen), ("--unseen", unseen)):      # only what is given is checked
        bad = [c for c in chosen or () if c not in classes]
        if bad:
            raise DataError(f"class {bad[0]} in {flag} is not in {dataset.source}; allowed: "
                            f"{', '.join(map(str, classes))}.")
    if seen is not None and unseen is None:
        unseen = [c for c in classes if c not in seen]
    if unseen is not None and seen is None:
        seen = [c for c in classes if c not in unseen]
    seen = tuple(base.seen if seen is None else seen)
    unseen = tuple(base.unseen if unseen is None else unseen)
    both = sorted(set(seen) & set(unseen))
    if both:
        raise DataError(f"class {both[0]} is both seen and unseen; allowed: each class in one of --seen, --unseen.")
    if not seen:
        raise DataError(f"no class of {dataset.source} is left to meta-train on; allowed: at least one seen class.")
    groups = sorted(set(dataset.speakers))
    for flag, chosen in (("--train-groups", train_groups), ("--test-groups", test_groups)):
        bad = [g for g in chosen or () if g not in groups]
        if bad:
            raise DataError(f"group {bad[0]!r} in {flag} is not in {dataset.source}; allowed: {', '.join(groups)}.")
    return Protocol(base.name, seen, unseen,
                    base.train_speakers if train_groups is None else tuple(train_groups),
                    base.test_speakers if test_groups is None else tuple(test_groups))
