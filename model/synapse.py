"""Synapse memory organisations (issue 6, model part; seed 001: Schaefer et al., ISCAS 2020): where
a layer's weights live, and how many reads and writes of which physical memory each access costs.

An organisation stores a ``[post, pre]`` integer weight matrix, zero meaning "no synapse", in one or
more physical memories (each a depth and a word width) and serves three accesses:

* ``forward(pre)``: the targets of a presynaptic event, ``[(post, weight)]`` in ascending ``post``;
* ``transposed(post)``: the sources of a postsynaptic error (learning), ``[(pre, weight)]`` in
  ascending ``pre``;
* ``update(post, pre, value)``: a new value for an existing synapse (a zero matrix entry of a sparse
  organisation has no storage; writing it is refused).

Every access counts its reads and writes per physical memory, one per word. ``W`` is the weight
bits, ``Npre``/``Npost`` the layer's sizes, ``nnz`` its synapses.

Organisations of any matrix (the paper's names in brackets):

* ``dense`` (Crossbar): ``weights[pre * Npost + post]``, one weight a word. Forward reads the
  ``Npost`` words of a row and returns every weight, zeros included (the crossbar's datapath adds
  them); transposed reads the ``Npre`` words of a column.
* ``bitmap`` (PB-BMP): the row's bitmap in words of ``bitmap_word`` bits (one bit per post),
  ``bitmap[pre * R + k]`` with ``R = ceil(Npost / bitmap_word)`` words a row, the non-zero weights
  packed row by row, and one pointer per bitmap word, ``pointer[pre * R + k]``: the position of the
  word's first weight. Forward: the row's first pointer, its ``R`` bitmap words, one weight read per
  synapse. Transposed: per ``pre`` the bitmap word holding ``post``; where the bit is set, that
  word's pointer (the position is the pointer plus the ones below ``post`` in the word, a popcount
  in the datapath) and the weight.
* ``csr`` (PB-CSR): ``pointer[pre]`` for ``pre`` in ``0..Npre`` (row ``pre`` is ``pointer[pre] ..
  pointer[pre + 1] - 1``), ``index`` (the post of each synapse) and ``weights``. Forward: two pointer
  reads, one index and one weight read per synapse. Transposed: per ``pre`` the two pointers and
  the indices of the row up to the first ``>= post`` (ascending: the scan stops there), the weight
  where it is ``post``.

Functional organisations, for a convolution with stride 1 and "same" zero padding, kernel
``[Cout, Cin, kh, kw]`` with odd ``kh``, ``kw`` and ``(ph, pw) = (kh // 2, kw // 2)``: only the
kernel is stored, and the synapse's address is computed. A presynaptic event at ``(ci, y, x)``
reaches ``(co, y - ky + ph, x - kx + pw)`` with weight ``K[co, ci, ky, kx]`` (post = pre + kernel
offset); an error at ``(co, oy, ox)`` comes from ``(ci, oy + ky - ph, ox + kx - pw)`` (pre = post -
kernel offset). Both directions visit the kernel slices ``K[co, ci]``, so one stored kernel serves
both. The variants differ in how a slice is stored (seed 001 names them; the address rules of the
slice storage are ours):

* ``func-pure`` (Func-Pure): the kernel as it is, one weight a word, ``kernel[((co * Cin + ci) * kh
  + ky) * kw + kx]``. Every in-range kernel position reads its word, zero or not.
* ``func-bmp`` (Func-BMP): per slice ``s = co * Cin + ci`` one bitmap word of ``kh * kw`` bits (bit
  ``ky * kw + kx``) and one pointer (the slice's first weight), the non-zero kernel weights packed
  slice by slice. A visit reads the slice's bitmap word; if one of its set bits is in range, the
  pointer, then one weight per in-range set bit.
* ``func-rowcol`` (Func-RowCol): the kernel slices in CSR form: ``pointer[s]`` for ``s`` in
  ``0..Cout*Cin``, ``index`` (the position ``ky * kw + kx`` of each non-zero kernel weight, i.e. its
  row and column) and ``weights``. A visit reads the two pointers and every index of the slice (to
  test its range), and the weights of the in-range entries.

A matrix organisation holds a convolution (``make_memory(name, kernel, W, image=(H, W))``,
:class:`ConvMatrixMemory`) as the ``[Cout, Cin*kh*kw]`` matrix between the receptive field and the
output channels: an event of channel ``ci`` makes a forward access of each in-range row ``(ci, ky,
kx)``, an error of channel ``co`` locates ``(co, row)`` in each in-range row as the transposed access
does; the neurons' addresses are computed as above.

Updates of the functional organisations write the kernel word, which every synapse sharing it sees;
those of the other organisations find their synapse as the transposed access does, then write the
weight word. Neuron indices of a convolution are flattened channel-major: ``(c * H + y) * W + x``.

:func:`pass_counts` gives the counts of whole-layer passes in closed form (from the structure, not
by stepping); :func:`matrix_pass_counts`, :func:`conv_matrix_pass_counts` and
:func:`functional_pass_counts` do it without building a memory, for the energy model's layers.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import torch

from .config import ConfigError, bits_for

__all__ = ["PhysicalMemory", "SynapseMemory", "DenseMemory", "BitmapMemory", "CSRMemory", "FuncPureMemory",
           "FuncBitmapMemory", "FuncRowColMemory", "ORGANISATIONS", "LABELS", "MATRIX_ORGANISATIONS",
           "FUNCTIONAL_ORGANISATIONS", "organisation_name", "make_memory", "conv_matrix", "ConvMatrixMemory",
           "matrix_memories", "functional_memories", "conv_extent", "pass_counts", "matrix_pass_counts", "conv_matrix_pass_counts",
           "functional_pass_counts"]

LABELS = {"dense": "Crossbar", "bitmap": "PB-BMP", "csr": "PB-CSR", "func-rowcol": "Func-RowCol",
          "func-bmp": "Func-BMP", "func-pure": "Func-Pure"}
MATRIX_ORGANISATIONS = ("dense", "bitmap", "csr")
FUNCTIONAL_ORGANISATIONS = ("func-pure", "func-bmp", "func-rowcol")


def organisation_name(name: str) -> str:
    """The canonical name of an organisation, given it or the paper's label (any case)."""
    key = str(name).lower()
    for canonical, label in LABELS.items():
        if key in (canonical, label.lower()):
            return canonical
    raise ConfigError(f"synapse memory organisation {name!r} is unknown; allowed: {', '.join(LABELS)} (or "
                      f"{', '.join(LABELS.values())}).")


