r"""Boltzmann machine: stochastic binary units with visible and hidden roles on any graph."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import kernels
from ..rules import evidence as ev
from ..topology import Topology
from ..validation import as_float_array, check_positive
from . import boltzmann_sampling as bs
from .symmetric import (check_symmetric_params, invariant_holds, symmetric_on_graph,
                        symmetrized)

__all__ = ["Boltzmann"]

_SAMPLERS = ("auto", "blocked", "sequential")
_LOSSES = ("auto", "nll", "reconstruction")

#: Exact enumeration refuses to visit more than 2**MAX_ENUMERATED_UNITS configurations.
MAX_ENUMERATED_UNITS = 20
#: ``loss="auto"`` computes the exact negative log-likelihood when it enumerates at most
#: 2**AUTO_NLL_UNITS configurations (well under a millisecond), else the reconstruction error.
AUTO_NLL_UNITS = 12


@dataclass(frozen=True, eq=False)
class Boltzmann:
    r"""Boltzmann machine: stochastic 0/1 units on a symmetric graph, some of them visible.

    .. math::

        E(s) = -\tfrac12 s^\top W s - b^\top s, \qquad
        p(s) = \frac{e^{-E(s)/T}}{Z}, \qquad
        p(s_i = 1 \mid s_{\setminus i}) = \sigma\Big(\frac{\sum_j W_{ij} s_j + b_i}{T}\Big)

    ``W[i, j]`` is the weight between units ``i`` and ``j`` (``W[post, pre]``; a networkx
    edge ``(u, v)`` is ``W[v, u]``, ``W = A.T``). The graph is symmetrised (every edge couples
    its two units both ways, ``W = W^T``) and self-loops are dropped (zero diagonal). The
    model of the data is the visible marginal :math:`p(v) = \sum_h p(v, h)`.

    Sampling. Statistics are collected by Gibbs sampling vectorised over chains: each chain
    runs the annealing schedule ``anneal`` (pairs ``(sweeps, temperature)``, Ackley, Hinton &
    Sejnowski style), then ``burn_in`` sweeps at ``temperature``, then ``sample_sweeps``
    sweeps at ``temperature`` whose states are the samples. A graph with no visible-visible
    and no hidden-hidden edges (a restricted Boltzmann machine) is sampled by blocked Gibbs
    (all hidden units given the visible ones, then all visible units), with one matrix
    product per block over all chains; any other graph by sequential Gibbs in a random unit
    order drawn per sweep (a compiled kernel when numba is installed).

    Parameters
    ----------
    topology : Topology
        The graph. Visible units are ``topology.roles["visible"]`` unless ``visible`` is
        given; every other unit is hidden.
    visible : sequence of node labels, optional
        The visible units (overrides the topology's role).
    temperature : float > 0
        :math:`T` of the model, at which statistics are sampled.
    anneal : sequence of (int, float) pairs
        Sweeps and temperature of each annealing stage run before ``burn_in``; e.g. AHS's
        ``((2, 20), (2, 15), (2, 12))`` with ``temperature=10``.
    burn_in : int >= 0
        Sweeps at ``temperature`` after annealing, before samples are kept.
    sample_sweeps : int >= 1
        Sweeps at ``temperature`` whose states are kept as samples (per chain).
    clamp_noise : (float, float)
        Noisy clamping (AHS): the probability that a visible unit that should be on is
        clamped off, and that one that should be off is clamped on, drawn anew for every
        clamped presentation in the wake phase. ``(0, 0)`` clamps exactly.
    init_scale : float >= 0
        Initial weights on the edges are ``N(0, init_scale**2)``; biases start at 0.
    sampler : {"auto", "blocked", "sequential"}
        ``"auto"``: blocked when the graph is bipartite between visible and hidden units.
    loss_kind : {"auto", "nll", "reconstruction"}
        What :meth:`loss` (and ``Evidence.loss``) reports. ``"nll"``: the exact mean negative
        log-likelihood per pattern, in nats, by enumeration. ``"reconstruction"``: a cheap
        proxy, the mean squared error of a deterministic reconstruction
        :math:`\hat v = \sigma((W_{vv} v + W_{vh} \bar h + b_v)/T)` with
        :math:`\bar h = \sigma((W_{hv} v + b_h)/T)` (hidden-hidden couplings ignored).
        ``"auto"``: ``"nll"`` when it enumerates at most ``2**AUTO_NLL_UNITS``
        configurations, else ``"reconstruction"`` (so a training loop is not dominated by
        its own bookkeeping).
    mean_field_tol : float > 0
        Convergence tolerance of the mean-field iteration (mode ``"mean_field"``).
    mean_field_max_sweeps : int >= 1
    backend : {"auto", "numba", "numpy"}
        Sequential Gibbs kernel; both give the same samples from the same ``rng``.

    Notes
    -----
    ``params`` holds ``"W"`` (N, N) dense, symmetric, zero off the graph and on the diagonal,
    and ``"b"`` (N,). The gradient of the mean log-likelihood of data is

    .. math::

        \frac{\partial \langle \log p(v) \rangle}{\partial w_{ij}}
        = \frac1T\big(\langle s_i s_j \rangle_{\text{wake}}
                     - \langle s_i s_j \rangle_{\text{sleep}}\big), \qquad
        \frac{\partial \langle \log p(v) \rangle}{\partial b_i}
        = \frac1T\big(\langle s_i \rangle_{\text{wake}} - \langle s_i \rangle_{\text{sleep}}\big)

    for the symmetric pair :math:`w_{ij} = W_{ij} = W_{ji}`; the wake average clamps the
    visible units to the data, the sleep average runs freely. :meth:`collect` returns both
    phases for :func:`recur.rules.boltzmann`. Its ``state`` is the persistent sleep chains
    (persistent CD), shape (n_chains, N); the class attribute ``state_persists = True`` tells
    a training loop to keep that state from one pass over the data to the next (the chains
    are not a position in a stream).

    The RBM fast path: the wake phase uses the exact ``p(h | v)`` (no sampling), and a CD-k
    or persistent-CD step of an exactly clamped RBM whose visible and hidden units are two
    contiguous ranges of the node order (as :func:`recur.graphs.bipartite_graph` makes them)
    runs as one fused pass, :func:`~recur.networks.boltzmann_sampling.rbm_phases`, compiled
    when numba is installed: on a small RBM the per-call overhead of a dozen array operations
    costs more than their arithmetic. That pass also computes both phases' moments (the
    means :func:`recur.rules.boltzmann` subtracts), so the rule does no matrix product of
    its own; on other networks :meth:`collect` computes them from the samples.

    References
    ----------
    .. [1] D. H. Ackley, G. E. Hinton & T. J. Sejnowski, "A learning algorithm for Boltzmann
       machines", Cognitive Science 9:147-169 (1985).
    .. [2] G. E. Hinton, "Training products of experts by minimizing contrastive divergence",
       Neural Computation 14:1771-1800 (2002).
    .. [3] T. Tieleman, "Training restricted Boltzmann machines using approximations to the
       likelihood gradient", ICML (2008).
    .. [4] C. Peterson & J. R. Anderson, "A mean field theory learning algorithm for neural
       networks", Complex Systems 1:995-1019 (1987).
    """

    topology: Topology
    visible: tuple | None = None
    temperature: float = 1.0
    anneal: tuple = ()
    burn_in: int = 10
    sample_sweeps: int = 10
    clamp_noise: tuple = (0.0, 0.0)
    init_scale: float = 0.01
    sampler: str = "auto"
    loss_kind: str = "auto"
    mean_field_tol: float = 1e-6
    mean_field_max_sweeps: int = 500
    backend: str = "auto"
    _vis: np.ndarray = field(init=False, repr=False)
    _hid: np.ndarray = field(init=False, repr=False)
    _mask: np.ndarray = field(init=False, repr=False)
    _bipartite: bool = field(init=False, repr=False)
    _cache: dict = field(init=False, repr=False)

    #: The sleep chains of persistent CD must outlive a pass over the data (see
    #: :func:`recur.train`): the state is not a position in a stream.
    state_persists = True

    def __post_init__(self):
        if not isinstance(self.topology, Topology):
            raise TypeError(f"topology must be a recur.Topology, got "
                            f"{type(self.topology).__name__}")
        check_positive(self.temperature, "temperature")
        anneal = self._check_anneal(self.anneal)
        object.__setattr__(self, "anneal", anneal)
        check_positive(self.burn_in, "burn_in", strict=False, integer=True)
        check_positive(self.sample_sweeps, "sample_sweeps", integer=True)
        noise = tuple(self.clamp_noise)
        if len(noise) != 2 or not all(
                isinstance(p, (int, float, np.floating)) and not isinstance(p, bool)
                and 0.0 <= p < 1.0 for p in noise):
            raise ValueError(f"clamp_noise must be a pair (p_on_to_off, p_off_to_on) of "
                             f"probabilities in [0, 1), got {self.clamp_noise!r}")
        object.__setattr__(self, "clamp_noise", noise)
        check_positive(self.init_scale, "init_scale", strict=False)
        if self.sampler not in _SAMPLERS:
            raise ValueError(f"sampler must be one of {_SAMPLERS}, got {self.sampler!r}")
        if self.loss_kind not in _LOSSES:
            raise ValueError(f"loss_kind must be one of {_LOSSES}, got {self.loss_kind!r}")
        check_positive(self.mean_field_tol, "mean_field_tol")
        check_positive(self.mean_field_max_sweeps, "mean_field_max_sweeps", integer=True)
        kernels.resolve_backend(self.backend)

        topo = self.topology
        if self.visible is not None:
            labels = [self.visible] if isinstance(self.visible, (str, bytes)) else \
                list(self.visible)
            vis = np.array(sorted({topo.index(node) for node in labels}), dtype=np.intp)
            object.__setattr__(self, "visible", tuple(labels))
        else:
            vis = np.asarray(topo.roles.get("visible", np.zeros(0, dtype=np.intp)),
                             dtype=np.intp)
        if vis.size == 0:
            raise ValueError("a Boltzmann machine needs visible units: give the topology "
                             "nodes with role 'visible' or pass visible=[node labels]")
        hid = np.setdiff1d(np.arange(topo.n_units), vis)
        mask = topo.mask.toarray()
        mask = mask | mask.T
        np.fill_diagonal(mask, False)
        bipartite = hid.size > 0 and not mask[np.ix_(vis, vis)].any() \
            and not mask[np.ix_(hid, hid)].any()
        if self.sampler == "blocked" and not bipartite:
            raise ValueError("sampler='blocked' needs a graph with no visible-visible and no "
                             "hidden-hidden edges (an RBM), and at least one hidden unit")
        object.__setattr__(self, "_vis", vis)
        object.__setattr__(self, "_hid", hid)
        object.__setattr__(self, "_mask", mask)
        object.__setattr__(self, "_bipartite", bool(bipartite))
        # Index tuples of the visible/hidden blocks of W, and (lazily) the enumeration splits.
        vs, hs = self._as_slice(vis), self._as_slice(hid)
        # Contiguous roles index W's blocks by slices: views, not the copies fancy indexing
        # makes on every call of a training loop.
        contiguous = isinstance(vs, slice) and isinstance(hs, slice)
        object.__setattr__(self, "_cache", {
            "hv": (hs, vs) if contiguous else np.ix_(hid, vis),
            "vh": (vs, hs) if contiguous else np.ix_(vis, hid),
            "vv": (vs, vs) if contiguous else np.ix_(vis, vis),
            "all": np.arange(topo.n_units), "vs": vs, "hs": hs,
            # CD on this network can run as one fused pass (rbm_phases): an RBM sampled by
            # blocks, clamped exactly, each role a contiguous range of units.
            "fused": bool(bipartite) and self.sampler != "sequential" and contiguous
            and self.clamp_noise == (0.0, 0.0),
            # Every visible-hidden pair a connection: the fused pass's moments need no mask.
            "complete": bool(hid.size) and bool(mask[np.ix_(vis, hid)].all()),
            "ones": np.ones((0, 1))})

    @staticmethod
    def _as_slice(idx):
        """A contiguous index range as a slice (basic indexing: views, no copies)."""
        if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
            return slice(int(idx[0]), int(idx[0]) + int(idx.size))
        return idx

    @staticmethod
    def _check_anneal(anneal):
        if anneal is None:
            return ()
        try:
            stages = [tuple(stage) for stage in anneal]
        except TypeError:
            raise TypeError(f"anneal must be a sequence of (sweeps, temperature) pairs, got "
                            f"{anneal!r}") from None
        for stage in stages:
            if len(stage) != 2:
                raise ValueError(f"anneal must be a sequence of (sweeps, temperature) pairs, "
                                 f"got the stage {stage!r}")
            check_positive(stage[0], "anneal sweeps", integer=True)
            check_positive(stage[1], "anneal temperature")
        return tuple(stages)

    # -- structure ------------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units N."""
        return self.topology.n_units

    @property
    def n_visible(self) -> int:
        """Number of visible units."""
        return int(self._vis.size)

    @property
    def n_hidden(self) -> int:
        """Number of hidden units."""
        return int(self._hid.size)

    @property
    def visible_units(self) -> np.ndarray:
        """Indices of the visible units (sorted)."""
        return self._vis.copy()

    @property
    def hidden_units(self) -> np.ndarray:
        """Indices of the hidden units (sorted)."""
        return self._hid.copy()

    @property
    def mask(self) -> np.ndarray:
        """Symmetric connection mask, zero diagonal, shape (N, N)."""
        return self._mask.copy()

    @property
    def is_rbm(self) -> bool:
        """True when no edge joins two visible or two hidden units."""
        return self._bipartite

    @property
    def uses_blocked_sampler(self) -> bool:
        """True when Gibbs sampling updates a whole layer at once (an RBM with ``sampler`` "auto" or "blocked")."""
        return self._bipartite and self.sampler != "sequential"

    # -- parameters -----------------------------------------------------------------------
    def init(self, rng=None) -> dict:
        """Draw parameters: ``W`` symmetric ``N(0, init_scale**2)`` on the edges, ``b = 0``.

        Returns
        -------
        dict with ``"W"`` (N, N) and ``"b"`` (N,)
        """
        rng = np.random.default_rng(rng)
        W = symmetric_on_graph(self._mask, lambda i, j: rng.normal(0.0, self.init_scale, i.size))
        return {"W": W, "b": np.zeros(self.n_units)}

    def initial_state(self, batch=None) -> np.ndarray:
        """All-off state, shape (N,) or (batch, N)."""
        if batch is None:
            return np.zeros(self.n_units)
        return np.zeros((check_positive(batch, "batch", integer=True), self.n_units))

    def check_params(self, params) -> None:
        """Raise if ``params`` does not fit this network: ``W`` dense, symmetric, zero off the
        graph and on the diagonal, ``b`` of length N, both finite
        (:func:`~recur.networks.symmetric.check_symmetric_params`)."""
        check_symmetric_params(params, self._mask, "a Boltzmann machine")

    def constrain(self, params):
        """Keep ``W`` symmetric, on the graph and with a zero diagonal."""
        return symmetrized(params, self._mask)

    def _arrays(self, params):
        if type(params) is dict:
            W, b = params.get("W"), params.get("b")
            if invariant_holds(W, b, self._mask):
                return W, b  # valid float64 arrays, checked in one pass
        self.check_params(params)
        W, b = params["W"], params["b"]
        if type(W) is np.ndarray and type(b) is np.ndarray and W.dtype == b.dtype == np.float64:
            return W, b
        return np.asarray(W, dtype=np.float64), np.asarray(b, dtype=np.float64)

    # -- energy and exact enumeration ------------------------------------------------------
    def energy(self, params, states) -> np.ndarray:
        r""":math:`E(s) = -\tfrac12 s^\top W s - b^\top s` of each row of ``states`` (..., N)."""
        W, b = self._arrays(params)
        s = as_float_array(states, "states")
        if s.shape[-1] != self.n_units:
            raise ValueError(f"states must have {self.n_units} units in the last axis, got "
                             f"shape {s.shape}")
        return -0.5 * np.einsum("...i,...i->...", s @ W, s) - s @ b

    def _split(self, conditional):
        """(enumerated, summed) units of log Z, or (``conditional``) of the hidden sum."""
        key = ("split", conditional)
        if key not in self._cache:
            free = self._hid if conditional else self._cache["all"]
            self._cache[key] = bs.split_enumeration(self._mask, free, (self._vis, self._hid))
        return self._cache[key]

    def _enumeration(self, conditional, max_units):
        enumerated, summed = self._split(conditional)
        check_positive(max_units, "max_units", integer=True)
        if enumerated.size > max_units:
            raise ValueError(
                f"exact enumeration would visit 2^{enumerated.size} configurations of "
                f"{enumerated.size} units (the rest summed analytically); the limit is "
                f"max_units={max_units} (at most {MAX_ENUMERATED_UNITS} by default): this "
                f"network is too large to enumerate")
        return enumerated, summed

    def enumerated_units(self, *, conditional=False) -> int:
        """How many units exact enumeration visits all configurations of: for
        :meth:`log_partition`, or (``conditional``) for the hidden sum given the visible."""
        return int(self._split(conditional)[0].size)

    def log_partition(self, params, *, max_units=MAX_ENUMERATED_UNITS) -> float:
        r"""Exact :math:`\log Z = \log \sum_s e^{-E(s)/T}` by enumeration.

        An independent set of units (for an RBM, the larger layer) is summed analytically,
        so an RBM costs :math:`2^{\min(n_v, n_h)}` configurations.

        Raises
        ------
        ValueError
            When more than ``max_units`` units would have to be enumerated.
        """
        W, b = self._arrays(params)
        enumerated, summed = self._enumeration(False, max_units)
        empty = np.zeros((1, 0))
        return float(bs.log_sum_exp_free(W, b, self.temperature, np.zeros(0, np.intp), empty,
                                         enumerated, summed)[0])

    def visible_log_probs(self, params, visible, *, max_units=MAX_ENUMERATED_UNITS,
                          log_partition=None) -> np.ndarray:
        r"""Exact :math:`\log p(v)` of each row of ``visible`` (P, n_visible), in nats.

        .. math::

            \log p(v) = \log \sum_h e^{-E(v, h)/T} - \log Z

        Parameters
        ----------
        params : dict
        visible : array, shape (P, n_visible) or (n_visible,), of 0/1
        max_units : int
            Limit on the enumerated units (see :meth:`log_partition`).
        log_partition : float, optional
            A :math:`\log Z` already computed for these params.

        Returns
        -------
        ndarray, shape (P,)
        """
        v = self._data(visible, "visible")
        W, b = self._arrays(params)
        logZ = self.log_partition(params, max_units=max_units) if log_partition is None \
            else float(log_partition)
        enumerated, summed = self._enumeration(True, max_units)
        num = bs.log_sum_exp_free(W, b, self.temperature, self._vis, v, enumerated, summed)
        return num - logZ

    def _loss_kind(self):
        if self.loss_kind != "auto":
            return self.loss_kind
        if "loss" not in self._cache:
            cost = max(self.enumerated_units(), self.enumerated_units(conditional=True))
            self._cache["loss"] = "nll" if cost <= AUTO_NLL_UNITS else "reconstruction"
        return self._cache["loss"]

    def loss(self, params, data, state=None) -> float:
        """Exact mean negative log-likelihood per pattern (nats) or the reconstruction
        error, as chosen by ``loss_kind``."""
        v = self._data(data, "data")
        W, b = self._arrays(params)
        return self._loss(W, b, v)

    def _loss(self, W, b, v, h=None):
        """The loss; ``h``: ``p(h | v)`` of an RBM's data, when already computed."""
        if self._loss_kind() == "nll":
            return float(-np.mean(self.visible_log_probs({"W": W, "b": b}, v)))
        ix = self._cache
        beta = 1.0 / self.temperature
        if h is None:
            h = bs.sigmoid((v @ W[ix["hv"]].T + b[ix["hs"]]) * beta)
        field_v = h @ W[ix["vh"]].T + b[ix["vs"]]
        if not self._bipartite:
            field_v = field_v + v @ W[ix["vv"]].T
        return float(np.mean((v - bs.sigmoid(field_v * beta)) ** 2))

    # -- sampling -------------------------------------------------------------------------
    def _data(self, data, name):
        if (type(data) is np.ndarray and data.dtype == np.float64 and data.ndim == 2
                and data.shape[0] and data.shape[1] == self._vis.size
                and bs.is_binary(data, backend=self.backend)):
            return data  # the common case, checked in one pass
        # The 0/1 check below also refuses NaN and inf: no separate finiteness pass.
        v = as_float_array(data, name, ndim=(1, 2), allow_nonfinite=True)
        v = v.reshape(1, -1) if v.ndim == 1 else v
        if v.shape[1] != self.n_visible:
            raise ValueError(f"{name} must have {self.n_visible} columns (one per visible "
                             f"unit), got shape {v.shape}")
        if v.shape[0] == 0:
            raise ValueError(f"{name} has no rows")
        if not np.all((v == 0.0) | (v == 1.0)):
            raise ValueError(f"{name} must hold 0/1 values (binary units)")
        return v

    def _schedule(self, n_record):
        temps = [T for sweeps, T in self.anneal for _ in range(sweeps)]
        temps += [self.temperature] * (self.burn_in + n_record)
        return np.asarray(temps, dtype=np.float64)

    def _sweeps(self, W, b, s, free, temps, n_record, rng):
        """Gibbs sweeps over ``free`` units, blocked for an RBM, sequential otherwise."""
        if self.uses_blocked_sampler:
            if free is self._hid:
                blocks = [self._hid]
            elif free is self._cache["all"]:
                blocks = [self._hid, self._vis]
            else:
                blocks = [np.intersect1d(self._hid, free), np.intersect1d(self._vis, free)]
            return bs.blocked_sweeps(W, b, s, blocks, temps, n_record, rng)
        return bs.sequential_sweeps(W, b, s, free, temps, n_record, rng, backend=self.backend)

    def _states(self, state, n_chains, name="state"):
        s = as_float_array(state, name, ndim=(1, 2))
        single = s.ndim == 1
        s = s.reshape(1, -1) if single else s
        if s.shape[1] != self.n_units:
            raise ValueError(f"{name} must have {self.n_units} units in its last axis, got "
                             f"shape {s.shape}")
        if not np.all((s == 0.0) | (s == 1.0)):
            raise ValueError(f"{name} must hold 0/1 values")
        if n_chains is not None and s.shape[0] != n_chains:
            raise ValueError(f"{name} has {s.shape[0]} chains, expected {n_chains}")
        return s, single

    def _start(self, state, n_chains, visible, rng):
        """Starting states (C, N): ``state``, else random 0/1, with ``visible`` clamped."""
        if state is not None:
            s, single = self._states(state, None)
            s = s.copy()
        else:
            if visible is not None:
                n_chains = visible.shape[0]
            check_positive(n_chains, "n_chains", integer=True)
            s, single = (rng.random((n_chains, self.n_units)) < 0.5).astype(np.float64), False
        if visible is not None:
            if visible.shape[0] != s.shape[0]:
                raise ValueError(f"visible has {visible.shape[0]} rows for {s.shape[0]} chains")
            s[:, self._vis] = visible
        return s, single

    def sample(self, params, n_chains=None, *, visible=None, state=None, rng=None):
        """Equilibrium samples by the network's annealed Gibbs schedule.

        Each chain runs ``anneal``, ``burn_in`` sweeps and ``sample_sweeps`` recorded sweeps.

        Parameters
        ----------
        params : dict
        n_chains : int, optional
            Independent chains, started at random 0/1 states (or from ``state``).
        visible : array, shape (C, n_visible), optional
            Clamp the visible units to these values (exactly: ``clamp_noise`` applies to
            :meth:`collect`'s wake phase only); only hidden units are sampled.
        state : array, shape (C, N) or (N,), optional
            Starting states.
        rng : None, int or Generator

        Returns
        -------
        samples : ndarray, shape (C, sample_sweeps, N)
        state : ndarray, shape (C, N)
        """
        rng = np.random.default_rng(rng)
        W, b = self._arrays(params)
        v = None if visible is None else self._data(visible, "visible")
        s, _ = self._start(state, n_chains, v, rng)
        free = self._hid if v is not None else self._cache["all"]
        rec, s = self._sweeps(W, b, s, free, self._schedule(self.sample_sweeps),
                              self.sample_sweeps, rng)
        return rec.transpose(1, 0, 2), s

    def run(self, params, sweeps, state=None, *, visible=None, temperature=None, rng=None):
        """Run ``sweeps`` Gibbs sweeps at one temperature and return every state.

        Parameters
        ----------
        params : dict
        sweeps : int >= 1
        state : array, shape (N,) or (C, N), optional
            Starting 0/1 state (random when omitted: one chain).
        visible : array, shape (n_visible,) or (C, n_visible), optional
            Clamped visible values.
        temperature : float > 0, optional
            Defaults to the network's.
        rng : None, int or Generator

        Returns
        -------
        states : ndarray, shape (sweeps, N) or (C, sweeps, N)
        state : ndarray, shape (N,) or (C, N)
        """
        check_positive(sweeps, "sweeps", integer=True)
        T = self.temperature if temperature is None else check_positive(temperature,
                                                                          "temperature")
        rng = np.random.default_rng(rng)
        W, b = self._arrays(params)
        v = None if visible is None else self._data(visible, "visible")
        if state is not None:
            single = np.ndim(state) == 1
        else:
            single = visible is None or np.ndim(visible) == 1
        s, _ = self._start(state, 1 if v is None else None, v, rng)
        free = self._hid if v is not None else self._cache["all"]
        rec, s = self._sweeps(W, b, s, free, np.full(sweeps, float(T)), sweeps, rng)
        states = rec.transpose(1, 0, 2)
        return (states[0], s[0]) if single else (states, s)

    def step(self, params, state, *, visible=None, rng=None):
        """One Gibbs sweep at the network's temperature; ``state`` (N,) or (C, N)."""
        return self.run(params, 1, state, visible=visible, rng=rng)[1]

    def mean_field(self, params, visible=None, *, n_chains=1, start=None):
        r"""Mean-field fixed point :math:`m = \sigma((W m + b)/T)` (Peterson & Anderson).

        The free units start at ``start`` (default 0.5) and follow the annealing schedule
        (``anneal`` and ``burn_in``, one deterministic sweep per scheduled sweep), then
        iterate at ``temperature`` until they settle.

        Parameters
        ----------
        params : dict
        visible : array, shape (P, n_visible), optional
            Clamped visible values; only hidden units are free.
        n_chains : int
            Rows of a free-running fixed point (ignored when ``visible`` is given).
        start : array, shape (C, N), optional

        Returns
        -------
        ndarray, shape (C, N)

        Raises
        ------
        ConvergenceError
            When the iteration does not settle within ``mean_field_max_sweeps``.
        """
        W, b = self._arrays(params)
        if visible is not None:
            v = self._data(visible, "visible")
            m = np.full((v.shape[0], self.n_units), 0.5)
            m[:, self._vis] = v
            free = self._hid
        else:
            check_positive(n_chains, "n_chains", integer=True)
            m = np.full((n_chains, self.n_units), 0.5)
            free = np.arange(self.n_units)
        if start is not None:
            start = as_float_array(start, "start", ndim=2)
            if start.shape != m.shape:
                raise ValueError(f"start must have shape {m.shape}, got {start.shape}")
            m[:, free] = start[:, free]
        return bs.mean_field(W, b, m, free, self._schedule(1), tol=self.mean_field_tol,
                             max_sweeps=self.mean_field_max_sweeps)

    # -- learning -------------------------------------------------------------------------
    def _noisy(self, v, rng):
        p_off, p_on = self.clamp_noise
        if p_off == 0.0 and p_on == 0.0:
            return v
        u = rng.random(v.shape)
        return np.where(v == 1.0, u >= p_off, u < p_on).astype(np.float64)

    def _trace(self, rows, moments=None) -> ev.ActivityTrace:
        """One phase's samples ``rows`` (S, N) and their moments (computed here unless the
        sampler already did)."""
        if moments is None:
            moments = {"W": np.where(self._mask, rows.T @ rows / rows.shape[0], 0.0),
                       "b": rows.mean(axis=0)}
        ones = self._cache["ones"]
        if ones.shape[0] != rows.shape[0]:
            # The bias's presynaptic column, the same every collection of a training loop:
            # kept (for the last number of rows), read-only.
            ones = np.ones((rows.shape[0], 1))
            ones.flags.writeable = False
            self._cache["ones"] = ones
        return ev.ActivityTrace(pre={"W": rows, "b": ones}, post={"W": rows, "b": rows},
                                masks={"W": self._mask}, moments=moments)

    def _hidden_probs(self, W, b, v):
        """Exact ``p(h = 1 | v)`` of an RBM, shape (P, n_hidden)."""
        return bs.sigmoid((v @ W[self._cache["hv"]].T + b[self._cache["hs"]])
                          / self.temperature)

    def _rows(self, W, b, s):
        """Statistics rows of states ``s`` (S, N): for an RBM the hidden units are replaced
        by their exact conditional probabilities given the visible ones (Rao-Blackwell)."""
        if not self._bipartite:
            return s
        rows = s.copy()
        rows[:, self._hid] = self._hidden_probs(W, b, s[:, self._vis])
        return rows

    def _phases(self, W, b, v, req, chains, rng):
        """(wake trace, sleep trace, new chains, reconstruction error of the data or None) for
        one WakeSleep request."""
        ix = self._cache
        if req.mode == "cd" and ix["fused"]:
            # Plain or persistent CD on an RBM: one fused pass (same draws and samples as
            # the general path), which also computes the moments.
            if not req.persistent:
                start = v
            elif chains is None:
                start = (rng.random((req.n_chains or v.shape[0], self.n_units)) < 0.5)
                start = start.astype(np.float64)[:, ix["vs"]].copy()
            else:
                start = self._states(chains, req.n_chains or v.shape[0],
                                     "state (the persistent chains)")[0]
                start = np.ascontiguousarray(start[:, ix["vs"]])
            wake, sleep, end, recon, m_wake, m_sleep = bs.rbm_phases(
                W, b, v, start, req.k, self.temperature, rng,
                (ix["vs"].start, ix["hs"].start), keep_chains=req.persistent,
                mask=None if ix["complete"] else self._mask, backend=self.backend)
            return (self._trace(wake, m_wake), self._trace(sleep, m_sleep),
                    end if req.persistent else chains, recon)
        wake, sleep, chains = self._phase_rows(W, b, v, req, chains, rng)
        return self._trace(wake), self._trace(sleep), chains, None

    def _phase_rows(self, W, b, v, req, chains, rng):
        """(wake rows, sleep rows, new chains) for one WakeSleep request, off the fused
        path."""
        T = self.temperature
        N = self.n_units
        vis, hid = self._vis, self._hid
        if req.mode == "mean_field":
            params = {"W": W, "b": b}
            wake = self.mean_field(params, self._noisy(v, rng))
            sleep = self.mean_field(params, n_chains=req.n_chains or 1)
            return wake, sleep, chains

        n_chains = req.n_chains or v.shape[0]

        clamped = self._noisy(v, rng)
        # Wake: visible clamped; for an RBM the hidden units are exactly conditional on it.
        if self._bipartite or hid.size == 0:
            wake_state = np.empty((v.shape[0], N))
            wake_state[:, vis] = clamped
            if hid.size:
                # The blocked sampler draws the hidden units first, so a CD chain can start
                # from these probabilities.
                wake_state[:, hid] = self._hidden_probs(W, b, clamped)
            wake = wake_state
        else:
            s0, _ = self._start(None, None, clamped, rng)
            rec, wake_state = self._sweeps(W, b, s0, hid, self._schedule(self.sample_sweeps),
                                           self.sample_sweeps, rng)
            wake = rec.reshape(-1, N)

        free = self._cache["all"]
        if req.mode == "cd" and not req.persistent:
            # Contrastive divergence: k sweeps from the wake states (the data).
            if self.uses_blocked_sampler:
                return wake, self._rbm_cd(W, b, wake_state, req.k, rng)[0], chains
            start = wake_state
            if self._bipartite and hid.size:
                # The wake state of an RBM holds p(h | v) in its hidden columns; a sequential
                # chain needs 0/1 states to start from, so draw them.
                start = wake_state.copy()
                start[:, hid] = rng.random((v.shape[0], hid.size)) < wake_state[:, hid]
            rec, _ = self._sweeps(W, b, start, free, np.full(req.k, T), 1, rng)
            return wake, self._rows(W, b, rec[0]), chains
        if req.persistent:
            if chains is None:
                start = (rng.random((n_chains, N)) < 0.5).astype(np.float64)
            else:
                start, _ = self._states(chains, n_chains, "state (the persistent chains)")
        else:
            start = (rng.random((n_chains, N)) < 0.5).astype(np.float64)
        if req.mode == "cd":
            if self.uses_blocked_sampler:
                sleep, end = self._rbm_cd(W, b, start, req.k, rng)
                return wake, sleep, (end if req.persistent else chains)
            rec, end = self._sweeps(W, b, start, free, np.full(req.k, T), 1, rng)
        else:
            rec, end = self._sweeps(W, b, start, free, self._schedule(self.sample_sweeps),
                                    self.sample_sweeps, rng)
        sleep = self._rows(W, b, rec.reshape(-1, N))
        return wake, sleep, (end if req.persistent else chains)

    def _rbm_cd(self, W, b, start, k, rng):
        """``k`` blocked Gibbs steps of an RBM from ``start`` (C, N): hidden given visible,
        then visible given hidden, with the draws of :func:`blocked_sweeps` in the same
        order (so the same samples). Returns the statistics rows ``[v_k, p(h | v_k)]`` and the
        final states ``[v_k, h]``."""
        vs, hs = self._cache["vs"], self._cache["hs"]
        beta = 1.0 / self.temperature
        W_hv = W[self._cache["hv"]]
        b_v, b_h = b[vs], b[hs]
        v = start[:, vs]
        for _ in range(k):
            h = (rng.random((v.shape[0], W_hv.shape[0]))
                 < bs.sigmoid((v @ W_hv.T + b_h) * beta)).astype(np.float64)
            v = (rng.random(v.shape) < bs.sigmoid((h @ W_hv + b_v) * beta)).astype(np.float64)
        rows = np.empty(start.shape)
        rows[:, vs] = v
        rows[:, hs] = bs.sigmoid((v @ W_hv.T + b_h) * beta)
        end = rows.copy()
        end[:, hs] = h
        return rows, end

    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        """Collect wake and sleep statistics for a :class:`~recur.rules.WakeSleep` request.

        Parameters
        ----------
        params : dict
        data : array, shape (P, n_visible) of 0/1
            One pattern per row (repeat rows to weight patterns or to collect more wake
            samples per pattern).
        requires : WakeSleep or tuple of requests
        state : array, shape (n_chains, N), optional
            Persistent sleep chains from the previous collection (persistent modes); random
            0/1 chains are started when None.
        rng : None, int or Generator

        Returns
        -------
        Evidence
            ``results[request]`` is a :class:`~recur.rules.Phases` whose ``nudged`` trace holds
            the wake (clamped) statistics and ``free`` the sleep statistics: for ``"W"``
            pre = post = the states (S, N), for ``"b"`` pre = ones (S, 1) (read-only, shared
            between collections), post = the states,
            and ``masks["W"]`` the graph; ``moments`` the means of ``s s^T`` (on the
            graph) and of ``s`` over the samples, which the RBM fast path computes in the
            pass that draws them. For an RBM the hidden columns hold exact conditional
            probabilities. ``loss`` is :meth:`loss` before the update; ``state`` the
            persistent chains.
        """
        requests = ev.as_requests(requires)
        rng = np.random.default_rng(rng)
        W, b = self._arrays(params)
        v = self._data(data, "data")
        results, recon = {}, None
        chains = state
        for req in requests:
            if not isinstance(req, ev.WakeSleep):
                raise NotImplementedError(f"Boltzmann cannot collect {type(req).__name__} "
                                          "evidence (it provides WakeSleep)")
            wake, sleep, chains, recon = self._phases(W, b, v, req, chains, rng)
            results[req] = ev.Phases(free=sleep, nudged=wake)
        if recon is not None and self._loss_kind() == "reconstruction":
            loss = recon
        else:
            # The wake phase of an exactly clamped RBM already holds p(h | data).
            exact = self._bipartite and self.clamp_noise == (0.0, 0.0) and requests and \
                requests[-1].mode != "mean_field"
            loss = self._loss(W, b, v, wake.post["W"][:, self._hid] if exact else None)
        return ev.Evidence(loss=loss, results=results, state=chains)
