"""Synapse memory organisations (issue 6, model part; seed 001: Schaefer et al., ISCAS 2020): where
a layer's weights live, and how many reads and writes of which physical memory each access costs.

An organisation stores a ``[post, pre]`` integer weight matrix, zero meaning "no synapse", in one or
more physical memories (each a depth and a word width) and serves three accesses:

* ``forward(pre)``: the targets of a presynaptic event, ``[(post, weight)]`` in ascending ``post``;
* ``transposed(post)``: the sources of a postsynaptic error (learning), ``[(pre, weight)]`` in
  ascending ``pre``;
* ``update(post, pre, value)``: a new value for an existing synapse (a zero matrix entry of a sparse
  organisation has no storage; writing it is refused).

Every access counts its reads and writes per physical memory, one per word. Organisations and
their conventions (``W`` the weight bits, ``Npre``/``Npost`` the sizes, ``nnz`` the synapses):

* ``dense`` (crossbar): ``weights[pre * Npost + post]``, one weight a word. Forward reads the
  ``Npost`` words of a row and returns every weight, zeros included (the crossbar's datapath adds
  them); transposed reads the ``Npre`` words of a column.
* ``bitmap`` (PB-BMP): ``pointer[pre]`` (the row's first weight), ``bitmap[pre]`` in words of
  ``bitmap_word`` bits (one bit per post), and the non-zero weights packed row by row. Forward:
  one pointer read, the row's bitmap words, one weight read per synapse. Transposed: per ``pre``
  the bitmap word holding ``post``; where the bit is set, the pointer and the bitmap words before it
  (the position is the pointer plus the ones below ``post``) and the weight.
* ``csr`` (PB-CSR): ``pointer[pre]`` for ``pre`` in ``0..Npre`` (row ``pre`` is ``pointer[pre] ..
  pointer[pre + 1] - 1``), ``index`` (the post of each synapse) and ``weights``. Forward: two pointer
  reads, one index and one weight read per synapse. Transposed: per ``pre`` the two pointers and
  the indices of the row up to the first ``>= post`` (ascending: the scan stops there), the weight
  where it is ``post``.
* ``functional`` (Func-Pure, for a convolution with stride 1 and "same" zero padding): only the
  kernel ``[Cout, Cin, kh, kw]`` is stored, one weight a word; addresses are computed. A presynaptic
  event at ``(ci, y, x)`` reaches ``(co, y - ky + ph, x - kx + pw)`` with weight ``K[co, ci, ky, kx]``
  and ``(ph, pw) = (kh // 2, kw // 2)`` (post = pre + kernel offset), an error at ``(co, oy, ox)``
  comes from ``(ci, oy + ky - ph, ox + kx - pw)`` (pre = post - kernel offset); the one stored kernel
  serves both. Every in-range position reads
  its kernel word, zero or not. An update writes the kernel word, which every synapse sharing it sees.

Updates of the other organisations find their synapse as the transposed access does, then write the
weight word. Neuron indices of a convolution are flattened channel-major: ``(c * H + y) * W + x``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from .config import ConfigError, bits_for

__all__ = ["PhysicalMemory", "SynapseMemory", "DenseMemory", "BitmapMemory", "CSRMemory", "FunctionalConvMemory",
           "ORGANISATIONS", "make_memory", "conv_matrix", "pass_counts"]


@dataclass(frozen=True)
class PhysicalMemory:
    name: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


class SynapseMemory:
    """Base class: the matrix, the physical memories and the access counters."""

    name = "base"

    def __init__(self, weights, weight_bits: int):
        w = torch.as_tensor(weights).to(torch.int64)
        if w.dim() != 2:
            raise ConfigError(f"a synapse memory holds a 2-d [post, pre] matrix, not a {w.dim()}-d one.")
        lo, hi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
        if w.numel() and (int(w.min()) < lo or int(w.max()) > hi):
            raise ConfigError(f"weights in {int(w.min())}..{int(w.max())} do not fit {weight_bits} bits; allowed: "
                              f"{lo}..{hi}.")
        self.post, self.pre = w.shape
        self.weight_bits = weight_bits
        self.reads: Counter = Counter()
        self.writes: Counter = Counter()
        self._w = w.clone()                      # the reference contents, for what the accesses return

    # -- what every organisation provides ---------------------------------------------------------
    def memories(self) -> list[PhysicalMemory]:
        raise NotImplementedError

    def forward(self, pre: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def transposed(self, post: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def update(self, post: int, pre: int, value: int) -> None:
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------------
    @property
    def synapses(self) -> int:
        return int((self._w != 0).sum())

    def matrix(self) -> torch.Tensor:
        """The ``[post, pre]`` matrix the memory holds now."""
        return self._w.clone()

    def counts(self) -> dict:
        """Reads and writes per physical memory since the last :meth:`reset_counts`."""
        return {m.name: {"reads": self.reads[m.name], "writes": self.writes[m.name]} for m in self.memories()}

    def reset_counts(self) -> None:
        self.reads.clear()
        self.writes.clear()

    def _check_pre(self, pre: int) -> None:
        if not 0 <= pre < self.pre:
            raise ConfigError(f"presynaptic index {pre} is out of range; allowed: 0..{self.pre - 1}.")

    def _check_post(self, post: int) -> None:
        if not 0 <= post < self.post:
            raise ConfigError(f"postsynaptic index {post} is out of range; allowed: 0..{self.post - 1}.")

    def _check_value(self, value: int) -> None:
        lo, hi = -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1
        if not lo <= value <= hi:
            raise ConfigError(f"weight {value} does not fit {self.weight_bits} bits; allowed: {lo}..{hi}.")


class DenseMemory(SynapseMemory):
    name = "dense"

    def memories(self):
        return [PhysicalMemory("weights", self.pre * self.post, self.weight_bits)]

    def forward(self, pre):
        self._check_pre(pre)
        self.reads["weights"] += self.post
        return [(post, int(self._w[post, pre])) for post in range(self.post)]

    def transposed(self, post):
        self._check_post(post)
        self.reads["weights"] += self.pre
        return [(pre, int(self._w[post, pre])) for pre in range(self.pre)]

    def update(self, post, pre, value):
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        self.writes["weights"] += 1
        self._w[post, pre] = value


class _Sparse(SynapseMemory):
    """Sparse organisations: zero entries have no storage; updates keep the structure."""

    def _check_synapse(self, post: int, pre: int, value: int) -> None:
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        if self._w[post, pre] == 0:
            raise ConfigError(f"there is no synapse from {pre} to {post} in the {self.name} organisation; only "
                              "existing synapses can be updated.")
        if value == 0:
            raise ConfigError(f"a zero weight for the synapse from {pre} to {post} would remove it from the "
                              f"{self.name} organisation's structure; allowed: a non-zero value.")

    def _row(self, pre: int) -> list[int]:
        return torch.nonzero(self._w[:, pre]).flatten().tolist()

    def _find(self, post: int, pre: int) -> bool:
        """Counts the reads that locate synapse (post, pre); returns whether it exists."""
        raise NotImplementedError

    def transposed(self, post):
        self._check_post(post)
        out = []
        for pre in range(self.pre):
            if self._find(post, pre):
                self.reads["weights"] += 1
                out.append((pre, int(self._w[post, pre])))
        return out

    def update(self, post, pre, value):
        self._check_synapse(post, pre, value)
        self._find(post, pre)
        self.writes["weights"] += 1
        self._w[post, pre] = value


class BitmapMemory(_Sparse):
    name = "bitmap"

    def __init__(self, weights, weight_bits: int, bitmap_word: int = 16):
        super().__init__(weights, weight_bits)
        if bitmap_word < 1:
            raise ConfigError(f"bitmap_word={bitmap_word} is not allowed; allowed: 1 or more bits.")
        self.bitmap_word = bitmap_word
        self.row_words = -(-self.post // bitmap_word)

    def memories(self):
        return [PhysicalMemory("pointer", self.pre, bits_for(self.synapses + 1)),     # a row start: 0..nnz
                PhysicalMemory("bitmap", self.pre * self.row_words, self.bitmap_word),
                PhysicalMemory("weights", max(self.synapses, 1), self.weight_bits)]

    def forward(self, pre):
        self._check_pre(pre)
        row = self._row(pre)
        self.reads["pointer"] += 1
        self.reads["bitmap"] += self.row_words
        self.reads["weights"] += len(row)
        return [(post, int(self._w[post, pre])) for post in row]

    def _find(self, post: int, pre: int) -> bool:
        """Reads what locating synapse (post, pre) takes; returns whether it exists."""
        word = post // self.bitmap_word
        self.reads["bitmap"] += 1
        if self._w[post, pre] == 0:
            return False
        self.reads["pointer"] += 1
        self.reads["bitmap"] += word            # the words before: the ones below ``post``
        return True


class CSRMemory(_Sparse):
    name = "csr"

    def memories(self):
        return [PhysicalMemory("pointer", self.pre + 1, bits_for(max(self.synapses, 1) + 1)),
                PhysicalMemory("index", max(self.synapses, 1), bits_for(self.post)),
                PhysicalMemory("weights", max(self.synapses, 1), self.weight_bits)]

    def forward(self, pre):
        self._check_pre(pre)
        row = self._row(pre)
        self.reads["pointer"] += 2
        self.reads["index"] += len(row)
        self.reads["weights"] += len(row)
        return [(post, int(self._w[post, pre])) for post in row]

    def _find(self, post: int, pre: int) -> bool:
        row = self._row(pre)
        self.reads["pointer"] += 2
        scanned = next((i + 1 for i, p in enumerate(row) if p >= post), len(row))
        self.reads["index"] += scanned
        return post in row


class FunctionalConvMemory(SynapseMemory):
    """A convolution's kernel and its address arithmetic (stride 1, "same" zero padding)."""

    name = "functional"

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        k = torch.as_tensor(kernel).to(torch.int64)
        if k.dim() != 4 or k.shape[2] % 2 == 0 or k.shape[3] % 2 == 0:
            raise ConfigError(f"a functional memory holds a [Cout, Cin, kh, kw] kernel with odd kh and kw, not one of "
                              f"shape {tuple(k.shape)}.")
        self.kernel_shape = tuple(k.shape)
        self.image = tuple(image)
        if len(self.image) != 2 or min(self.image) < 1:
            raise ConfigError(f"image {image} is not (height, width) with both at least 1.")
        super().__init__(k.reshape(k.shape[0], -1), weight_bits)     # range check of the weights
        self._k = k.clone()
        cout, cin, _, _ = self.kernel_shape
        h, w = self.image
        self.post, self.pre = cout * h * w, cin * h * w
        self._w = None

    def memories(self):
        return [PhysicalMemory("kernel", self._k.numel(), self.weight_bits)]

    @property
    def synapses(self) -> int:
        """Structural synapses (every in-range kernel position), zero weights included."""
        return int((conv_matrix(torch.ones_like(self._k), self.image) != 0).sum())

    def matrix(self) -> torch.Tensor:
        return conv_matrix(self._k, self.image)

    def _split(self, index: int) -> tuple[int, int, int]:
        h, w = self.image
        return index // (h * w), index // w % h, index % w

    def forward(self, pre):
        self._check_pre(pre)
        cout, cin, kh, kw = self.kernel_shape
        h, w = self.image
        ci, y, x = self._split(pre)
        out = []
        for co in range(cout):
            for ky in range(kh):
                for kx in range(kw):
                    oy, ox = y - ky + kh // 2, x - kx + kw // 2
                    if 0 <= oy < h and 0 <= ox < w:
                        self.reads["kernel"] += 1
                        out.append(((co * h + oy) * w + ox, int(self._k[co, ci, ky, kx])))
        return sorted(out)

    def transposed(self, post):
        self._check_post(post)
        cout, cin, kh, kw = self.kernel_shape
        h, w = self.image
        co, oy, ox = self._split(post)
        out = []
        for ci in range(cin):
            for ky in range(kh):
                for kx in range(kw):
                    y, x = oy + ky - kh // 2, ox + kx - kw // 2
                    if 0 <= y < h and 0 <= x < w:
                        self.reads["kernel"] += 1
                        out.append(((ci * h + y) * w + x, int(self._k[co, ci, ky, kx])))
        return sorted(out)

    def update(self, post, pre, value):
        """Writes the kernel word that connects ``pre`` to ``post`` (shared by all its synapses)."""
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        cout, cin, kh, kw = self.kernel_shape
        co, oy, ox = self._split(post)
        ci, y, x = self._split(pre)
        ky, kx = y - oy + kh // 2, x - ox + kw // 2
        if not (0 <= ky < kh and 0 <= kx < kw):
            raise ConfigError(f"neurons {pre} and {post} are not connected by the {kh}x{kw} kernel; only connected "
                              "pairs can be updated.")
        self.writes["kernel"] += 1
        self._k[co, ci, ky, kx] = value


