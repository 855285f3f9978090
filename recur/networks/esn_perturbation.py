r"""Perturbed runs of an ESN, all in one batch: the evidence behind weight and node perturbation.

The forward model is the one of :class:`~recur.ESN` (``W[post, pre]``; a networkx edge
``u -> v`` is ``W[v, u]``, so ``W = A.T``):

.. math::

    z_t = W x_{t-1} + W_{in} u_t + b, \qquad
    x_t = (1 - a)\, x_{t-1} + a \tanh z_t, \qquad
    \hat y_t = W_{out} x_t + b_{out},

scored by the mean squared error over the counted steps of the objective (teacher-forced with
a washout, or closed loop where the free-running steps read :math:`u_t = \hat y_{t-1}`).

:func:`esn_perturbations` answers a :class:`~recur.rules.Perturbed` request with ``K``
perturbed runs (``2K`` when antithetic: each perturbation with both signs), evaluated as ONE
batched run of ``R * B`` sequences (``R`` runs of the ``B`` sequences of the data), never as a
Python loop over runs:

- ``where="weights"``: Gaussian :math:`\epsilon_k` (std ``sigma``) on the values of every
  trainable parameter (``"W"`` on its edges only, ``"W_in"``, ``"b"``, ``"W_out"``,
  ``"b_out"``). Each run has its own recurrent weights, so the batched step sums
  :math:`(w_e + \epsilon_{k,e})\, x_{s}[j]` over the edges ``e = (i, j)`` of each row:
  ``O(R B edges)`` per step, never ``R`` dense copies of ``W`` (which stream ``R N^2`` per
  step). Eligibility :math:`e_k = \epsilon_k`.
- ``where="nodes"``: Gaussian :math:`\xi_{k,t}` (std ``sigma``) added to the pre-activation
  :math:`z_t` of every recurrent unit at every step, and :math:`\zeta_{k,t}` to every counted
  output :math:`\hat y_t` (which, in closed loop, is the value fed back). All runs share the
  weights. Eligibility: the noise times the presynaptic activity of the CLEAN run, summed over
  steps and sequences, :math:`e_k[W] = \sum_t \xi_{k,t} x_{t-1}^\top` (on ``W``'s edges,
  ``O(K T edges)``), :math:`e_k[W_{in}] = \sum_t \xi_{k,t} u_t^\top`,
  :math:`e_k[b] = \sum_t \xi_{k,t}`, :math:`e_k[W_{out}] = \sum_t \zeta_{k,t} x_t^\top`,
  :math:`e_k[b_{out}] = \sum_t \zeta_{k,t}`.

The runs are compiled loops (numba) over the whole trial that keep only the current states
``(N, R B)``, compute the readout and accumulate each run's squared error as they go, and feed
each run's own (perturbed) prediction back on closed-loop steps; with the network's
``backend="numpy"`` (or without numba) a numpy twin computes the same numbers one step at a
time (per-run weights as one block-diagonal CSR matrix of all runs). Node noise and its traces
are processed in chunks of time steps (drawn, used for the runs and the eligibility, dropped),
so no array of size ``R x B x T x N`` is ever held; the noise does not depend on the chunk
size, as each stream is drawn time-major from its own child generator
(``rng.spawn(2)``: units ``(T, N, B, K)``, then outputs ``(T, M, B, K)``).

With ``request.params`` (a tuple of names) only some parameters are perturbed: for weights,
only the listed parameters' values get :math:`\epsilon_k` (the others are shared by every run,
and their noise is not even drawn; each parameter draws from its own child stream, spawned
in :data:`PARAMETER_NAMES` order, so a parameter's perturbations are the same
whichever others are perturbed); for nodes, the units get :math:`\xi` only if any of ``"W"``,
``"W_in"``, ``"b"`` is listed and the outputs get :math:`\zeta` only if ``"W_out"`` or
``"b_out"`` is (the unused stream is neither drawn nor injected, and its traces are not
accumulated). Either way the eligibility holds the listed names only. An unknown name raises
``ValueError``.

What the two give to first order in ``sigma`` (``g`` the exact gradient):

- weights: :math:`L_k - L_0 = \langle g, \epsilon_k \rangle + O(\sigma^2)`, and with
  antithetic pairs :math:`(L^+_k - L^-_k)/2 = \langle g, \epsilon_k \rangle + O(\sigma^3)`;
- nodes: :math:`L_k - L_0 = \sum_t \langle \delta_t, \xi_{k,t} \rangle +
  \langle \gamma_t, \zeta_{k,t} \rangle + O(\sigma^2)` with :math:`\delta_t = \partial L /
  \partial z_t`, :math:`\gamma_t = \partial L / \partial \hat y_t`. This is *not*
  :math:`\langle g, e_k \rangle`; but the noise is white, so
  :math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2 \sum_t \delta_t x_{t-1}^\top = \sigma^2
  \nabla_W L` (and likewise for every parameter).

In both cases :math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2 g + O(\sigma^4)`: the estimators
of :mod:`recur.rules.perturbation` are the same arithmetic on either kind.

Noise never touches a step it cannot affect: output noise is drawn for every step but kept only
on counted steps (an uncounted output is neither scored nor fed back); recurrent noise is
injected at every step, since every step's state reaches the later counted steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import kernels
from ..masked import masked_outer
from ..rules import evidence as ev
from ..tasks.objectives import as_objective
from ..validation import DivergenceError

__all__ = ["esn_perturbations", "PARAMETER_NAMES"]

# Parameters that weight perturbation perturbs (those present in params, in this order).
PARAMETER_NAMES = ("W", "W_in", "b", "W_out", "b_out")
# Node perturbation: noise on the recurrent units credits these; noise on the outputs, those.
_UNIT_PARAMETERS = ("W", "W_in", "b")
_OUTPUT_PARAMETERS = ("W_out", "b_out")

# Floats of node noise drawn per chunk of time steps: 2**22 floats is 32 MiB in float64.
_CHUNK_BUDGET = 1 << 22

# The per-run-weights kernel walks the runs in blocks of about this many bytes of
# parameters (at least _MIN_BLOCK runs), advancing a block through every step before the next:
# measured on N = 200, 10 edges per unit, 128 runs, blocks of 8 runs (256 KiB, in L2) were 2x
# slower than blocks of 64-128 (the per-edge loop is then too short to vectorise well).
_MIN_BLOCK = 16
_BLOCK_BYTES = 1 << 21


# --- the request --------------------------------------------------------------------------

def esn_perturbations(net, params, data, request, *, state=None, rng=None,
                      clean=None) -> ev.Perturbations:
    r"""Run ``K`` perturbed copies of an ESN as one batch and return their losses and traces.

    Parameters
    ----------
    net : ESN
        Without output feedback.
    params : dict
        ``"W"`` (N, N) CSR or dense, ``W[post, pre]``; ``"W_in"`` (N, n_in); ``"b"`` (N,);
        ``"W_out"`` (n_out, N); ``"b_out"`` (n_out,).
    data : TeacherForced, ClosedLoop or (inputs, targets)
    request : Perturbed
        ``sigma``, ``n_samples`` (``K``), ``where`` ("weights" or "nodes"), ``antithetic``,
        ``clean``, ``params`` (the names to perturb; None for all).
    state : array, shape (N,) or (B, N), optional
        Initial state of every run (zeros by default).
    rng : None, int or Generator
        Draws the perturbations.
    clean : Trajectory, optional
        The unperturbed run on the same data and state (``net.trajectory``); computed when
        not given.

    Returns
    -------
    Perturbations
        ``eligibility[name]`` of shape ``(K, *value_shape)`` for every parameter in
        :data:`PARAMETER_NAMES` that ``params`` holds (and ``request.params`` lists, if given); ``(K, nnz)`` for a CSR ``W`` (values in
        storage order), ``(K, N, N)`` for a dense one (zero off the topology's mask).
        ``losses`` (K,), ``losses_minus`` (K,) when antithetic, ``loss_clean`` when
        ``request.clean``.

    Raises
    ------
    ValueError
        When ``request.params`` names a parameter the network does not have.
    DivergenceError
        When a perturbed run's states or predictions become NaN or inf (names how many and
        ``sigma``).
    """
    if not isinstance(request, ev.Perturbed):
        raise TypeError(f"request must be a Perturbed request, got {type(request).__name__}")
    objective = as_objective(data)
    if clean is None:
        clean = net.trajectory(params, objective, state)
    rng = np.random.default_rng(rng)
    setup = _Setup.build(net, params, objective, state, clean)
    if request.where == "weights":
        eligibility, losses = _weight_runs(setup, request, rng)
    else:
        eligibility, losses = _node_runs(setup, request, rng)
    K = request.n_samples
    bad = ~np.isfinite(losses)
    if bad.any():
        raise DivergenceError(f"{int(bad.sum())} of {losses.size} perturbed runs diverged "
                              f"(NaN or inf) with where={request.where!r}, "
                              f"sigma={request.sigma!r}; lower sigma")
    return ev.Perturbations(
        sigma=request.sigma,
        eligibility=eligibility,
        losses=losses[:K],
        losses_minus=losses[K:] if request.antithetic else None,
        loss_clean=float(clean.loss) if request.clean else None,
    )


# --- what every batched run needs ---------------------------------------------------------

def _as_batch(a):
    a = np.asarray(a)
    return a if a.ndim == 3 else a[None]


@dataclass(frozen=True, eq=False)
class _Setup:
    """The data, the clean run and the edge structure, in batch form ``(B, T, ...)``."""

    net: object
    params: dict
    backend: str
    dtype: np.dtype
    u_forced: np.ndarray   # (B, T_forced, n_in): the teacher-forced inputs
    x0: np.ndarray         # (B, N)
    counted: np.ndarray    # (T_all,) bool
    target: np.ndarray     # (B, T_all, n_out)
    n_forced: int
    n_steps: int
    clean_x_prev: np.ndarray  # (B, T_all, N)
    clean_x: np.ndarray       # (B, T_all, N)
    clean_u: np.ndarray       # (B, T_all, n_in)
    indptr: np.ndarray
    indices: np.ndarray
    edge_values: np.ndarray   # (nnz,) W on the edges, storage order
    dense: bool               # W is a dense array (edges are the topology's mask)

    @classmethod
    def build(cls, net, params, objective, state, clean):
        if net.feedback:
            raise NotImplementedError("perturbation of an ESN with output feedback is not "
                                      "supported (neither is training its rules)")
        net.check_params(params)
        W = params["W"]
        dtype = np.dtype(net.dtype)
        if sp.issparse(W):
            if W.format != "csr":
                raise TypeError(f"params['W'] must be a CSR matrix or a dense array, got "
                                f"{W.format.upper()}")
            indptr, indices, values = W.indptr, W.indices, W.data
            dense = False
        else:
            mask = sp.csr_array(net.topology.mask)
            dense_mask = mask.toarray()
            if np.any(np.asarray(W)[~dense_mask]):
                raise ValueError("params['W'] has weights off the topology's edges; apply "
                                 "net.constrain(params) first")
            indptr, indices = mask.indptr, mask.indices
            rows = np.repeat(np.arange(W.shape[0]), np.diff(indptr))
            values = np.asarray(W)[rows, indices]
            dense = True
        u_forced = _as_batch(objective.inputs).astype(dtype, copy=False)
        batch = u_forced.shape[0]
        if state is None:
            x0 = np.zeros((batch, net.n_units), dtype=dtype)
        else:
            x0 = np.broadcast_to(np.asarray(state, dtype=dtype), (batch, net.n_units))
        counted = np.asarray(clean.counted, dtype=bool)
        n_steps = counted.size
        n_forced = u_forced.shape[1]
        if n_steps < n_forced or clean.x.shape[-1] != net.n_units:
            raise ValueError("clean is not a trajectory of this network on this data")
        return cls(net=net, params=params, backend=kernels.resolve_backend(net.backend),
                   dtype=dtype, u_forced=np.ascontiguousarray(u_forced),
                   x0=np.ascontiguousarray(x0), counted=counted,
                   target=np.ascontiguousarray(_as_batch(clean.target), dtype=np.float64),
                   n_forced=n_forced, n_steps=n_steps,
                   clean_x_prev=_as_batch(clean.x_prev), clean_x=_as_batch(clean.x),
                   clean_u=_as_batch(clean.u), indptr=indptr, indices=indices,
                   edge_values=np.asarray(values), dense=dense)

    @property
    def n_units(self):
        return self.net.n_units

    @property
    def n_batch(self):
        return self.u_forced.shape[0]

    @property
    def n_out(self):
        return self.target.shape[-1]

    @property
    def nnz(self):
        return self.indices.size

    def rows(self):
        """Row (postsynaptic unit) of every edge, in storage order."""
        return np.repeat(np.arange(self.n_units, dtype=np.intp), np.diff(self.indptr))

    def to_param_shape(self, edge_array):
        """(K, nnz) edge values -> (K, nnz) for CSR ``W``, (K, N, N) for a dense one."""
        if not self.dense:
            return edge_array
        n = self.n_units
        out = np.zeros((edge_array.shape[0], n, n), dtype=edge_array.dtype)
        out[:, self.rows(), self.indices] = edge_array
        return out

    @property
    def n_terms(self):
        """Number of squared errors the loss averages: sequences x counted steps x outputs."""
        return self.n_batch * int(self.counted.sum()) * self.n_out


# --- weight perturbation ------------------------------------------------------------------

def _weight_runs(setup, request, rng):
    """Perturb the values of the requested parameters (all by default); return (eligibility,
    losses of all runs). Each parameter draws from its own child stream, so a parameter's
    perturbations do not depend on which others are perturbed."""
    K, sigma = request.n_samples, request.sigma
    R = 2 * K if request.antithetic else K
    p = setup.params
    names = [n for n in PARAMETER_NAMES if n in p]
    chosen = request.selected(names)
    eps = {}
    for name, g in zip(names, rng.spawn(len(names))):
        if name not in chosen:
            continue
        shape = (setup.nnz,) if name == "W" else np.shape(p[name])
        eps[name] = g.standard_normal((K,) + tuple(shape)) * sigma

    def per_run(base, name):
        base = np.asarray(base)
        if name not in eps:  # unperturbed: every run reads the same values
            base = base.astype(setup.dtype, copy=False)
            return np.broadcast_to(base[None], (R,) + base.shape)
        e = eps[name]
        stacked = np.concatenate([e, -e]) if request.antithetic else e
        return (base[None] + stacked).astype(setup.dtype, copy=False)

    run_params = {"W": per_run(setup.edge_values, "W")}
    for name in ("W_in", "b", "W_out", "b_out"):
        run_params[name] = per_run(p[name], name)
    losses = _weight_losses(setup, run_params)
    eligibility = dict(eps)
    if "W" in eligibility:
        eligibility["W"] = setup.to_param_shape(eps["W"])
    return eligibility, losses


def _weight_losses(setup, run_params):
    """Losses of runs that each have their own parameters (leading axis R in run_params)."""
    R = run_params["W"].shape[0]
    B = setup.n_batch
    with np.errstate(over="ignore", invalid="ignore"):
        if setup.backend == "numba":
            _JIT.ensure()
            dt = setup.dtype
            # kernel layout: the run axis last, so a block of runs is contiguous
            V = np.ascontiguousarray(run_params["W"].T)                        # (nnz, R)
            W_in = np.ascontiguousarray(run_params["W_in"].transpose(1, 2, 0))  # (N, n_in, R)
            bias = np.ascontiguousarray(run_params["b"].T)                     # (N, R)
            W_out = np.ascontiguousarray(run_params["W_out"].transpose(1, 2, 0))  # (M, N, R)
            b_out = np.ascontiguousarray(run_params["b_out"].T)                # (M, R)
            per_run = V.shape[0] + setup.n_units * (2 + W_in.shape[1]) + W_out.size // R
            block = max(_MIN_BLOCK, _BLOCK_BYTES // max(1, per_run * dt.itemsize))
            block = int(min(R, block - block % 8))
            sq = np.zeros(B * R)
            _weight_run_nb(setup.indptr, kernels.unsigned_indices(setup.indices), V, W_in, bias,
                           W_out, b_out, setup.u_forced, setup.target, setup.counted,
                           setup.n_forced, dt.type(1) - dt.type(setup.net.leak),
                           dt.type(setup.net.leak), block, setup.x0, sq)
            sq = sq.reshape(B, R)
        else:
            sq = _runs_numpy(setup, R, run_params=run_params)
    return sq.sum(axis=0) / setup.n_terms


# --- node perturbation --------------------------------------------------------------------

def _node_runs(setup, request, rng):
    """Noise on every pre-activation and counted output; return (eligibility, losses).

    With ``request.params`` the noise goes only where the listed parameters feed: the
    recurrent units when any of ``W``, ``W_in``, ``b`` is listed, the outputs when ``W_out``
    or ``b_out`` is (the other stream is neither drawn nor injected; each stream's values do
    not depend on whether the other is drawn)."""
    K, sigma = request.n_samples, request.sigma
    B, N, M = setup.n_batch, setup.n_units, setup.n_out
    R = 2 * K if request.antithetic else K
    chosen = request.selected([n for n in PARAMETER_NAMES if n in setup.params])
    units = any(n in chosen for n in _UNIT_PARAMETERS)
    outputs = any(n in chosen for n in _OUTPUT_PARAMETERS)
    g_xi, g_zeta = rng.spawn(2)
    elig = _NodeEligibility(setup, K, chosen)
    width = (N if units else 0) + (M if outputs else 0)
    chunk = max(1, min(setup.n_steps, _CHUNK_BUDGET // max(1, width * B * K)))
    dt = setup.dtype
    keep, leak = dt.type(1) - dt.type(setup.net.leak), dt.type(setup.net.leak)
    with np.errstate(over="ignore", invalid="ignore"):
        if setup.backend == "numba":
            _JIT.ensure()
            X = np.ascontiguousarray(np.repeat(setup.x0.T, R, axis=1))  # (N, B*R)
            Y = np.zeros((M, B * R), dtype=dt)
            sq = np.zeros(B * R)
            idx = kernels.unsigned_indices(setup.indices)
            w = setup.edge_values.astype(dt, copy=False)
            p = setup.params
            W_in, bias = np.ascontiguousarray(p["W_in"]), np.ascontiguousarray(p["b"])
            W_out, b_out = np.ascontiguousarray(p["W_out"]), np.ascontiguousarray(p["b_out"])
        else:
            state = {}
        # Noise is drawn time-major, (steps, units, sequences, K), one chunk at a time; the
        # values do not depend on the chunk size.
        for t0 in range(0, setup.n_steps, chunk):
            t1 = min(t0 + chunk, setup.n_steps)
            xi = zeta = None
            if units:
                xi = g_xi.standard_normal((t1 - t0, N, B, K))
                xi *= sigma
            if outputs:
                zeta = g_zeta.standard_normal((t1 - t0, M, B, K))
                zeta *= sigma * setup.counted[t0:t1, None, None, None]
            elig.add(t0, t1 - t0, xi, zeta)
            if setup.backend == "numba":
                _node_chunk_nb(setup.indptr, idx, w, W_in, bias, W_out, b_out, setup.u_forced,
                               setup.target, setup.counted, t0, setup.n_forced, t1 - t0, K,
                               _or_empty(xi, dt), _or_empty(zeta, dt), units, outputs,
                               request.antithetic, keep, leak, X, Y, sq)
            else:
                sq_chunk = _runs_numpy(setup, R, noise=(xi, zeta), t0=t0, state=state)
        if setup.backend == "numba":
            sq = sq.reshape(B, R)
        else:
            sq = sq_chunk
    return elig.result(), sq.sum(axis=0) / setup.n_terms


class _NodeEligibility:
    r"""Running sums of noise x clean presynaptic activity, for the K perturbations.

    Accumulated with the perturbation axis last (``(nnz, K)``, ``(N, n_in, K)``, ...), as the
    noise is laid out, and transposed to ``(K, ...)`` at the end. Only the sums of the
    ``names`` to report are accumulated (``W_in`` and ``b`` together, ``W_out`` and ``b_out``
    together: they cost little next to ``W``'s).
    """

    def __init__(self, setup, K, names):
        self.setup = setup
        self.K = K
        self.names = tuple(names)
        self.use_W = "W" in self.names
        self.use_in = "W_in" in self.names or "b" in self.names
        self.use_out = "W_out" in self.names or "b_out" in self.names
        n_in = setup.clean_u.shape[-1]
        N, M = setup.n_units, setup.n_out
        # unused sums are empty arrays, never indexed
        self.W = np.zeros((setup.nnz, K) if self.use_W else (0, K))
        self.W_in = np.zeros((N, n_in, K) if self.use_in else (0, n_in, K))
        self.b = np.zeros((N, K) if self.use_in else (0, K))
        self.W_out = np.zeros((M, N, K) if self.use_out else (0, N, K))
        self.b_out = np.zeros((M, K) if self.use_out else (0, K))
        if setup.backend == "numba":
            self.xp = np.ascontiguousarray(setup.clean_x_prev, dtype=np.float64)
            self.x = np.ascontiguousarray(setup.clean_x, dtype=np.float64)
            self.u = np.ascontiguousarray(setup.clean_u, dtype=np.float64)
        elif self.use_W:
            self._stacked = _stacked_structure(setup.indptr, setup.indices, K, N)

    def add(self, t0, n_chunk, xi, zeta):
        """Noise of steps ``t0 .. t0 + n_chunk``: xi (Tc, N, B, K) or None (no noise on the
        units), zeta (Tc, M, B, K) or None (none on the outputs)."""
        s = self.setup
        use_W, use_in = self.use_W and xi is not None, self.use_in and xi is not None
        use_out = self.use_out and zeta is not None
        if s.backend == "numba":
            _node_eligibility_nb(s.indptr, kernels.unsigned_indices(s.indices), n_chunk,
                                 self.K, _or_empty(xi, np.float64),
                                 _or_empty(zeta, np.float64), use_W, use_in, use_out,
                                 self.xp, self.x, self.u, t0, self.W, self.W_in, self.b,
                                 self.W_out, self.b_out)
            return
        t1 = t0 + n_chunk
        xp, x, u = s.clean_x_prev[:, t0:t1], s.clean_x[:, t0:t1], s.clean_u[:, t0:t1]
        if use_in:
            self.b += xi.sum(axis=(0, 2))
            self.W_in += np.einsum("tnbk,btc->nck", xi, u)
        if use_out:
            self.b_out += zeta.sum(axis=(0, 2))
            self.W_out += np.einsum("tmbk,btn->mnk", zeta, x)
        if use_W:
            # one masked sum of outer products on K stacked copies of W's structure
            post = xi.transpose(0, 2, 3, 1).reshape(-1, self.K * s.n_units)
            pre = xp.transpose(1, 0, 2).reshape(-1, s.n_units)
            sums = masked_outer(post, pre, self._stacked, backend="numpy").data
            self.W += sums.reshape(self.K, -1).T

    def result(self):
        s = self.setup
        out = {}
        if self.use_W:
            out["W"] = s.to_param_shape(np.ascontiguousarray(self.W.T))
        if self.use_in:
            out["W_in"] = np.ascontiguousarray(self.W_in.transpose(2, 0, 1))
            out["b"] = np.ascontiguousarray(self.b.T)
        if self.use_out:
            out["W_out"] = np.ascontiguousarray(self.W_out.transpose(2, 0, 1))
            out["b_out"] = np.ascontiguousarray(self.b_out.T)
        return {k: v for k, v in out.items() if k in self.names}


def _or_empty(noise, dtype):
    """The noise in ``dtype``, or an empty 4-d array standing for "no noise" (kernels)."""
    if noise is None:
        return np.zeros((0, 0, 0, 0), dtype=dtype)
    return noise.astype(dtype, copy=False)


def _stacked_structure(indptr, indices, K, n):
    """CSR (K * N, N): K copies of W's structure on top of each other (values are ones)."""
    nnz = indices.size
    offsets = np.arange(K, dtype=np.int64)
    big_indptr = np.concatenate([(indptr[:-1][None, :] + nnz * offsets[:, None]).ravel(),
                                 [nnz * K]])
    big = sp.csr_array((np.ones(nnz * K), np.tile(indices, K), big_indptr), shape=(K * n, n))
    big.has_sorted_indices = True
    return big


# --- the numpy twin of the compiled runs --------------------------------------------------

def _runs_numpy(setup, R, *, run_params=None, noise=None, t0=0, state=None):
    r"""Squared errors (B, R) of ``R`` runs advanced together, one numpy step at a time.

    With ``run_params`` (leading axis R: ``"W"`` edge values, ``"W_in"``, ``"b"``,
    ``"W_out"``, ``"b_out"``) every run has its own parameters, and the recurrent product is
    one block-diagonal CSR matrix of all runs; all steps are run. Otherwise the runs share the
    network's parameters and ``noise = (xi, zeta)`` covers steps ``t0 .. t0 + Tc`` (the
    ``+`` noise, (Tc, N, B, K) and (Tc, M, B, K), either None for none; the runs beyond K
    take ``-xi``); ``state``
    (a dict, empty at the first chunk) carries the states between chunks and the running
    squared errors, which are returned.
    """
    dt = setup.dtype
    B, N, M = setup.n_batch, setup.n_units, setup.n_out
    keep, leak = dt.type(1) - dt.type(setup.net.leak), dt.type(setup.net.leak)
    p = setup.params
    if run_params is not None:
        steps = range(setup.n_steps)
        W_in, bias = run_params["W_in"], run_params["b"]                 # (R, N, n_in), (R, N)
        W_out, b_out = run_params["W_out"], run_params["b_out"]          # (R, M, N), (R, M)
        big = _block_diagonal(setup.indptr, setup.indices, run_params["W"], N)
        X = np.repeat(setup.x0[:, None], R, axis=1)                    # (B, R, N)
        Y = np.zeros((B, R, M), dtype=dt)
        sq = np.zeros((B, R))

        def recurrent(X):
            Xr = X.transpose(1, 2, 0).reshape(R * N, B)
            return (big @ Xr).reshape(R, N, B).transpose(2, 0, 1)

        def drive(t, Y):
            if t < setup.n_forced:
                return np.einsum("bc,rnc->brn", setup.u_forced[:, t], W_in) + bias[None]
            return np.einsum("brc,rnc->brn", Y, W_in) + bias[None]

        def readout(X):
            return np.einsum("brn,rmn->brm", X, W_out) + b_out[None]
    else:
        xi, zeta = noise
        some = xi if xi is not None else zeta
        K = some.shape[-1]
        steps = range(t0, t0 + some.shape[0])
        W = p["W"]
        if not state:
            state.update(X=np.repeat(setup.x0[:, None], R, axis=1), Y=np.zeros((B, R, M), dtype=dt),
                         sq=np.zeros((B, R)))
        X, Y, sq = state["X"], state["Y"], state["sq"]

        def recurrent(X):
            return (W @ X.reshape(B * R, N).T).T.reshape(B, R, N)

        def drive(t, Y):
            u = setup.u_forced[:, t][:, None] if t < setup.n_forced else Y
            d = u @ p["W_in"].T + p["b"]
            if xi is None:
                return d
            z = xi[t - t0].transpose(1, 2, 0)                           # (B, K, N)
            return d + (np.concatenate([z, -z], axis=1) if R > K else z)

        def readout(X):
            y = X @ p["W_out"].T + p["b_out"]
            if zeta is None:
                return y
            z = zeta[t - t0].transpose(1, 2, 0)
            return y + (np.concatenate([z, -z], axis=1) if R > K else z)
    for t in steps:
        pre = drive(t, Y) + recurrent(X)
        X = keep * X + leak * np.tanh(pre).astype(dt, copy=False)
        Y = readout(X)
        if setup.counted[t]:
            err = Y.astype(np.float64) - setup.target[:, t][:, None]
            sq = sq + np.einsum("brm,brm->br", err, err)
    if state is not None:
        state.update(X=X, Y=Y, sq=sq)
    return sq


def _block_diagonal(indptr, indices, values, n):
    """CSR of ``blockdiag(W_0, ..., W_{R-1})``, ``W_r`` on the edges with ``values[r]``."""
    n_runs, nnz = values.shape
    offsets = np.arange(n_runs, dtype=np.int64)
    big_indptr = np.concatenate([(indptr[:-1][None, :] + nnz * offsets[:, None]).ravel(),
                                 [nnz * n_runs]])
    big_indices = (indices[None, :] + n * offsets[:, None]).ravel()
    big = sp.csr_array((np.ascontiguousarray(values).ravel(), big_indices, big_indptr),
                       shape=(n * n_runs, n * n_runs))
    big.has_sorted_indices = True
    return big


# --- compiled kernels ---------------------------------------------------------------------
# Plain Python in the subset numba compiles; _JIT.ensure() swaps each for its numba dispatcher.
# tanh is the shared one of recur.kernels.

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])


