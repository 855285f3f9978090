"""The compiled (numba) step loops compute the numbers of their numpy twins.

The kernels sum in a different order (four partial sums per row) and use their own
vectorised tanh, so the two backends agree to rounding, not bit for bit: float64 states to
~1e-12 relative to their scale, float32 to ~1e-5.
"""

import subprocess
import sys

import numpy as np
import pytest
import scipy.sparse as sp

from recur import kernels

needs_numba = pytest.mark.skipif(not kernels.HAVE_NUMBA, reason="numba is not installed")

DTYPES = [np.float64, np.float32]
SIZES = [1, 5, 64, 203]  # odd sizes exercise the remainders of the 4-way loops


def assert_close(actual, desired, dtype):
    desired = np.asarray(desired)
    scale = max(1.0, float(np.abs(desired).max())) if desired.size else 1.0
    if np.dtype(dtype) == np.float64:
        np.testing.assert_allclose(actual, desired, rtol=1e-12, atol=1e-12 * scale)
    else:
        np.testing.assert_allclose(actual, desired, rtol=1e-4, atol=2e-5 * scale)


def recurrent(n, kind, dtype, rng, density=0.3, radius=0.9):
    """W with the given spectral radius (contractive, as in an echo-state network)."""
    dense = np.where(rng.random((n, n)) < density, rng.uniform(-0.5, 0.5, (n, n)), 0.0)
    rho = np.abs(np.linalg.eigvals(dense)).max()
    if rho > 0:
        dense *= radius / rho
    dense = dense.astype(dtype)
    return dense if kind == "dense" else sp.csr_array(dense)


def drive_for(shape, dtype, rng):
    return rng.normal(0.0, 1.0, shape).astype(dtype)


# --- backends agree -----------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("n", SIZES)
def test_run_sequence_backends_agree(dtype, kind, n):
    rng = np.random.default_rng(n)
    W = recurrent(n, kind, dtype, rng)
    drive = drive_for((60, n), dtype, rng)
    x0 = rng.uniform(-0.5, 0.5, n).astype(dtype)
    states, x = kernels.run_sequence(W, drive, x0, 0.3, "numba")
    ref_states, ref_x = kernels.run_sequence(W, drive, x0, 0.3, "numpy")
    assert states.dtype == dtype and x.dtype == dtype
    assert states.shape == (60, n) and x.shape == (n,)
    assert_close(states, ref_states, dtype)
    assert_close(x, ref_x, dtype)
    np.testing.assert_array_equal(x, states[-1])


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dense", "csr", "csr-densified"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("batch", [1, 3, 8])
def test_run_batch_backends_agree(dtype, kind, n, batch, monkeypatch):
    # pin the densify rule so each case takes the path it names, whatever the draw
    threshold = 0.0 if kind == "csr-densified" else 2.0
    monkeypatch.setattr(kernels, "DENSIFY_BATCH_MIN_DENSITY", threshold)
    monkeypatch.setattr(kernels, "DENSIFY_BATCH_MIN_DENSITY_FLOAT32", threshold)
    rng = np.random.default_rng(10 * n + batch)
    W = recurrent(n, "dense" if kind == "dense" else "csr", dtype, rng)
    drive = drive_for((batch, 40, n), dtype, rng)
    x0 = rng.uniform(-0.5, 0.5, (batch, n)).astype(dtype)
    states, x = kernels.run_batch(W, drive, x0, 0.6, "numba")
    ref_states, ref_x = kernels.run_batch(W, drive, x0, 0.6, "numpy")
    assert states.dtype == dtype and states.shape == (batch, 40, n) and x.shape == (batch, n)
    assert_close(states, ref_states, dtype)
    assert_close(x, ref_x, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_densify_rule(dtype):
    n = 100
    limit = (kernels.DENSIFY_BATCH_MIN_DENSITY_FLOAT32 if dtype == np.float32
             else kernels.DENSIFY_BATCH_MIN_DENSITY)
    rng = np.random.default_rng(0)
    sparse = recurrent(n, "csr", dtype, rng, density=limit / 2)
    dense = recurrent(n, "csr", dtype, rng, density=min(1.0, limit * 1.5))
    assert not kernels._densify_batch(sparse, n, dtype)
    assert kernels._densify_batch(dense, n, dtype)
    huge = kernels.DENSIFY_BATCH_MAX_UNITS + 1
    assert not kernels._densify_batch(sp.csr_array(np.ones((1, 1))), huge, dtype)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_batch_rows_equal_single_sequences(dtype, kind):
    rng = np.random.default_rng(7)
    n, batch = 37, 5
    W = recurrent(n, kind, dtype, rng)
    drive = drive_for((batch, 30, n), dtype, rng)
    x0 = rng.uniform(-0.5, 0.5, (batch, n)).astype(dtype)
    states, _ = kernels.run_batch(W, drive, x0, 0.4, "numba")
    for s in range(batch):
        one, _ = kernels.run_sequence(W, drive[s], x0[s], 0.4, "numba")
        assert_close(states[s], one, dtype)


@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["dense", "csr"])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("n_out", [1, 3])
def test_closed_loop_backends_agree(dtype, kind, n, n_out):
    rng = np.random.default_rng(100 + n + n_out)
    W = recurrent(n, kind, dtype, rng, radius=0.6)
    W_y = rng.uniform(-0.3, 0.3, (n, n_out))
    b = rng.uniform(-0.2, 0.2, n)
    coef = rng.normal(0.0, 0.5 / np.sqrt(n), (n_out, n))
    intercept = rng.normal(0.0, 0.1, n_out)
    x0 = rng.uniform(-0.5, 0.5, n).astype(dtype)
    y, x = kernels.closed_loop(W, W_y, b, coef, intercept, x0, 0.5, 50, "numba")
    ref_y, ref_x = kernels.closed_loop(W, W_y, b, coef, intercept, x0, 0.5, 50, "numpy")
    assert y.dtype == dtype and y.shape == (50, n_out) and x.shape == (n,)
    assert_close(y, ref_y, dtype)
    assert_close(x, ref_x, dtype)