@dataclass(frozen=True)
class PhysicalMemory:
    name: str
    depth: int
    width: int

    @property
    def bits(self) -> int:
        return self.depth * self.width


def _rw(reads=0, writes=0) -> dict:
    return {"reads": int(reads), "writes": int(writes)}


def _check_bitmap_word(bitmap_word: int) -> None:
    if bitmap_word < 1:
        raise ConfigError(f"bitmap_word={bitmap_word} is not allowed; allowed: 1 or more bits.")


def matrix_memories(organisation: str, npre: int, npost: int, nnz: int, weight_bits: int,
                    bitmap_word: int = 16) -> list[PhysicalMemory]:
    """The physical memories of a matrix organisation holding ``nnz`` synapses."""
    if organisation == "dense":
        return [PhysicalMemory("weights", npre * npost, weight_bits)]
    stored = max(nnz, 1)
    if organisation == "bitmap":
        _check_bitmap_word(bitmap_word)
        words = npre * -(-npost // bitmap_word)
        return [PhysicalMemory("pointer", words, bits_for(nnz + 1)),          # a position: 0..nnz
                PhysicalMemory("bitmap", words, bitmap_word),
                PhysicalMemory("weights", stored, weight_bits)]
    if organisation == "csr":
        return [PhysicalMemory("pointer", npre + 1, bits_for(nnz + 1)),
                PhysicalMemory("index", stored, bits_for(npost)),
                PhysicalMemory("weights", stored, weight_bits)]
    raise ConfigError(f"{organisation!r} is not a matrix organisation; allowed: {', '.join(MATRIX_ORGANISATIONS)}.")


def functional_memories(organisation: str, kernel_shape, nnz_kernel: int, weight_bits: int) -> list[PhysicalMemory]:
    """The physical memories of a functional organisation of a kernel with ``nnz_kernel`` non-zeros."""
    cout, cin, kh, kw = kernel_shape
    slices, stored = cout * cin, max(nnz_kernel, 1)
    if organisation == "func-pure":
        return [PhysicalMemory("kernel", slices * kh * kw, weight_bits)]
    if organisation == "func-bmp":
        return [PhysicalMemory("pointer", slices, bits_for(nnz_kernel + 1)),
                PhysicalMemory("bitmap", slices, kh * kw),
                PhysicalMemory("weights", stored, weight_bits)]
    if organisation == "func-rowcol":
        return [PhysicalMemory("pointer", slices + 1, bits_for(nnz_kernel + 1)),
                PhysicalMemory("index", stored, bits_for(kh * kw)),
                PhysicalMemory("weights", stored, weight_bits)]
    raise ConfigError(f"{organisation!r} is not a functional organisation; allowed: "
                      f"{', '.join(FUNCTIONAL_ORGANISATIONS)}.")


class SynapseMemory:
    """Base class: the matrix, the physical memories and the access counters."""

    name = "base"

    def __init__(self, weights, weight_bits: int):
        w = torch.as_tensor(weights).to(torch.int64)
        if w.dim() != 2:
            raise ConfigError(f"a synapse memory holds a 2-d [post, pre] matrix, not a {w.dim()}-d one.")
        if weight_bits < 1:
            raise ConfigError(f"weight_bits={weight_bits} is not allowed; allowed: 1 or more.")
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
        return {m.name: _rw(self.reads[m.name], self.writes[m.name]) for m in self.memories()}

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

    def _refuse_removal(self, where: str, value: int) -> None:
        if value == 0:
            raise ConfigError(f"a zero weight for {where} would remove it from the {self.name} organisation's "
                              "structure; allowed: a non-zero value.")


class DenseMemory(SynapseMemory):
    name = "dense"

    def memories(self):
        return matrix_memories("dense", self.pre, self.post, self.synapses, self.weight_bits)

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

    def __init__(self, weights, weight_bits: int):
        super().__init__(weights, weight_bits)
        self._nnz = self.synapses                # fixed: updates keep the structure

    def memories(self):
        return matrix_memories(self.name, self.pre, self.post, self._nnz, self.weight_bits, **self._options())

    def _options(self) -> dict:
        return {}

    def _check_synapse(self, post: int, pre: int, value: int) -> None:
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        if self._w[post, pre] == 0:
            raise ConfigError(f"there is no synapse from {pre} to {post} in the {self.name} organisation; only "
                              "existing synapses can be updated.")
        self._refuse_removal(f"the synapse from {pre} to {post}", value)

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
        _check_bitmap_word(bitmap_word)
        super().__init__(weights, weight_bits)
        self.bitmap_word = bitmap_word
        self.row_words = -(-self.post // bitmap_word)

    def _options(self):
        return {"bitmap_word": self.bitmap_word}

    def forward(self, pre):
        self._check_pre(pre)
        row = self._row(pre)
        self.reads["pointer"] += 1
        self.reads["bitmap"] += self.row_words
        self.reads["weights"] += len(row)
        return [(post, int(self._w[post, pre])) for post in row]

    def _find(self, post: int, pre: int) -> bool:
        self.reads["bitmap"] += 1
        if self._w[post, pre] == 0:
            return False
        self.reads["pointer"] += 1               # the word's pointer; the ones below post: a popcount
        return True


class CSRMemory(_Sparse):
    name = "csr"

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


def conv_extent(kernel_shape, image) -> torch.Tensor:
    """``[kh, kw]``: for each kernel position, how many pixels it connects in range (either direction)."""
    _, _, kh, kw = kernel_shape
    h, w = image
    rows = (h - (torch.arange(kh) - kh // 2).abs()).clamp(min=0)
    cols = (w - (torch.arange(kw) - kw // 2).abs()).clamp(min=0)
    return rows.unsqueeze(1) * cols.unsqueeze(0)


def _check_conv(kernel, image) -> tuple[torch.Tensor, tuple[int, int]]:
    k = torch.as_tensor(kernel).to(torch.int64)
    if k.dim() != 4 or k.shape[2] % 2 == 0 or k.shape[3] % 2 == 0:
        raise ConfigError(f"a functional memory holds a [Cout, Cin, kh, kw] kernel with odd kh and kw, not one of "
                          f"shape {tuple(k.shape)}.")
    image = tuple(int(v) for v in image)
    if len(image) != 2 or min(image) < 1:
        raise ConfigError(f"image {image} is not (height, width) with both at least 1.")
    return k, image


class _FunctionalConv(SynapseMemory):
    """A convolution's kernel and its address arithmetic (stride 1, "same" zero padding); the
    variants say how a kernel slice ``K[co, ci]`` is stored and read (:meth:`_visit`)."""

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        k, self.image = _check_conv(kernel, image)
        self.kernel_shape = tuple(k.shape)
        super().__init__(k.reshape(k.shape[0], -1), weight_bits)     # range check of the weights
        self._k = k.clone()
        self._nnz_kernel = int((k != 0).sum())   # fixed: updates keep the structure
        cout, cin, _, _ = self.kernel_shape
        h, w = self.image
        self.post, self.pre = cout * h * w, cin * h * w
        self._w = None

    def memories(self):
        return functional_memories(self.name, self.kernel_shape, self._nnz_kernel, self.weight_bits)

    @property
    def synapses(self) -> int:
        """The synapses the organisation serves: every in-range kernel position for ``func-pure``
        (zero weights included), the non-zero ones for the others."""
        served = torch.ones_like(self._k) if self.name == "func-pure" else (self._k != 0).to(torch.int64)
        return int((served * conv_extent(self.kernel_shape, self.image)).sum())

    def kernel(self) -> torch.Tensor:
        return self._k.clone()

    def matrix(self) -> torch.Tensor:
        return conv_matrix(self._k, self.image)

    def _split(self, index: int) -> tuple[int, int, int]:
        h, w = self.image
        return index // (h * w), index // w % h, index % w

    def _visit(self, co: int, ci: int, positions: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """Counts the reads of slice ``K[co, ci]`` at the in-range ``positions`` (raster order);
        returns the positions whose weights it delivers."""
        raise NotImplementedError

    def _event(self, ci: int, positions) -> list[tuple[int, int, int]]:
        """The ``(co, ky, kx)`` an event of channel ``ci`` reaches through the in-range ``positions``."""
        return [(co, ky, kx) for co in range(self.kernel_shape[0]) for ky, kx in self._visit(co, ci, positions)]

    def _error(self, co: int, positions) -> list[tuple[int, int, int]]:
        """The ``(ci, ky, kx)`` an error of channel ``co`` comes from through the in-range ``positions``."""
        return [(ci, ky, kx) for ci in range(self.kernel_shape[1]) for ky, kx in self._visit(co, ci, positions)]

    def forward(self, pre):
        self._check_pre(pre)
        _, _, kh, kw = self.kernel_shape
        h, w = self.image
        ci, y, x = self._split(pre)
        ph, pw = kh // 2, kw // 2
        positions = [(ky, kx) for ky in range(kh) for kx in range(kw)
                     if 0 <= y - ky + ph < h and 0 <= x - kx + pw < w]
        return sorted(((co * h + y - ky + ph) * w + x - kx + pw, int(self._k[co, ci, ky, kx]))
                      for co, ky, kx in self._event(ci, positions))

    def transposed(self, post):
        self._check_post(post)
        _, _, kh, kw = self.kernel_shape
        h, w = self.image
        co, oy, ox = self._split(post)
        ph, pw = kh // 2, kw // 2
        positions = [(ky, kx) for ky in range(kh) for kx in range(kw)
                     if 0 <= oy + ky - ph < h and 0 <= ox + kx - pw < w]
        return sorted(((ci * h + oy + ky - ph) * w + ox + kx - pw, int(self._k[co, ci, ky, kx]))
                      for ci, ky, kx in self._error(co, positions))

    def update(self, post, pre, value):
        """Writes the kernel word that connects ``pre`` to ``post`` (shared by all its synapses)."""
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        _, _, kh, kw = self.kernel_shape
        co, oy, ox = self._split(post)
        ci, y, x = self._split(pre)
        ky, kx = y - oy + kh // 2, x - ox + kw // 2
        if not (0 <= ky < kh and 0 <= kx < kw):
            raise ConfigError(f"neurons {pre} and {post} are not connected by the {kh}x{kw} kernel; only connected "
                              "pairs can be updated.")
        self._locate(co, ci, ky, kx, value)
        self._k[co, ci, ky, kx] = value

    def _locate(self, co: int, ci: int, ky: int, kx: int, value: int) -> None:
        """Counts what finding and writing kernel word ``K[co, ci, ky, kx]`` costs."""
        raise NotImplementedError

    def _check_kernel_entry(self, co, ci, ky, kx, value) -> None:
        if self._k[co, ci, ky, kx] == 0:
            raise ConfigError(f"kernel entry ({co}, {ci}, {ky}, {kx}) is zero and has no storage in the {self.name} "
                              "organisation; only non-zero entries can be updated.")
        self._refuse_removal(f"kernel entry ({co}, {ci}, {ky}, {kx})", value)


class FuncPureMemory(_FunctionalConv):
    name = "func-pure"

    def _visit(self, co, ci, positions):
        self.reads["kernel"] += len(positions)
        return positions

    def _locate(self, co, ci, ky, kx, value):
        self.writes["kernel"] += 1


class FuncBitmapMemory(_FunctionalConv):
    name = "func-bmp"

    def _visit(self, co, ci, positions):
        self.reads["bitmap"] += 1
        hits = [(ky, kx) for ky, kx in positions if self._k[co, ci, ky, kx] != 0]
        if hits:
            self.reads["pointer"] += 1
            self.reads["weights"] += len(hits)
        return hits

    def _locate(self, co, ci, ky, kx, value):
        self._check_kernel_entry(co, ci, ky, kx, value)
        self.reads["bitmap"] += 1
        self.reads["pointer"] += 1
        self.writes["weights"] += 1


class FuncRowColMemory(_FunctionalConv):
    name = "func-rowcol"

    def _entries(self, co, ci) -> list[tuple[int, int]]:
        return [tuple(e) for e in torch.nonzero(self._k[co, ci]).tolist()]      # raster order

    def _visit(self, co, ci, positions):
        entries = self._entries(co, ci)
        self.reads["pointer"] += 2
        self.reads["index"] += len(entries)
        wanted = set(positions)
        hits = [e for e in entries if e in wanted]
        self.reads["weights"] += len(hits)
        return hits

    def _locate(self, co, ci, ky, kx, value):
        self._check_kernel_entry(co, ci, ky, kx, value)
        self.reads["pointer"] += 2
        self.reads["index"] += self._entries(co, ci).index((ky, kx)) + 1
        self.writes["weights"] += 1


class ConvMatrixMemory(_FunctionalConv):
    """A convolution held by a matrix organisation: the kernel as the ``[Cout, Cin*kh*kw]`` matrix
    between the receptive field and the output channels (row ``(ci * kh + ky) * kw + kx``). An event
    of channel ``ci`` makes a forward access of each in-range row; an error of channel ``co`` locates
    ``(co, row)`` in each in-range row as a transposed access does. The neuron addresses are computed
    as in the functional organisations; the matrix organisation decides how the weights are found."""

    def __init__(self, organisation: str, kernel, weight_bits: int, image: tuple[int, int], **options):
        super().__init__(kernel, weight_bits, image)
        cout, cin, kh, kw = self.kernel_shape
        self.name = organisation
        self.inner = ORGANISATIONS[organisation](self._k.reshape(cout, cin * kh * kw), weight_bits, **options)
        self.inner.reads, self.inner.writes = self.reads, self.writes      # one set of counters

    @property
    def synapses(self) -> int:
        served = torch.ones_like(self._k) if self.name == "dense" else (self._k != 0).to(torch.int64)
        return int((served * conv_extent(self.kernel_shape, self.image)).sum())

    def memories(self):
        return self.inner.memories()

    def _row(self, ci: int, ky: int, kx: int) -> int:
        _, _, kh, kw = self.kernel_shape
        return (ci * kh + ky) * kw + kx

    def _event(self, ci, positions):
        return [(co, ky, kx) for ky, kx in positions for co, _ in self.inner.forward(self._row(ci, ky, kx))]

    def _error(self, co, positions):
        out = []
        for ci in range(self.kernel_shape[1]):
            for ky, kx in positions:
                if self.name != "dense" and not self.inner._find(co, self._row(ci, ky, kx)):
                    continue
                self.reads["weights"] += 1
                out.append((ci, ky, kx))
        return out

    def _locate(self, co, ci, ky, kx, value):
        if self.name != "dense":
            self._check_kernel_entry(co, ci, ky, kx, value)
        self.inner.update(co, self._row(ci, ky, kx), value)


def conv_matrix(kernel: torch.Tensor, image: tuple[int, int]) -> torch.Tensor:
    """The ``[Cout*H*W, Cin*H*W]`` matrix of a stride-1 "same" convolution (flattened channel-major),
    from ``torch.nn.functional.conv2d`` of one-hot images: the reference the organisations must match.
    Small layers only (it builds the dense matrix)."""
    k = torch.as_tensor(kernel).to(torch.int64)
    cout, cin, kh, kw = k.shape
    h, w = image
    eye = torch.eye(cin * h * w, dtype=torch.float64).reshape(cin * h * w, cin, h, w)
    out = torch.nn.functional.conv2d(eye, k.to(torch.float64), padding=(kh // 2, kw // 2))   # [pre, Cout, H, W]
    return out.reshape(cin * h * w, cout * h * w).t().round().to(torch.int64)


ORGANISATIONS = {"dense": DenseMemory, "bitmap": BitmapMemory, "csr": CSRMemory, "func-pure": FuncPureMemory,
                 "func-bmp": FuncBitmapMemory, "func-rowcol": FuncRowColMemory}


def make_memory(organisation: str, weights, weight_bits: int, image=None, **options) -> SynapseMemory:
    """An organisation holding ``weights``: a ``[post, pre]`` matrix, or with ``image=(H, W)`` a
    convolution's ``[Cout, Cin, kh, kw]`` kernel (the functional organisations take only that)."""
    org = organisation_name(organisation)
    if org in FUNCTIONAL_ORGANISATIONS:
        if image is None:
            raise ConfigError(f"the {LABELS[org]} organisation holds a convolution kernel and needs its image=(H, W).")
        return ORGANISATIONS[org](weights, weight_bits, image=image, **options)
    if image is not None:
        return ConvMatrixMemory(org, weights, weight_bits, image, **options)
    return ORGANISATIONS[org](weights, weight_bits, **options)


def matrix_pass_counts(organisation: str, npre: int, npost: int, posts: torch.Tensor, pres: torch.Tensor,
                       bitmap_word: int = 16, visits: torch.Tensor | None = None) -> dict:
    """Whole-layer pass counts of a matrix organisation whose synapses are ``(posts, pres)`` (one
    entry each, any order); see :func:`pass_counts`. ``visits[pre]``: how many times a pass visits
    row ``pre`` (forward) and each of its ``(post, pre)`` (backward); 1 for a plain matrix, the
    kernel position's extent for a convolution (:class:`ConvMatrixMemory`)."""
    posts, pres = torch.as_tensor(posts).to(torch.int64), torch.as_tensor(pres).to(torch.int64)
    v = torch.ones(npre, dtype=torch.int64) if visits is None else torch.as_tensor(visits).to(torch.int64)
    nnz, rows = posts.numel(), int(v.sum())
    per_synapse = int(v[pres].sum())                 # visits of the synapses
    if organisation == "dense":
        return {"forward": {"weights": _rw(rows * npost)}, "backward": {"weights": _rw(rows * npost)},
                "update": {"weights": _rw(0, npre * npost)}}
    if organisation == "bitmap":
        _check_bitmap_word(bitmap_word)
        row_words = -(-npost // bitmap_word)
        return {"forward": {"pointer": _rw(rows), "bitmap": _rw(rows * row_words), "weights": _rw(per_synapse)},
                "backward": {"pointer": _rw(per_synapse), "bitmap": _rw(rows * npost), "weights": _rw(per_synapse)},
                "update": {"pointer": _rw(nnz), "bitmap": _rw(nnz), "weights": _rw(0, nnz)}}
    if organisation != "csr":
        raise ConfigError(f"{organisation!r} is not a matrix organisation; allowed: "
                          f"{', '.join(MATRIX_ORGANISATIONS)}.")
    # A transposed access of post p scans row q up to its first index >= p: with the row's sorted
    # posts r_0 < ... < r_{L-1}, posts in (r_{i-1}, r_i] scan i + 1 indices, posts above r_{L-1} L.
    order = torch.argsort(pres * npost + posts)
    p, q = posts[order], pres[order]
    length = torch.bincount(q, minlength=npre)
    start = torch.cumsum(length, 0) - length
    rank = torch.arange(nnz) - start[q]
    previous = torch.cat([torch.tensor([-1]), p[:-1]]) if nnz else p
    previous = torch.where(rank == 0, torch.full_like(p, -1), previous)
    last = rank == length[q] - 1
    scans = int((v[q] * (rank + 1) * (p - previous)).sum()) + \
        int((v[q[last]] * length[q[last]] * (npost - 1 - p[last])).sum())
    return {"forward": {"pointer": _rw(2 * rows), "index": _rw(per_synapse), "weights": _rw(per_synapse)},
            "backward": {"pointer": _rw(2 * rows * npost), "index": _rw(scans), "weights": _rw(per_synapse)},
            "update": {"pointer": _rw(2 * nnz), "index": _rw(int((rank + 1).sum())), "weights": _rw(0, nnz)}}


def conv_matrix_pass_counts(organisation: str, kernel, image, bitmap_word: int = 16) -> dict:
    """Whole-layer pass counts of a convolution held by a matrix organisation
    (:class:`ConvMatrixMemory`; only the kernel's zeros matter)."""
    k, image = _check_conv(kernel, image)
    cout, cin, kh, kw = k.shape
    posts, pres = torch.nonzero(k.reshape(cout, cin * kh * kw), as_tuple=True)
    visits = conv_extent(k.shape, image).reshape(1, -1).expand(cin, -1).reshape(-1)
    return matrix_pass_counts(organisation, cin * kh * kw, cout, posts, pres, bitmap_word=bitmap_word, visits=visits)


def functional_pass_counts(organisation: str, kernel, image) -> dict:
    """Whole-layer pass counts of a functional organisation of ``kernel`` (only its zeros matter);
    see :func:`pass_counts`."""
    k, image = _check_conv(kernel, image)
    cout, cin, kh, kw = k.shape
    h, w = image
    nz = (k != 0).to(torch.int64)
    extent = conv_extent(k.shape, image)
    if organisation == "func-pure":
        structural = cout * cin * int(extent.sum())
        return {"forward": {"kernel": _rw(structural)}, "backward": {"kernel": _rw(structural)},
                "update": {"kernel": _rw(0, k.numel())}}
    served = int((nz * extent).sum())             # non-zero synapses, delivered once each way
    nnz_kernel = int(nz.sum())
    visits = cout * cin * h * w                   # slice visits of a pass, either direction
    if organisation == "func-bmp":
        # the pointer is read where a visit finds a set bit in range: count the pixels per slice
        masks = nz.reshape(cout * cin, 1, kh, kw).to(torch.float64)
        ones = torch.ones(1, 1, h, w, dtype=torch.float64)
        pad = (kh // 2, kw // 2)
        back = torch.nn.functional.conv2d(ones, masks, padding=pad)                  # error at (oy, ox)
        fwd = torch.nn.functional.conv2d(ones, masks.flip(2, 3), padding=pad)        # event at (y, x)
        return {"forward": {"pointer": _rw(int((fwd > 0).sum())), "bitmap": _rw(visits), "weights": _rw(served)},
                "backward": {"pointer": _rw(int((back > 0).sum())), "bitmap": _rw(visits), "weights": _rw(served)},
                "update": {"pointer": _rw(nnz_kernel), "bitmap": _rw(nnz_kernel), "weights": _rw(0, nnz_kernel)}}
    if organisation == "func-rowcol":
        flat = nz.reshape(cout * cin, kh * kw)
        rank = torch.cumsum(flat, 1) * flat       # 1-based rank of each entry in its slice
        visit = {"pointer": _rw(2 * visits), "index": _rw(nnz_kernel * h * w), "weights": _rw(served)}
        return {"forward": visit, "backward": dict(visit),
                "update": {"pointer": _rw(2 * nnz_kernel), "index": _rw(int(rank.sum())),
                           "weights": _rw(0, nnz_kernel)}}
    raise ConfigError(f"{organisation!r} is not a functional organisation; allowed: "
                      f"{', '.join(FUNCTIONAL_ORGANISATIONS)}.")


def pass_counts(memory: SynapseMemory) -> dict:
    """Reads and writes per physical memory of whole-layer passes, computed from the structure
    (not by running the accesses):

    * ``forward``: every presynaptic neuron sends one event;
    * ``backward``: every postsynaptic neuron sends one error (the transposed access);
    * ``update``: every stored synapse (every stored kernel word for the functional organisations;
      every word of ``dense``) is written once, each located as an update locates it.

    ``tests/test_synapse_memory.py`` checks these against the accesses themselves."""
    options = {"bitmap_word": memory.bitmap_word} if isinstance(memory, BitmapMemory) else {}
    if isinstance(memory, ConvMatrixMemory):
        options = {"bitmap_word": memory.inner.bitmap_word} if isinstance(memory.inner, BitmapMemory) else {}
        return conv_matrix_pass_counts(memory.name, memory.kernel(), memory.image, **options)
    if isinstance(memory, _FunctionalConv):
        return functional_pass_counts(memory.name, memory.kernel(), memory.image)
    posts, pres = torch.nonzero(memory.matrix(), as_tuple=True)
    return matrix_pass_counts(memory.name, memory.pre, memory.post, posts, pres, **options)