@_JIT.register
def _leaky_tanh(pre, x, keep, leak):
    """``x = keep * x + leak * tanh(pre)`` over flat arrays (a loop LLVM vectorises)."""
    for m in range(x.shape[0]):
        x[m] = keep * x[m] + leak * kernels.fast_tanh(pre[m])


@_JIT.register
def _weight_run_nb(indptr, indices, V, W_in, bias, W_out, b_out, u, target, counted, n_forced,
                   keep, leak, block, x0, sq):
    """Runs with their own parameters, run axis last: V (nnz, R), W_in (N, n_in, R),
    bias (N, R), W_out (M, N, R), b_out (M, R). u (B, T_forced, n_in), target (B, T, M),
    x0 (B, N); ``sq[b * R + r]`` += squared errors of run r on sequence b (counted steps).

    Closed-loop steps (``t >= n_forced``) read each run's own previous output. Runs are
    advanced in blocks of ``block``, each through every step, with the block's parameters,
    states and pre-activations in contiguous buffers that stay in cache; per edge, the update
    of a block is one vectorised loop over its runs.
    """
    nnz, n_runs = V.shape
    n, n_in, _ = W_in.shape
    n_out = W_out.shape[0]
    n_b = x0.shape[0]
    n_steps = counted.shape[0]
    for r0 in range(0, n_runs, block):
        r1 = min(r0 + block, n_runs)
        w = r1 - r0
        cols = n_b * w
        Vb = np.ascontiguousarray(V[:, r0:r1])
        Wib = np.ascontiguousarray(W_in[:, :, r0:r1])
        bb = np.ascontiguousarray(bias[:, r0:r1])
        Wob = np.ascontiguousarray(W_out[:, :, r0:r1])
        bob = np.ascontiguousarray(b_out[:, r0:r1])
        X = np.empty((n, cols), dtype=V.dtype)
        for i in range(n):
            for b in range(n_b):
                for j in range(w):
                    X[i, b * w + j] = x0[b, i]
        Y = np.zeros((n_out, cols), dtype=V.dtype)
        pre = np.empty((n, cols), dtype=V.dtype)
        pre_flat = pre.reshape(n * cols)
        x_flat = X.reshape(n * cols)
        for t in range(n_steps):
            forced = t < n_forced
            for i in range(n):
                for b in range(n_b):
                    q = b * w
                    for j in range(w):
                        pre[i, q + j] = bb[i, j]
                    for c in range(n_in):
                        if forced:
                            uv = u[b, t, c]
                            for j in range(w):
                                pre[i, q + j] += Wib[i, c, j] * uv
                        else:
                            for j in range(w):
                                pre[i, q + j] += Wib[i, c, j] * Y[c, q + j]
            for i in range(n):
                for e in range(indptr[i], indptr[i + 1]):
                    col = indices[e]
                    for b in range(n_b):
                        q = b * w
                        for j in range(w):
                            pre[i, q + j] += Vb[e, j] * X[col, q + j]
            _leaky_tanh(pre_flat, x_flat, keep, leak)
            for m in range(n_out):
                for b in range(n_b):
                    q = b * w
                    for j in range(w):
                        Y[m, q + j] = bob[m, j]
                for k in range(n):
                    for b in range(n_b):
                        q = b * w
                        for j in range(w):
                            Y[m, q + j] += Wob[m, k, j] * X[k, q + j]
            if counted[t]:
                for m in range(n_out):
                    for b in range(n_b):
                        tg = target[b, t, m]
                        for j in range(w):
                            d = np.float64(Y[m, b * w + j]) - tg
                            sq[b * n_runs + r0 + j] += d * d