# --- the compiled tanh --------------------------------------------------------------------

def _tanh_through_kernel(values, dtype, kind):
    """tanh(values) from run_sequence on one unit with W = 0 and leak = 1, one step per value.

    A NaN value makes the following steps NaN on the dense path (0 * NaN), so put it last.
    """
    values = np.asarray(values, dtype=dtype)
    W = sp.csr_array((1, 1), dtype=dtype) if kind == "csr" else np.zeros((1, 1), dtype)
    states, _ = kernels.run_sequence(W, values[:, None], np.zeros(1, dtype), 1.0, "numba")
    return states[:, 0]


@needs_numba
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_tanh_within_a_few_ulp_float64(kind):
    rng = np.random.default_rng(0)
    values = np.concatenate([
        np.linspace(-25.0, 25.0, 200_001), rng.normal(0.0, 2.0, 100_000),
        rng.normal(0.0, 1e-4, 10_000), np.nextafter(0.625, [0.0, 1.0]),
        np.nextafter(-0.625, [0.0, -1.0]), [0.625, -0.625, 1e-300, 5e-324, 19.0, 20.0, 21.0,
                                            1e300, -1e300, 0.0]])
    got = _tanh_through_kernel(values, np.float64, kind)
    want = np.tanh(values)
    ulp = np.abs(got - want) / np.spacing(np.abs(want))
    assert ulp.max() <= 4, f"max error {ulp.max()} ulp at x = {values[np.argmax(ulp)]}"
    assert np.array_equal(np.sign(got), np.sign(want))


@needs_numba
def test_tanh_float32_and_special_values():
    rng = np.random.default_rng(1)
    values = np.concatenate([np.linspace(-12, 12, 50_001), rng.normal(0, 1, 10_000)])
    got = _tanh_through_kernel(values, np.float32, "csr")
    want = np.tanh(values.astype(np.float32).astype(np.float64)).astype(np.float32)
    ulp = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want))
    assert ulp.max() <= 1
    special = _tanh_through_kernel([np.inf, -np.inf, 30.0, -30.0, np.nan], np.float64, "dense")
    np.testing.assert_array_equal(special[:4], [1.0, -1.0, 1.0, -1.0])
    assert np.isnan(special[4])


