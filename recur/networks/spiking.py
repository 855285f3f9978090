r"""Spiking networks on any graph: leaky integrate-and-fire and binary threshold units with
per-edge delays (synfire chains).

Time is in ms, membrane potentials and synaptic currents in mV (a current is written as the
potential it would hold the membrane at, :math:`R I`), rates in Hz.

Besides spikes for spike-timing rules, a :class:`SpikingNet` serves perturbation rules
(``rules.node_perturbation``, ``rules.weight_perturbation``) on a task loss the data defines
(:class:`SpikeTarget`, or any ``loss(raster, n_trials)``): see
:meth:`SpikingNet.perturbations`, :meth:`SpikingNet.presynaptic_traces` and
:meth:`SpikingNet.finite_difference_gradient`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import brentq
from scipy.signal import lfilter

from .. import kernels
from ..masked import with_values
from ..rules import evidence as ev
from ..tasks.spiking import SpikeDrive, SpikeTarget
from ..topology import Topology
from ..validation import DivergenceError, check_positive
from . import spiking_kernels

__all__ = ["SpikingNet", "SpikeDrive", "SpikeTarget", "MissingLossError", "psp_peak"]

MODELS = ("lif", "binary")
SYNAPSES = ("exp", "alpha")

# Two times closer than this (ms) are the same time: a delay of exactly one step written as a
# float (0.1 with dt = 0.1) must not be rejected for rounding.
_TIME_TOL = 1e-9
# Steps of background noise drawn per call to a trial's generator: large enough that the
# per-call overhead vanishes, small enough that the block stays in cache.
_NOISE_BLOCK = 256


def _noise_block(gens, m, N, scale, mu_term):
    """Background input of ``m`` steps, shape (m, B, N): ``mu_term + scale * xi``, each
    trial's normals from its own generator (so batches equal loops). A run of ``copies``
    copies of ``B`` trials draws one block for the ``B`` and trial ``r * B + b`` reads row
    ``b`` (common random numbers, drawn once)."""
    noise = np.stack([g.standard_normal((m, N)) for g in gens], axis=1)
    noise *= scale
    noise += mu_term
    return noise


class MissingLossError(ValueError, NotImplementedError):
    """Perturbation evidence was asked for on data without a task loss.

    A ``ValueError`` (the data lacks ``loss``) that is also a ``NotImplementedError``:
    without an objective the network cannot provide the evidence, which is how
    :func:`recur.train` reports a request a network cannot serve.
    """


def psp_peak(weight, tau_m=10.0, tau_syn=0.325, synapse="exp"):
    r"""Peak of the postsynaptic potential (mV) caused by one spike of weight ``weight``.

    For an exponential current of jump :math:`w` on a membrane at rest (no threshold):

    .. math::

        V(t) = \frac{w \tau_s}{\tau_m - \tau_s}\,(e^{-t/\tau_m} - e^{-t/\tau_s}), \qquad
        t^* = \frac{\tau_m \tau_s}{\tau_m - \tau_s} \ln\frac{\tau_m}{\tau_s}

    For the alpha current :math:`w (t/\tau_s) e^{1 - t/\tau_s}`, with :math:`a = 1/\tau_s`,
    :math:`b = 1/\tau_m`, :math:`c = a - b`,

    .. math::

        V(t) = \frac{w e}{\tau_m \tau_s c^2}\big(e^{-bt} - e^{-at}(1 + ct)\big)

    (:math:`w e\, t^2 e^{-t/\tau} / (2 \tau^2)` when the time constants are equal), whose
    peak is at the positive root of :math:`b\,(e^{ct} - 1) = a c t` (Brent's method). With
    Diesmann et al.'s :math:`\tau_m = 10`, :math:`\tau_s = 0.325` ms, ``w = 4.86`` mV gives
    0.141 mV.
    """
    check_positive(tau_m, "tau_m")
    check_positive(tau_syn, "tau_syn")
    if synapse == "exp":
        if tau_m == tau_syn:
            return float(weight) * math.exp(-1.0)  # the peak at t = tau
        # V(t) = (w / tau_m) e^{-t/tau_m} t phi1(c t), c = 1/tau_s - 1/tau_m: the difference
        # of exponentials without its cancellation near equal time constants.
        c = (tau_m - tau_syn) / (tau_m * tau_syn)
        t_star = math.log(tau_m / tau_syn) / c
        return float(weight) / tau_m * math.exp(-t_star / tau_m) * t_star * _phi1(c * t_star)
    if synapse == "alpha":
        a, b = 1.0 / tau_syn, 1.0 / tau_m
        c = a - b
        if abs(c) * tau_m < 1e-10:
            t_star = 2.0 * tau_m  # equal time constants (the root's limit as c -> 0)
        else:
            # V'(t) = 0 where b e^{ct} - b = a c t, i.e. h(t) = b (e^{ct} - 1) / (ct) - a = 0:
            # h starts at -c and ends at +inf (c > 0) or -a (c < 0), one sign change.
            def h(t):
                z = c * t
                return math.inf if z > 700.0 else b * math.expm1(z) / z - a

            hi = 2.0 * tau_m
            while (h(hi) > 0.0) != (c > 0.0):
                hi *= 2.0
            t_star = brentq(h, 1e-9 * hi, hi, xtol=1e-15 * hi, rtol=4 * np.finfo(float).eps)
        z = c * t_star
        if abs(z) < 1.0:
            # t^2 phi2(z) = (1 - e^{-z}(1 + z)) / c^2 without the cancellation at small c.
            v = math.exp(-b * t_star) * t_star * t_star * _phi2(z)
        else:
            v = (math.exp(-b * t_star) - math.exp(-a * t_star) * (1.0 + z)) / (c * c)
        return float(weight) * math.e / (tau_m * tau_syn) * v
    raise ValueError(f"synapse must be one of {SYNAPSES}, got {synapse!r}")


def _phi1(z):
    """(1 - e^{-z}) / z, continuous at 0."""
    return 1.0 if abs(z) < 1e-12 else -math.expm1(-z) / z


def _phi2(z):
    """(1 - e^{-z} (1 + z)) / z^2, continuous at 0."""
    if abs(z) < 1e-4:
        return 0.5 - z / 3.0 + z * z / 8.0
    return (-math.expm1(-z) - z * math.exp(-z)) / (z * z)


@dataclass(frozen=True, eq=False)
class SpikingNet:
    r"""A spiking network: leaky integrate-and-fire or binary threshold units on a graph.

    **LIF units** (``model="lif"``). With :math:`v = V - V_\mathrm{rest}` and the synaptic
    current :math:`I` written in mV,

    .. math::

        \tau_m \frac{dv}{dt} = -v + I(t) + \mu + c(t) + \sigma_V \sqrt{2 \tau_m}\,\xi(t),
        \qquad \tau_s \frac{dI}{dt} = -I + \tau_s \sum_{j, s} W_{ij}\,
        \delta(t - t_j^s - d_{ij})

    for ``synapse="exp"`` (a spike of weight :math:`W_{ij}` makes :math:`I` jump by
    :math:`W_{ij}`), or an alpha-shaped current :math:`W_{ij} (t/\tau_s) e^{1 - t/\tau_s}`
    (peak :math:`W_{ij}` at :math:`t = \tau_s`) for ``synapse="alpha"``. :math:`\mu` is
    ``noise_mean`` and :math:`\sigma_V` ``noise_std``: the background drive, Gaussian white
    noise scaled so that the free membrane potential (no threshold) fluctuates around
    :math:`V_\mathrm{rest} + \mu` with standard deviation :math:`\sigma_V`; :math:`c(t)` is a
    drive current (:class:`SpikeDrive`). When :math:`V` reaches ``v_threshold`` the unit
    spikes, :math:`V` is reset to ``v_reset`` and held there for ``t_ref`` ms (absolute
    refractory period). The linear dynamics are integrated exactly over each step
    (Rotter & Diesmann 1999), the noise as the exact Ornstein-Uhlenbeck increment, so a run
    with constant input matches the closed form to rounding whatever ``dt``; threshold
    crossings are detected on the grid (spike times are multiples of ``dt``).

    **Binary units** (``model="binary"``, Herrmann, Hertz & Pruegel-Bennett 1995): parallel
    updates; unit :math:`i` fires at step :math:`t` when the summed weight of the spikes
    arriving at :math:`t`, :math:`\sum_j W_{ij} s_j(t - d_{ij})`, reaches ``theta``. With the
    default delay of one step a unit fires at :math:`t + 1` when its inputs that fired at
    :math:`t` sum to ``theta``. Only ``dt``, ``delay``, ``weight`` and ``theta`` matter.

    A spike of unit ``j`` at step ``s`` reaches unit ``i`` at step ``s + d_ij`` (a ring
    buffer of pending input per unit), where ``d_ij = round(delay_ij / dt) >= 1``.

    Parameters
    ----------
    topology : Topology
        The graph; edge ``u -> v`` makes ``u`` presynaptic to ``v`` (``W[v, u]``).
    model : {"lif", "binary"}
    dt : float > 0
        Time step, ms. Must be smaller than ``tau_m`` and ``tau_syn`` (LIF) and not larger
        than any delay.
    tau_m, tau_syn : float > 0
        Membrane and synaptic time constants, ms (default: Diesmann et al. 1999).
    synapse : {"exp", "alpha"}
        Shape of the synaptic current.
    v_rest, v_reset, v_threshold : float
        mV; ``v_threshold`` must lie above ``v_reset``.
    t_ref : float >= 0
        Absolute refractory period, ms (rounded to whole steps).
    noise_mean, noise_std : float
        Background drive: mean depolarisation (mV) and standard deviation (mV, >= 0) of the
        free membrane potential. The defaults (7.43, 3.13 mV) give an isolated unit a
        spontaneous rate of 3.5 Hz, and put the separatrix of Diesmann et al.'s chain where
        REFERENCES.md calibrates it (see ``examples/synfire_propagation.py``); in that
        chain the pools downstream fire more (3.4 Hz in pool 0, ~6 Hz from pool 4 on).
    theta : float > 0
        Firing threshold of binary units (in weight units).
    delay : float > 0 or str
        Transmission delay, ms: one value for every edge, or the name of an edge attribute
        holding each edge's delay (every edge must have it).
    weight : float, str or callable
        Initial weights (:meth:`init`): one value for every edge (mV jump of the synaptic
        current for LIF, see :func:`psp_peak`; weight units for binary), the name of an
        edge attribute, or ``weight(rng, n_edges) -> array`` to draw them.
    w_min, w_max : float or None
        Bounds on the weights: :meth:`check_params` raises when a weight leaves them and
        :meth:`constrain` clips to them.
    backend : {"auto", "numba", "numpy"}
        Step loop: compiled (:mod:`recur.networks.spiking_kernels`) or numpy; both give the
        same spikes and state from the same generators.

    Notes
    -----
    ``params = {"W": csr_array (N, N)}``, ``W[post, pre]``, with exactly the structure of
    ``topology.mask`` (a networkx edge ``(u, v)`` is ``W[v, u]``, ``W = A.T``).

    Cost per step is a few vectorised operations on ``(trials, N)`` arrays plus work
    proportional to the spikes times their out-degree. Measured on one shared core (AMD
    EPYC), one simulated second at ``dt = 0.1`` ms: Diesmann's 10 x 100 chain 0.5 s with
    numpy, 0.2 s compiled; a 10,000-unit random network with 100 synapses per unit 2.8 s
    with numpy, 2.3 s compiled (most of it drawing 10^8 normals for the background noise).
    Every trial draws its background noise from its own generator, so a batch of trials
    gives the same spikes as the same trials run one by one.

    Perturbation learning (:meth:`perturbations`): the clean run and its ``K`` (or ``2K``)
    perturbed copies are trials of one batch; the step loop takes one row of weights per
    trial (weight perturbation, finite differences) and an input current per trial (node
    perturbation), and the copies of a trial share its background noise, drawn once
    (common random numbers). The task loss is ``data["loss"]``; without one
    :meth:`loss` and ``Evidence.loss`` report the mean rate.

    References
    ----------
    .. [1] M. Diesmann, M.-O. Gewaltig & A. Aertsen, "Stable propagation of synchronous
       spiking in cortical neural networks", Nature 402:529-533 (1999).
    .. [2] M. Herrmann, J. A. Hertz & A. Pruegel-Bennett, "Analysis of synfire chains",
       Network 6:403-414 (1995).
    .. [3] S. Rotter & M. Diesmann, "Exact digital simulation of time-invariant linear
       systems with applications to neuronal modeling", Biol. Cybern. 81:381-402 (1999).
    """

    topology: Topology
    model: str = "lif"
    dt: float = 0.1
    tau_m: float = 10.0
    tau_syn: float = 0.325
    synapse: str = "exp"
    v_rest: float = -70.0
    v_reset: float = -70.0
    v_threshold: float = -55.0
    t_ref: float = 1.0
    noise_mean: float = 7.43
    noise_std: float = 3.13
    theta: float = 1.0
    delay: float | str = 1.0
    weight: object = 4.86
    w_min: float | None = None
    w_max: float | None = None
    backend: str = "auto"
    _delay_steps: np.ndarray = field(init=False, repr=False)
    _groups: tuple = field(init=False, repr=False)
    _prop: dict = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.topology, Topology):
            raise TypeError(f"topology must be a recur.Topology, got "
                            f"{type(self.topology).__name__}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        if self.synapse not in SYNAPSES:
            raise ValueError(f"synapse must be one of {SYNAPSES}, got {self.synapse!r}")
        check_positive(self.dt, "dt")
        kernels.resolve_backend(self.backend)
        for name in ("v_rest", "v_reset", "v_threshold", "noise_mean"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                    not np.isfinite(value):
                raise TypeError(f"{name} must be a finite real number (mV), got {value!r}")
        check_positive(self.noise_std, "noise_std", strict=False)
        check_positive(self.t_ref, "t_ref", strict=False)
        check_positive(self.theta, "theta")
        if self.model == "lif":
            check_positive(self.tau_m, "tau_m")
            check_positive(self.tau_syn, "tau_syn")
            shortest = min(self.tau_m, self.tau_syn)
            if self.dt >= shortest:
                which = "tau_m" if self.tau_m <= self.tau_syn else "tau_syn"
                raise ValueError(f"dt must be smaller than the shortest time constant "
                                 f"({which} = {shortest} ms), got dt={self.dt}")
            if not self.v_threshold > self.v_reset:
                raise ValueError(f"v_threshold must lie above v_reset, got v_threshold="
                                 f"{self.v_threshold} mV and v_reset={self.v_reset} mV")
        for name in ("w_min", "w_max"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(
                    value, numbers.Real) or np.isnan(value)):
                raise TypeError(f"{name} must be None or a real number, got {value!r}")
        if self.w_min is not None and self.w_max is not None and self.w_min > self.w_max:
            raise ValueError(f"w_min must not exceed w_max, got w_min={self.w_min} and "
                             f"w_max={self.w_max}")
        if not (isinstance(self.weight, str) or callable(self.weight) or (
                isinstance(self.weight, numbers.Real) and not isinstance(self.weight, bool)
                and np.isfinite(self.weight))):
            raise TypeError(f"weight must be a finite number, an edge attribute name or a "
                            f"callable weight(rng, n_edges), got {self.weight!r}")
        delays = self._edge_values(self.delay, "delay")
        if delays.size and not np.isfinite(delays).all():
            raise ValueError("delay must be finite on every edge")
        if delays.size and delays.min() < 0:
            raise ValueError(f"delay must not be negative, got {delays.min()} ms")
        if delays.size and delays.min() < self.dt - _TIME_TOL:
            raise ValueError(f"dt must not exceed the shortest delay ({delays.min()} ms): every "
                             f"spike needs at least one step to arrive, got dt={self.dt}")
        steps = np.maximum(1, np.rint(delays / self.dt)).astype(np.intp)
        object.__setattr__(self, "_delay_steps", steps)
        groups = []
        mask = self.topology.mask
        rows = np.repeat(np.arange(mask.shape[0], dtype=np.intp), np.diff(mask.indptr))
        cols = np.asarray(mask.indices, dtype=np.intp)
        for d in np.unique(steps):
            # Edges of one delay in CSC order (a spike of unit j reaches the rows of column
            # j): column pointers, target rows, and the CSR position of each edge, so that
            # any set of values in W's storage order (one per trial, too) can be gathered.
            sel = np.flatnonzero(steps == d)
            order = np.lexsort((rows[sel], cols[sel]))
            ids = sel[order]
            indptr = np.concatenate([[0], np.cumsum(np.bincount(cols[sel],
                                                                minlength=mask.shape[1]))])
            groups.append((int(d), indptr.astype(np.intp), rows[ids], ids))
        object.__setattr__(self, "_groups", tuple(groups))
        object.__setattr__(self, "_prop", self._propagators() if self.model == "lif" else {})

    # -- structure ----------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        """Number of units N."""
        return self.topology.n_units

    @property
    def pools(self) -> dict:
        """Unit indices per pool (node attribute ``pool``), in pool order."""
        return self.topology.pools

    @property
    def delay_steps(self) -> np.ndarray:
        """Delay of each edge in steps, in the CSR order of ``W`` (shape (n_edges,))."""
        return self._delay_steps.copy()

    @property
    def max_delay_steps(self) -> int:
        """Longest synaptic delay, in steps (at least 1): the depth of the pending-input buffer."""
        return int(self._delay_steps.max()) if self._delay_steps.size else 1

    @property
    def refractory_steps(self) -> int:
        """Absolute refractory period, in steps."""
        return int(round(self.t_ref / self.dt))

    def _edge_values(self, spec, name):
        """Per-edge values in the CSR order of the mask: a constant or an edge attribute."""
        mask = self.topology.mask
        if isinstance(spec, str):
            G = self.topology.graph
            if G.is_multigraph():
                raise ValueError(f"{name} from an edge attribute needs a graph without "
                                 "parallel edges")
            post, pre, val = [], [], []
            index = self.topology.index
            for u, v, value in G.edges(data=spec):
                if value is None:
                    raise ValueError(f"{name}={spec!r}: edge ({u!r}, {v!r}) has no attribute "
                                     f"{spec!r}")
                pairs = [(index(v), index(u))]
                if not G.is_directed():
                    pairs.append((index(u), index(v)))
                for i, j in pairs:
                    post.append(i)
                    pre.append(j)
                    val.append(float(value))
            M = sp.coo_array((np.asarray(val, float), (np.asarray(post, np.intp),
                                                       np.asarray(pre, np.intp))),
                             shape=mask.shape)
            M.sum_duplicates()
            out = sp.csr_array(M)
            out.sort_indices()
            if out.nnz != mask.nnz or not np.array_equal(out.indices, mask.indices):
                raise ValueError(f"{name}={spec!r}: could not read one value per edge")
            return out.data.astype(float)
        if isinstance(spec, bool) or not isinstance(spec, numbers.Real):
            raise TypeError(f"{name} must be a number (ms) or an edge attribute name, got "
                            f"{spec!r}")
        return np.full(mask.nnz, float(spec))

    def _propagators(self) -> dict:
        """Exact one-step propagators of the linear subthreshold dynamics."""
        h, tm, ts = float(self.dt), float(self.tau_m), float(self.tau_syn)
        a = math.exp(-h / ts)
        b = math.exp(-h / tm)
        k = 1.0 / ts - 1.0 / tm
        p = {"a": a, "b": b,
             # v <- I over one step (exponential current), and v <- x (alpha current).
             "vI": b * h / tm * _phi1(k * h),
             "vx": math.e * b * h * h / (ts * tm) * _phi2(k * h),
             "Ix": math.e / ts * h * a,
             # Constant input and OU noise (free-membrane std sigma_V) over one step.
             "drive": -math.expm1(-h / tm),
             "noise": math.sqrt(-math.expm1(-2.0 * h / tm))}
        return p

    # -- parameters ---------------------------------------------------------------------
    def init(self, rng=None) -> dict:
        """Weights on the graph from ``weight``.

        Returns
        -------
        dict with ``"W"``: scipy.sparse.csr_array, shape (N, N), ``W[post, pre]``, the
        structure of ``topology.mask``.
        """
        rng = np.random.default_rng(rng)
        mask = self.topology.mask
        if callable(self.weight) and not isinstance(self.weight, str):
            data = np.asarray(self.weight(rng, mask.nnz), dtype=float)
            if data.shape != (mask.nnz,):
                raise ValueError(f"weight(rng, n_edges) must return {mask.nnz} values, got "
                                 f"shape {data.shape}")
        else:
            data = self._edge_values(self.weight, "weight")
        params = {"W": with_values(sp.csr_array(mask, dtype=float), data)}
        self.check_params(params)
        return params

    def check_params(self, params) -> None:
        """Raise if ``params`` does not fit this network, holds NaN/inf or leaves the bounds."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        if "W" not in params:
            raise ValueError("params is missing 'W'")
        W = params["W"]
        mask = self.topology.mask
        if not sp.issparse(W) or W.format != "csr":
            raise TypeError("params['W'] must be a scipy.sparse CSR matrix with the graph's "
                            "structure (SpikingNet.init makes one)")
        if W.shape != mask.shape or W.nnz != mask.nnz or not (
                np.array_equal(W.indptr, mask.indptr) and np.array_equal(W.indices,
                                                                         mask.indices)):
            raise ValueError("params['W'] must have exactly the structure of the topology's "
                             "mask (one stored value per edge, none off the graph)")
        if not np.isfinite(W.data).all():
            raise DivergenceError("params['W'] contains NaN or inf")
        if self.w_min is not None and W.data.size and W.data.min() < self.w_min:
            raise ValueError(f"params['W'] has a weight {W.data.min():.6g} below w_min="
                             f"{self.w_min}; net.constrain(params) clips to the bounds")
        if self.w_max is not None and W.data.size and W.data.max() > self.w_max:
            raise ValueError(f"params['W'] has a weight {W.data.max():.6g} above w_max="
                             f"{self.w_max}; net.constrain(params) clips to the bounds")

    def constrain(self, params):
        """Clip ``W`` to ``[w_min, w_max]``; ``W`` stays on the graph (its structure is kept)."""
        W = params["W"]
        if self.w_min is None and self.w_max is None:
            return params
        lo = -np.inf if self.w_min is None else self.w_min
        hi = np.inf if self.w_max is None else self.w_max
        data = np.clip(W.data, lo, hi)
        if np.array_equal(data, W.data):
            return params
        return {**params, "W": with_values(W, data)}

    # -- state --------------------------------------------------------------------------
    def initial_state(self, trials=None, *, rng=None, stationary=False) -> dict:
        """State before a run: membrane at rest (or drawn), no current, nothing pending.

        Parameters
        ----------
        trials : int or None
            Number of independent trials (None: one, unbatched).
        rng : None, int or Generator
            Used only with ``stationary``.
        stationary : bool
            Draw each LIF membrane from the free stationary distribution of the background
            drive, :math:`N(V_\\mathrm{rest} + \\mu, \\sigma_V^2)` truncated below threshold,
            so a run starts without the transient from rest.

        Returns
        -------
        dict
            ``"v"`` (B, N) mV, ``"syn"`` (2, B, N) synaptic current and alpha auxiliary
            (mV), ``"refractory"`` (B, N) remaining refractory steps, ``"buffer"``
            (L, B, N) input pending for the next ``L = max_delay_steps + 1`` steps,
            ``"step"`` steps simulated so far, ``"trials"`` (B or None).
        """
        B = 1 if trials is None else check_positive(trials, "trials", integer=True)
        N = self.n_units
        v = np.full((B, N), float(self.v_rest))
        if stationary and self.model == "lif" and self.noise_std > 0:
            rng = np.random.default_rng(rng)
            theta = self.v_threshold - self.v_rest
            rel = rng.normal(self.noise_mean, self.noise_std, (B, N))
            # Redraw the few above threshold (they would fire at once): a truncated normal.
            for _ in range(100):
                bad = rel >= theta
                if not bad.any():
                    break
                rel[bad] = rng.normal(self.noise_mean, self.noise_std, int(bad.sum()))
            v = self.v_rest + np.minimum(rel, theta - 1e-9)
        elif stationary and self.model == "lif":
            v = v + min(self.noise_mean, self.v_threshold - self.v_rest - 1e-9)
        return {"v": v, "syn": np.zeros((2, B, N)), "refractory": np.zeros((B, N), np.intp),
                "buffer": np.zeros((self.max_delay_steps + 1, B, N)), "step": 0,
                "trials": trials}

    def _check_state(self, state, trials):
        if not isinstance(state, dict) or not {"v", "syn", "refractory", "buffer",
                                               "step"} <= set(state):
            raise TypeError("state must be a dict from initial_state or a previous run")
        B = 1 if trials is None else trials
        N = self.n_units
        if np.shape(state["v"]) != (B, N):
            raise ValueError(f"state holds {np.shape(state['v'])[0]} trial(s) of "
                             f"{np.shape(state['v'])[-1]} units; this run has {B} of {N}")
        if np.shape(state["buffer"]) != (self.max_delay_steps + 1, B, N):
            raise ValueError("state['buffer'] does not match this network's delays")
        return {"v": np.array(state["v"], float), "syn": np.array(state["syn"], float),
                "refractory": np.array(state["refractory"], np.intp),
                "buffer": np.array(state["buffer"], float), "step": int(state["step"]),
                "trials": trials}

    # -- simulation ---------------------------------------------------------------------
    def n_steps_for(self, duration) -> int:
        """Steps in ``duration`` ms (rounded to the nearest step)."""
        check_positive(duration, "duration")
        return max(1, int(round(duration / self.dt)))

    def _drives(self, drive, B, n_steps):
        """Normalise ``drive`` to (forced events, kick events, current)."""
        if drive is None:
            drives = []
        elif isinstance(drive, SpikeDrive):
            drives = [drive]
        elif isinstance(drive, (list, tuple)) and all(isinstance(d, SpikeDrive)
                                                      for d in drive):
            drives = list(drive)
        else:
            raise TypeError(f"drive must be None, a SpikeDrive or a list of them, got "
                            f"{type(drive).__name__}")
        forced = [[], [], []]
        kicks = [[], [], [], []]
        current = None
        for d in drives:
            if d.n_units != self.n_units:
                raise ValueError(f"drive is for {d.n_units} units; the network has "
                                 f"{self.n_units}")
            if not math.isclose(d.dt, self.dt, rel_tol=1e-9):
                raise ValueError(f"drive was made with dt={d.dt} ms; the network's dt is "
                                 f"{self.dt} ms")
            if d.n_events and d.steps.max() >= n_steps:
                raise ValueError(f"drive has events at step {d.steps.max()}, after the end of "
                                 f"this run ({n_steps} steps)")
            if d.trials is None:
                trials = np.repeat(np.arange(B), d.n_events)
                units = np.tile(d.units, B)
                steps = np.tile(d.steps, B)
            else:
                if d.n_events and d.trials.max() >= B:
                    raise ValueError(f"drive has events for trial {d.trials.max()}; this run "
                                     f"has {B} trial(s)")
                trials, units, steps = d.trials, d.units, d.steps
            if d.weight is None:
                for lst, arr in zip(forced, (steps, trials, units)):
                    lst.append(arr)
            else:
                for lst, arr in zip(kicks, (steps, trials, units,
                                            np.full(steps.size, float(d.weight)))):
                    lst.append(arr)
            if d.current is not None:
                if d.current.ndim == 2 and d.current.shape[0] != n_steps:
                    raise ValueError(f"drive current has {d.current.shape[0]} steps; this run "
                                     f"has {n_steps}")
                c = d.current if d.current.ndim == 2 else np.broadcast_to(
                    d.current, (n_steps, self.n_units))
                current = c if current is None else current + c

        def sorted_events(parts):
            if not parts[0]:
                return None
            arrays = [np.concatenate(p) for p in parts]
            order = np.argsort(arrays[0], kind="stable")
            arrays = [a[order] for a in arrays]
            bounds = np.searchsorted(arrays[0], np.arange(n_steps + 1))
            return arrays, bounds

        return sorted_events(forced), sorted_events(kicks), current

    def _rngs(self, rng, B):
        if isinstance(rng, (list, tuple)):
            if len(rng) != B:
                raise ValueError(f"rng must hold one generator per trial ({B}), got {len(rng)}")
            return [np.random.default_rng(g) for g in rng]
        rng = np.random.default_rng(rng)
        return [rng] if B == 1 else list(rng.spawn(B))

    def run(self, params, duration=None, drive=None, *, n_steps=None, trials=None, state=None,
            rng=None):
        r"""Simulate ``duration`` ms (or ``n_steps`` steps) and return the spikes.

        Parameters
        ----------
        params : dict
            ``{"W": csr (N, N)}`` from :meth:`init`.
        duration : float, ms
        drive : SpikeDrive or list of SpikeDrive, optional
            External events, with steps counted from the start of this run.
        n_steps : int, optional
            Instead of ``duration``.
        trials : int or None
            Simulate this many independent copies at once (a batch); None: one.
        state : dict, optional
            Where a previous run ended (``initial_state`` when None), to continue it.
        rng : None, int, Generator, or a list of one generator per trial
            Background noise. A single generator is split into one child per trial
            (``rng.spawn``) when ``trials`` is given, so trial ``b`` of a batch run with the
            list ``gens`` gives the same spikes as a single run with ``[gens[b]]``.

        Returns
        -------
        raster : recur.rules.SpikeTrains
            Spikes (unit, step, trial) with steps counted from the start of this run, in
            ascending order; ``trials`` is None for an unbatched run.
        state : dict
            State at the end, to continue with.

        Raises
        ------
        DivergenceError
            When a membrane or current becomes NaN/inf.
        """
        self.check_params(params)
        if (duration is None) == (n_steps is None):
            raise ValueError("give exactly one of duration (ms) and n_steps")
        T = self.n_steps_for(duration) if n_steps is None else check_positive(
            n_steps, "n_steps", integer=True)
        if trials is not None:
            check_positive(trials, "trials", integer=True)
        B = 1 if trials is None else trials
        st = self.initial_state(trials) if state is None else self._check_state(state, trials)
        forced, kicks, current = self._drives(drive, B, T)
        gens = self._rngs(rng, B) if self.model == "lif" else None
        units, steps, trial_of = self._simulate(params["W"], st, T, forced, kicks, current,
                                                gens)
        raster = ev.SpikeTrains(units=units, steps=steps, n_units=self.n_units, n_steps=T,
                                dt=float(self.dt), trials=None if trials is None else trial_of)
        st["trials"] = trials
        return raster, st

    def _simulate(self, W, st, T, forced, kicks, current, gens, weights=None, copies=1):
        """The step loop; updates ``st`` in place (it is a private copy).

        ``weights`` (B, nnz), optional: each trial's own values of ``W`` (storage order),
        instead of ``W.data`` for all. ``current``: (T, N) for every trial, or (T, B, N).
        ``copies``: ``gens`` holds ``B / copies`` generators whose noise every copy shares.
        """
        N = self.n_units
        B = st["v"].shape[0]
        lif = self.model == "lif"
        L = st["buffer"].shape[0]
        buf = st["buffer"]
        values = np.asarray(W.data, float)[None] if weights is None else np.asarray(
            weights, float)
        # Per delay group: CSC-ordered targets and weights (one row per trial, or one row
        # for all) of each presynaptic unit.
        csc = [(d, indptr, indices, np.ascontiguousarray(values[:, ids]))
               for d, indptr, indices, ids in self._groups]
        if kernels.use_numba(self.backend, spiking_kernels._JIT):
            return self._simulate_compiled(st, T, forced, kicks, current, gens, csc, copies)
        out_u, out_s, out_b = [], [], []
        if lif:
            p = self._prop
            v = st["v"] - self.v_rest
            I, x = st["syn"][0], st["syn"][1]
            ref = st["refractory"]
            theta = self.v_threshold - self.v_rest
            reset = self.v_reset - self.v_rest
            n_ref = self.refractory_steps
            alpha = self.synapse == "alpha"
            mu_term = self.noise_mean * p["drive"]
            noise_scale = self.noise_std * p["noise"]
            noise = None
            tmp = np.empty_like(v)
        step0 = st["step"]
        for t in range(T):
            slot = (step0 + t) % L
            arriving = buf[slot]
            if kicks is not None:
                (ks, kb, ku, kw), kbounds = kicks
                lo, hi = kbounds[t], kbounds[t + 1]
                if hi > lo:
                    np.add.at(arriving, (kb[lo:hi], ku[lo:hi]), kw[lo:hi])
            if lif:
                # In place, in the order v, then the currents: v must see the currents of
                # the step's start (exact integration of the linear system).
                v *= p["b"]
                np.multiply(I, p["vI"], out=tmp)
                v += tmp
                if noise_scale > 0:
                    k = t % _NOISE_BLOCK
                    if k == 0:
                        noise = _noise_block(gens, min(_NOISE_BLOCK, T - t), N, noise_scale,
                                             mu_term)
                    if copies > 1:
                        v_copies = v.reshape(copies, -1, N)  # a view: adds in place
                        v_copies += noise[k]
                    else:
                        v += noise[k]
                elif mu_term:
                    v += mu_term
                if alpha:
                    np.multiply(x, p["vx"], out=tmp)
                    v += tmp
                    I *= p["a"]
                    np.multiply(x, p["Ix"], out=tmp)
                    I += tmp
                    x *= p["a"]
                    x += arriving
                else:
                    I *= p["a"]
                    I += arriving
                if current is not None:
                    v += p["drive"] * current[t]
                if n_ref:
                    refr = ref > 0
                    if refr.any():
                        # Held at reset, which lies below threshold: they cannot fire.
                        np.putmask(v, refr, reset)
                        np.subtract(ref, 1, out=ref, where=refr)
                fire = v >= theta
            else:
                fire = arriving >= self.theta - 1e-12
            if forced is not None:
                (fs, fb, fu), fbounds = forced
                lo, hi = fbounds[t], fbounds[t + 1]
                if hi > lo:
                    fire[fb[lo:hi], fu[lo:hi]] = True
            arriving[...] = 0.0
            if not fire.any():
                continue
            b_idx, u_idx = np.nonzero(fire)
            if lif:
                v[b_idx, u_idx] = reset
                ref[b_idx, u_idx] = n_ref
            out_u.append(u_idx)
            out_b.append(b_idx)
            out_s.append(np.full(u_idx.size, t, dtype=np.intp))
            for d, indptr, indices, data in csc:
                starts = indptr[u_idx]
                counts = indptr[u_idx + 1] - starts
                total = int(counts.sum())
                if total == 0:
                    continue
                # Targets of every spike, as one flat gather (a ragged arange).
                offsets = np.repeat(starts - np.cumsum(counts) + counts, counts)
                pos = np.arange(total) + offsets
                spike_trial = np.repeat(b_idx, counts)
                flat = spike_trial * N + indices[pos]
                w = data[0, pos] if data.shape[0] == 1 else data[spike_trial, pos]
                target = buf[(step0 + t + d) % L].reshape(-1)
                target += np.bincount(flat, weights=w, minlength=B * N)
        if lif:
            self._store(st, v, I, x, ref)
        st["step"] = step0 + T
        if out_u:
            units = np.concatenate(out_u)
            steps = np.concatenate(out_s)
            trial_of = np.concatenate(out_b)
        else:
            units = steps = trial_of = np.zeros(0, dtype=np.intp)
        return units, steps, trial_of

    def _store(self, st, v, I, x, ref):
        if not (np.isfinite(v).all() and np.isfinite(I).all() and np.isfinite(x).all()):
            raise DivergenceError("a membrane potential or synaptic current became NaN or inf")
        st["v"] = v + self.v_rest
        st["syn"] = np.stack([I, x])
        st["refractory"] = ref

    def _simulate_compiled(self, st, T, forced, kicks, current, gens, csc, copies=1):
        """The same loop as :meth:`_simulate`, compiled, one noise block per call."""
        B, N = st["v"].shape
        lif = self.model == "lif"
        p = self._prop
        model = {"lif": lif, "alpha": self.synapse == "alpha",
                 "theta": float(self.v_threshold - self.v_rest),
                 "reset": float(self.v_reset - self.v_rest), "n_ref": self.refractory_steps,
                 "theta_bin": float(self.theta - 1e-12),
                 "mu_term": float(self.noise_mean * p["drive"]) if lif else 0.0,
                 **{k: float(p.get(k, 0.0)) for k in ("b", "vI", "vx", "a", "Ix", "drive")}}
        if current is not None:
            # Made contiguous once here, not per block of steps: a constant current arrives
            # as a stride-0 broadcast, and copying it per block costs O(T^2 N / block).
            current = np.asarray(current, dtype=np.float64)
            current = np.ascontiguousarray(current[:, None, :] if current.ndim == 2
                                           else current)
        syn = np.ascontiguousarray(st["syn"])
        arrays = {"v": np.ascontiguousarray(st["v"] - self.v_rest), "I": syn[0].copy(),
                  "x": syn[1].copy(), "ref": np.ascontiguousarray(st["refractory"], np.intp),
                  "buf": st["buffer"], "fire": np.zeros((B, N), dtype=np.bool_),
                  "scratch": np.zeros((B, N)), "current": current, "noise": None,
                  "noise_t0": 0}
        empty_i, empty_f = np.zeros(0, np.intp), np.zeros(0)
        no_bounds = np.zeros(T + 1, np.intp)
        f_b, f_u, f_bounds = (forced[0][1], forced[0][2], forced[1]) if forced is not None \
            else (empty_i, empty_i, no_bounds)
        k_b, k_u, k_w, k_bounds = (kicks[0][1], kicks[0][2], kicks[0][3], kicks[1]) \
            if kicks is not None else (empty_i, empty_i, empty_f, no_bounds)
        events = tuple(np.ascontiguousarray(a) for a in (f_b, f_u, f_bounds, k_b, k_u, k_w,
                                                          k_bounds))
        offsets = np.cumsum([0] + [c[2].size for c in csc])
        groups = (np.array([c[0] for c in csc], np.intp),
                  np.stack([c[1].astype(np.intp) + off for c, off in zip(csc, offsets)])
                  if csc else np.zeros((0, N + 1), np.intp),
                  np.concatenate([c[2] for c in csc]).astype(np.intp) if csc else empty_i,
                  np.concatenate([c[3] for c in csc], axis=1).astype(float) if csc
                  else np.zeros((1, 0)))
        capacity = max(1 << 14, 4 * B * N)
        out = {"units": np.empty(capacity, np.intp), "steps": np.empty(capacity, np.intp),
               "trials": np.empty(capacity, np.intp), "n": 0}
        noise_scale = self.noise_std * p["noise"] if lif else 0.0
        step0 = st["step"]
        for t in range(0, T, _NOISE_BLOCK):
            m = min(_NOISE_BLOCK, T - t)
            if noise_scale > 0:
                arrays["noise"] = _noise_block(gens, m, N, noise_scale, model["mu_term"])
                arrays["noise_t0"] = t
            spiking_kernels.run_steps(t, t + m, step0, model, arrays, events, groups, out)
        if lif:
            self._store(st, arrays["v"], arrays["I"], arrays["x"], arrays["ref"])
        st["step"] = step0 + T
        n = out["n"]
        return out["units"][:n].copy(), out["steps"][:n].copy(), out["trials"][:n].copy()

    # -- summaries ----------------------------------------------------------------------
    def pool_summary(self, raster, *, bin_width=None, n_trials=None) -> dict:
        """Spike counts and times per pool of a raster from :meth:`run`.

        Parameters
        ----------
        raster : SpikeTrains
        bin_width : float, ms, optional
            Also return a histogram of each pool's spikes in bins of this width.
        n_trials : int, optional
            Trials of the run (default: the highest trial with a spike, plus one).

        Returns
        -------
        dict
            ``"pools"``: pool labels in order; ``"counts"``: (n_trials, n_pools) spikes;
            ``"rate_hz"``: (n_trials, n_pools) mean rate per unit; ``"times"``: list over
            pools of lists over trials of spike times (ms, ascending); with ``bin_width``,
            ``"histogram"`` (n_trials, n_pools, n_bins) and ``"bin_edges"`` (ms).
        """
        pools = self.pools
        if not pools:
            raise ValueError("the topology has no pools (node attribute 'pool')")
        return pool_summary(raster, pools, bin_width=bin_width, n_trials=n_trials)

    # -- rule interface -----------------------------------------------------------------
    def _data(self, data):
        """(duration, drive, trials, loss) from a duration, a (duration, drive) pair or a
        dict."""
        if isinstance(data, numbers.Real) and not isinstance(data, bool):
            return float(check_positive(data, "data duration")), None, None, None
        if isinstance(data, tuple) and len(data) == 2:
            return float(check_positive(data[0], "data duration")), data[1], None, None
        if isinstance(data, dict):
            unknown = set(data) - {"duration", "drive", "trials", "loss"}
            if unknown or "duration" not in data:
                raise ValueError(f"data must have 'duration' and optionally 'drive', 'trials', "
                                 f"'loss'; got keys {sorted(data)}")
            trials = data.get("trials")
            if trials is not None:
                check_positive(trials, "data trials", integer=True)
            loss = data.get("loss")
            if loss is not None and not callable(loss):
                raise TypeError(f"data 'loss' must be a SpikeTarget or a callable "
                                f"loss(raster, n_trials) -> per-trial losses, got "
                                f"{type(loss).__name__}")
            return float(check_positive(data["duration"], "data duration")), \
                data.get("drive"), trials, loss
        raise TypeError("data must be a duration (ms), a (duration, drive) pair or a dict "
                        "with 'duration', 'drive', 'trials', 'loss'")

    def loss(self, params, data, state=None, *, rng=None) -> float:
        """The task loss on ``data``, or the mean firing rate (Hz) when it has none.

        With ``data["loss"]`` (a :class:`SpikeTarget` or a callable ``loss(raster,
        n_trials)``) the mean of the per-trial losses over ``data["trials"]`` trials (one
        run of the noisy network: an estimate of the noise-averaged loss). Otherwise the
        mean rate over units and trials: a spiking network has no objective of its own, and
        the rate lets a training history trace the activity.
        """
        duration, drive, trials, loss_fn = self._data(data)
        raster, _ = self.run(params, duration, drive, trials=trials, state=state, rng=rng)
        return self._score(raster, trials, loss_fn)

    def _rate(self, raster, trials):
        B = 1 if trials is None else trials
        return float(raster.units.size / (B * self.n_units * raster.n_steps * self.dt) * 1e3)

    def _score(self, raster, trials, loss_fn):
        if loss_fn is None:
            return self._rate(raster, trials)
        B = 1 if trials is None else trials
        return float(_task_losses(loss_fn, raster, B).mean())

    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        r"""Run on ``data`` and return what a spike-timing or perturbation rule asks for.

        Parameters
        ----------
        params : dict
        data : float, (duration, drive) or dict
            Duration in ms, with an optional :class:`SpikeDrive` (``tasks.spontaneous``,
            a fixed input pattern), ``trials`` (independent background-noise realisations
            run as one batch) and ``loss`` (a :class:`SpikeTarget` or a callable
            ``loss(raster, n_trials) -> (n_trials,)``, needed for ``Perturbed``).
        requires : Spikes, Perturbed, or a tuple of them
        state : dict, optional
            Where the previous chunk ended (membranes, currents, pending spikes).
        rng : None, int, Generator or list of generators
            A list gives one generator per trial for the background noise (``Spikes``
            only).

        Returns
        -------
        Evidence
            ``results[Spikes()]`` is the raster (:class:`~recur.rules.SpikeTrains`) with
            ``masks={"W": topology.mask}`` (sparse bool, ``[post, pre]``);
            ``results[Perturbed(...)]`` the :class:`~recur.rules.Perturbations` (see
            :meth:`perturbations`); ``loss`` the task loss of the unperturbed run (mean
            over trials), or the mean rate (Hz) without one; ``state`` the unperturbed
            run's state at the end.

        Raises
        ------
        NotImplementedError
            For a request other than ``Spikes`` and ``Perturbed``.
        ValueError
            For ``Perturbed`` without a task loss in ``data``, or more than one
            ``Perturbed`` request.
        """
        requests = ev.as_requests(requires)
        perturbed = [r for r in requests if isinstance(r, ev.Perturbed)]
        for req in requests:
            if not isinstance(req, (ev.Spikes, ev.Perturbed)):
                raise NotImplementedError(f"SpikingNet cannot collect {type(req).__name__} "
                                          "evidence (it provides Spikes and Perturbed)")
        if len(perturbed) > 1:
            raise ValueError("SpikingNet collects one Perturbed request at a time, got "
                             f"{len(perturbed)}")
        masks = {"W": self.topology.mask}
        if perturbed:
            result, raster, loss, st = self._perturbations(params, data, perturbed[0],
                                                           state=state, rng=rng)
            results = {req: result if isinstance(req, ev.Perturbed) else raster
                       for req in requests}
            return ev.Evidence(loss=loss, results=results, state=st)
        duration, drive, trials, loss_fn = self._data(data)
        raster, st = self.run(params, duration, drive, trials=trials, state=state, rng=rng)
        raster = ev.SpikeTrains(units=raster.units, steps=raster.steps, n_units=raster.n_units,
                                n_steps=raster.n_steps, dt=raster.dt, trials=raster.trials,
                                masks=masks)
        return ev.Evidence(loss=self._score(raster, trials, loss_fn),
                           results={req: raster for req in requests}, state=st)

    # -- perturbation -------------------------------------------------------------------
    def _run_copies(self, params, T, drive, B, n_copies, gens, *, state=None, weights=None,
                    extra_current=None):
        """``n_copies`` copies of a ``B``-trial run as one batch of ``n_copies * B`` trials.

        Trial ``r * B + b`` is copy ``r`` of trial ``b``: it starts from trial ``b`` of
        ``state``, gets the drive of trial ``b`` and draws its background noise from a clone
        of ``gens[b]`` (common random numbers: every copy of trial ``b`` sees the same
        noise). ``weights`` (n_copies * B, nnz): per-trial values of ``W``;
        ``extra_current`` (T, n_copies * B, N): per-trial input current (mV) added to the
        drive's.
        """
        self.check_params(params)
        total = n_copies * B
        if state is None:
            st = self.initial_state(total)
        else:
            st = _tile_state(self._check_state(state, B), n_copies)
        st["trials"] = total
        forced, kicks, current = self._drives(_tile_drive(drive, B, n_copies), total, T)
        if extra_current is not None:
            current = extra_current if current is None else extra_current + np.asarray(
                current)[:, None, :]
        # Clones: the caller's generators stay where they are, so another call with them
        # replays the same noise.
        run_gens = [_clone(g) for g in gens] if self.model == "lif" else None
        units, steps, trial_of = self._simulate(params["W"], st, T, forced, kicks, current,
                                                run_gens, weights=weights, copies=n_copies)
        raster = ev.SpikeTrains(units=units, steps=steps, n_units=self.n_units, n_steps=T,
                                dt=float(self.dt), trials=trial_of)
        return raster, st

    def _background(self, rng, B):
        """Per-trial background generators and the perturbations' generator."""
        rng = np.random.default_rng(rng)
        g_noise, g_pert = rng.spawn(2)
        return list(g_noise.spawn(B)), g_pert

    def presynaptic_traces(self, raster, n_trials=None) -> np.ndarray:
        r"""What one unit of weight from each unit adds to its targets' input, per step.

        For a presynaptic unit ``j`` with spike counts :math:`S_j(t)` (per step), the
        synaptic current a weight of 1 would carry, on the grid of the exact integration
        (``synapse="exp"``: :math:`\hat I(t) = a \hat I(t-1) + S_j(t)`, ``a =
        exp(-dt/tau_syn)``; ``"alpha"``: :math:`\hat x(t) = a \hat x(t-1) + S_j(t)`,
        :math:`\hat I(t) = a \hat I(t-1) + c_{Ix} \hat x(t-1)`), enters the membrane update
        of step ``t`` as :math:`c_{vI} \hat I(t-1) + c_{vx} \hat x(t-1)`; divided by the
        propagator :math:`1 - e^{-dt/\tau_m}` of an input current held for one step, it is
        the current (mV) that has the same effect:

        .. math::

            h_j(t) = \frac{c_{vI} \hat I_j(t-1) + c_{vx} \hat x_j(t-1)}
                          {1 - e^{-dt/\tau_m}}

        (about the synaptic-current kernel :math:`e^{-t/\tau_s}` of ``j``'s spikes, shifted
        by one step). A spike of ``j`` reaches ``i`` after the delay :math:`d_{ij}` steps,
        so changing :math:`W_{ij}` by :math:`\delta` changes the membrane of ``i`` exactly as
        the input current :math:`\delta\, h_j(t - d_{ij})` would: this is the presynaptic
        trace of node perturbation's eligibility. Spikes before the run are not included.

        Parameters
        ----------
        raster : SpikeTrains
        n_trials : int, optional
            Trials of the run (default: one for an unbatched raster, else the highest
            trial with a spike plus one).

        Returns
        -------
        ndarray, shape (n_steps, n_trials, n_units)
            :math:`h_j(t)` in mV per unit weight (zero-delay convention).
        """
        if self.model != "lif":
            raise ValueError("presynaptic traces are defined for LIF units (model='lif')")
        trials = np.zeros(raster.units.size, np.intp) if raster.trials is None else \
            np.asarray(raster.trials, np.intp)
        B = n_trials if n_trials is not None else (
            1 if raster.trials is None else int(trials.max(initial=-1)) + 1)
        T, N = raster.n_steps, self.n_units
        S = np.zeros((T, B, N))
        np.add.at(S, (raster.steps, trials, raster.units), 1.0)
        p = self._prop
        a = p["a"]
        if self.synapse == "exp":
            drive_in = p["vI"] * lfilter([1.0], [1.0, -a], S, axis=0)
        else:
            x = lfilter([1.0], [1.0, -a], S, axis=0)
            current = lfilter([0.0, p["Ix"]], [1.0, -a], x, axis=0)
            drive_in = p["vI"] * current + p["vx"] * x
        h = np.zeros_like(drive_in)
        h[1:] = drive_in[:-1] / p["drive"]
        return h

    def perturbations(self, params, data, request, *, state=None, rng=None):
        r"""Losses of randomly perturbed copies and each perturbation's eligibility.

        All copies run as ONE batch of ``(1 + R) B`` trials: the clean run, then
        ``R = K`` (or ``2K`` when antithetic: each perturbation with both signs) perturbed
        copies, each of the ``B = data["trials"]`` trials of the data.

        **Common random numbers.** Copy ``r`` of trial ``b`` draws its background noise
        from a clone of trial ``b``'s generator, so every copy of a trial sees the same
        noise, step for step. The loss difference :math:`L_k - L_0` is then due to the
        perturbation alone; with independent noise it would also carry the difference of
        two noise realisations of the loss, whose variance does not shrink with ``sigma``
        and, divided by :math:`\sigma^2`, swamps the estimate.

        - ``where="nodes"`` (Fiete & Seung 2006): Gaussian white noise
          :math:`\xi_{k,i}(t) \sim N(0, \sigma^2)` (mV) is added to the input current of
          every unit that has incoming connections (the only units whose noise any weight is
          credited with) at every step of copy ``k``; it moves the membrane by
          :math:`(1 - e^{-dt/\tau_m})\,\xi`, so the free membrane fluctuates by about
          :math:`\sigma \sqrt{dt / 2\tau_m}`. Eligibility of ``W[i, j]``:
          :math:`e_k[W_{ij}] = \sum_b \sum_t \xi_{k,b,i}(t)\, h_{b,j}(t - d_{ij})`, with
          :math:`h` the clean run's :meth:`presynaptic_traces` (its synaptic-current
          kernel). Changing :math:`W_{ij}` by :math:`\delta` acts on unit ``i`` exactly
          like the current :math:`\delta\, h_j(t - d_{ij})`, so for white noise
          :math:`\mathbb E[(L_k - L_0)\, e_k] = \sigma^2 \nabla_W \bar L + O(\sigma^4)`
          where :math:`\bar L` is the loss averaged over the background noise (the spike
          times are not differentiable in one realisation; their noise average is).
          LIF units only.
        - ``where="weights"``: Gaussian :math:`\epsilon_k` (std ``sigma``, mV) on every
          value of ``W`` (on the graph only); eligibility :math:`\epsilon_k`. Each copy has
          its own weights (one row of values per trial in the step loop).

        Parameters
        ----------
        params : dict
        data : dict
            ``duration``, ``loss`` (required), ``drive``, ``trials``.
        request : Perturbed
            ``params`` may only name ``"W"``.
        state : dict, optional
            State of the ``B`` trials to start every copy from.
        rng : None, int or Generator
            Split into the background noise (one child per trial) and the perturbations.

        Returns
        -------
        result : Perturbations
            ``eligibility["W"]`` (K, nnz) in W's storage order, ``losses`` (K,),
            ``losses_minus`` (K,) when antithetic, ``loss_clean`` when ``request.clean``.
        raster : SpikeTrains
            The clean run's spikes (trials ``0 .. B-1``).
        loss : float
            The clean run's loss (mean over trials).
        state : dict
            The clean run's state at the end.
        """
        return self._perturbations(params, data, request, state=state, rng=rng)

    def _perturbations(self, params, data, request, *, state=None, rng=None):
        if not isinstance(request, ev.Perturbed):
            raise TypeError(f"request must be Perturbed, got {type(request).__name__}")
        request.selected(("W",))
        duration, drive, trials, loss_fn = self._data(data)
        if loss_fn is None:
            raise MissingLossError("perturbation learning needs a task loss: give data as a "
                                   "dict with 'loss' (a SpikeTarget or a callable "
                                   "loss(raster, n_trials))")
        if request.where == "nodes" and self.model != "lif":
            raise ValueError("node perturbation injects current into membranes: it needs "
                             "model='lif' (use where='weights' for binary units)")
        if isinstance(rng, (list, tuple)):
            raise TypeError("rng must be None, an int or a Generator for perturbed runs")
        B = 1 if trials is None else trials
        T = self.n_steps_for(duration)
        K, sigma = request.n_samples, float(request.sigma)
        R = 2 * K if request.antithetic else K
        copies = 1 + R
        gens, g_pert = self._background(rng, B)
        W = params["W"]
        weights = extra = None
        if request.where == "weights":
            eps = g_pert.standard_normal((K, W.nnz)) * sigma
            signed = np.concatenate([eps, -eps]) if request.antithetic else eps
            rows = np.concatenate([np.zeros((1, W.nnz)), signed]) + W.data[None]
            weights = np.repeat(rows, B, axis=0)
        else:
            receives = np.flatnonzero(np.diff(self.topology.mask.indptr) > 0)
            xi = g_pert.standard_normal((T, K, B, receives.size)) * sigma
            extra = np.zeros((T, copies * B, self.n_units))
            view = extra.reshape(T, copies, B, self.n_units)
            view[:, 1:K + 1, :, receives] = xi
            if request.antithetic:
                view[:, K + 1:, :, receives] = -xi
        raster, st = self._run_copies(params, T, drive, B, copies, gens, state=state,
                                      weights=weights, extra_current=extra)
        per_trial = _task_losses(loss_fn, raster, copies * B)
        losses = per_trial.reshape(copies, B).mean(axis=1)
        clean = _sub_raster(raster, 0, B, masks={"W": self.topology.mask})
        if request.where == "weights":
            eligibility = eps
        else:
            eligibility = self._node_eligibility(clean, B, xi, receives)
        result = ev.Perturbations(
            sigma=request.sigma, eligibility={"W": eligibility}, losses=losses[1:K + 1],
            losses_minus=losses[K + 1:] if request.antithetic else None,
            loss_clean=float(losses[0]) if request.clean else None)
        if trials is None:
            clean = ev.SpikeTrains(units=clean.units, steps=clean.steps,
                                   n_units=clean.n_units, n_steps=clean.n_steps,
                                   dt=clean.dt, trials=None, masks=clean.masks)
        return result, clean, float(losses[0]), _slice_state(st, B, trials)

    def _node_eligibility(self, clean, B, xi, receives):
        r""":math:`e_k[W_{ij}] = \sum_{b,t} \xi_{k,b,i}(t)\, h_{b,j}(t - d_{ij})`, (K, nnz).

        Per delay group one product of the noise, (K n_p, T B), with the shifted traces,
        (T B, N): O(K n_p N T B) operations, then the group's edges are read out (dense in
        the perturbed units: meant for the small networks perturbation learning trains).
        """
        T, K = xi.shape[0], xi.shape[1]
        h = self.presynaptic_traces(clean, B)
        n_p = receives.size
        slot = np.full(self.n_units, -1, np.intp)
        slot[receives] = np.arange(n_p)
        noise = xi.transpose(1, 3, 0, 2).reshape(K * n_p, T * B)
        out = np.zeros((K, self.topology.mask.nnz))
        for d, _, rows, ids in self._groups:
            if d >= T:
                continue
            shifted = np.zeros_like(h)
            shifted[d:] = h[:T - d]
            # einsum, not BLAS: these products are small, and a threaded BLAS's wake-up
            # cost 1-40 ms per call on a busy 2-core machine (measured), einsum 0.4 ms.
            M = np.einsum("kt,tj->kj", noise, shifted.reshape(T * B, -1)).reshape(K, n_p, -1)
            cols = self.topology.mask.indices[ids]
            out[:, ids] = M[:, slot[rows], cols]
        return out

    def finite_difference_gradient(self, params, data, *, step, edges=None, rng=None,
                                   max_trials=4096):
        r"""Central differences of the noise-averaged task loss in each weight.

        .. math::

            \hat g_e = \frac{1}{2h}\,\frac{1}{B}\sum_{b=1}^{B}
                \big(L_b(W + h\,\mathbf 1_e) - L_b(W - h\,\mathbf 1_e)\big)

        with :math:`L_b` the loss of trial ``b`` and the SAME background noise for trial
        ``b`` in every evaluation (common random numbers), so that the difference measures
        the weight's effect, not the difference of two noise draws. All ``2 |edges| B``
        runs are batched (at most ``max_trials`` trials per batch, one row of weights per
        trial). A reference for perturbation estimates, and noisy itself: the loss of one
        realisation is piecewise constant in the weights (spikes sit on the grid), so ``h``
        must be large enough that a change moves spikes in a fair share of the ``B``
        trials, and small enough for the curvature (error :math:`O(h^2)`); repeat with
        another ``rng`` to measure its own noise.

        Parameters
        ----------
        params : dict
        data : dict
            ``duration``, ``loss`` (required), ``drive``, ``trials`` (``B``: noise
            realisations averaged over).
        step : float > 0
            ``h``, in weight units (mV).
        edges : int array, optional
            Positions of the weights in ``W``'s storage order (default: all).
        rng : None, int or Generator
        max_trials : int
            Largest batch.

        Returns
        -------
        ndarray, shape (len(edges),)
            The gradient estimate (loss per mV).
        """
        check_positive(step, "step")
        check_positive(max_trials, "max_trials", integer=True)
        duration, drive, trials, loss_fn = self._data(data)
        if loss_fn is None:
            raise ValueError("finite differences need a task loss: give data as a dict "
                             "with 'loss'")
        self.check_params(params)
        W = params["W"]
        edges = np.arange(W.nnz) if edges is None else np.asarray(edges, np.intp)
        if edges.ndim != 1 or (edges.size and (edges.min() < 0 or edges.max() >= W.nnz)):
            raise ValueError(f"edges must be positions in [0, {W.nnz}) of W's values")
        B = 1 if trials is None else trials
        T = self.n_steps_for(duration)
        gens, _ = self._background(rng, B)
        per_batch = max(1, max_trials // (2 * B))
        out = np.zeros(edges.size)
        for lo in range(0, edges.size, per_batch):
            chunk = edges[lo:lo + per_batch]
            n = chunk.size
            rows = np.repeat(W.data[None], 2 * n, axis=0)
            rows[np.arange(n), chunk] += step
            rows[n + np.arange(n), chunk] -= step
            raster, _ = self._run_copies(params, T, drive, B, 2 * n, gens,
                                         weights=np.repeat(rows, B, axis=0))
            per = _task_losses(loss_fn, raster, 2 * n * B).reshape(2 * n, B).mean(axis=1)
            out[lo:lo + n] = (per[:n] - per[n:]) / (2.0 * step)
        return out


def pool_summary(raster, pools, *, bin_width=None, n_trials=None) -> dict:
    """Per-pool spike counts and times of a raster; see :meth:`SpikingNet.pool_summary`.

    ``pools`` maps pool labels to unit indices (``Topology.pools``) or is a sequence of index
    arrays.
    """
    labels, members = _pool_lists(pools, raster.n_units)
    pool_of = np.full(raster.n_units, -1, dtype=np.intp)
    for k, idx in enumerate(members):
        pool_of[idx] = k
    B = 1 if raster.trials is None else (int(raster.trials.max()) + 1 if raster.trials.size
                                         else 1)
    if n_trials is not None:
        if check_positive(n_trials, "n_trials", integer=True) < B:
            raise ValueError(f"n_trials={n_trials}, but the raster has spikes of trial {B - 1}")
        B = n_trials
    trials = np.zeros(raster.units.size, np.intp) if raster.trials is None else raster.trials
    k_of = pool_of[raster.units]
    keep = k_of >= 0
    K = len(members)
    counts = np.zeros((B, K), dtype=np.intp)
    np.add.at(counts, (trials[keep], k_of[keep]), 1)
    t = raster.steps * raster.dt
    times = [[t[keep & (k_of == k) & (trials == b)] for b in range(B)] for k in range(K)]
    sizes = np.array([len(m) for m in members], float)
    out = {"pools": labels, "counts": counts,
           "rate_hz": counts / sizes / (raster.n_steps * raster.dt) * 1e3, "times": times}
    if bin_width is not None:
        check_positive(bin_width, "bin_width")
        edges = np.arange(0.0, raster.n_steps * raster.dt + bin_width, bin_width)
        hist = np.zeros((B, K, edges.size - 1), dtype=np.intp)
        for k in range(K):
            for b in range(B):
                hist[b, k] = np.histogram(times[k][b], edges)[0]
        out["histogram"], out["bin_edges"] = hist, edges
    return out


def _pool_lists(pools, n_units):
    if isinstance(pools, dict):
        labels, members = list(pools), [np.asarray(pools[k], np.intp) for k in pools]
    else:
        members = [np.asarray(m, np.intp) for m in pools]
        labels = list(range(len(members)))
    if not members:
        raise ValueError("pools is empty")
    for m in members:
        if m.ndim != 1 or (m.size and (m.min() < 0 or m.max() >= n_units)):
            raise ValueError(f"pools must hold unit indices in [0, {n_units})")
    return tuple(labels), members


# -- task objectives -----------------------------------------------------------------------

def _task_losses(loss_fn, raster, n_trials):
    """Per-trial task losses, checked: shape (n_trials,), finite."""
    out = np.asarray(loss_fn(raster, n_trials), dtype=float)
    if out.shape != (n_trials,):
        raise ValueError(f"the data's loss must return one loss per trial, shape "
                         f"({n_trials},), got shape {out.shape}")
    if not np.isfinite(out).all():
        raise DivergenceError("the task loss is NaN or inf")
    return out


# -- perturbed copies ----------------------------------------------------------------------

def _clone(gen):
    """A generator that will draw exactly what ``gen`` draws next (common random numbers)."""
    bits = type(gen.bit_generator)()
    bits.state = gen.bit_generator.state
    return np.random.Generator(bits)


def _tile_drive(drive, B, n_copies):
    """``drive`` of ``B`` trials repeated for ``n_copies`` copies (trial ``r * B + b``)."""
    if drive is None or n_copies == 1:
        return drive
    drives = [drive] if isinstance(drive, SpikeDrive) else list(drive)
    out = []
    for d in drives:
        if isinstance(d, SpikeDrive) and d.trials is not None:
            shift = np.repeat(np.arange(n_copies) * B, d.n_events)
            d = SpikeDrive(units=np.tile(d.units, n_copies), steps=np.tile(d.steps, n_copies),
                           n_units=d.n_units, dt=d.dt, trials=np.tile(d.trials, n_copies)
                           + shift, weight=d.weight, current=d.current)
        out.append(d)
    return out


def _tile_state(state, n_copies):
    """A state of ``B`` trials repeated for ``n_copies`` copies along the trial axis."""
    st = dict(state)
    for key, axis in (("v", 0), ("syn", 1), ("refractory", 0), ("buffer", 1)):
        st[key] = np.concatenate([state[key]] * n_copies, axis=axis)
    return st


def _slice_state(state, B, trials):
    """The first ``B`` trials of a state (the clean copy)."""
    st = dict(state)
    st["v"], st["refractory"] = state["v"][:B].copy(), state["refractory"][:B].copy()
    st["syn"], st["buffer"] = state["syn"][:, :B].copy(), state["buffer"][:, :B].copy()
    st["trials"] = trials
    return st


def _sub_raster(raster, lo, hi, masks=None):
    """The spikes of trials ``lo .. hi - 1`` of a batched raster, renumbered from 0."""
    keep = (raster.trials >= lo) & (raster.trials < hi)
    return ev.SpikeTrains(units=raster.units[keep], steps=raster.steps[keep],
                          n_units=raster.n_units, n_steps=raster.n_steps, dt=raster.dt,
                          trials=raster.trials[keep] - lo, masks=masks or {})
