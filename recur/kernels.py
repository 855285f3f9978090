"""Compiled primitives of recur, and the step loops of the leaky-tanh rate network.

This module is the one home of recur's numba code that more than one module uses:

- :class:`LazyJit`, the lazy-compile machinery: a module registers plain-Python kernels with
  it and they become numba dispatchers (compiled on first call, cached on disk) the first
  time :meth:`LazyJit.ensure` runs, so ``import recur`` does not import numba;
- :func:`use_numba` / :func:`resolve_backend`, the backend choice shared by every caller;
- the compiled primitives :func:`fast_exp`, :func:`fast_logistic`, :func:`fast_tanh`,
  :func:`csr_matvec_add` and :func:`csr_matmat_add`, with :func:`csr_parts` /
  :func:`unsigned_indices` to hand them a sparse matrix. ``recur.networks.esn_gradient``
  (the backward pass), ``recur.networks.esn_perturbation`` (batched perturbed runs),
  ``recur.masked`` (per-edge sums) and ``recur.networks.boltzmann_sampling`` (the fused RBM
  step) build their kernels on these.

The step loops compute, for one sequence,

    x[t] = (1 - leak) * x[t-1] + leak * tanh(W @ x[t-1] + drive[t])

where ``drive[t] = W_in @ u[t] + W_fb @ y[t] + b`` is computed for the whole sequence at once
before the loop. Python-level step loops cost ~8 us of interpreter overhead per step, which
dominates small reservoirs; the compiled loops cost well under a microsecond. Every compiled
kernel has a numpy twin that computes the same numbers up to rounding (a few units in the last
place per step), used when numba is missing and checked against the compiled one in
``tests/test_kernels.py``.

``W`` is a dense ``(N, N)`` array or a scipy sparse matrix (used as CSR); ``W[post, pre]``.

Where the time goes, and what the compiled kernels do about it (measured with
``benchmarks/bench_esn.py`` on one core of an AMD EPYC at ~3.7 GHz):

- numba imports and the kernels compile (or load from numba's on-disk cache) on first use, so
  ``import recur`` does not pay for numba.
- A CSR row is summed into four partial sums, so the additions do not wait on each other
  (a single running sum is bound by the 3-4 cycle latency of one addition per nonzero), and
  indices are read as unsigned integers so numba emits no negative-index wraparound per
  nonzero: ~0.5 ns per nonzero against ~0.8 for scipy's ``W @ x``.
- ``tanh`` is a branch-free rational/exponential formula (:func:`fast_tanh`) that LLVM
  vectorises: ~2.4 ns per unit in float64 against ~14 for libm's ``tanh`` called from numba
  and ~15-20 for numpy's (numpy has no SIMD float64 tanh on AVX2 machines). It stays within
  3 units in the last place of numpy's result.
- A batch keeps its state as ``(N, B)`` so each nonzero of a CSR ``W`` updates a contiguous row
  of the batch (four nonzeros per pass over the row); a dense ``W`` (or a CSR one dense enough,
  see ``DENSIFY_BATCH_*``) is one BLAS matrix product per step. Neither leaves the compiled
  loop between steps.
"""

from __future__ import annotations

import importlib.util
import threading
import warnings

import numpy as np
import scipy.sparse as sp

# numba is an optional extra ("recur[fast]"); it is imported on first use, not here.
HAVE_NUMBA = importlib.util.find_spec("numba") is not None

__all__ = ["HAVE_NUMBA", "BACKENDS", "resolve_backend", "use_numba", "LazyJit", "JIT",
           "fast_exp", "fast_logistic", "fast_tanh", "csr_matvec_add", "csr_matmat_add",
           "csr_parts", "unsigned_indices", "all_finite",
           "run_sequence", "run_batch", "closed_loop"]

BACKENDS = ("auto", "numba", "numpy")