@needs_numba
@pytest.mark.parametrize("kind", ["dense", "csr"])
def test_nan_propagates_so_divergence_is_seen(kind):
    rng = np.random.default_rng(2)
    W = recurrent(6, kind, np.float64, rng)
    drive = drive_for((10, 6), np.float64, rng)
    drive[4, 2] = np.nan
    states, x = kernels.run_sequence(W, drive, np.zeros(6), 0.5, "numba")
    assert np.isfinite(states[:4]).all() and np.isnan(states[4, 2])
    assert not np.isfinite(x).all()


# --- input handling -----------------------------------------------------------------------

@needs_numba
@pytest.mark.parametrize("fmt", ["csc", "coo", "csr_matrix", "int64", "unsorted_duplicates"])
def test_sparse_variants_equal_csr(fmt):
    rng = np.random.default_rng(3)
    n = 30
    W = recurrent(n, "csr", np.float64, rng)
    if fmt == "csc":
        V = W.tocsc()
    elif fmt == "coo":
        V = W.tocoo()
    elif fmt == "csr_matrix":
        V = sp.csr_matrix(W)
    elif fmt == "int64":
        V = W.copy()
        V.indices = V.indices.astype(np.int64)
        V.indptr = V.indptr.astype(np.int64)
    else:  # each nonzero split in two halves, entries of each row in reverse order
        coo = W.tocoo()
        order = np.lexsort((-coo.col, coo.row))
        rows = np.repeat(coo.row[order], 2)
        cols = np.repeat(coo.col[order], 2)
        vals = np.repeat(coo.data[order] / 2, 2)
        indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
        V = sp.csr_array((vals, cols, indptr), shape=(n, n))
        assert not V.has_canonical_format
    drive = drive_for((25, n), np.float64, rng)
    x0 = np.zeros(n)
    ref, _ = kernels.run_sequence(W, drive, x0, 0.5, "numba")
    got, _ = kernels.run_sequence(V, drive, x0, 0.5, "numba")
    assert_close(got, ref, np.float64)
    ref_b, _ = kernels.run_batch(W, drive[None], x0[None], 0.5, "numba")
    got_b, _ = kernels.run_batch(V, drive[None], x0[None], 0.5, "numba")
    assert_close(got_b, ref_b, np.float64)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_inputs_untouched_and_state_is_a_copy(backend):
    rng = np.random.default_rng(4)
    W = recurrent(12, "csr", np.float64, rng)
    drive = drive_for((8, 12), np.float64, rng)
    x0 = rng.uniform(-0.5, 0.5, 12)
    copies = [W.data.copy(), drive.copy(), x0.copy()]
    states, x = kernels.run_sequence(W, drive, x0, 0.5, backend)
    for before, after in zip(copies, [W.data, drive, x0]):
        np.testing.assert_array_equal(before, after)
    assert not np.shares_memory(x, states)
    batch, xb = kernels.run_batch(W, drive[None], x0[None], 0.5, backend)
    assert not np.shares_memory(xb, batch)
    np.testing.assert_array_equal(copies[2], x0)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("numba", marks=needs_numba)])
def test_zero_steps_return_the_initial_state(backend):
    x0 = np.arange(3.0) / 10
    states, x = kernels.run_sequence(np.eye(3), np.empty((0, 3)), x0, 0.5, backend)
    assert states.shape == (0, 3)
    np.testing.assert_array_equal(x, x0)
    batch, xb = kernels.run_batch(np.eye(3), np.empty((2, 0, 3)), np.stack([x0, x0]), 0.5,
                                  backend)
    assert batch.shape == (2, 0, 3)
    np.testing.assert_array_equal(xb, np.stack([x0, x0]))