@_JIT.register
def _node_chunk_nb(indptr, indices, w, W_in, bias, W_out, b_out, u, target, counted, t0,
                   n_forced, n_chunk, K, xi, zeta, use_xi, use_zeta, antithetic, keep, leak,
                   X, Y, sq):
    """Steps ``t0 .. t0 + n_chunk`` of runs sharing the weights, with node noise.

    xi (Tc, N, B, K) on the pre-activations (when ``use_xi``), zeta (Tc, M, B, K) on the
    outputs (when ``use_zeta``; an unused one may be empty); sequence
    ``s = b * R + r`` takes ``+xi[..., b, r]`` for ``r < K`` and ``-xi[..., b, r - K]`` beyond
    (antithetic). X (N, B*R) states and Y (M, B*R) outputs carry over between chunks;
    ``sq[s]`` accumulates squared errors on counted steps.
    """
    n = X.shape[0]
    n_b = target.shape[0]
    n_in = W_in.shape[1]
    n_out = W_out.shape[0]
    n_seq = X.shape[1]
    R = n_seq // n_b
    pre = np.empty((n, n_seq), dtype=X.dtype)
    pre_flat = pre.reshape(n * n_seq)
    x_flat = X.reshape(n * n_seq)
    for tt in range(n_chunk):
        t = t0 + tt
        forced = t < n_forced
        for i in range(n):
            for b in range(n_b):
                q = b * R
                if forced:
                    d = bias[i]
                    for c in range(n_in):
                        d += W_in[i, c] * u[b, t, c]
                    for r in range(R):
                        pre[i, q + r] = d
                else:
                    for r in range(R):
                        pre[i, q + r] = bias[i]
                    for c in range(n_in):
                        wc = W_in[i, c]
                        for r in range(R):
                            pre[i, q + r] += wc * Y[c, q + r]
                if use_xi:
                    for r in range(K):
                        pre[i, q + r] += xi[tt, i, b, r]
                    if antithetic:
                        for r in range(K):
                            pre[i, q + K + r] -= xi[tt, i, b, r]
        kernels.csr_matmat_add(indptr, indices, w, X, pre)  # the shared recurrent product
        _leaky_tanh(pre_flat, x_flat, keep, leak)
        for m in range(n_out):
            for s in range(n_seq):
                Y[m, s] = b_out[m]
            for k in range(n):
                wk = W_out[m, k]
                for s in range(n_seq):
                    Y[m, s] += wk * X[k, s]
            if use_zeta:
                for b in range(n_b):
                    q = b * R
                    for r in range(K):
                        Y[m, q + r] += zeta[tt, m, b, r]
                    if antithetic:
                        for r in range(K):
                            Y[m, q + K + r] -= zeta[tt, m, b, r]
        if counted[t]:
            for m in range(n_out):
                for b in range(n_b):
                    tg = target[b, t, m]
                    for r in range(R):
                        d = np.float64(Y[m, b * R + r]) - tg
                        sq[b * R + r] += d * d