def conv_matrix(kernel: torch.Tensor, image: tuple[int, int]) -> torch.Tensor:
    """The ``[Cout*H*W, Cin*H*W]`` matrix of a stride-1 "same" convolution (flattened channel-major),
    from ``torch.nn.functional.conv2d`` of one-hot images: the reference the organisations must match."""
    k = torch.as_tensor(kernel).to(torch.int64)
    cout, cin, kh, kw = k.shape
    h, w = image
    eye = torch.eye(cin * h * w, dtype=torch.float64).reshape(cin * h * w, cin, h, w)
    out = torch.nn.functional.conv2d(eye, k.to(torch.float64), padding=(kh // 2, kw // 2))   # [pre, Cout, H, W]
    return out.reshape(cin * h * w, cout * h * w).t().round().to(torch.int64)


ORGANISATIONS = {"dense": DenseMemory, "bitmap": BitmapMemory, "csr": CSRMemory,
                 "functional": FunctionalConvMemory}


def make_memory(organisation: str, weights, weight_bits: int, **options) -> SynapseMemory:
    if organisation not in ORGANISATIONS:
        raise ConfigError(f"synapse memory organisation {organisation!r} is unknown; allowed: "
                          f"{', '.join(ORGANISATIONS)}.")
    return ORGANISATIONS[organisation](weights, weight_bits, **options)


def pass_counts(memory: SynapseMemory) -> dict:
    """Reads and writes per physical memory of whole-layer passes, computed from the structure
    (not by running the accesses; for layers too large to step through):

    * ``forward``: every presynaptic neuron sends one event;
    * ``backward``: every postsynaptic neuron sends one error (the transposed access);
    * ``update``: every stored synapse (every kernel word for ``functional``) is written once, each
      located as an update locates it.

    ``tests/test_synapse_memory.py`` checks these against the accesses themselves."""
    name = memory.name
    if name == "functional":
        structural = memory.synapses
        return {"forward": {"kernel": {"reads": structural, "writes": 0}},
                "backward": {"kernel": {"reads": structural, "writes": 0}},
                "update": {"kernel": {"reads": 0, "writes": memory.memories()[0].depth}}}
    nz = (memory.matrix() != 0).to(torch.int64)              # [post, pre]
    nnz, npre, npost = int(nz.sum()), memory.pre, memory.post

    def rw(reads=0, writes=0):
        return {"reads": int(reads), "writes": int(writes)}

    if name == "dense":
        return {"forward": {"weights": rw(npre * npost)}, "backward": {"weights": rw(npre * npost)},
                "update": {"weights": rw(0, npre * npost)}}
    if name == "bitmap":
        word = memory.bitmap_word
        before = int(((torch.arange(npost) // word).unsqueeze(1) * nz).sum())    # words before each synapse
        return {"forward": {"pointer": rw(npre), "bitmap": rw(npre * memory.row_words), "weights": rw(nnz)},
                "backward": {"pointer": rw(nnz), "bitmap": rw(npre * npost + before), "weights": rw(nnz)},
                "update": {"pointer": rw(nnz), "bitmap": rw(nnz + before), "weights": rw(0, nnz)}}
    # csr: a transposed access scans a row up to the first index >= post
    below = torch.cumsum(nz, 0) - nz                          # synapses of the row below each post
    row = nz.sum(0)
    scans = int(torch.minimum(below + 1, row.unsqueeze(0)).sum())
    return {"forward": {"pointer": rw(2 * npre), "index": rw(nnz), "weights": rw(nnz)},
            "backward": {"pointer": rw(2 * npre * npost), "index": rw(scans), "weights": rw(nnz)},
            "update": {"pointer": rw(2 * nnz), "index": rw(int(((below + 1) * nz).sum())), "weights": rw(0, nnz)}}