@needs_numba
def test_weights_of_another_dtype_are_cast():
    rng = np.random.default_rng(5)
    W = recurrent(20, "csr", np.float64, rng)
    drive = drive_for((15, 20), np.float32, rng)
    x0 = np.zeros(20, np.float32)
    got, _ = kernels.run_sequence(W, drive, x0, 0.5, "numba")
    ref, _ = kernels.run_sequence(W.astype(np.float32), drive, x0, 0.5, "numpy")
    assert got.dtype == np.float32
    assert_close(got, ref, np.float32)


def test_resolve_backend():
    assert kernels.resolve_backend("numpy") == "numpy"
    assert kernels.resolve_backend("auto") == ("numba" if kernels.HAVE_NUMBA else "numpy")
    with pytest.raises(ValueError, match="backend"):
        kernels.resolve_backend("cuda")


def test_import_does_not_load_numba():
    code = "import sys, recur; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False", "import recur imported numba (it should load lazily)"


# --- the shared primitives and the lazy-compile machinery ---------------------------------

@needs_numba
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_csr_products_add_to_out(dtype, index_dtype):
    kernels.JIT.ensure()
    rng = np.random.default_rng(6)
    A = recurrent(37, "csr", dtype, rng)  # rows of every length mod 4
    A = sp.csr_array((A.data, A.indices.astype(index_dtype), A.indptr.astype(index_dtype)),
                     shape=A.shape)
    parts = kernels.csr_parts(A, dtype)
    assert parts[1].dtype == (np.uint32 if index_dtype == np.int32 else np.uint64)
    x = drive_for((37,), dtype, rng)
    out = drive_for((37,), dtype, rng)
    want = out + A @ x
    kernels.csr_matvec_add(*parts, x, out)
    assert_close(out, want, dtype)
    X = drive_for((37, 5), dtype, rng)
    OUT = drive_for((37, 5), dtype, rng)
    want = OUT + A @ X
    kernels.csr_matmat_add(*parts, X, OUT)
    assert_close(OUT, want, dtype)


@needs_numba
def test_csr_matvec_keeps_an_infinite_start():
    # The partial sums start at zero, not at 0 * out[i]: an infinite entry stays infinite
    # (as with numpy), and NaN propagates.
    kernels.JIT.ensure()
    A = sp.csr_array(np.ones((3, 3)))
    out = np.array([np.inf, -np.inf, np.nan])
    kernels.csr_matvec_add(*kernels.csr_parts(A, np.float64), np.ones(3), out)
    assert out[0] == np.inf and out[1] == -np.inf and np.isnan(out[2])


@needs_numba
def test_fast_tanh_is_callable_from_python():
    kernels.JIT.ensure()
    for v in (-3.0, -0.3, 0.0, 1e-5, 0.7, 19.5, np.inf):
        assert kernels.fast_tanh(v) == pytest.approx(np.tanh(v), rel=1e-15, abs=1e-300)


@needs_numba
def test_lazy_jit_compiles_each_kernel_once():
    import numba

    namespace = {}
    exec("def double(x):\n    return 2 * x\n", namespace)
    exec("def quadruple(x):\n    return double(double(x))\n", namespace)
    jit = kernels.LazyJit(namespace, after=[kernels.JIT])
    jit.register(namespace["double"], cache=False)  # exec'd code has no file to cache in
    jit.register(cache=False)(namespace["quadruple"])
    assert not jit.ready and namespace["quadruple"](1) == 4  # plain Python until ensure()
    jit.ensure()
    dispatcher = namespace["double"]
    assert isinstance(dispatcher, numba.core.registry.CPUDispatcher) and kernels.JIT.ready
    jit.ensure()
    assert namespace["double"] is dispatcher and namespace["quadruple"](2.5) == 10.0
    with pytest.raises(RuntimeError, match="after compilation"):
        jit.register(lambda x: x)