def resolve_backend(backend):
    """Map ``"auto"`` to ``"numba"`` when numba is importable, else ``"numpy"``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if HAVE_NUMBA else "numpy"
    if backend == "numba" and not HAVE_NUMBA:
        raise ImportError("backend='numba' needs numba: pip install 'recur[fast]'")
    return backend


def use_numba(backend, jit=None):
    """Resolve ``backend``; True when compiled kernels run this call.

    When it resolves to numba, the primitives of this module (and ``jit``, another module's
    :class:`LazyJit`, if given) are made ready to call. A numba that is installed but fails
    to import is an error when asked for by name and a warning (then numpy) under ``"auto"``.
    """
    global HAVE_NUMBA
    if backend == "auto" and (JIT if jit is None else jit).ready:
        return True  # the common case, asked before every kernel call: answered at once
    if resolve_backend(backend) != "numba":
        return False
    try:
        (JIT if jit is None else jit).ensure()
    except ImportError as exc:
        if backend == "numba":
            raise
        HAVE_NUMBA = False
        warnings.warn(f"numba is installed but cannot be imported ({exc}); recur falls back "
                      "to its numpy kernels", RuntimeWarning, stacklevel=3)
        return False
    return True


# --- lazy compilation ---------------------------------------------------------------------

# Options of every kernel. error_model="numpy": a division by zero gives inf/nan instead of
# raising, which is what lets LLVM vectorise the loops. cache=True: compiled code is kept on
# disk (in __pycache__ next to the source) and loaded by later processes.
JIT_OPTIONS = {"cache": True, "nogil": True, "error_model": "numpy"}

# One lock for every module's compilation: a module compiles its dependencies first.
_COMPILE_LOCK = threading.RLock()


class LazyJit:
    """The numba kernels of one module, kept as plain Python until first needed.

    Usage, in a module that has compiled kernels::

        _JIT = kernels.LazyJit(globals(), after=[kernels.JIT])

        @_JIT.register
        def _my_kernel(a, out):
            ...  # the subset of Python that numba compiles; may call kernels.fast_tanh

        _JIT.ensure()  # before the first call: numba is imported here, not at import time
        _my_kernel(a, out)

    :meth:`ensure` replaces each registered function, in ``namespace``, by exactly one numba
    dispatcher (options :data:`JIT_OPTIONS` updated with the ones given to :meth:`register`);
    it is thread-safe and does the work once. Kernels call one another by their global names,
    which numba looks up when it compiles the caller, so a caller gets the dispatcher. A
    kernel of another module is called as an attribute of that module
    (``kernels.fast_tanh(v)``, never a name bound by ``from ... import``, which would keep the
    plain function), and that module's LazyJit must be listed in ``after``: it is made ready
    first, so every primitive has one compiled object, shared by all its callers.

    Numba's disk cache checks only the caller's own source file: after editing a primitive
    here, a cached caller in another module keeps the old inlined code until its own file
    changes (or ``__pycache__`` is cleared).

    Without numba the registered functions stay plain Python (and are not used: every caller
    has a numpy path). With ``NUMBA_DISABLE_JIT=1`` they run as Python.
    """

    def __init__(self, namespace, *, after=(), prepare=None):
        self._namespace = namespace
        self._after = tuple(after)
        self._prepare = prepare
        self._kernels = []
        self.ready = False

    def register(self, func=None, *, signatures=None, **options):
        """Decorator: compile ``func`` lazily with :data:`JIT_OPTIONS` updated by ``options``.

        ``signatures`` restricts the kernel to fixed types: a list of numba signatures
        (strings), or a function of ``numba.types`` returning one (for types a string
        cannot spell, such as read-only arrays). The kernel is compiled for them at
        :meth:`ensure`, and a call with other types raises ``TypeError`` instead of
        compiling a new version, so a quick check can fall back to its numpy path. With
        ``NUMBA_DISABLE_JIT=1`` the Python function is guarded the same way. Returns
        ``func`` itself (the plain-Python version until :meth:`ensure`).
        """
        def add(f):
            if self.ready:
                raise RuntimeError(f"{f.__name__} registered after compilation")
            self._kernels.append((f.__name__, signatures, {**JIT_OPTIONS, **options}))
            return f
        return add if func is None else add(func)

    def ensure(self):
        """Import numba and replace every registered kernel by its dispatcher (once)."""
        if self.ready:
            return
        for other in self._after:
            other.ensure()
        with _COMPILE_LOCK:
            if self.ready:
                return
            import numba

            if self._prepare is not None:
                self._prepare(self._namespace)
            for name, signatures, options in self._kernels:
                func = self._namespace[name]
                if signatures is None:
                    self._namespace[name] = numba.njit(**options)(func)
                    continue
                if callable(signatures):
                    signatures = signatures(numba.types)
                if numba.config.DISABLE_JIT:
                    self._namespace[name] = _typed_python(func, signatures)
                else:
                    self._namespace[name] = numba.njit(signatures, **options)(func)
            self.ready = True


def _typed_python(func, signatures):
    """``func`` refusing, as its compiled version would, arguments of other types than
    ``signatures`` (under ``NUMBA_DISABLE_JIT=1``)."""
    import functools

    import numba
    from numba.core import sigutils

    accepted = [tuple(sigutils.normalize_signature(sig)[0]) for sig in signatures]

    @functools.wraps(func)
    def typed(*args):
        types = tuple(numba.typeof(a) for a in args)
        if types not in accepted:
            raise TypeError(f"{func.__name__} has no version for {types}")
        return func(*args)

    return typed


def _bit_cast_intrinsics(namespace):
    """Replace the pure-Python bit casts by numba intrinsics (a no-op when jit is disabled)."""
    import numba
    from numba import types

    if numba.config.DISABLE_JIT:
        return
    from llvmlite import ir
    from numba.extending import intrinsic

    @intrinsic
    def f64_as_i64(typingctx, x):
        if x != types.float64:
            return None
        return types.int64(types.float64), \
            lambda context, builder, sig, args: builder.bitcast(args[0], ir.IntType(64))

    @intrinsic
    def i64_as_f64(typingctx, i):
        if i != types.int64:
            return None
        return types.float64(types.int64), \
            lambda context, builder, sig, args: builder.bitcast(args[0], ir.DoubleType())

    namespace["_f64_as_i64"], namespace["_i64_as_f64"] = f64_as_i64, i64_as_f64


def _f64_as_i64(x):  # pure-Python twins of the bit casts, replaced by numba intrinsics
    return np.float64(x).view(np.int64)


def _i64_as_f64(i):
    return np.int64(i).view(np.float64)


#: The kernels of this module (the shared primitives and the step loops).
JIT = LazyJit(globals(), prepare=_bit_cast_intrinsics)


# --- shared compiled primitives -----------------------------------------------------------
# Written in the subset of Python that numba compiles; plain functions until JIT.ensure().

_MAGIC = 6755399441055744.0  # 1.5 * 2**52: y + _MAGIC rounds y to an integer kept in the low bits


# fastmath only for exp and tanh: fused multiply-adds there.
@JIT.register(fastmath={"contract"})
def fast_exp(x):
    """exp(x) in float64, branch-free so that loops over it vectorise.

    ``2**k * p(r)`` with ``k = round(x / ln 2)``, ``r = x - k ln 2`` (``ln 2`` split in a
    high and a low part, Cody & Waite), ``p`` the degree-12 Taylor polynomial of ``exp`` on
    ``|r| <= ln(2) / 2`` (Estrin's scheme, for a short dependency chain) and ``2**k`` built in
    the exponent bits. ``x`` is clamped to ``[-708, 709]``, where ``2**k`` is a normal number:
    below it the result is ``exp(-708) ~ 3e-308`` instead of a subnormal or 0, above it
    ``exp(709)`` instead of inf. Within 3 units in the last place of numpy's ``exp`` inside
    that range; NaN propagates. A scalar function for compiled loops (``kernels.fast_exp``):
    libm's ``exp`` called from numba is a scalar call per element, several times slower.
    """
    x = np.float64(x)
    y = 709.0 if x > 709.0 else x  # NaN fails both tests and passes through
    y = -708.0 if y < -708.0 else y
    t = y * 1.4426950408889634 + _MAGIC  # log2(e)
    kf = t - _MAGIC
    r = (y - kf * 6.93145751953125e-1) - kf * 1.42860682030941723212e-6  # ln 2, hi + lo
    r2 = r * r
    r4 = r2 * r2
    r8 = r4 * r4
    q0 = (1.0 + r) + (0.5 + r * (1.0 / 6.0)) * r2
    q1 = (1.0 / 24.0 + r * (1.0 / 120.0)) + (1.0 / 720.0 + r * (1.0 / 5040.0)) * r2
    q2 = (1.0 / 40320.0 + r * (1.0 / 362880.0)) + (1.0 / 3628800.0 + r * (1.0 / 39916800.0)) * r2
    p = (q0 + q1 * r4) + (q2 + (1.0 / 479001600.0) * r4) * r8
    return p * _i64_as_f64((_f64_as_i64(t) + 1023) << 52)


@JIT.register(fastmath={"contract"})
def fast_logistic(x):
    """The logistic function ``1 / (1 + exp(-x))`` in float64, with :func:`fast_exp`.

    Within 4 units in the last place of the same formula in numpy; 0 and 1 are reached
    only by rounding (``x = -inf`` gives ``~1e-308``). For compiled sampling loops
    (``kernels.fast_logistic``).
    """
    return 1.0 / (1.0 + fast_exp(-np.float64(x)))


@JIT.register(fastmath={"contract"})
def fast_tanh(x):
    """tanh(x) in float64 (float32 input is widened), branch-free so loops over it vectorise.

    Within 3 units in the last place of numpy's tanh; NaN propagates and ``+-inf`` give
    ``+-1``. A scalar function, to be called from compiled loops (``kernels.fast_tanh(v)``).

    ``|x| < 0.625``: Cephes' rational approximation ``x + x z P(z) / Q(z)``, ``z = x**2``.
    Otherwise ``(e - 1) / (e + 1)`` with ``e = exp(2|x|)`` from :func:`fast_exp`. ``|x|`` is
    capped at 20, beyond which tanh rounds to 1. Both branches are computed and one is
    selected, with a single division.
    """
    x = np.float64(x)
    a = np.abs(x)
    a = 20.0 if a > 20.0 else a  # NaN fails the test and passes through
    z = x * x
    P = (-9.64399179425052238628e-1 * z - 9.92877231001918586564e1) * z - 1.61468768441708447952e3
    Q = ((z + 1.12811678491632931402e2) * z + 2.23548839060100448583e3) * z \
        + 4.84406305325125486048e3
    num_small = x * Q + x * z * P
    e = fast_exp(2.0 * a)
    num_large = e - 1.0
    if x < 0.0:
        num_large = -num_large
    small = a < 0.625
    num = num_small if small else num_large
    den = Q if small else e + 1.0
    return num / den


@JIT.register(signatures=["boolean(float64[::1])", "boolean(float64[:, ::1])"])
def _all_finite_nb(x):
    for v in x.reshape(-1):
        if not np.isfinite(v):
            return False
    return True


def all_finite(a) -> bool:
    """Whether every entry of the array ``a`` is finite.

    A compiled loop that stops at the first NaN or inf for C-contiguous float64 arrays of one
    or two dimensions when numba is installed (on small arrays ``np.isfinite(a).all()``
    costs a few microseconds of per-call overhead, paid for every parameter after every
    update in a training loop); numpy for anything else.
    """
    if type(a) is np.ndarray and use_numba("auto"):
        try:
            return _all_finite_nb(a)
        except TypeError:  # another dtype or layout: no compiled version, by design
            pass
    return bool(np.isfinite(a).all())


@JIT.register
def csr_matvec_add(indptr, indices, data, x, out):
    """``out += A @ x`` for the CSR parts of ``A`` (see :func:`csr_parts`) and a vector ``x``.

    Each row is summed into four partial sums (started at zero in ``out``'s dtype), so the
    additions do not wait on one another; ``indices`` must be unsigned, so no negative-index
    wraparound is emitted per stored entry. ``x`` and ``out`` must not overlap.
    """
    u1 = np.uint64(1)
    u2 = np.uint64(2)
    u3 = np.uint64(3)
    u4 = np.uint64(4)
    zero = out.dtype.type(0)
    for i in range(out.shape[0]):
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        stop = k + ((end - k) // u4) * u4
        s0 = out[i]
        s1 = zero
        s2 = zero
        s3 = zero
        while k < stop:
            s0 += data[k] * x[indices[k]]
            s1 += data[k + u1] * x[indices[k + u1]]
            s2 += data[k + u2] * x[indices[k + u2]]
            s3 += data[k + u3] * x[indices[k + u3]]
            k += u4
        while k < end:
            s0 += data[k] * x[indices[k]]
            k += u1
        out[i] = (s0 + s1) + (s2 + s3)


@JIT.register
def csr_matmat_add(indptr, indices, data, X, out):
    """``out += A @ X`` for the CSR parts of ``A`` and C-contiguous ``X`` (n, B), ``out`` (m, B).

    A batch is held as rows of ``B`` values, so each stored entry of ``A`` updates a contiguous
    row of ``out`` (four entries per pass over it, a loop LLVM vectorises); ``indices``
    unsigned. ``X`` and ``out`` must not overlap.
    """
    n_batch = out.shape[1]
    u1 = np.uint64(1)
    u2 = np.uint64(2)
    u3 = np.uint64(3)
    u4 = np.uint64(4)
    for i in range(out.shape[0]):
        o = out[i]
        k = np.uint64(indptr[i])
        end = np.uint64(indptr[i + 1])
        stop = k + ((end - k) // u4) * u4
        while k < stop:
            w0 = data[k]
            w1 = data[k + u1]
            w2 = data[k + u2]
            w3 = data[k + u3]
            x0 = X[indices[k]]
            x1 = X[indices[k + u1]]
            x2 = X[indices[k + u2]]
            x3 = X[indices[k + u3]]
            for s in range(n_batch):
                o[s] += (w0 * x0[s] + w1 * x1[s]) + (w2 * x2[s] + w3 * x3[s])
            k += u4
        while k < end:
            w = data[k]
            xr = X[indices[k]]
            for s in range(n_batch):
                o[s] += w * xr[s]
            k += u1


def unsigned_indices(indices):
    """CSR column indices viewed (no copy) as unsigned integers of the same width."""
    indices = np.asarray(indices)
    return indices.view(np.uint32 if indices.dtype.itemsize == 4 else np.uint64)


def csr_parts(W, dtype):
    """``(indptr, unsigned indices, data in dtype)`` of a sparse ``W`` (converted to CSR if
    needed), the arguments :func:`csr_matvec_add` and :func:`csr_matmat_add` take."""
    if W.format != "csr":
        W = W.tocsr()
    return W.indptr, unsigned_indices(W.indices), W.data.astype(dtype, copy=False)


# --- numpy reference loops ----------------------------------------------------------------

def _run_numpy(W, drive, x0, keep, leak, out):
    x = x0
    for t in range(drive.shape[-2]):
        pre = W @ x if x.ndim == 1 else (W @ x.T).T
        x = keep * x + leak * np.tanh(pre + drive[..., t, :])
        out[..., t, :] = x
    return x


def _closed_loop_numpy(W, W_y, b, coef, intercept, x0, keep, leak, steps, y_out):
    x = x0
    y = coef @ x + intercept
    for t in range(steps):
        y_out[t] = y
        x = keep * x + leak * np.tanh(W @ x + W_y @ y + b)
        y = coef @ x + intercept
    return x


# --- compiled step loops ------------------------------------------------------------------

@JIT.register
def _leaky_tanh(pre, xprev, keep, leak):
    """``pre = keep * xprev + leak * tanh(pre)``, elementwise, in place.

    tanh is rounded to the array's dtype before the leak (the store does it), as numpy does
    in float32. ``pre`` and ``xprev`` must not overlap: LLVM vectorises the loop after a
    runtime check that they do not, and would run it scalar (~5x slower) if they did.
    """
    for i in range(pre.shape[0]):
        pre[i] = fast_tanh(pre[i])
        pre[i] = keep * xprev[i] + leak * pre[i]


@JIT.register
def _dot(a, b):
    """``a @ b`` for two vectors, with four partial sums."""
    n = a.shape[0]
    stop = n - n % 4
    s0 = a[0] * 0
    s1 = s0
    s2 = s0
    s3 = s0
    for k in range(0, stop, 4):
        s0 += a[k] * b[k]
        s1 += a[k + 1] * b[k + 1]
        s2 += a[k + 2] * b[k + 2]
        s3 += a[k + 3] * b[k + 3]
    for k in range(stop, n):
        s0 += a[k] * b[k]
    return (s0 + s1) + (s2 + s3)


@JIT.register
def _run_csr_nb(indptr, indices, data, drive, x0, keep, leak, out):
    xprev = x0
    for t in range(drive.shape[0]):
        x = out[t]  # the step is computed in place in its row of the output
        x[:] = drive[t]
        csr_matvec_add(indptr, indices, data, xprev, x)
        _leaky_tanh(x, xprev, keep, leak)
        xprev = x


@JIT.register
def _run_dense_nb(W, drive, x0, keep, leak, out):
    xprev = x0
    for t in range(drive.shape[0]):
        x = out[t]
        np.dot(W, xprev, x)  # BLAS gemv
        d = drive[t]
        for i in range(x.shape[0]):
            x[i] += d[i]
        _leaky_tanh(x, xprev, keep, leak)
        xprev = x


# Batches: the state is held as X (N, B), so a row of W meets a contiguous row of X per
# nonzero; drive and states are (B, T, N) and are transposed in tiles of _TILE units.
_TILE = 32


@JIT.register
def _drive_to_units(drive, t, pre, add):
    """``pre[i, s] (+)= drive[s, t, i]`` in tiles."""
    n_batch, _, n = drive.shape
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for s in range(n_batch):
            d = drive[s, t]
            if add:
                for i in range(i0, i1):
                    pre[i, s] += d[i]
            else:
                for i in range(i0, i1):
                    pre[i, s] = d[i]


@JIT.register
def _units_to_out(X, out, t):
    """``out[s, t, i] = X[i, s]`` in tiles."""
    n, n_batch = X.shape
    for i0 in range(0, n, _TILE):
        i1 = min(i0 + _TILE, n)
        for s in range(n_batch):
            o = out[s, t]
            for i in range(i0, i1):
                o[i] = X[i, s]


@JIT.register
def _leaky_tanh_2d(pre, X, keep, leak):
    _leaky_tanh(pre.reshape(pre.size), X.reshape(X.size), keep, leak)


@JIT.register
def _run_csr_batch_nb(indptr, indices, data, drive, x0, keep, leak, out):
    n_batch, n_steps, n = drive.shape
    X = x0.T.copy()  # (N, B), C order; never a view of the caller's x0
    pre = np.empty((n, n_batch), dtype=X.dtype)
    for t in range(n_steps):
        _drive_to_units(drive, t, pre, False)
        csr_matmat_add(indptr, indices, data, X, pre)
        _leaky_tanh_2d(pre, X, keep, leak)
        X, pre = pre, X
        _units_to_out(X, out, t)


@JIT.register
def _run_dense_batch_nb(W, drive, x0, keep, leak, out):
    n_batch, n_steps, n = drive.shape
    X = x0.T.copy()  # (N, B), C order; never a view of the caller's x0
    pre = np.empty((n, n_batch), dtype=X.dtype)
    for t in range(n_steps):
        np.dot(W, X, pre)  # BLAS gemm
        _drive_to_units(drive, t, pre, True)
        _leaky_tanh_2d(pre, X, keep, leak)
        X, pre = pre, X
        _units_to_out(X, out, t)


@JIT.register
def _feedback_drive(W_y, b, y, pre):
    """``pre = b + W_y @ y``, a column of ``W_y`` at a time (the readout is narrow)."""
    pre[:] = b
    for m in range(W_y.shape[1]):
        ym = y[m]
        for i in range(pre.shape[0]):
            pre[i] += W_y[i, m] * ym


@JIT.register
def _readout(coef, intercept, x, y):
    for m in range(y.shape[0]):
        y[m] = _dot(coef[m], x) + intercept[m]


@JIT.register
def _closed_loop_csr_nb(indptr, indices, data, W_y, b, coef, intercept, x0, keep, leak,
                        steps, y_out):
    x = x0.copy()
    pre = np.empty_like(x)
    for t in range(steps):
        y = y_out[t]
        _readout(coef, intercept, x, y)
        _feedback_drive(W_y, b, y, pre)
        csr_matvec_add(indptr, indices, data, x, pre)
        _leaky_tanh(pre, x, keep, leak)
        x, pre = pre, x
    return x


@JIT.register
def _closed_loop_dense_nb(W, W_y, b, coef, intercept, x0, keep, leak, steps, y_out):
    x = x0.copy()
    pre = np.empty_like(x)
    fb = np.empty_like(x)
    for t in range(steps):
        y = y_out[t]
        _readout(coef, intercept, x, y)
        np.dot(W, x, pre)  # BLAS gemv
        _feedback_drive(W_y, b, y, fb)
        for i in range(pre.shape[0]):
            pre[i] += fb[i]
        _leaky_tanh(pre, x, keep, leak)
        x, pre = pre, x
    return x


# --- dispatch -----------------------------------------------------------------------------

def _prepared(drive, x0, leak):
    """C-contiguous drive, x0 in its dtype, (keep, leak) in it, and the output array."""
    drive = np.ascontiguousarray(drive)
    dtype = drive.dtype
    x0 = np.ascontiguousarray(x0, dtype=dtype)
    keep, leak = _coefficients(leak, dtype)
    return drive, x0, keep, leak, np.empty_like(drive)


def _coefficients(leak, dtype):
    leak = dtype.type(leak)
    return dtype.type(1) - leak, leak


def run_sequence(W, drive, x0, leak, backend="auto"):
    """Run one sequence. ``drive`` (T, N), ``x0`` (N,); returns states (T, N) and x[T-1]."""
    fast = use_numba(backend)
    drive, x0, keep, leak, out = _prepared(drive, x0, leak)
    if drive.shape[0] == 0:
        return out, x0.copy()
    if fast:
        if sp.issparse(W):
            _run_csr_nb(*csr_parts(W, drive.dtype), drive, x0, keep, leak, out)
        else:
            _run_dense_nb(np.ascontiguousarray(W, dtype=drive.dtype), drive, x0, keep, leak,
                          out)
        return out, out[-1].copy()
    x = _run_numpy(W, drive, x0, keep, leak, out)
    return out, x


# A sparse W in a batch is densified and multiplied by BLAS when that is faster than the CSR
# kernel. Measured (``python benchmarks/bench_esn.py --thresholds``) with 4-64 sequences and
# N = 100-3000 on one core (AVX2): the CSR kernel costs about the same per nonzero in float32
# and float64, BLAS is twice as fast in float32, so dense wins above a density of ~0.4 in
# float64 and ~0.25 in float32. The dense copy takes N^2 numbers, hence the size cap.
DENSIFY_BATCH_MAX_UNITS = 4000
DENSIFY_BATCH_MIN_DENSITY = 0.4
DENSIFY_BATCH_MIN_DENSITY_FLOAT32 = 0.25


def _densify_batch(W, n, dtype):
    density = (DENSIFY_BATCH_MIN_DENSITY_FLOAT32 if np.dtype(dtype) == np.float32
               else DENSIFY_BATCH_MIN_DENSITY)
    return n <= DENSIFY_BATCH_MAX_UNITS and W.nnz >= density * n * n


def run_batch(W, drive, x0, leak, backend="auto"):
    """Run a batch. ``drive`` (B, T, N), ``x0`` (B, N); returns states (B, T, N), x[:, T-1]."""
    fast = use_numba(backend)
    drive, x0, keep, leak, out = _prepared(drive, x0, leak)
    dtype = drive.dtype
    if drive.shape[1] == 0:
        return out, x0.copy()
    if sp.issparse(W) and _densify_batch(W, drive.shape[-1], dtype):
        W = W.toarray()
    if fast:
        if sp.issparse(W):
            _run_csr_batch_nb(*csr_parts(W, dtype), drive, x0, keep, leak, out)
        else:
            _run_dense_batch_nb(np.ascontiguousarray(W, dtype=dtype), drive, x0, keep, leak,
                                out)
        return out, out[:, -1].copy()
    x = _run_numpy(W, drive, x0, keep, leak, out)
    return out, x


def closed_loop(W, W_y, b, coef, intercept, x0, leak, steps, backend="auto"):
    """Autonomous generation with a linear readout fed back through ``W_y``.

    ``y[t] = coef @ x[t] + intercept`` is recorded, then
    ``x[t+1] = (1 - leak) x[t] + leak tanh(W x[t] + W_y y[t] + b)``.

    Shapes: W (N, N), W_y (N, M), b (N,), coef (M, N), intercept (M,), x0 (N,).
    Returns y (steps, M) and the final state.
    """
    fast = use_numba(backend)
    x0 = np.ascontiguousarray(x0)
    dtype = x0.dtype
    y_out = np.empty((steps, coef.shape[0]), dtype=dtype)
    keep, leak = _coefficients(leak, dtype)
    W_y, b, coef, intercept = (np.ascontiguousarray(a, dtype=dtype)
                               for a in (W_y, b, coef, intercept))
    if fast:
        if sp.issparse(W):
            x = _closed_loop_csr_nb(*csr_parts(W, dtype), W_y, b, coef, intercept, x0, keep,
                                    leak, steps, y_out)
        else:
            x = _closed_loop_dense_nb(np.ascontiguousarray(W, dtype=dtype), W_y, b, coef,
                                      intercept, x0, keep, leak, steps, y_out)
    else:
        x = _closed_loop_numpy(W, W_y, b, coef, intercept, x0, keep, leak, steps, y_out)
    return y_out, x
