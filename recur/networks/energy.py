r"""Energy network: continuous Hopfield-style units that settle to a fixed point.

The network of Scellier & Bengio (2017) for equilibrium propagation, on any graph. Units are
split into *inputs* (clamped to the data) and *free* units (hidden and outputs). A state is
the vector of unit activities :math:`s \in` the range of the activation :math:`\rho`; the
free units settle to a stationary point of the total energy

.. math::

    F(s) = E(s) + \beta\, C(s), \qquad
    E(s) = \sum_{i \in \mathrm{free}} G(s_i) - \tfrac12 s^\top W s - b_{\mathrm{free}}^\top
    s_{\mathrm{free}}, \qquad
    C(s) = \frac{1}{n_{out}} \lVert s_{\mathrm{out}} - y \rVert^2,

with :math:`G' = \rho^{-1}` (Hopfield 1984), so that the stationary points are the fixed
points :math:`s_i = \rho\big(\sum_j W_{ij} s_j + b_i - \beta\, \partial C/\partial s_i\big)`
on the free units. This is the form in which Scellier & Bengio's energy is usually computed
(Ernoult et al. 2019; Laborieux et al. 2021): the same fixed points and the same learning
rule, :math:`\partial F / \partial W_{ij} = -s_i s_j` and :math:`\partial F / \partial b_i =
-s_i`. See :class:`EnergyNet` for every convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..rules import evidence as ev
from ..topology import Topology
from ..validation import (ConvergenceError, as_float_array, check_in_interval,
                          check_positive)
from .symmetric import check_symmetric_params, symmetric_on_graph, symmetrized

__all__ = ["EnergyNet"]

ACTIVATIONS = ("hard_sigmoid", "tanh")
SOLVERS = ("auto", "fixed_point", "newton")
# Newton steps start once the damped iteration's residual is below this (near the fixed
# point it is approaching, so Newton polishes that one instead of jumping elsewhere).
NEWTON_START = 1e-3
# solver="auto" uses Newton steps up to this many settling units (each costs B n^3 / 3).
NEWTON_MAX_UNITS = 400
# Damped iterations a row waits after a Newton step that did not lower its residual.
NEWTON_RETRY = 10


def _rho(z, activation):
    if activation == "tanh":
        return np.tanh(z)
    return np.clip(z, 0.0, 1.0)


def _rho_prime(z, activation):
    """Derivative of the activation at the pre-activation ``z`` (0 where hard-saturated)."""
    if activation == "tanh":
        t = np.tanh(z)
        return 1.0 - t * t
    return ((z > 0.0) & (z < 1.0)).astype(z.dtype)


def _g(s, activation):
    r""":math:`G(s) = \int_0^s \rho^{-1}`, the self-energy whose derivative undoes ``rho``."""
    if activation == "tanh":
        s = np.clip(s, -1.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # s artanh(s) + 1/2 log(1 - s^2) -> log 2 at |s| = 1 (finite limit).
            val = s * np.arctanh(s) + 0.5 * np.log1p(-s * s)
        return np.where(np.abs(s) >= 1.0, np.log(2.0), val)
    return 0.5 * s * s


@dataclass(frozen=True, eq=False)
class EnergyNet:
    r"""Continuous Hopfield-style energy network on a graph (equilibrium propagation).

    Free units (hidden and outputs) settle to a fixed point of

    .. math::

        s_i = \rho(z_i), \qquad
        z_i = \sum_j W_{ij} s_j + b_i - \beta\, \frac{\partial C}{\partial s_i}
        \quad (i \text{ free}), \qquad s_{\mathrm{in}} = x,

    the stationary points of :math:`F = E + \beta C` (module notes); ``W[i, j]`` is the weight
    from unit ``j`` onto unit ``i`` (``W[post, pre]``; networkx edge ``(u, v)`` is ``W[v, u]``,
    ``W = A.T``), and ``W`` is symmetric: the graph is symmetrised, every edge is one coupling
    :math:`w_{ij} = W_{ij} = W_{ji}`.

    Parameters
    ----------
    topology : Topology
        The graph (symmetrised; self-loops dropped).
    inputs, outputs : sequence of node labels, optional
        Input units (clamped to ``x``) and output units (compared with ``y``); default
        ``topology.roles["input"]`` and ``topology.roles["output"]``. Disjoint, non-empty.
    activation : {"hard_sigmoid", "tanh"}
        :math:`\rho(z) = \min(\max(z, 0), 1)` or :math:`\tanh z`.
    max_iter : int >= 1
        Iterations allowed per phase before :class:`~recur.ConvergenceError`.
    tol : float > 0
        A phase has converged when :math:`\max |\rho(z) - s| <` ``tol`` over the free units
        and the batch (the fixed-point residual; in the linear range of the hard sigmoid it
        is :math:`|\partial F / \partial s|`).
    damping : float in (0, 1]
        Step of the damped fixed-point iteration :math:`s \leftarrow (1 - d) s + d \rho(z)`.
        Smaller is slower but tolerates strong negative feedback (large ``beta``).
    init_scale : float >= 0
        :meth:`init` draws each coupling from :math:`N(0, \mathrm{init\_scale}^2 \cdot 2 /
        (k_i + k_j))` with :math:`k` the degrees in the symmetrised graph (Glorot-like).
    solver : {"auto", "fixed_point", "newton"}
        ``"fixed_point"``: the damped iteration only. ``"newton"``: once its residual is
        below ``NEWTON_START`` (1e-3), Newton steps on :math:`s - \rho(z(s)) = 0` (batched
        linear solves, ``O(B n^3)``), each kept only if it lowers the residual, and a final
        check that the fixed point is stable (Newton can land on an unstable one; the
        dynamics cannot). ``"auto"``: Newton for tanh units up to ``NEWTON_MAX_UNITS``
        (400) settling units, the damped iteration otherwise (on the piecewise-linear hard
        sigmoid Newton saves iterations but, measured, not time). Both reach the same fixed
        points; Newton needs far fewer iterations near slow (nearly marginal) fixed points.

    Notes
    -----
    **Conventions.**

    - ``params = {"W": (N, N) dense, symmetric, zero diagonal and zero off the symmetrised
      graph; "b": (N,)}``. ``b`` of the input units has no effect (they are clamped).
    - Data is ``(x, y)``: ``x`` (B, n_in) in the order of the sorted input indices, ``y``
      (B, n_out) likewise. States are activities (B, N), with ``s[:, inputs] = x`` (the input
      enters as an activity, not through :math:`\rho`).
    - Cost :math:`C = \frac{1}{n_{out}} \lVert s_{\mathrm{out}} - y \rVert^2` per sample, so
      the loss, its mean over the batch at the free fixed point, is the mean squared error
      over samples and outputs, as for :class:`~recur.ESN`. This is Scellier & Bengio's
      :math:`\tfrac12 \lVert\cdot\rVert^2` scaled by :math:`2/n_{out}` (equivalently, their
      ``beta`` scaled by the same factor), so that the EP estimate approaches
      :math:`-\nabla L` with norm ratio 1.
    - **Tied gradients.** Every parameter gradient and every update is a symmetric matrix
      whose entries ``(i, j)`` and ``(j, i)`` both hold the derivative with respect to the
      coupling :math:`w_{ij}`: :math:`\partial F/\partial w_{ij} = -s_i s_j`, and the exact
      gradient is :math:`\mu s^\top + s \mu^\top` (see :meth:`collect`). Adding such an update
      to ``W`` moves each coupling by its own gradient step.
    - Phases: the free phase starts from ``u0`` (or all-zero free activities); every nudged,
      clamped or perturbed phase starts from the free fixed point, so that it follows the
      free fixed point's branch.
    - **Runaway phases.** A phase that does not reach ``tol`` within ``max_iter``
      iterations, or whose states turn non-finite, raises :class:`~recur.ConvergenceError`
      naming the phase and ``beta``. With bounded units a ``-beta`` phase cannot diverge;
      it runs away instead: the nudge :math:`-\beta\, \partial C / \partial s` adds
      positive feedback :math:`2\beta/n_{out}` on the outputs, and once that makes the
      free fixed point unstable the phase leaves its branch for a saturated state, which
      would give an update unrelated to the gradient. So a ``-beta`` phase first checks the
      stability of its start, :math:`I - D^{1/2} M D^{1/2} \succ 0` with :math:`D =
      \mathrm{diag}\,\rho'(z)` and :math:`M` the couplings among the settling units
      including the nudge's diagonal (up to ``NEWTON_MAX_UNITS`` settling units; cost
      ``O(B n^3)``), and raises :class:`~recur.ConvergenceError` when it fails. A fixed
      point reached with Newton steps gets the same check. Neither catches a branch that
      ends (a fold) between the free and the nudged fixed point; keep ``beta`` small.

    **Protocol.** ``init``, ``check_params``, ``constrain``, ``settle``, ``predict``,
    ``energy``, ``loss``, ``collect`` (:class:`~recur.rules.TwoPhase`,
    :class:`~recur.rules.Gradient`,
    :class:`~recur.rules.Perturbed`, :class:`~recur.rules.Activity`), and a thin
    ``initial_state`` / ``step`` (one settling iteration) / ``run``.

    References
    ----------
    .. [1] B. Scellier & Y. Bengio, "Equilibrium propagation: bridging the gap between
       energy-based models and backpropagation", Front. Comput. Neurosci. 11:24 (2017).
    .. [2] J. J. Hopfield, "Neurons with graded response have collective computational
       properties like those of two-state neurons", PNAS 81:3088 (1984).
    .. [3] M. Ernoult, J. Grollier, D. Querlioz, Y. Bengio & B. Scellier, "Updates of
       equilibrium prop match gradients of backprop through time in an RNN with static
       input", NeurIPS (2019).
    .. [4] A. Laborieux et al., "Scaling equilibrium propagation to deep ConvNets by
       drastically reducing its gradient estimator bias", Front. Neurosci. 15:633674 (2021).
    """

    topology: Topology
    inputs: tuple | None = None
    outputs: tuple | None = None
    activation: str = "hard_sigmoid"
    max_iter: int = 5000
    tol: float = 1e-8
    damping: float = 0.5
    init_scale: float = 1.0
    solver: str = "auto"
    _inp: np.ndarray = field(init=False, repr=False)
    _out: np.ndarray = field(init=False, repr=False)
    _free: np.ndarray = field(init=False, repr=False)
    _hid: np.ndarray = field(init=False, repr=False)
    _mask: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        topo = self.topology
        if not isinstance(topo, Topology):
            raise TypeError(f"topology must be a recur.Topology, got {type(topo).__name__}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}, got "
                             f"{self.activation!r}")
        check_positive(self.max_iter, "max_iter", integer=True)
        check_positive(self.tol, "tol")
        check_in_interval(self.damping, "damping", 0.0, 1.0)
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {SOLVERS}, got {self.solver!r}")
        check_positive(self.init_scale, "init_scale", strict=False)
        idx = {}
        for role in ("input", "output"):
            given = self.inputs if role == "input" else self.outputs
            name = role + "s"
            if given is None:
                units = np.asarray(topo.roles.get(role, np.zeros(0, dtype=np.intp)),
                                   dtype=np.intp)
                if units.size == 0:
                    raise ValueError(f"an EnergyNet needs {role} units: the topology has no "
                                     f"nodes with role {role!r}; give them that role or pass "
                                     f"{name}=[node labels]")
            else:
                labels = [given] if isinstance(given, (str, bytes)) else list(given)
                units = np.array(sorted({topo.index(node) for node in labels}), dtype=np.intp)
                if units.size == 0:
                    raise ValueError(f"{name} must name at least one node")
                object.__setattr__(self, name, tuple(labels))
            idx[role] = units
        inp, out = idx["input"], idx["output"]
        both = np.intersect1d(inp, out)
        if both.size:
            raise ValueError(f"inputs and outputs must be disjoint; units {both.tolist()} are "
                             "both")
        free = np.setdiff1d(np.arange(topo.n_units), inp)
        mask = topo.mask.toarray()
        mask = mask | mask.T
        np.fill_diagonal(mask, False)
        object.__setattr__(self, "_inp", inp)
        object.__setattr__(self, "_out", out)
        object.__setattr__(self, "_free", free)
        object.__setattr__(self, "_hid", np.setdiff1d(free, out))
        object.__setattr__(self, "_mask", mask)

    # -- structure ------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units N."""
        return self.topology.n_units

    @property
    def n_in(self) -> int:
        """Number of input units (the columns of ``x``)."""
        return int(self._inp.size)

    @property
    def n_out(self) -> int:
        """Number of output units (the columns of ``y``)."""
        return int(self._out.size)

    @property
    def input_units(self) -> np.ndarray:
        """Indices of the input units (sorted; the column order of ``x``)."""
        return self._inp.copy()

    @property
    def output_units(self) -> np.ndarray:
        """Indices of the output units (sorted; the column order of ``y``)."""
        return self._out.copy()

    @property
    def free_units(self) -> np.ndarray:
        """Indices of the units that settle (hidden and outputs)."""
        return self._free.copy()

    @property
    def hidden_units(self) -> np.ndarray:
        """Indices of the hidden units (sorted)."""
        return self._hid.copy()

    @property
    def mask(self) -> np.ndarray:
        """Symmetrised connection mask, zero diagonal, shape (N, N)."""
        return self._mask.copy()

    # -- parameters -----------------------------------------------------------------------
    def init(self, rng=None) -> dict:
        r"""Draw parameters: symmetric Glorot-like couplings on the graph, centred biases.

        Each coupling :math:`w_{ij}` (``i < j`` on the symmetrised graph) is drawn from
        :math:`N(0, \mathrm{init\_scale}^2 \cdot 2 / (k_i + k_j))`. Biases sit at the
        middle of the activation's linear range, 0 for tanh and 1/2 for the hard sigmoid, so
        that units start unsaturated (a saturated hard-sigmoid unit passes no gradient).

        Returns
        -------
        dict with ``"W"`` (N, N) and ``"b"`` (N,)
        """
        rng = np.random.default_rng(rng)
        deg = self._mask.sum(axis=1).astype(np.float64)
        W = symmetric_on_graph(self._mask, lambda i, j: rng.normal(0.0, 1.0, i.size)
                               * self.init_scale * np.sqrt(2.0 / (deg[i] + deg[j])))
        b = np.full(self.n_units, 0.5 if self.activation == "hard_sigmoid" else 0.0)
        return {"W": W, "b": b}

    def initial_state(self, batch=None) -> np.ndarray:
        """All-zero activities, shape (N,) or (batch, N)."""
        if batch is None:
            return np.zeros(self.n_units)
        return np.zeros((check_positive(batch, "batch", integer=True), self.n_units))

    def check_params(self, params) -> None:
        """Raise if ``params`` does not fit this network
        (:func:`~recur.networks.symmetric.check_symmetric_params`).

        Raises
        ------
        TypeError
            ``params`` not a dict, or ``W`` sparse.
        ValueError
            Missing key, wrong shape, non-symmetric ``W``, or a weight off the graph or on
            the diagonal.
        DivergenceError
            NaN or inf in a parameter.
        """
        check_symmetric_params(params, self._mask, "an EnergyNet")

    def constrain(self, params):
        """Keep ``W`` symmetric (the mean of ``W`` and ``W.T``), on the graph and with a zero
        diagonal; returns ``params`` itself when nothing changes."""
        return symmetrized(params, self._mask)

    # -- data -----------------------------------------------------------------------------
    def _x(self, x):
        x = as_float_array(x, "x", ndim=(1, 2), dtype=np.float64)
        single = x.ndim == 1
        x2 = x[None, :] if single else x
        if x2.shape[1] != self.n_in:
            raise ValueError(f"x must have {self.n_in} column(s) (one per input unit), got "
                             f"shape {x.shape}")
        if x2.shape[0] == 0:
            raise ValueError("x has no rows")
        return x2, single

    def _y(self, y, batch):
        y = as_float_array(y, "y", ndim=(1, 2), dtype=np.float64)
        y2 = y[None, :] if y.ndim == 1 else y
        if y2.shape != (batch, self.n_out):
            raise ValueError(f"y must have shape ({batch}, {self.n_out}) (one row per row of "
                             f"x, one column per output unit), got {y.shape}")
        return y2

    def _data(self, data):
        """Validate ``(x, y)``: returns x (B, n_in), y (B, n_out)."""
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise TypeError("data must be a pair (x, y) with x (B, n_in) and y (B, n_out), "
                            f"got {type(data).__name__}")
        x, _ = self._x(data[0])
        return x, self._y(data[1], x.shape[0])

    # -- dynamics -------------------------------------------------------------------------
    def _arrays(self, params):
        self.check_params(params)
        return np.asarray(params["W"], dtype=np.float64), np.asarray(params["b"],
                                                                     dtype=np.float64)

    def _start(self, x, u0, lead=()):
        """Initial activities (*lead, B, N) with the inputs clamped to ``x``."""
        B, N = x.shape[0], self.n_units
        if u0 is None:
            s = np.zeros(lead + (B, N))
        else:
            u0 = as_float_array(u0, "u0", dtype=np.float64)
            if u0.shape not in ((B, N), lead + (B, N)):
                raise ValueError(f"u0 must have shape {(B, N)}, got {u0.shape}")
            s = np.broadcast_to(u0, lead + (B, N)).copy()
        s[..., self._inp] = x
        return s

    def _uses_newton(self, n_settle) -> bool:
        return self.solver == "newton" or (self.solver == "auto" and self.activation == "tanh"
                                           and n_settle <= NEWTON_MAX_UNITS)

    def _relax(self, W, b, s, *, y=None, beta=0.0, clamp=False, extra=None, phase="free"):
        r"""Settle the free units in place on ``s`` (..., B, N) (see :meth:`settle`).

        ``W`` is (N, N) or (K, N, N) (one matrix per leading index of ``s``, which is then
        (K, B, N)), ``b`` (N,) or (K, 1, N); ``extra`` an added drive (..., B, N) (node
        perturbation). Rows (samples, copies) are independent; a row stops moving once its
        residual is below ``tol``, so the work shrinks to the rows still settling. Returns
        ``(s, z, iterations, residual)`` with ``z`` the pre-activations of all units at the
        fixed point (input columns meaningless) and ``residual`` the largest final residual.
        """
        act = self.activation
        settle = self._hid if clamp else self._free
        if clamp:
            s[..., self._out] = y
        nudge = beta != 0.0 and not clamp
        coef = beta * 2.0 / self.n_out
        lead, N = s.shape[:-1], s.shape[-1]
        R = int(np.prod(lead))
        S = s.reshape(R, N)                          # a view: s is updated in place
        X = None if extra is None else np.broadcast_to(extra, lead + (N,)).reshape(R, N)
        Y = None
        if nudge:
            Y = np.broadcast_to(y, lead + (self.n_out,)).reshape(R, self.n_out)
            out_pos = np.searchsorted(settle, self._out)
        per_copy = W.ndim == 3
        Wf = W[..., :, settle]                       # columns: the units that move
        bf = b[..., settle]
        if per_copy:
            copy_of = np.repeat(np.arange(W.shape[0]), R // W.shape[0])
            bf = bf.reshape(W.shape[0], settle.size)

        def drive(rows, state):
            """Pre-activations (len(rows), n_settle) of ``rows`` at ``state`` (their rows)."""
            if per_copy:
                z = np.empty((rows.size, settle.size))
                ks = copy_of[rows]
                cuts = np.flatnonzero(np.diff(ks)) + 1
                for part in np.split(np.arange(rows.size), cuts):
                    if part.size:
                        k = ks[part[0]]
                        z[part] = state[part] @ Wf[k] + bf[k]
            else:
                z = state @ Wf + bf
            if X is not None:
                z += X[rows][:, settle]
            if nudge:
                z[:, out_pos] -= coef * (state[:, self._out] - Y[rows])
            return z

        newton = self._uses_newton(settle.size)
        # A -beta nudge adds positive feedback on the outputs; where it makes the starting
        # (free) fixed point unstable, the branch the phase should follow has no stable fixed
        # point nearby and the dynamics run away (to saturation, with bounded units).
        check_start = nudge and beta < 0.0 and 0 < settle.size <= NEWTON_MAX_UNITS
        if newton or check_start:
            # dz/ds on the settling units: W restricted to them, and the nudge's -coef on the
            # outputs' diagonal. One matrix, or one per perturbed copy.
            M = W[..., settle[:, None], settle[None, :]].copy()
            if nudge:
                M[..., out_pos, out_pos] -= coef
        all_rows = np.arange(R)
        if check_start:
            self._check_stable(drive(all_rows, S), M, phase, beta, start=True)
        d = self.damping
        active = all_rows
        retry_at = np.zeros(R, dtype=np.intp)
        # Basic slicing when the settling units are contiguous (inputs first, say).
        settle_idx = settle
        if settle.size and np.array_equal(settle, np.arange(settle[0], settle[0] + settle.size)):
            settle_idx = slice(int(settle[0]), int(settle[0]) + int(settle.size))
        residual = 0.0
        newtoned = np.zeros(R, dtype=bool)
        it = 0
        for it in range(self.max_iter + 1):
            if settle.size == 0 or active.size == 0:
                break
            state = S if active.size == R else S[active]
            z = drive(active, state)
            diff = _rho(z, act) - state[:, settle]
            row_res = np.max(np.abs(diff), axis=1)
            worst = float(np.max(row_res))
            if not np.isfinite(worst):
                raise ConvergenceError(f"the {phase} phase (beta={beta:g}) produced NaN or inf "
                                       f"states after {it} iterations")
            done = row_res < self.tol
            if done.any():
                residual = max(residual, float(np.max(row_res[done])))
                keep = ~done
                active, state, z, diff, row_res = (active[keep], state[keep], z[keep],
                                                   diff[keep], row_res[keep])
                if active.size == 0:
                    break
            if it == self.max_iter:
                raise ConvergenceError(
                    f"the {phase} phase (beta={beta:g}) did not settle within max_iter="
                    f"{self.max_iter} iterations (residual {worst:.3g} >= tol={self.tol:g}); "
                    "a large beta can push a nudged phase away from the free fixed point: "
                    "lower beta, or raise max_iter / lower damping")
            step = d * diff
            if newton:
                near = (row_res < NEWTON_START) & (retry_at[active] <= it)
                if near.any():
                    tried = active[near]
                    moved = self._newton(tried, state[near], z[near], diff[near],
                                         row_res[near], settle, M,
                                         None if not per_copy else copy_of, drive)
                    # A row whose Newton step failed waits a few damped steps before the
                    # next try (solves cost far more than damped steps).
                    retry_at[tried] = it + NEWTON_RETRY
                    if moved is not None:
                        rows_moved, new_states = moved
                        retry_at[rows_moved] = it + 1
                        newtoned[rows_moved] = True
                        S[rows_moved] = new_states
                        # Rows that took a Newton step do not also take the damped one.
                        step[np.isin(active, rows_moved)] = 0.0
            if active.size == R:
                S[:, settle_idx] += step
            else:
                S[active[:, None], settle[None, :]] += step
        s[...] = S.reshape(s.shape)                  # (a no-op when S is a view of s)
        if newtoned.any():
            rows = np.flatnonzero(newtoned)
            self._check_stable(drive(rows, S[rows]), M if not per_copy else M[copy_of[rows]],
                               phase, beta)
        z_all = np.matmul(s, W) + b
        if extra is not None:
            z_all += extra
        if nudge:
            z_all[..., self._out] -= coef * (s[..., self._out] - y)
        return s, z_all, it, residual

    def _newton(self, rows, state, z, diff, row_res, settle, M, copy_of, drive):
        """One Newton step on ``s - rho(z(s)) = 0`` for ``rows`` (flat row indices).

        Jacobian ``I - diag(rho'(z)) M``. Only rows where the linearised dynamics attract
        (``I - D^1/2 M D^1/2`` positive definite) try it: near a saddle Newton would pull a
        row onto it while the dynamics leave it. A row keeps its step only if that lowers its
        residual (a hard sigmoid can change its active set; a row far from its fixed point
        can overshoot). Returns ``(rows, new states)`` of the rows that moved, or None.
        """
        act = self.activation
        Mr = M if copy_of is None else M[copy_of[rows]]
        Dr = _rho_prime(z, act)
        h = np.sqrt(Dr)
        Sym = np.eye(settle.size) - h[:, :, None] * Mr * h[:, None, :]
        try:
            np.linalg.cholesky(Sym)
        except np.linalg.LinAlgError:
            stable = np.linalg.eigvalsh(Sym)[:, 0] > 0.0
            if not stable.any():
                return None
            rows, state, diff, row_res, Dr = (rows[stable], state[stable], diff[stable],
                                              row_res[stable], Dr[stable])
            Mr = Mr if Mr.ndim == 2 else Mr[stable]
        J = np.eye(settle.size) - Dr[:, :, None] * Mr
        try:
            with np.errstate(all="ignore"):
                step = np.linalg.solve(J, diff[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            return None
        trial = state.copy()
        trial[:, settle] += np.where(np.isfinite(step), step, 0.0)
        if act != "tanh":
            trial[:, settle] = np.clip(trial[:, settle], 0.0, 1.0)
        new_res = np.max(np.abs(_rho(drive(rows, trial), act) - trial[:, settle]), axis=1)
        better = new_res < row_res
        if not better.any():
            return None
        return rows[better], trial[better]

    def _check_stable(self, z, Mb, phase, beta, start=False):
        """Raise unless the fixed point attracts the settling dynamics.

        ``ds/dt = rho(z(s)) - s`` is stable at a fixed point when every eigenvalue of
        ``diag(rho') M`` is below 1, i.e. when ``I - D^(1/2) M D^(1/2)`` is positive
        definite (``M`` symmetric). Newton's method can land on an unstable fixed point
        (a nudged phase whose branch the dynamics leave); the damped iteration cannot.
        """
        h = np.sqrt(_rho_prime(z, self.activation))
        S = np.eye(h.shape[-1]) - h[..., :, None] * Mb * h[..., None, :]
        lowest = float(np.min(np.linalg.eigvalsh(S)))
        if lowest < -1e-10 and start:
            raise ConvergenceError(
                f"the {phase} phase (beta={beta:g}) makes the free fixed point unstable "
                f"(lowest eigenvalue of I - D^1/2 M D^1/2 is {lowest:.3g}): the nudge's "
                "positive feedback on the outputs runs the dynamics away from the free "
                "fixed point's branch, so this phase is not one to learn from; lower beta")
        if lowest < -1e-10:
            raise ConvergenceError(
                f"the {phase} phase (beta={beta:g}) found only an unstable fixed point "
                f"(lowest eigenvalue of I - D^1/2 M D^1/2 is {lowest:.3g}): the settling "
                "dynamics run away from it, so it is not a phase to learn from; lower beta")

    def settle(self, params, x, y=None, beta=0.0, u0=None, *, clamp=False, phase=None):
        r"""Settle the free units to a fixed point of :math:`F = E + \beta C`.

        Parameters
        ----------
        params : dict
        x : array, shape (B, n_in) or (n_in,)
            Input activities, clamped.
        y : array, shape (B, n_out) or (n_out,), optional
            Targets; needed when ``beta != 0`` or ``clamp``.
        beta : float
            Nudging strength (0: free phase; negative: the ``-beta`` phase of symmetric
            nudging).
        u0 : array, shape (B, N), optional
            Starting activities (the free fixed point for a nudged phase); all-zero free
            units by default. Input columns are overwritten with ``x``.
        clamp : bool
            Clamp the outputs to ``y`` (the clamped phase of CHL and GeneRec) instead of
            nudging them; ``beta`` must then be 0.
        phase : str, optional
            Name of the phase in error messages.

        Returns
        -------
        states : ndarray, shape (B, N) or (N,)
            Fixed-point activities, inputs equal to ``x``.
        info : dict
            ``"iterations"`` (int), ``"residual"`` (max fixed-point residual, < ``tol``),
            ``"preactivation"`` (B, N): ``z`` at the fixed point.

        Raises
        ------
        ConvergenceError
            When the phase does not reach the tolerance within ``max_iter`` iterations or its
            states become non-finite; the message names the phase and ``beta``.
        """
        W, b = self._arrays(params)
        x2, single = self._x(x)
        if not isinstance(beta, (int, float, np.floating)) or isinstance(beta, bool) or \
                not np.isfinite(beta):
            raise TypeError(f"beta must be a finite real number, got {beta!r}")
        if clamp and beta != 0.0:
            raise ValueError("clamp=True clamps the outputs: beta must be 0")
        y2 = None
        if y is not None:
            y2 = self._y(y, x2.shape[0])
        elif beta != 0.0 or clamp:
            raise ValueError("y is required for a nudged (beta != 0) or clamped phase")
        if u0 is not None and single:
            u0 = np.asarray(u0)[None, :] if np.ndim(u0) == 1 else u0
        s = self._start(x2, u0)
        name = phase or ("clamped" if clamp else "free" if beta == 0.0 else "nudged")
        s, z, it, res = self._relax(W, b, s, y=y2, beta=float(beta), clamp=clamp, phase=name)
        info = {"iterations": it, "residual": res, "preactivation": z[0] if single else z}
        return (s[0] if single else s), info

    def energy(self, params, states, y=None, beta=0.0) -> np.ndarray:
        r"""Total energy :math:`F = E + \beta C` of each row of ``states`` (..., N).

        :math:`E(s) = \sum_{\mathrm{free}} G(s_i) - \tfrac12 s^\top W s - b_{\mathrm{free}}^\top
        s_{\mathrm{free}}` with :math:`G(s) = s^2/2` (hard sigmoid, on [0, 1]) or
        :math:`s\,\mathrm{artanh}\, s + \tfrac12 \log(1 - s^2)` (tanh); :math:`C =
        \lVert s_{\mathrm{out}} - y \rVert^2 / n_{out}`. The free units' fixed points of
        :meth:`settle` are its stationary points (local minima when stable).
        """
        W, b = self._arrays(params)
        s = as_float_array(states, "states", dtype=np.float64)
        if s.shape[-1] != self.n_units:
            raise ValueError(f"states must have {self.n_units} units in the last axis, got "
                             f"{s.shape}")
        free = s[..., self._free]
        E = (_g(free, self.activation).sum(-1) - 0.5 * np.einsum("...i,ij,...j->...", s, W, s)
             - free @ b[self._free])
        if isinstance(beta, bool) or not isinstance(beta, (int, float, np.floating)) or \
                not np.isfinite(beta):
            raise TypeError(f"beta must be a finite real number, got {beta!r}")
        if beta != 0.0:
            if y is None:
                raise ValueError("y is required for beta != 0")
            y = as_float_array(y, "y", dtype=np.float64)
            if y.shape[-1] != self.n_out or y.ndim > s.ndim:
                raise ValueError(f"y must have {self.n_out} outputs in its last axis and no "
                                 f"more leading axes than states {s.shape}, got {y.shape}")
            E = E + beta * self._cost(s, y)
        return E

    def _cost(self, s, y):
        """Per-sample cost C = ||s_out - y||^2 / n_out, shape s.shape[:-1]."""
        return np.mean((s[..., self._out] - y) ** 2, axis=-1)

    def loss(self, params, data, state=None) -> float:
        """Mean squared error of the outputs at the free fixed point, over samples and
        outputs (``state``: optional starting activities ``u0``)."""
        x, y = self._data(data)
        s, _ = self.settle(params, x, u0=state)
        return float(np.mean(self._cost(s, y)))

    def predict(self, params, x, u0=None) -> np.ndarray:
        """Output activities at the free fixed point: ``x`` (B, n_in) -> (B, n_out)
        (``(n_in,)`` -> ``(n_out,)``)."""
        s, _ = self.settle(params, x, u0=u0)
        return s[..., self._out]

    def step(self, params, state, u=None, *, rng=None):
        """One settling iteration of the free phase: ``s <- (1 - d) s + d rho(W s + b)`` on
        the free units, inputs clamped to ``u`` (n_in,) or (B, n_in). ``state`` (N,) or
        (B, N)."""
        W, b = self._arrays(params)
        state = as_float_array(state, "state", ndim=(1, 2), dtype=np.float64)
        if state.shape[-1] != self.n_units:
            raise ValueError(f"state must have {self.n_units} units in its last axis, got "
                             f"{state.shape}")
        if u is None:
            raise ValueError(f"u is required: the {self.n_in} input unit(s) are clamped to it")
        u = as_float_array(u, "u", dtype=np.float64)
        if u.shape != state.shape[:-1] + (self.n_in,):
            raise ValueError(f"u must have shape {state.shape[:-1] + (self.n_in,)}, got "
                             f"{u.shape}")
        return self._iterate(W, b, state, u)

    def _iterate(self, W, b, state, u):
        """:meth:`step` on validated arrays."""
        s = state.copy()
        s[..., self._inp] = u
        f = self._free
        z = s @ W[:, f] + b[f]
        s[..., f] += self.damping * (_rho(z, self.activation) - s[..., f])
        return s

    def run(self, params, inputs, state=None, *, steps=100, rng=None):
        """``steps`` settling iterations with the inputs clamped (no convergence check).

        Returns ``(states, state)``: the trajectory (steps, [B,] N) and its last state.
        """
        check_positive(steps, "steps", integer=True)
        x2, single = self._x(inputs)
        s = self._start(x2, None if state is None else
                        (np.asarray(state)[None, :] if np.ndim(state) == 1 else state))
        s = s[0] if single else s
        # One validation for the whole run (the first step), then the bare iteration.
        s = self.step(params, s, inputs)
        W, b = self._arrays(params)
        u = np.asarray(inputs, dtype=np.float64)
        out = [s]
        for _ in range(steps - 1):
            s = self._iterate(W, b, s, u)
            out.append(s)
        return np.stack(out), s

    # -- evidence -------------------------------------------------------------------------
    def _trace(self, s, z, y) -> ev.ActivityTrace:
        ones = np.ones((s.shape[0], 1))
        return ev.ActivityTrace(pre={"W": s, "b": ones}, post={"W": s, "b": s}, target=y,
                                preactivation=z, masks={"W": self._mask})

    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        r"""Collect the evidence a rule asked for, from one free phase and what it needs.

        Parameters
        ----------
        params : dict
        data : (x, y)
            ``x`` (B, n_in), ``y`` (B, n_out).
        requires : request or tuple of requests
            - :class:`~recur.rules.TwoPhase` ``(beta, clamp, symmetric)`` ->
              :class:`~recur.rules.Phases`: ``free`` at the free fixed point, ``nudged`` at
              the ``+beta`` fixed point (or with the outputs clamped to ``y`` when
              ``clamp``; then ``beta`` is None), ``nudged_minus`` at ``-beta`` when
              ``symmetric``. Each trace has ``pre["W"] = post["W"] = s`` (B, N),
              ``pre["b"]`` ones (B, 1), ``post["b"] = s``, ``target = y``,
              ``preactivation = z`` and ``masks["W"]`` the symmetrised graph (zero
              diagonal). GeneRec reads the free (minus) phase's ``pre`` and both phases'
              ``post``.
            - :class:`~recur.rules.Gradient` -> ``{"W", "b"}``: the exact gradient of the
              loss through the free fixed point (recurrent backpropagation; see
              :func:`recur.networks.energy_gradient.fixed_point_gradient`), tied-symmetric.
            - :class:`~recur.rules.Perturbed` -> :class:`~recur.rules.Perturbations`
              (see :func:`recur.networks.energy_gradient.energy_perturbations`).
            - :class:`~recur.rules.Activity` -> the free phase's trace (for Hebbian rules).
        state : array (B, N), optional
            Starting activities of the free phase (``u0``). The evidence's ``state`` is None:
            every collection starts afresh, so the loss is a function of the parameters.
        rng : None, int or Generator
            Draws the perturbations.

        Returns
        -------
        Evidence
            ``loss`` is the mean squared error at the free fixed point.

        Raises
        ------
        ConvergenceError
            When any phase fails to settle (e.g. the ``-beta`` phase at large ``beta``):
            no evidence is returned, so no update can be made from it.
        """
        from .energy_gradient import energy_perturbations, fixed_point_gradient

        requests = ev.as_requests(requires)
        rng = np.random.default_rng(rng)
        W, b = self._arrays(params)
        x, y = self._data(data)
        s0 = self._start(x, state)
        s0, z0, _, _ = self._relax(W, b, s0, phase="free")
        loss = float(np.mean(self._cost(s0, y)))
        free_trace = self._trace(s0, z0, y)
        results = {}
        for req in requests:
            if isinstance(req, ev.TwoPhase):
                results[req] = self._phases(W, b, s0, free_trace, y, req)
            elif isinstance(req, ev.Gradient):
                results[req] = fixed_point_gradient(self, W, s0, z0, y)
            elif isinstance(req, ev.Perturbed):
                results[req] = energy_perturbations(self, W, b, s0, loss, y, req, rng)
            elif isinstance(req, ev.Activity):
                results[req] = free_trace
            else:
                raise NotImplementedError(f"EnergyNet cannot collect {type(req).__name__} "
                                          "evidence (it provides TwoPhase, Gradient, Perturbed "
                                          "and Activity)")
        return ev.Evidence(loss=loss, results=results, state=None)

    def _phases(self, W, b, s0, free_trace, y, req) -> ev.Phases:
        if req.clamp:
            if req.symmetric:
                raise ValueError("TwoPhase(clamp=True) clamps the outputs; symmetric nudging "
                                 "needs clamp=False")
            s, z, _, _ = self._relax(W, b, s0.copy(), y=y, clamp=True, phase="clamped")
            return ev.Phases(free=free_trace, nudged=self._trace(s, z, y), beta=None)
        beta = float(req.beta)
        s, z, _, _ = self._relax(W, b, s0.copy(), y=y, beta=beta, phase="nudged (+beta)")
        minus = None
        if req.symmetric:
            sm, zm, _, _ = self._relax(W, b, s0.copy(), y=y, beta=-beta,
                                       phase="nudged (-beta)")
            minus = self._trace(sm, zm, y)
        return ev.Phases(free=free_trace, nudged=self._trace(s, z, y), nudged_minus=minus,
                         beta=beta)