@_JIT.register
def _node_eligibility_nb(indptr, indices, n_chunk, K, xi, zeta, use_W, use_in, use_out, xp, x,
                         u, t0, EW, EWin, Eb, EWout, Ebout):
    """Add noise x clean activity for steps ``t0 .. t0 + n_chunk``, perturbation axis last.

    xi (Tc, N, B, K), zeta (Tc, M, B, K); clean xp, x (B, T, N) and u (B, T, n_in).
    EW (nnz, K) += sum_{t,b} xp[b, t, col_e] xi[t, row_e, b] (when ``use_W``); EWin
    (N, n_in, K) and Eb (N, K) (when ``use_in``); EWout (M, N, K) and Ebout (M, K) (when
    ``use_out``). Unused noise and sums may be empty. Unit by unit, so each unit's edge sums
    stay in cache.
    """
    n_b = xp.shape[0]
    n = xp.shape[2]
    n_in = u.shape[2]
    if use_W or use_in:
        for i in range(n):
            for tt in range(n_chunk):
                t = t0 + tt
                for b in range(n_b):
                    if use_in:
                        for k in range(K):
                            Eb[i, k] += xi[tt, i, b, k]
                        for c in range(n_in):
                            uc = u[b, t, c]
                            for k in range(K):
                                EWin[i, c, k] += uc * xi[tt, i, b, k]
                    if use_W:
                        for e in range(indptr[i], indptr[i + 1]):
                            a = xp[b, t, indices[e]]
                            for k in range(K):
                                EW[e, k] += a * xi[tt, i, b, k]
    if use_out:
        n_out = zeta.shape[1]
        for m in range(n_out):
            for tt in range(n_chunk):
                t = t0 + tt
                for b in range(n_b):
                    for k in range(K):
                        Ebout[m, k] += zeta[tt, m, b, k]
                    for j in range(n):
                        a = x[b, t, j]
                        for k in range(K):
                            EWout[m, j, k] += a * zeta[tt, m, b, k]
