"""Synapse memory organisations (seed 001: Schaefer et al., ISCAS 2020): where
a layer's weights live, and how many reads and writes of which physical memory each access costs.

An organisation stores a ``[post, pre]`` integer weight matrix, zero meaning "no synapse", in one or
more physical memories (each a depth and a word width) and serves three accesses:

* ``forward(pre)``: the targets of a presynaptic event, ``[(post, weight)]`` in ascending ``post``;
* ``transposed(post)``: the sources of a postsynaptic error (learning), ``[(pre, weight)]`` in
  ascending ``pre``;
* ``update(post, pre, value)``: a new value for a stored synapse. The structure (which synapses
  have storage: :meth:`SynapseMemory.structure`) is fixed when the memory is built from the non-zero
  entries; a zero entry of a sparse organisation has no storage and writing it is refused, while a
  stored synapse may be written zero (learning) and stays in the structure, its zero delivered by
  the accesses like any weight.

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
from typing import NamedTuple

import torch

from .config import ConfigError, Field, bits_for, signed_range

__all__ = ["Access", "PhysicalMemory", "SynapseMemory", "DenseMemory", "BitmapMemory", "CSRMemory", "FuncPureMemory",
           "FuncBitmapMemory", "FuncRowColMemory", "ORGANISATIONS", "LABELS", "MATRIX_ORGANISATIONS",
           "FUNCTIONAL_ORGANISATIONS", "organisation_name", "make_memory", "conv_matrix", "ConvMatrixMemory",
           "matrix_memories", "functional_memories", "conv_extent", "pass_counts", "matrix_pass_counts",
           "conv_matrix_pass_counts",
           "functional_pass_counts", "CMD_FORWARD", "CMD_TRANSPOSED", "CMD_UPDATE", "command_fields",
           "load_fields", "result_fields", "neuron_values", "neuron_index"]

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


class Access(NamedTuple):
    """One access of a physical memory: a read returns ``data``, a write stores it."""
    memory: str
    write: bool
    address: int
    data: int


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
        lo, hi = signed_range(weight_bits)
        if w.numel() and (int(w.min()) < lo or int(w.max()) > hi):
            raise ConfigError(f"weights in {int(w.min())}..{int(w.max())} do not fit {weight_bits} bits; allowed: "
                              f"{lo}..{hi}.")
        self.post, self.pre = w.shape
        self.weight_bits = weight_bits
        self.reads: Counter = Counter()
        self.writes: Counter = Counter()
        self._w = w.clone()                      # the matrix the memory holds (a reference for tests)
        self._stored = torch.ones_like(w, dtype=torch.bool)      # the synapses with storage (fixed)
        self._mem: dict[str, list[int]] = {}     # the physical memories' words (set by the organisation)
        self.trace: list[Access] | None = None   # every access in order while tracing (start_trace)

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
        """The synapses the organisation serves (stored ones, whatever their value)."""
        return int(self.structure().sum())

    def matrix(self) -> torch.Tensor:
        """The ``[post, pre]`` matrix the memory holds now."""
        return self._w.clone()

    def structure(self) -> torch.Tensor:
        """``[post, pre]`` booleans: the synapses the accesses serve (every entry of ``dense``, the
        non-zero entries the memory was built with for the sparse organisations), fixed for the
        memory's life: an update to zero keeps its synapse."""
        return self._stored.clone()

    def counts(self) -> dict:
        """Reads and writes per physical memory since the last :meth:`reset_counts`."""
        return {m.name: _rw(self.reads[m.name], self.writes[m.name]) for m in self.memories()}

    def reset_counts(self) -> None:
        self.reads.clear()
        self.writes.clear()

    def contents(self) -> dict[str, list[int]]:
        """The words of each physical memory, as unsigned integers of its width (weights in two's
        complement): what the RTL's memories are initialised with."""
        return {name: list(words) for name, words in self._mem.items()}

    def start_trace(self) -> list[Access]:
        """Records every access from now on, in the order the organisation makes them; returns the
        list it appends to."""
        self.trace = []
        return self.trace

    def _read(self, name: str, address: int) -> int:
        word = self._mem[name][address]
        self.reads[name] += 1
        if self.trace is not None:
            self.trace.append(Access(name, False, address, word))
        return word

    def _write(self, name: str, address: int, word: int) -> None:
        self._mem[name][address] = word
        self.writes[name] += 1
        if self.trace is not None:
            self.trace.append(Access(name, True, address, word))

    def _word(self, value: int) -> int:
        """A weight as its stored word (two's complement)."""
        return int(value) & ((1 << self.weight_bits) - 1)

    def _weight(self, address: int, memory: str = "weights") -> int:
        """Reads the weight word at ``address`` and returns its signed value."""
        word = self._read(memory, address)
        return word - (1 << self.weight_bits) if word >> (self.weight_bits - 1) else word

    def _check_pre(self, pre: int) -> None:
        if not 0 <= pre < self.pre:
            raise ConfigError(f"presynaptic index {pre} is out of range; allowed: 0..{self.pre - 1}.")

    def _check_post(self, post: int) -> None:
        if not 0 <= post < self.post:
            raise ConfigError(f"postsynaptic index {post} is out of range; allowed: 0..{self.post - 1}.")

    def _check_value(self, value: int) -> None:
        lo, hi = signed_range(self.weight_bits)
        if not lo <= value <= hi:
            raise ConfigError(f"weight {value} does not fit {self.weight_bits} bits; allowed: {lo}..{hi}.")