@needs_numba
def test_primitives_have_one_home():
    # The modules that build on the primitives call kernels' dispatchers; none keeps a copy.
    from recur import masked
    from recur.networks import esn_gradient, esn_perturbation

    for module in (esn_gradient, esn_perturbation, masked):
        module._JIT.ensure()
        assert kernels.JIT in module._JIT._after
        for name in ("_tanh", "fast_tanh", "_f64_as_i64", "_i64_as_f64", "_csr_matvec_add",
                     "_csr_matmat_add", "csr_matmat_add", "_unsigned", "_compiled"):
            assert not hasattr(module, name), f"{module.__name__}.{name}"
    for name in ("fast_tanh", "csr_matvec_add", "csr_matmat_add"):
        assert type(getattr(kernels, name)).__name__ == "CPUDispatcher"


@needs_numba
def test_fast_exp_and_logistic_stay_within_a_few_ulps():
    import numba

    kernels.JIT.ensure()

    @numba.njit
    def evaluate(x, e, s):
        for i in range(x.shape[0]):
            e[i] = kernels.fast_exp(x[i])
            s[i] = kernels.fast_logistic(x[i])

    rng = np.random.default_rng(0)
    x = np.concatenate([np.linspace(-708.0, 709.0, 40001), rng.normal(0.0, 8.0, 20000),
                        [0.0, -0.0, 1e-300, -1e-300]])
    e, s = np.empty_like(x), np.empty_like(x)
    evaluate(x, e, s)
    want = np.exp(x)
    assert np.max(np.abs(e - want) / np.spacing(want)) <= 3
    want = 1.0 / (1.0 + np.exp(-x))
    assert np.max(np.abs(s - want) / np.spacing(want)) <= 4
    # Outside the range: clamped, never inf or 0; NaN propagates.
    assert np.isnan(kernels.fast_exp(np.nan)) and np.isnan(kernels.fast_logistic(np.nan))
    assert 0.0 < kernels.fast_exp(-1e4) < 1e-307 and np.isfinite(kernels.fast_exp(1e4))
    assert kernels.fast_logistic(np.inf) == 1.0 and 0.0 < kernels.fast_logistic(-np.inf) < 1e-307


@pytest.mark.parametrize("backend_ready", [True, False])
def test_all_finite_finds_every_nan_and_inf(backend_ready, monkeypatch):
    if not backend_ready:
        monkeypatch.setattr(kernels, "use_numba", lambda *a, **k: False)
    elif not kernels.HAVE_NUMBA:
        pytest.skip("numba is not installed")
    rng = np.random.default_rng(1)
    for shape in [(0,), (7,), (5, 9), (3, 4, 2)]:
        a = rng.normal(size=shape)
        assert kernels.all_finite(a)
        assert kernels.all_finite(a.T)  # not contiguous: the numpy path
        for bad in (np.nan, np.inf, -np.inf):
            for where in ({0, a.size - 1} if a.size else ()):
                b = a.copy().reshape(-1)
                b[where] = bad
                assert not kernels.all_finite(b.reshape(shape))
    assert kernels.all_finite(np.ones(3, dtype=np.float32))
    assert not kernels.all_finite(np.array([1.0, np.nan], dtype=np.float32))


def test_type_restricted_kernels_refuse_other_types_without_the_compiler_too():
    """Under NUMBA_DISABLE_JIT=1 a kernel registered with signatures still refuses other
    types, so the quick checks built on them hand those to their full checks."""
    code = """
import numpy as np
from recur import kernels
from recur.networks import symmetric, boltzmann_sampling as bs
allowed = np.ones((3, 3), bool) & ~np.eye(3, dtype=bool)
W = np.where(allowed, 1.0, 0.0)
b = np.zeros(3)
assert symmetric.invariant_holds(W, b, allowed)
assert not symmetric.invariant_holds(W.astype(bool), b, allowed)
assert not symmetric.invariant_holds(W, b[:, None], allowed)
assert kernels.all_finite(W) and not kernels.all_finite(np.array([1, np.inf], np.float32))
assert bs.is_binary(W) and not bs.is_binary(W.astype(int) * 2)
print("ok")
"""
    env = {**__import__("os").environ, "NUMBA_DISABLE_JIT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
