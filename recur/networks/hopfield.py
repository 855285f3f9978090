r"""Hopfield network: binary +-1 units with symmetric couplings on any undirected graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .. import kernels
from ..rules import evidence as ev
from ..topology import Topology
from ..validation import as_float_array, check_positive
from . import hopfield_recall as hr
from .symmetric import check_symmetric_params, symmetric_on_graph, symmetrized

__all__ = ["Hopfield"]

_MODES = ("async", "sync")


@dataclass(frozen=True, eq=False)
class Hopfield:
    r"""Hopfield network: +-1 units, symmetric weights on the graph, sign dynamics.

    .. math::

        h = W s + b, \qquad s_i \leftarrow \operatorname{sign}(h_i), \qquad
        E(s) = -\tfrac12 s^\top W s - b^\top s

    ``W[i, j]`` is the weight from unit ``j`` onto unit ``i`` (``W[post, pre]``; a networkx
    edge ``(u, v)`` is ``W[v, u]``, ``W = A.T``). A unit whose field is zero keeps its state
    (see :mod:`recur.networks.hopfield_recall` for the tolerance that defines zero).

    Parameters
    ----------
    topology : Topology
        The graph. An undirected graph couples each edge's two units both ways. A directed
        graph is accepted only when its mask is symmetric (every edge ``u -> v`` has its
        ``v -> u``): the energy, and with it the guarantee that asynchronous recall settles,
        exists only for symmetric couplings, and silently adding the missing reverse edges
        would change the graph the caller asked for. Self-loops are ignored: the diagonal of
        ``W`` belongs to the storage rule's diagonal policy, not to the graph.
    init_scale : float >= 0
        ``init`` draws symmetric ``N(0, init_scale**2)`` weights on the edges (0: all zero,
        the usual start of one-shot storage).
    backend : {"auto", "numba", "numpy"}
        Kernel of asynchronous recall; both give the same states from the same ``rng``.

    Notes
    -----
    ``params`` holds ``"W"`` (N, N) dense, symmetric and zero off the graph, and ``"b"`` (N,).
    The diagonal is zero unless a storage rule with ``diagonal="keep"``
    (:func:`~recur.rules.storkey`, :func:`~recur.rules.pseudo_inverse`) wrote one;
    :meth:`constrain` leaves the diagonal alone, so that policy survives :func:`recur.train`.
    Asynchronous recall is guaranteed to settle (and never to raise the energy) when the
    diagonal is non-negative, as the zero, Hebbian and projection diagonals are.

    Storage. :meth:`store` (one shot) and :func:`recur.train` (repeated) apply a storage rule
    to the patterns passed as ``data`` (an array (P, N) of +-1):
    :func:`~recur.rules.hebbian` (through :class:`~recur.rules.Activity`, with
    ``pre = post = patterns``, so ``learning_rate=1`` stores
    :math:`\frac1P\sum_\mu \xi^\mu \xi^{\mu\top}` on the graph with a zero diagonal),
    :func:`~recur.rules.storkey` and :func:`~recur.rules.pseudo_inverse` (through
    :class:`~recur.rules.Patterns`).

    References
    ----------
    .. [1] J. J. Hopfield, "Neural networks and physical systems with emergent collective
       computational abilities", PNAS 79:2554-2558 (1982).
    .. [2] D. J. Amit, H. Gutfreund & H. Sompolinsky, "Storing infinite numbers of patterns
       in a spin-glass model of neural networks", Phys. Rev. Lett. 55:1530-1533 (1985).
    """

    topology: Topology
    init_scale: float = 0.0
    backend: str = "auto"
    _mask: np.ndarray = field(init=False, repr=False)
    _allowed: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.topology, Topology):
            raise TypeError(f"topology must be a recur.Topology, got "
                            f"{type(self.topology).__name__}")
        check_positive(self.init_scale, "init_scale", strict=False)
        kernels.resolve_backend(self.backend)
        m = self.topology.mask
        one_way = sp.coo_array(m.astype(np.int8) - m.T.astype(np.int8) > 0)
        if one_way.nnz:
            post, pre = int(one_way.row[0]), int(one_way.col[0])
            nodes = self.topology.nodelist
            raise ValueError(
                f"topology must have symmetric connections (an undirected graph, or a directed "
                f"one whose every edge has its reverse): a Hopfield network's couplings are "
                f"symmetric; the edge {nodes[pre]!r} -> {nodes[post]!r} has no reverse")
        mask = m.toarray()
        np.fill_diagonal(mask, False)
        mask.setflags(write=False)
        object.__setattr__(self, "_mask", mask)
        # Where W may be nonzero: the graph, and the diagonal (a storage rule may keep it).
        allowed = mask.copy()
        np.fill_diagonal(allowed, True)
        allowed.setflags(write=False)
        object.__setattr__(self, "_allowed", allowed)

    # -- structure ------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units N."""
        return self.topology.n_units

    @property
    def mask(self) -> np.ndarray:
        """Connection mask, symmetric with a zero diagonal, shape (N, N), bool."""
        return self._mask.copy()

    # -- parameters -----------------------------------------------------------------------
    def init(self, rng=None) -> dict:
        """Parameters: ``W`` zero (or symmetric ``N(0, init_scale**2)`` on the edges), ``b = 0``.

        Returns
        -------
        dict with ``"W"`` (N, N) and ``"b"`` (N,)
        """
        rng = np.random.default_rng(rng)
        N = self.n_units
        if self.init_scale == 0:
            return {"W": np.zeros((N, N)), "b": np.zeros(N)}
        W = symmetric_on_graph(self._mask, lambda i, j: rng.normal(0.0, self.init_scale, i.size))
        return {"W": W, "b": np.zeros(N)}

    def check_params(self, params) -> None:
        """Raise unless ``params`` has a finite, symmetric, on-graph ``W`` and a ``b``
        (:func:`~recur.networks.symmetric.check_symmetric_params`; the diagonal may be
        nonzero, as a storage rule's ``diagonal="keep"`` leaves it).

        Raises
        ------
        TypeError, ValueError
            Wrong type or shape, a non-symmetric ``W``, or weights off the graph.
        DivergenceError
            NaN or inf.
        """
        check_symmetric_params(params, self._allowed, "a Hopfield network")

    def constrain(self, params):
        """Symmetrise ``W`` and zero it off the graph (the diagonal is left as it is)."""
        return symmetrized(params, self._allowed)

    def _arrays(self, params):
        self.check_params(params)
        return (np.asarray(params["W"], dtype=np.float64),
                np.asarray(params["b"], dtype=np.float64))

    def _states(self, x, name):
        """``x`` as float +-1 rows (B, N), and whether a single row was given."""
        s = as_float_array(x, name, ndim=(1, 2), dtype=np.float64)
        single = s.ndim == 1
        s = s.reshape(1, -1) if single else s
        if s.shape[1] != self.n_units:
            raise ValueError(f"{name} must have length {self.n_units} (one entry per unit), got "
                             f"shape {np.shape(x)}")
        if not np.all(np.abs(s) == 1.0):
            raise ValueError(f"{name} must hold +1/-1 values only")
        return s, single

    def _patterns(self, data):
        p, _ = self._states(data, "patterns")
        if p.shape[0] == 0:
            raise ValueError("patterns has no rows")
        return p

    # -- dynamics -------------------------------------------------------------------------
    def energy(self, params, s):
        r""":math:`E(s) = -\tfrac12 s^\top W s - b^\top s` of each row.

        Parameters
        ----------
        params : dict
        s : array, shape (N,) or (B, N), of +-1

        Returns
        -------
        float or ndarray, shape (B,)
        """
        W, b = self._arrays(params)
        S, single = self._states(s, "s")
        E = -0.5 * np.einsum("bi,bi->b", S @ W.T, S) - S @ b
        return float(E[0]) if single else E

    def recall(self, params, probes, *, mode="async", max_sweeps=100, rng=None,
               return_sweeps=False):
        r"""Run the sign dynamics from each probe until it stops changing.

        ``mode="sync"``: every unit at once, :math:`S \leftarrow \operatorname{sign}(S W^\top
        + b)`, one matrix product per sweep for all probes still moving (it may end in a
        2-cycle; then it stops at ``max_sweeps``). ``mode="async"``: each sweep visits every
        unit once, in a fresh random order per probe and sweep, updating one unit at a time
        (it settles in a fixed point, with the energy falling at every flip, when ``W`` has
        a non-negative diagonal). A unit with a zero field keeps its state in both modes.

        Parameters
        ----------
        params : dict
        probes : array, shape (N,) or (B, N), of +-1
            Starting states (cues), vectorised over rows.
        mode : {"async", "sync"}
        max_sweeps : int >= 1
        rng : None, int or Generator
            Visiting orders of asynchronous recall (unused by ``"sync"``).
        return_sweeps : bool
            Also return the number of sweeps that changed each probe.

        Returns
        -------
        states : ndarray, shape like ``probes``, of +-1
        sweeps : ndarray of int, shape (B,) or int
            Only with ``return_sweeps``; 0 for a probe that was already a fixed point,
            ``max_sweeps`` for one that may not have settled.

        Notes
        -----
        A probe's asynchronous orders come from the one stream ``rng`` shared by the batch,
        drawn sweep by sweep for the probes still moving: the same ``rng`` and probes give
        the same result on either backend, but a probe's trajectory depends on the batch it
        was recalled with.
        """
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        check_positive(max_sweeps, "max_sweeps", integer=True)
        W, b = self._arrays(params)
        S, single = self._states(probes, "probes")
        if mode == "sync":
            out, sweeps = hr.sync_sweeps(W, b, S, max_sweeps)
        else:
            out, sweeps = hr.async_recall(W, b, S, max_sweeps, np.random.default_rng(rng),
                                          backend=self.backend)
        if single:
            out, sweeps = out[0], int(sweeps[0])
        return (out, sweeps) if return_sweeps else out

    def initial_state(self, batch=None) -> np.ndarray:
        """All units at +1, shape (N,) or (batch, N)."""
        if batch is None:
            return np.ones(self.n_units)
        return np.ones((check_positive(batch, "batch", integer=True), self.n_units))

    def step(self, params, state, u=None, *, mode="sync", rng=None):
        """One sweep (synchronous by default) from ``state`` (N,) or (B, N); ``u`` is unused
        (a Hopfield network has no input)."""
        return self.run(params, 1, state, mode=mode, rng=rng)[1]

    def run(self, params, steps, state=None, *, mode="sync", rng=None):
        """Run ``steps`` sweeps and return every state.

        Parameters
        ----------
        params : dict
        steps : int >= 1
            Sweeps (each one synchronous update, or one asynchronous sweep).
        state : array, shape (N,) or (B, N), of +-1, optional
            Defaults to :meth:`initial_state`.
        mode : {"sync", "async"}
        rng : None, int or Generator

        Returns
        -------
        states : ndarray, shape (steps, N) or (B, steps, N)
        state : ndarray, shape (N,) or (B, N)
        """
        check_positive(steps, "steps", integer=True)
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        W, b = self._arrays(params)
        S, single = self._states(self.initial_state() if state is None else state, "state")
        rng = np.random.default_rng(rng)
        S = np.array(S, dtype=np.float64, order="C")  # swept in place: never the caller's
        out = np.empty((S.shape[0], steps, self.n_units))
        if mode == "async":
            WT = np.ascontiguousarray(W.T)
            tol = hr.tie_tolerance(W, b)
            base = np.arange(self.n_units)
            H = np.ascontiguousarray(S @ WT + b)  # kept current in place by every sweep
        for t in range(steps):
            if mode == "sync":
                S, _ = hr.sync_sweeps(W, b, S, 1, stop=False)
            else:
                orders = rng.permuted(np.broadcast_to(base, S.shape), axis=1)
                hr.async_sweep(W, b, S, H, orders, backend=self.backend, WT=WT, tol=tol)
            out[:, t] = S
        return (out[0], S[0]) if single else (out, S)

    # -- learning -------------------------------------------------------------------------
    def loss(self, params, data, state=None) -> float:
        r"""Fraction of pattern bits that one synchronous update would not keep.

        .. math::

            L = \frac{1}{PN} \sum_{\mu, i} [\, \xi^\mu_i h^\mu_i \le 0 \,], \qquad
            h^\mu = W \xi^\mu + b

        A bit whose field is zero (within the tie tolerance) counts as *not* kept: the sign
        dynamics would leave it alone, but nothing holds it there, and counting it as kept
        would give the empty network (every field zero) a perfect loss of 0. ``L = 0`` means
        every pattern is a fixed point held by nonzero fields. One matrix product.

        Parameters
        ----------
        params : dict
        data : array, shape (P, N) or (N,), of +-1
            The patterns.
        """
        W, b = self._arrays(params)
        return self._loss(W, b, self._patterns(data))

    @staticmethod
    def _loss(W, b, xi):
        H = hr.fields(W, b, xi)
        return float(np.mean(xi * H <= hr.tie_tolerance(W, b)))

    def fixed_points(self, params, patterns) -> np.ndarray:
        """Per pattern, whether it is an exact fixed point of the dynamics (every bit's field
        agrees with it or is a tie), shape (P,) of bool."""
        W, b = self._arrays(params)
        xi = self._patterns(patterns)
        H = hr.fields(W, b, xi)
        return np.all(xi * H >= -hr.tie_tolerance(W, b), axis=1)

    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        """Collect what a storage rule needs from the patterns ``data`` (P, N) of +-1.

        Serves :class:`~recur.rules.Activity` (an :class:`~recur.rules.ActivityTrace` with
        ``pre = post = {"W": patterns}`` and the zero-diagonal graph mask, so a Hebbian rule
        stores outer products on the graph) and :class:`~recur.rules.Patterns` (a
        :class:`~recur.rules.PatternSet`). ``Evidence.loss`` is :meth:`loss`; ``state`` is
        passed through.

        Raises
        ------
        NotImplementedError
            For any other request.
        """
        W, b = self._arrays(params)
        xi = self._patterns(data)
        results = {}
        for req in ev.as_requests(requires):
            if isinstance(req, ev.Activity):
                results[req] = ev.ActivityTrace(pre={"W": xi}, post={"W": xi},
                                                masks={"W": self._mask})
            elif isinstance(req, ev.Patterns):
                results[req] = ev.PatternSet(patterns=xi, mask=self._mask)
            else:
                raise NotImplementedError(f"Hopfield collects Activity and Patterns evidence, "
                                          f"not {type(req).__name__}")
        return ev.Evidence(loss=self._loss(W, b, xi), results=results, state=state)

    def store(self, params, patterns, rule=None, *, rng=None):
        r"""Store ``patterns`` in one shot with a storage rule; returns new params.

        Collects what ``rule`` requires, takes one ``rule.update`` and applies it with
        :func:`~recur.rules.apply_updates`, then :meth:`constrain`. ``params`` is not
        modified.

        Parameters
        ----------
        params : dict
        patterns : array, shape (P, N) or (N,), of +-1
        rule : Rule, optional
            Default :func:`recur.rules.hebbian` (``learning_rate=1``): adds
            :math:`\frac1P \sum_\mu \xi^\mu \xi^{\mu\top}` on the graph.
        rng : None, int or Generator
            Passed to the rule.

        Returns
        -------
        dict
        """
        from ..rules import hebbian
        from ..rules.rule import Rule, apply_updates

        if rule is None:
            rule = hebbian()
        if not isinstance(rule, Rule):
            raise TypeError(f"rule must be a recur Rule, got {type(rule).__name__}")
        if rule.is_transform:
            raise ValueError(f"{rule.name} is a transform, not a storage rule")
        rng = np.random.default_rng(rng)
        evidence = self.collect(params, patterns, rule.requests, rng=rng)
        updates, _ = rule.update(evidence, rule.init(params), params, rng=rng)
        new = self.constrain(apply_updates(params, updates))
        self.check_params(new)
        return new