class DenseMemory(SynapseMemory):
    name = "dense"

    def __init__(self, weights, weight_bits: int):
        super().__init__(weights, weight_bits)
        self._mem = {"weights": [self._word(v) for v in self._w.t().reshape(-1).tolist()]}

    def memories(self):
        return matrix_memories("dense", self.pre, self.post, self.synapses, self.weight_bits)

    def forward(self, pre):
        self._check_pre(pre)
        return [(post, self._weight(pre * self.post + post)) for post in range(self.post)]

    def transposed(self, post):
        self._check_post(post)
        return [(pre, self._weight(pre * self.post + post)) for pre in range(self.pre)]

    def _find(self, post: int, pre: int) -> int:
        return pre * self.post + post

    def update(self, post, pre, value):
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        self._write("weights", self._find(post, pre), self._word(value))
        self._w[post, pre] = value


class _Sparse(SynapseMemory):
    """Sparse organisations: zero entries have no storage; updates keep the structure."""

    def __init__(self, weights, weight_bits: int):
        super().__init__(weights, weight_bits)
        self._stored = self._w != 0              # fixed: updates keep the structure
        self._nnz = self.synapses

    def memories(self):
        return matrix_memories(self.name, self.pre, self.post, self._nnz, self.weight_bits, **self._options())

    def _options(self) -> dict:
        return {}

    def _check_synapse(self, post: int, pre: int, value: int) -> None:
        self._check_pre(pre)
        self._check_post(post)
        self._check_value(value)
        if not self._stored[post, pre]:
            raise ConfigError(f"there is no synapse from {pre} to {post} in the {self.name} organisation; only "
                              "stored synapses can be updated.")

    def _rows(self) -> list[list[int]]:
        """Per ``pre``, the posts of its synapses in ascending order."""
        return [torch.nonzero(self._stored[:, pre]).flatten().tolist() for pre in range(self.pre)]

    def _find(self, post: int, pre: int) -> int | None:
        """Locates synapse (post, pre) with the reads it costs; its weight address, or None."""
        raise NotImplementedError

    def transposed(self, post):
        self._check_post(post)
        out = []
        for pre in range(self.pre):
            address = self._find(post, pre)
            if address is not None:
                out.append((pre, self._weight(address)))
        return out

    def update(self, post, pre, value):
        self._check_synapse(post, pre, value)
        self._write("weights", self._find(post, pre), self._word(value))
        self._w[post, pre] = value


