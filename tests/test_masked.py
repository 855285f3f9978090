"""masked_outer: per-edge sums of outer products, compiled and numpy, against explicit sums.

The reference is the literal definition, ``sum_s outer(post[s], pre[s])`` read at each stored
entry. The compiled kernel (float64 accumulation, reassociated) and the numpy paths (gathers,
or one dense product read at the edges) sum in other orders, so they agree to rounding.
"""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recur import kernels, masked
from recur.masked import masked_outer

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")
BACKENDS = ["numpy", pytest.param("numba", marks=needs_numba)]


def explicit(post, pre, like):
    """The definition: a Python sum of dense outer products, read at like's stored entries."""
    post, pre = np.atleast_2d(post), np.atleast_2d(pre)
    full = np.zeros((post.shape[1], pre.shape[1]))
    for p, q in zip(post.astype(np.float64), pre.astype(np.float64)):
        full += np.outer(p, q)
    return full[masked.edge_rows(like), like.indices]


def random_csr(n_post, n_pre, density, seed, dtype=np.float64):
    """CSR with rows of every length mod 4 (the kernel's 4-entry blocks and remainders)."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n_post, n_pre)) < density,
                     rng.normal(size=(n_post, n_pre)), 0.0)
    dense[0] = 0.0  # an empty row
    return sp.csr_array(dense.astype(dtype))


def activities(n_samples, n, seed, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=(n_samples, n)).astype(dtype)


def assert_sums_close(got, want, dtype=np.float64):
    scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
    rtol, atol = (1e-12, 1e-12) if np.dtype(dtype) == np.float64 else (1e-5, 1e-5)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol * scale)


@pytest.fixture(params=["kernel", "dense"])
def path(request, monkeypatch):
    """Every CSR path: the per-edge sums (kernel or gathers) or the dense product."""
    if request.param == "dense":
        monkeypatch.setattr(masked, "_dense_sums_pay", lambda *args: True)
    else:
        monkeypatch.setattr(masked, "_dense_sums_pay", lambda *args: False)
    return request.param


# --- against the definition ---------------------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(1, 1), (7, 7), (37, 53), (60, 11)])
def test_matches_explicit_outer_products(backend, shape, path):
    like = random_csr(*shape, density=0.3, seed=sum(shape))
    post, pre = activities(45, shape[0], 1), activities(45, shape[1], 2)
    got = masked_outer(post, pre, like, backend=backend)
    assert_sums_close(got.data, explicit(post, pre, like))


@pytest.mark.parametrize("backend", BACKENDS)
def test_structure_is_exactly_like(backend, path):
    like = random_csr(40, 30, 0.2, seed=3)
    got = masked_outer(activities(20, 40, 4), activities(20, 30, 5), like, backend=backend)
    assert sp.issparse(got) and got.format == "csr" and got.shape == like.shape
    assert np.array_equal(got.indptr, like.indptr)
    assert np.array_equal(got.indices, like.indices)
    assert got.data.shape == (like.nnz,)
    assert got.has_sorted_indices == like.has_sorted_indices


@pytest.mark.parametrize("backend", BACKENDS)
def test_unsorted_and_duplicate_entries_keep_storage_order(backend, path):
    # Each entry of a row stored twice, the row's entries in reverse order: every stored
    # entry gets the full sum of its (i, j), in storage order.
    base = random_csr(25, 25, 0.3, seed=6).tocoo()
    order = np.lexsort((-base.col, base.row))
    rows, cols = np.repeat(base.row[order], 2), np.repeat(base.col[order], 2)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=25))])
    like = sp.csr_array((np.ones(rows.size), cols, indptr), shape=(25, 25))
    assert not like.has_canonical_format
    post, pre = activities(30, 25, 7), activities(30, 25, 8)
    got = masked_outer(post, pre, like, backend=backend)
    assert np.array_equal(got.indices, cols)
    assert_sums_close(got.data, explicit(post, pre, like))


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_sample_given_as_vectors(backend):
    like = random_csr(9, 6, 0.5, seed=9)
    post, pre = activities(1, 9, 10)[0], activities(1, 6, 11)[0]
    got = masked_outer(post, pre, like, backend=backend)
    assert_sums_close(got.data, np.outer(post, pre)[masked.edge_rows(like), like.indices])


@pytest.mark.parametrize("backend", BACKENDS)
def test_int64_indices(backend):
    like = random_csr(30, 30, 0.2, seed=12)
    wide = sp.csr_array((like.data, like.indices.astype(np.int64),
                         like.indptr.astype(np.int64)), shape=like.shape)
    post, pre = activities(15, 30, 13), activities(15, 30, 14)
    got = masked_outer(post, pre, wide, backend=backend)
    assert_sums_close(got.data, explicit(post, pre, like))


# --- the backends agree -------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_numba_and_numpy_agree(dtype):
    like = random_csr(120, 90, 0.1, seed=15, dtype=dtype)
    post, pre = activities(300, 120, 16, dtype), activities(300, 90, 17, dtype)
    fast = masked_outer(post, pre, like, backend="numba")
    ref = masked_outer(post, pre, like, backend="numpy")
    assert fast.dtype == ref.dtype == dtype
    assert_sums_close(fast.data, ref.data, dtype)
    assert_sums_close(fast.data, explicit(post, pre, like), dtype)


@needs_numba
def test_mixed_dtypes_follow_numpy_promotion():
    like = random_csr(20, 20, 0.3, seed=18)
    post, pre = activities(10, 20, 19, np.float32), activities(10, 20, 20)
    for backend in ("numba", "numpy"):
        got = masked_outer(post, pre, like, backend=backend)
        assert got.dtype == np.float64
        assert_sums_close(got.data, explicit(post, pre, like))


@pytest.mark.parametrize("backend", BACKENDS)
def test_integer_activities_are_summed_exactly(backend):
    like = random_csr(12, 12, 0.4, seed=21)
    rng = np.random.default_rng(22)
    post, pre = rng.integers(-5, 5, (8, 12)), rng.integers(-5, 5, (8, 12))
    got = masked_outer(post, pre, like, backend=backend)
    assert got.dtype == np.result_type(post, pre)
    np.testing.assert_array_equal(got.data, explicit(post, pre, like).astype(got.dtype))


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_reaches_only_its_edges(backend):
    like = random_csr(15, 15, 0.4, seed=23)
    post, pre = activities(12, 15, 24), activities(12, 15, 25)
    pre[5, 3] = np.nan
    got = masked_outer(post, pre, like, backend=backend)
    on_column = like.indices == 3
    assert on_column.any() and np.isnan(got.data[on_column]).all()
    assert np.isfinite(got.data[~on_column]).all()


# --- chunking -----------------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("chunk", [1, 5, 64, 512])
def test_compiled_chunks_of_samples(monkeypatch, chunk):
    # Passes of `chunk` samples, the last one ragged; the chunk never changes the sums.
    monkeypatch.setattr(masked, "_EDGE_SAMPLES", chunk)
    like = random_csr(33, 41, 0.25, seed=26)
    post, pre = activities(67, 33, 27), activities(67, 41, 28)
    got = masked_outer(post, pre, like, backend="numba")
    assert_sums_close(got.data, explicit(post, pre, like))


@needs_numba
@pytest.mark.parametrize("budget, chunk", [(8 * 50 * 100, 100), (1, "min"), (1 << 30, "max")])
def test_compiled_chunk_shrinks_for_wide_pre(monkeypatch, budget, chunk):
    # The transposed chunk of pre is kept near _EDGE_BUFFER_BYTES, within
    # [_EDGE_SAMPLES_MIN, _EDGE_SAMPLES] samples.
    chunk = {"min": masked._EDGE_SAMPLES_MIN, "max": masked._EDGE_SAMPLES}.get(chunk, chunk)
    masked._JIT.ensure()  # the wrapper below must wrap the compiled kernel
    kernel, seen = masked._edge_sums_nb, []
    monkeypatch.setattr(masked, "_edge_sums_nb", lambda *a: (seen.append(a[4]), kernel(*a)))
    monkeypatch.setattr(masked, "_EDGE_BUFFER_BYTES", budget)
    like = random_csr(10, 50, 0.3, seed=29)
    post, pre = activities(600, 10, 30), activities(600, 50, 31)
    got = masked_outer(post, pre, like, backend="numba")
    assert seen == [chunk]  # the kernel's `width` argument
    assert_sums_close(got.data, explicit(post, pre, like))


@needs_numba
@pytest.mark.parametrize("keep", [True, False])
def test_scratch_buffers_carry_nothing_between_calls(monkeypatch, keep):
    # The transposition buffers are kept per thread (below a size cap) and reused by calls of
    # other shapes; no call may see another's numbers.
    if not keep:
        monkeypatch.setattr(masked, "_SCRATCH_MAX_BYTES", 0)
    for seed, (n_post, n_pre, n_samples) in enumerate([(50, 70, 300), (10, 5, 3), (80, 20, 700),
                                                       (50, 70, 300)]):
        like = random_csr(n_post, n_pre, 0.3, seed=45 + seed)
        post, pre = activities(n_samples, n_post, seed), activities(n_samples, n_pre, seed + 9)
        got = masked_outer(post, pre, like, backend="numba")
        assert_sums_close(got.data, explicit(post, pre, like))
    kept = getattr(masked._scratch, "buf", None)
    masked_outer(post, pre, like, backend="numba")
    if keep:
        assert masked._scratch.buf is kept


@pytest.mark.parametrize("budget", [1, 100, 1 << 22])
def test_numpy_gathers_in_chunks(monkeypatch, budget):
    monkeypatch.setattr(masked, "_GATHER_BUDGET", budget)
    monkeypatch.setattr(masked, "_dense_sums_pay", lambda *args: False)
    like = random_csr(20, 20, 0.3, seed=32)
    post, pre = activities(37, 20, 33), activities(37, 20, 34)
    got = masked_outer(post, pre, like, backend="numpy")
    assert_sums_close(got.data, explicit(post, pre, like))


# --- dense like, degenerate and bad input -------------------------------------------------

@pytest.mark.parametrize("backend", BACKENDS)
def test_dense_like_gives_the_full_sum(backend):
    post, pre = activities(25, 8, 35), activities(25, 5, 36)
    got = masked_outer(post, pre, np.zeros((8, 5)), backend=backend)
    assert isinstance(got, np.ndarray) and got.shape == (8, 5)
    np.testing.assert_allclose(got, post.T @ pre, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_samples_or_no_edges_give_zeros(backend):
    like = random_csr(6, 4, 0.5, seed=37)
    got = masked_outer(np.empty((0, 6)), np.empty((0, 4)), like, backend=backend)
    assert got.nnz == like.nnz and not got.data.any()
    empty = sp.csr_array((6, 4))
    got = masked_outer(activities(3, 6, 38), activities(3, 4, 39), empty, backend=backend)
    assert got.nnz == 0 and got.shape == (6, 4)


def test_rejects_bad_input():
    like = random_csr(6, 4, 0.5, seed=40)
    with pytest.raises(ValueError, match="samples"):
        masked_outer(np.ones((3, 6)), np.ones((2, 4)), like)
    with pytest.raises(ValueError, match="shape"):
        masked_outer(np.ones((3, 4)), np.ones((3, 6)), like)
    with pytest.raises(TypeError, match="CSR"):
        masked_outer(np.ones((3, 6)), np.ones((3, 4)), like.tocsc())
    for post, pre, structure in [(np.ones((3, 6)), np.ones((3, 4)), like),
                                 (np.ones((3, 6), int), np.ones((3, 4), int), like),
                                 (np.ones((3, 6)), np.ones((3, 4)), like.toarray())]:
        with pytest.raises(ValueError, match="backend"):
            masked_outer(post, pre, structure, backend="cuda")


# --- when the dense product is used -------------------------------------------------------

def test_dense_product_only_where_it_pays():
    n = 100
    sparse = random_csr(n, n, 0.01, seed=41)
    medium = random_csr(n, n, 0.1, seed=42)
    full = random_csr(n, n, 0.9, seed=43)
    f64 = np.float64
    # numpy: from 2% of the entries, with density x samples >= 1
    assert not masked._dense_sums_pay(sparse, 10_000, f64, False)
    assert masked._dense_sums_pay(medium, 100, f64, False)
    assert not masked._dense_sums_pay(medium, 4, f64, False)
    # compiled: only nearly full graphs, with samples enough
    assert not masked._dense_sums_pay(medium, 10_000, f64, True)
    assert masked._dense_sums_pay(full, 10_000, f64, True)
    assert not masked._dense_sums_pay(full, 10, f64, True)
    # never beyond the size cap
    huge = sp.random_array((4001, 4001), density=0.03, format="csr", random_state=44)
    assert not masked._dense_sums_pay(huge, 10_000, f64, False)
    assert masked._dense_sums_pay(huge[:4000, :4000], 10_000, f64, False)


def test_numpy_backend_does_not_import_numba():
    code = ("import sys, numpy as np, scipy.sparse as sp; from recur.masked import "
            "masked_outer; W = sp.random_array((30, 30), density=0.1, format='csr', "
            "random_state=0); masked_outer(np.ones((5, 30)), np.ones((5, 30)), W, "
            "backend='numpy'); print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
