"""Synapse memory organisations (model): what the accesses return and what they count."""

import pytest
import torch
from neuromosaic.model.config import ConfigError
from neuromosaic.model.synapse import conv_matrix, make_memory

MATRIX = ["bitmap", "csr", "dense"]          # organisations of an arbitrary matrix


def _sparse(post, pre, density, bits=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = torch.randint(lo, hi + 1, (post, pre), generator=g)
    w[w == 0] = 1
    return w * (torch.rand(post, pre, generator=g) < density)


@pytest.mark.parametrize("organisation", MATRIX)
@pytest.mark.parametrize("density", [0.0, 0.1, 0.5, 1.0])
def test_accesses_return_the_matrix(organisation, density):
    w = _sparse(37, 23, density, seed=int(density * 10))
    mem = make_memory(organisation, w, 8)
    for pre in range(23):
        got = mem.forward(pre)
        want = [(p, int(w[p, pre])) for p in range(37) if organisation == "dense" or w[p, pre] != 0]
        assert got == want
    for post in range(37):
        got = mem.transposed(post)
        want = [(q, int(w[post, q])) for q in range(23) if organisation == "dense" or w[post, q] != 0]
        assert got == want


def test_forward_counts():
    w = _sparse(40, 30, 0.3)
    nnz = int((w != 0).sum())
    counts = {}
    for name in MATRIX:
        mem = make_memory(name, w, 8)
        for pre in range(30):
            mem.forward(pre)
        counts[name] = mem.counts()
    assert counts["dense"] == {"weights": {"reads": 30 * 40, "writes": 0}}
    assert counts["bitmap"] == {"pointer": {"reads": 30, "writes": 0}, "bitmap": {"reads": 30 * 3, "writes": 0},
                                "weights": {"reads": nnz, "writes": 0}}
    assert counts["csr"] == {"pointer": {"reads": 60, "writes": 0}, "index": {"reads": nnz, "writes": 0},
                             "weights": {"reads": nnz, "writes": 0}}


def test_transposed_counts():
    """Counted independently of the implementation: from the matrix, with cumulative sums."""
    w = _sparse(40, 30, 0.3, seed=3)
    nz = (w != 0).to(torch.int64)                       # [post, pre]
    nnz = int(nz.sum())
    below = torch.cumsum(nz, 0) - nz                    # synapses of the row below each post
    row = nz.sum(0)                                     # per pre
    mem = make_memory("csr", w, 8)
    for post in range(40):
        mem.transposed(post)
    scans = torch.minimum(below + 1, row.unsqueeze(0)).sum()
    assert mem.counts() == {"pointer": {"reads": 2 * 30 * 40, "writes": 0},
                            "index": {"reads": int(scans), "writes": 0}, "weights": {"reads": nnz, "writes": 0}}
    mem = make_memory("bitmap", w, 8, bitmap_word=16)
    for post in range(40):
        mem.transposed(post)
    assert mem.counts() == {"pointer": {"reads": nnz, "writes": 0}, "bitmap": {"reads": 30 * 40, "writes": 0},
                            "weights": {"reads": nnz, "writes": 0}}


@pytest.mark.parametrize("organisation", MATRIX)
def test_update_writes_one_weight(organisation):
    w = _sparse(12, 9, 0.5, seed=5)
    mem = make_memory(organisation, w, 8)
    post, pre = [(p, q) for p in range(12) for q in range(9) if w[p, q] != 0][7]
    mem.update(post, pre, -77)
    assert mem.counts()["weights"]["writes"] == 1
    assert (pre, -77) in mem.transposed(post) and (post, -77) in mem.forward(pre)
    expected = w.clone()
    expected[post, pre] = -77
    assert torch.equal(mem.matrix(), expected)


def test_memory_sizes():
    w = _sparse(40, 30, 0.25, bits=6, seed=1)
    nnz = int((w != 0).sum())
    sizes = {name: {m.name: (m.depth, m.width) for m in make_memory(name, w, 6).memories()} for name in MATRIX}
    assert sizes["dense"] == {"weights": (1200, 6)}
    assert sizes["bitmap"]["bitmap"] == (30 * 3, 16) and sizes["bitmap"]["weights"] == (nnz, 6)
    assert sizes["bitmap"]["pointer"][0] == 30 * 3                                      # one a bitmap word
    assert sizes["csr"]["index"] == (nnz, 6) and sizes["csr"]["pointer"][0] == 31     # index: 6 bits for 40 posts


@pytest.mark.parametrize("call, message", [
    (lambda: make_memory("rle", torch.zeros(2, 2), 8),
     "organisation 'rle' is unknown; allowed: dense, bitmap, csr, func-rowcol, func-bmp, func-pure"),
    (lambda: make_memory("dense", torch.full((2, 2), 200), 8), "do not fit 8 bits; allowed: -128..127"),
    (lambda: make_memory("csr", torch.eye(3), 8).update(0, 1, 5), "there is no synapse from 1 to 0"),
    (lambda: make_memory("bitmap", torch.eye(3), 8).update(1, 0, 4), "there is no synapse from 0 to 1"),
    (lambda: make_memory("dense", torch.eye(3), 8).forward(3), "presynaptic index 3 is out of range; allowed: 0..2"),
    (lambda: make_memory("csr", torch.eye(3), 8).transposed(-1), "postsynaptic index -1 is out of range"),
    (lambda: make_memory("dense", torch.eye(3), 4).update(0, 0, 9), "weight 9 does not fit 4 bits"),
    (lambda: make_memory("func-pure", torch.ones(2, 2, 2, 2), 8, image=(4, 4)), "with odd kh and kw"),
    (lambda: make_memory("Func-BMP", torch.ones(2, 2, 3, 3), 8, image=(0, 4)), "image (0, 4) is not (height, width)"),
])
def test_bad_input_is_refused(call, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def _kernel(cout=3, cin=2, k=3, bits=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return torch.randint(lo, hi + 1, (cout, cin, k, k), generator=g)


FUNCTIONAL = ["func-pure", "func-bmp", "func-rowcol"]


def _sparse_kernel(seed=0, cout=3, cin=2, k=3):
    kernel = _kernel(cout=cout, cin=cin, k=k, seed=seed)
    g = torch.Generator().manual_seed(seed + 100)
    kernel[torch.rand(kernel.shape, generator=g) < 0.4] = 0
    kernel[0, 1] = 0                                          # a whole slice without weights
    kernel[1, 0] = 7                                          # and a full one
    return kernel


@pytest.mark.parametrize("organisation", FUNCTIONAL)
def test_functional_encodings_serve_forward_and_backward_from_one_kernel(organisation):
    """Against the matrix of torch's conv2d: every synapse the organisation serves, in both
    directions (Func-Pure: every in-range kernel position, zeros included; the others: the non-zero
    ones)."""
    kernel, image = _sparse_kernel(), (5, 6)
    reference = conv_matrix(kernel, image)                       # [3*30, 2*30]
    served = kernel if organisation != "func-pure" else torch.ones_like(kernel)
    structure = conv_matrix(served, image) != 0
    mem = make_memory(organisation, kernel, 8, image=image)
    assert mem.synapses == int(structure.sum())
    for pre in range(reference.shape[1]):
        got = mem.forward(pre)
        assert got == [(p, int(reference[p, pre])) for p in range(reference.shape[0]) if structure[p, pre]]
    for post in range(reference.shape[0]):
        got = mem.transposed(post)
        assert got == [(q, int(reference[post, q])) for q in range(reference.shape[1]) if structure[post, q]]
    assert torch.equal(mem.matrix(), reference)


def test_functional_memory_sizes():
    kernel = _sparse_kernel()
    nnz = int((kernel != 0).sum())
    sizes = {name: {m.name: (m.depth, m.width)
                    for m in make_memory(name, kernel.clamp(-32, 31), 6, image=(4, 4)).memories()}
             for name in FUNCTIONAL}
    assert sizes["func-pure"] == {"kernel": (3 * 2 * 9, 6)}
    assert sizes["func-bmp"]["bitmap"] == (6, 9) and sizes["func-bmp"]["pointer"][0] == 6
    assert sizes["func-bmp"]["weights"] == (nnz, 6) == sizes["func-rowcol"]["weights"]
    assert sizes["func-rowcol"]["index"] == (nnz, 4) and sizes["func-rowcol"]["pointer"][0] == 7


@pytest.mark.parametrize("organisation", FUNCTIONAL)
def test_functional_update_changes_every_synapse_sharing_the_weight(organisation):
    kernel, image = _kernel(cout=2, cin=1, k=3, seed=2), (4, 4)
    kernel[kernel == 0] = 1
    mem = make_memory(organisation, kernel, 8, image=image)
    # pre (0, 1, 1) -> post (1, 1, 2): ky = 1 - 1 + 1 = 1, kx = 1 - 2 + 1 = 0
    mem.update(1 * 16 + 1 * 4 + 2, 0 * 16 + 1 * 4 + 1, 99)
    assert int(mem.matrix()[1 * 16 + 2 * 4 + 3, 2 * 4 + 2]) == 99          # the same offset elsewhere
    assert mem.kernel()[1, 0, 1, 0] == 99
    assert sum(c["writes"] for c in mem.counts().values()) == 1
    with pytest.raises(ConfigError, match="are not connected by the 3x3 kernel"):
        mem.update(0, 3 * 4 + 3, 5)


def test_functional_sparse_kernels_keep_their_structure():
    kernel = _sparse_kernel()
    for name in ("func-bmp", "func-rowcol"):
        mem = make_memory(name, kernel, 8, image=(4, 4))
        # post (0, 1, 1) <- pre (1, 1, 1) is kernel entry (0, 1, 1, 1): zero (the empty slice)
        with pytest.raises(ConfigError, match=r"kernel entry \(0, 1, 1, 1\) has no storage"):
            mem.update(5, 16 + 5, 3)
        served = mem.synapses
        mem.update(16 + 5, 5, 0)                            # entry (1, 0, 1, 1): 7 -> a stored zero
        assert mem.synapses == served and mem.kernel_structure()[1, 0, 1, 1]
        assert (16 + 5, 0) in mem.forward(5) and (5, 0) in mem.transposed(16 + 5)
        mem.update(16 + 5, 5, -3)                           # and back: the word is still there
        assert mem.kernel()[1, 0, 1, 1] == -3
    make_memory("func-pure", kernel, 8, image=(4, 4)).update(5, 16 + 5, 3)     # a dense kernel: any word


@pytest.mark.parametrize("organisation", ["bitmap", "csr"])
def test_a_stored_synapse_written_zero_stays_in_the_structure(organisation):
    """Learning may drive a weight to zero: the synapse keeps its storage (bitmap bit, index entry),
    the accesses deliver its zero and a later update can revive it; the sizes do not change."""
    w = _sparse(12, 9, 0.5, seed=5)
    mem = make_memory(organisation, w, 8)
    sizes, structure = mem.memories(), mem.structure()
    post, pre = torch.nonzero(structure)[4].tolist()
    mem.update(post, pre, 0)
    assert torch.equal(mem.structure(), structure) and mem.memories() == sizes
    assert (post, 0) in mem.forward(pre) and (pre, 0) in mem.transposed(post)
    assert [p for p, _ in mem.forward(pre)] == torch.nonzero(structure[:, pre]).flatten().tolist()
    mem.update(post, pre, 5)
    assert int(mem.matrix()[post, pre]) == 5


def test_functional_conv_matrix_agrees_with_the_sparse_organisations():
    kernel, image = _kernel(seed=4), (4, 5)
    w = conv_matrix(kernel, image)
    fn = make_memory("func-pure", kernel, 8, image=image)
    csr = make_memory("csr", w, 8)
    for pre in range(w.shape[1]):
        assert [pw for pw in fn.forward(pre) if pw[1]] == csr.forward(pre)
    assert fn.counts()["kernel"]["reads"] >= csr.counts()["weights"]["reads"]
    assert sum(m.bits for m in fn.memories()) < sum(m.bits for m in csr.memories())


@pytest.mark.parametrize("organisation", MATRIX)
def test_matrix_organisations_hold_a_convolution(organisation):
    """A kernel in a matrix organisation: the same synapses as the functional one, addressed
    through the receptive-field matrix."""
    kernel, image = _sparse_kernel(seed=8), (4, 5)
    reference = conv_matrix(kernel, image)
    structure = conv_matrix(kernel if organisation != "dense" else torch.ones_like(kernel), image) != 0
    mem = make_memory(organisation, kernel, 8, image=image)
    assert mem.synapses == int(structure.sum())
    for pre in range(reference.shape[1]):
        assert mem.forward(pre) == [(p, int(reference[p, pre])) for p in range(reference.shape[0]) if structure[p, pre]]
    for post in range(reference.shape[0]):
        assert mem.transposed(post) == [(q, int(reference[post, q])) for q in range(reference.shape[1])
                                        if structure[post, q]]
    assert mem.memories() == make_memory(organisation, kernel.reshape(3, 18), 8).memories()


@pytest.mark.parametrize("organisation", MATRIX + FUNCTIONAL + ["conv-" + m for m in MATRIX])
def test_pass_counts_equal_the_accesses(organisation):
    """The closed forms of whole-layer passes against stepping through every access."""
    from neuromosaic.model.synapse import pass_counts
    if organisation in FUNCTIONAL or organisation.startswith("conv-"):
        organisation = organisation.removeprefix("conv-")
        kernel = _sparse_kernel(seed=6)
        mem = make_memory(organisation, kernel, 8, image=(4, 5))
        # around the image's centre (2, 2): one synapse per kernel word
        pairs = [(co * 20 + 12, ci * 20 + (2 + dy) * 5 + (2 + dx))
                 for co in range(3) for ci in range(2) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
                 if organisation in ("func-pure", "dense") or kernel[co, ci, 1 + dy, 1 + dx] != 0]
    else:
        mem = make_memory(organisation, _sparse(30, 20, 0.3, seed=7), 8)
    want = pass_counts(mem)
    for pre in range(mem.pre):
        mem.forward(pre)
    assert mem.counts() == want["forward"]
    mem.reset_counts()
    for post in range(mem.post):
        mem.transposed(post)
    assert mem.counts() == want["backward"]
    mem.reset_counts()
    if hasattr(mem, "kernel"):
        w = mem.matrix()
        for post, pre in pairs:
            mem.update(post, pre, int(w[post, pre]) or 1)
    else:               # every stored word: all of dense, the synapses of the rest
        w = mem.matrix()
        for post, pre in torch.nonzero(mem.structure()).tolist():
            mem.update(post, pre, int(w[post, pre]))
    assert mem.counts() == want["update"]