class BitmapMemory(_Sparse):
    name = "bitmap"

    def __init__(self, weights, weight_bits: int, bitmap_word: int = 16):
        _check_bitmap_word(bitmap_word)
        super().__init__(weights, weight_bits)
        self.bitmap_word = bitmap_word
        self.row_words = -(-self.post // bitmap_word)
        pointer, bitmap, stored = [], [], []
        for pre, row in enumerate(self._rows()):
            words = [0] * self.row_words
            for post in row:
                words[post // bitmap_word] |= 1 << (post % bitmap_word)
            for k, word in enumerate(words):
                pointer.append(len(stored))
                bitmap.append(word)
                stored.extend(self._word(int(self._w[post, pre])) for post in row
                              if post // bitmap_word == k)
        self._mem = {"pointer": pointer, "bitmap": bitmap, "weights": stored or [0]}

    def _options(self):
        return {"bitmap_word": self.bitmap_word}

    def forward(self, pre):
        self._check_pre(pre)
        base = pre * self.row_words
        position = self._read("pointer", base)
        out = []
        for k in range(self.row_words):
            word = self._read("bitmap", base + k)
            for bit in range(self.bitmap_word):
                if word >> bit & 1:
                    out.append((k * self.bitmap_word + bit, self._weight(position)))
                    position += 1
        return out

    def _find(self, post, pre):
        k, bit = divmod(post, self.bitmap_word)
        address = pre * self.row_words + k
        word = self._read("bitmap", address)
        if not word >> bit & 1:
            return None
        # the word's pointer plus the ones below the bit (a popcount in the datapath)
        return self._read("pointer", address) + bin(word & ((1 << bit) - 1)).count("1")


class CSRMemory(_Sparse):
    name = "csr"

    def __init__(self, weights, weight_bits: int):
        super().__init__(weights, weight_bits)
        pointer, index, stored = [0], [], []
        for pre, row in enumerate(self._rows()):
            index.extend(row)
            stored.extend(self._word(int(self._w[post, pre])) for post in row)
            pointer.append(len(index))
        self._mem = {"pointer": pointer, "index": index or [0], "weights": stored or [0]}

    def forward(self, pre):
        self._check_pre(pre)
        start, end = self._read("pointer", pre), self._read("pointer", pre + 1)
        return [(self._read("index", k), self._weight(k)) for k in range(start, end)]

    def _find(self, post, pre):
        start, end = self._read("pointer", pre), self._read("pointer", pre + 1)
        for k in range(start, end):          # ascending indices: the scan stops at the first >= post
            found = self._read("index", k)
            if found >= post:
                return k if found == post else None
        return None


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
    variants say how a kernel slice ``K[co, ci]`` is stored and read (:meth:`_visit`).

    Visit order (the RTL's): a forward access takes the output channels ``co`` in ascending order
    and, in each slice, the in-range kernel positions in descending raster order (so the targets
    come out in ascending order); a transposed access takes ``ci`` ascending and the positions in
    ascending raster order."""

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        k, self.image = _check_conv(kernel, image)
        self.kernel_shape = tuple(k.shape)
        super().__init__(k.reshape(k.shape[0], -1), weight_bits)     # range check of the weights
        self._k = k.clone()
        # the kernel words with storage, fixed: updates keep the structure
        self._k_stored = torch.ones_like(k, dtype=torch.bool) if self.name == "func-pure" else k != 0
        self._nnz_kernel = int(self._k_stored.sum())
        cout, cin, _, _ = self.kernel_shape
        h, w = self.image
        self.post, self.pre = cout * h * w, cin * h * w
        self._w = None

    def memories(self):
        return functional_memories(self.name, self.kernel_shape, self._nnz_kernel, self.weight_bits)

    @property
    def synapses(self) -> int:
        """The synapses the organisation serves: every in-range kernel position for ``func-pure``
        (zero weights included), those of the stored kernel words for the others."""
        return int((self._k_stored.to(torch.int64) * conv_extent(self.kernel_shape, self.image)).sum())

    def kernel(self) -> torch.Tensor:
        return self._k.clone()

    def kernel_structure(self) -> torch.Tensor:
        """The kernel's stored words (booleans; every word of ``func-pure`` and of a ``dense``
        matrix), fixed for the memory's life."""
        return self._k_stored.clone()

    def structure(self) -> torch.Tensor:
        return conv_matrix(self._k_stored.to(torch.int64), self.image) != 0

    def matrix(self) -> torch.Tensor:
        return conv_matrix(self._k, self.image)

    def split(self, index: int) -> tuple[int, int, int]:
        """``(channel, y, x)`` of a flattened neuron index."""
        h, w = self.image
        return index // (h * w), index // w % h, index % w

    def _slices(self) -> list[list[int]]:
        """Per slice ``co * Cin + ci``, the raster positions ``ky * kw + kx`` of its stored weights."""
        cout, cin, kh, kw = self.kernel_shape
        flat = self._k_stored.reshape(cout * cin, kh * kw)
        return [torch.nonzero(flat[s]).flatten().tolist() for s in range(cout * cin)]

    def _visit(self, co: int, ci: int, positions: list[tuple[int, int]],
               descending: bool) -> list[tuple[int, int, int]]:
        """Reads slice ``K[co, ci]`` at the in-range ``positions`` (in visit order: descending for a
        forward access); returns the ``(ky, kx, weight)`` it delivers, in that order."""
        raise NotImplementedError

    def _event(self, ci: int, positions) -> list[tuple[int, int, int, int]]:
        """The ``(co, ky, kx, weight)`` an event of channel ``ci`` reaches through ``positions``."""
        return [(co, ky, kx, wt) for co in range(self.kernel_shape[0]) for ky, kx, wt in self._visit(co, ci,
                                                                                                     positions, True)]

    def _error(self, co: int, positions) -> list[tuple[int, int, int, int]]:
        """The ``(ci, ky, kx, weight)`` an error of channel ``co`` comes from through ``positions``."""
        return [(ci, ky, kx, wt) for ci in range(self.kernel_shape[1]) for ky, kx, wt in self._visit(co, ci,
                                                                                                     positions, False)]

    def forward(self, pre):
        self._check_pre(pre)
        _, _, kh, kw = self.kernel_shape
        h, w = self.image
        ci, y, x = self.split(pre)
        ph, pw = kh // 2, kw // 2
        positions = [(ky, kx) for ky in reversed(range(kh)) for kx in reversed(range(kw))
                     if 0 <= y - ky + ph < h and 0 <= x - kx + pw < w]
        return sorted(((co * h + y - ky + ph) * w + x - kx + pw, wt) for co, ky, kx, wt in self._event(ci, positions))

    def transposed(self, post):
        self._check_post(post)
        _, _, kh, kw = self.kernel_shape
        h, w = self.image
        co, oy, ox = self.split(post)
        ph, pw = kh // 2, kw // 2
        positions = [(ky, kx) for ky in range(kh) for kx in range(kw)
                     if 0 <= oy + ky - ph < h and 0 <= ox + kx - pw < w]
        return sorted(((ci * h + oy + ky - ph) * w + ox + kx - pw, wt) for ci, ky, kx, wt in self._error(co, positions))

    def kernel_position(self, post: int, pre: int) -> tuple[int, int, int, int]:
        """``(co, ci, ky, kx)``: the kernel word connecting ``pre`` to ``post``."""
        self._check_pre(pre)
        self._check_post(post)
        _, _, kh, kw = self.kernel_shape
        co, oy, ox = self.split(post)
        ci, y, x = self.split(pre)
        ky, kx = y - oy + kh // 2, x - ox + kw // 2
        if not (0 <= ky < kh and 0 <= kx < kw):
            raise ConfigError(f"neurons {pre} and {post} are not connected by the {kh}x{kw} kernel; only connected "
                              "pairs can be updated.")
        return co, ci, ky, kx

    def update(self, post, pre, value):
        """Writes the kernel word that connects ``pre`` to ``post`` (shared by all its synapses)."""
        co, ci, ky, kx = self.kernel_position(post, pre)
        self._check_value(value)
        self._locate(co, ci, ky, kx, value)
        self._k[co, ci, ky, kx] = value

    def _locate(self, co: int, ci: int, ky: int, kx: int, value: int) -> None:
        """Finds kernel word ``K[co, ci, ky, kx]`` and writes ``value`` to it."""
        raise NotImplementedError

    def _check_kernel_entry(self, co, ci, ky, kx) -> None:
        if not self._k_stored[co, ci, ky, kx]:
            raise ConfigError(f"kernel entry ({co}, {ci}, {ky}, {kx}) has no storage in the {self.name} "
                              "organisation (it was zero when the memory was built); only stored entries can be "
                              "updated.")


class FuncPureMemory(_FunctionalConv):
    name = "func-pure"

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        super().__init__(kernel, weight_bits, image)
        self._mem = {"kernel": [self._word(v) for v in self._k.reshape(-1).tolist()]}

    def _address(self, co, ci, ky, kx) -> int:
        _, cin, kh, kw = self.kernel_shape
        return ((co * cin + ci) * kh + ky) * kw + kx

    def _visit(self, co, ci, positions, descending):
        return [(ky, kx, self._weight(self._address(co, ci, ky, kx), "kernel")) for ky, kx in positions]

    def _locate(self, co, ci, ky, kx, value):
        self._write("kernel", self._address(co, ci, ky, kx), self._word(value))


class FuncBitmapMemory(_FunctionalConv):
    name = "func-bmp"

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        super().__init__(kernel, weight_bits, image)
        flat = self._k.reshape(len(self._slices()), -1)
        pointer, bitmap, stored = [], [], []
        for s, positions in enumerate(self._slices()):
            pointer.append(len(stored))
            bitmap.append(sum(1 << p for p in positions))
            stored.extend(self._word(int(flat[s, p])) for p in positions)
        self._mem = {"pointer": pointer, "bitmap": bitmap, "weights": stored or [0]}

    def _visit(self, co, ci, positions, descending):
        kw = self.kernel_shape[3]
        s = co * self.kernel_shape[1] + ci
        word = self._read("bitmap", s)
        hits = [(ky, kx) for ky, kx in positions if word >> (ky * kw + kx) & 1]
        if not hits:
            return []
        first = self._read("pointer", s)
        return [(ky, kx, self._weight(first + bin(word & ((1 << (ky * kw + kx)) - 1)).count("1")))
                for ky, kx in hits]

    def _locate(self, co, ci, ky, kx, value):
        self._check_kernel_entry(co, ci, ky, kx)
        kw = self.kernel_shape[3]
        s = co * self.kernel_shape[1] + ci
        word = self._read("bitmap", s)
        first = self._read("pointer", s)
        self._write("weights", first + bin(word & ((1 << (ky * kw + kx)) - 1)).count("1"), self._word(value))


class FuncRowColMemory(_FunctionalConv):
    name = "func-rowcol"

    def __init__(self, kernel, weight_bits: int, image: tuple[int, int]):
        super().__init__(kernel, weight_bits, image)
        flat = self._k.reshape(len(self._slices()), -1)
        pointer, index, stored = [0], [], []
        for s, positions in enumerate(self._slices()):
            index.extend(positions)
            stored.extend(self._word(int(flat[s, p])) for p in positions)
            pointer.append(len(index))
        self._mem = {"pointer": pointer, "index": index or [0], "weights": stored or [0]}

    def _visit(self, co, ci, positions, descending):
        """Reads the slice's two pointers and every index of it, backwards when ``positions`` run
        backwards (a forward access), and the weights of the entries in range."""
        kw = self.kernel_shape[3]
        s = co * self.kernel_shape[1] + ci
        start, end = self._read("pointer", s), self._read("pointer", s + 1)
        wanted = {ky * kw + kx for ky, kx in positions}
        out = []
        for k in (range(end - 1, start - 1, -1) if descending else range(start, end)):
            p = self._read("index", k)
            if p in wanted:
                out.append((p // kw, p % kw, self._weight(k)))
        return out

    def _locate(self, co, ci, ky, kx, value):
        self._check_kernel_entry(co, ci, ky, kx)
        kw = self.kernel_shape[3]
        s = co * self.kernel_shape[1] + ci
        start, end = self._read("pointer", s), self._read("pointer", s + 1)
        for k in range(start, end):
            if self._read("index", k) == ky * kw + kx:
                self._write("weights", k, self._word(value))
                return


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
        if organisation == "dense":
            self._k_stored = torch.ones_like(self._k_stored)
        self.inner = ORGANISATIONS[organisation](self._k.reshape(cout, cin * kh * kw), weight_bits, **options)
        self.inner.reads, self.inner.writes = self.reads, self.writes      # one set of counters
        self._mem = self.inner._mem

    def memories(self):
        return self.inner.memories()

    def _row(self, ci: int, ky: int, kx: int) -> int:
        _, _, kh, kw = self.kernel_shape
        return (ci * kh + ky) * kw + kx

    def _event(self, ci, positions):
        return [(co, ky, kx, wt) for ky, kx in positions for co, wt in self.inner.forward(self._row(ci, ky, kx))]

    def _error(self, co, positions):
        out = []
        for ci in range(self.kernel_shape[1]):
            for ky, kx in positions:
                address = self.inner._find(co, self._row(ci, ky, kx))
                if address is not None:
                    out.append((ci, ky, kx, self.inner._weight(address)))
        return out

    def _locate(self, co, ci, ky, kx, value):
        if self.name != "dense":
            self._check_kernel_entry(co, ci, ky, kx)
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
        return conv_matrix_pass_counts(memory.name, memory.kernel_structure().to(torch.int64), memory.image,
                                       **options)
    if isinstance(memory, _FunctionalConv):
        return functional_pass_counts(memory.name, memory.kernel_structure().to(torch.int64), memory.image)
    posts, pres = torch.nonzero(memory.structure(), as_tuple=True)
    return matrix_pass_counts(memory.name, memory.pre, memory.post, posts, pres, **options)


# -- the RTL's command and result words (rtl/synapse.py, cosim/synapse_bench.py) -----------------------
CMD_FORWARD, CMD_TRANSPOSED, CMD_UPDATE = 0, 1, 2


def _conv(memory: SynapseMemory) -> bool:
    return isinstance(memory, _FunctionalConv)


def _neuron_fields(memory: SynapseMemory, prefix: str, count: int, channels: int) -> tuple[Field, ...]:
    """A neuron as one index (matrix) or as channel, row, column (convolution)."""
    if not _conv(memory):
        return (Field(prefix, bits_for(count)),)
    h, w = memory.image
    return (Field(f"{prefix}_c", bits_for(channels)), Field(f"{prefix}_y", bits_for(h)), Field(f"{prefix}_x",
                                                                                               bits_for(w)))


def command_fields(memory: SynapseMemory) -> tuple[Field, ...]:
    """A command of the RTL's synapse memory: ``kind`` (CMD_*), the postsynaptic neuron (transposed
    access, update), the presynaptic one (forward access, update) and the update's value."""
    cout, cin = memory.kernel_shape[:2] if _conv(memory) else (0, 0)
    return ((Field("kind", 2),) + _neuron_fields(memory, "post", memory.post, cout)
            + _neuron_fields(memory, "pre", memory.pre, cin) + (Field("value", memory.weight_bits, True),))


def load_fields(memory: SynapseMemory) -> tuple[Field, ...]:
    """A weight load of a core whose weights live in ``memory``: an update command without its
    kind (the postsynaptic neuron, the presynaptic one, the value)."""
    return command_fields(memory)[1:]


def result_fields(memory: SynapseMemory) -> tuple[Field, ...]:
    """A result: the neuron (the target of a forward access, the source of a transposed one) and the
    weight."""
    channels = max(memory.kernel_shape[:2]) if _conv(memory) else 0
    return _neuron_fields(memory, "neuron", max(memory.pre, memory.post), channels) + \
        (Field("weight", memory.weight_bits, True),)


def neuron_values(memory: SynapseMemory, prefix: str, index: int) -> dict:
    """The fields of neuron ``index`` (flattened channel-major for a convolution)."""
    if not _conv(memory):
        return {prefix: index}
    c, y, x = memory.split(index)
    return {f"{prefix}_c": c, f"{prefix}_y": y, f"{prefix}_x": x}


def neuron_index(memory: SynapseMemory, prefix: str, values: dict) -> int:
    if not _conv(memory):
        return values[prefix]
    h, w = memory.image
    return (values[f"{prefix}_c"] * h + values[f"{prefix}_y"]) * w + values[f"{prefix}_x"]
