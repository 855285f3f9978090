r"""Drives for spiking networks: pulse packets, Poisson input and spontaneous activity.

Every function returns a :class:`SpikeDrive`: external spike events
(unit, step, trial) on the simulation grid of step ``dt`` (ms), either imposed spikes
(``weight=None``: the unit fires at that step) or input kicks of size ``weight`` (mV for LIF
units). Steps are counted from the start of the run that receives the drive.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ..validation import as_float_array, check_positive

__all__ = ["pulse_packet", "poisson_drive", "spontaneous", "SpikeDrive", "SpikeTarget"]


@dataclass(frozen=True, eq=False)
class SpikeDrive:
    r"""External spike events for :meth:`SpikingNet.run`: imposed spikes or input kicks.

    The drive is the one representation of external input to a spiking network. Each event
    names a unit, a time step (relative to the start of the run) and, optionally, a trial.

    - ``weight=None`` (imposed spikes): the unit fires at that step whatever its membrane
      does (it is reset and made refractory like after any spike), and the spike appears in
      the raster and travels along the unit's outgoing edges. This is how a pulse packet is
      put into the first pool of a chain and how spontaneous activity is injected.
    - ``weight=w`` (kicks): the unit receives an input of size ``w`` at that step, exactly as
      if a presynaptic spike of weight ``w`` had arrived (mV jump of the synaptic current for
      LIF units, added to the summed input for binary units).

    ``current`` adds a time-varying input current (mV, :math:`R I`), shape (n_steps, n_units),
    or a constant one, shape (n_units,), to every trial.

    Attributes
    ----------
    units, steps : int ndarray, shape (S,)
    n_units : int
    dt : float
        Step (ms) the events were placed on; must equal the network's.
    trials : int ndarray, shape (S,), or None
        Trial of each event; None: every event goes to every trial.
    weight : float or None
    current : ndarray or None
    """

    units: np.ndarray
    steps: np.ndarray
    n_units: int
    dt: float
    trials: np.ndarray | None = None
    weight: float | None = None
    current: np.ndarray | None = None

    def __post_init__(self):
        check_positive(self.n_units, "n_units", integer=True)
        check_positive(self.dt, "dt")
        units = np.asarray(self.units)
        steps = np.asarray(self.steps)
        for name, arr in (("units", units), ("steps", steps)):
            if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
                raise TypeError(f"{name} must be a 1-d array of integers, got dtype "
                                f"{arr.dtype} and shape {arr.shape}")
        if units.shape != steps.shape:
            raise ValueError(f"units and steps must have the same length, got {units.size} "
                             f"and {steps.size}")
        if units.size and (units.min() < 0 or units.max() >= self.n_units):
            raise ValueError(f"units must lie in [0, {self.n_units}), got "
                             f"[{units.min()}, {units.max()}]")
        if steps.size and steps.min() < 0:
            raise ValueError(f"steps must be >= 0, got {steps.min()}")
        object.__setattr__(self, "units", units.astype(np.intp))
        object.__setattr__(self, "steps", steps.astype(np.intp))
        if self.trials is not None:
            trials = np.asarray(self.trials)
            if trials.shape != units.shape or (trials.size and (
                    not np.issubdtype(trials.dtype, np.integer) or trials.min() < 0)):
                raise ValueError("trials must be None or non-negative integers, one per event")
            object.__setattr__(self, "trials", trials.astype(np.intp))
        if self.weight is not None:
            if isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real) \
                    or not np.isfinite(self.weight):
                raise TypeError(f"weight must be None (imposed spikes) or a finite number, "
                                f"got {self.weight!r}")
        if self.current is not None:
            cur = as_float_array(self.current, "current", ndim=(1, 2))
            if cur.shape[-1] != self.n_units:
                raise ValueError(f"current must have {self.n_units} units in its last axis, "
                                 f"got shape {cur.shape}")
            object.__setattr__(self, "current", cur)

    @property
    def n_events(self) -> int:
        """Number of events (imposed spikes or kicks)."""
        return int(self.units.size)


def _units(units, n_units):
    idx = np.asarray(units)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TypeError("units must be a 1-d array of unit indices (e.g. topology.pools[0])")
    if idx.size and (idx.min() < 0 or idx.max() >= n_units):
        raise ValueError(f"units must lie in [0, {n_units}), got [{idx.min()}, {idx.max()}]")
    if np.unique(idx).size != idx.size:
        raise ValueError("units must be distinct")
    return idx.astype(np.intp)


def _trials(trials):
    if trials is None:
        return None
    return check_positive(trials, "trials", integer=True)


def pulse_packet(a, sigma, units, *, t0, n_units, dt=0.1, trials=None, rng=None):
    r"""A pulse packet: ``a`` spikes, one each from ``a`` distinct units, spread in time.

    Spike times are :math:`t_i = t_0 + \sigma z_i`, :math:`z_i \sim N(0, 1)`, rounded to the
    grid and clipped at 0 (choose ``t0`` a few ``sigma`` after the start); the units are
    ``a`` of ``units`` drawn without replacement. The events are imposed spikes: the units
    fire at those times, and the packet travels on along their outgoing edges (Diesmann,
    Gewaltig & Aertsen 1999 characterise a volley by exactly this ``(a, sigma)``).

    Parameters
    ----------
    a : int >= 0
        Spikes in the packet; at most ``len(units)``.
    sigma : float >= 0
        Temporal spread (ms, standard deviation of the spike times).
    units : int array
        The pool the packet is put into (``topology.pools[0]``).
    t0 : float >= 0
        Centre of the packet, ms from the start of the run.
    n_units : int
        Units of the network.
    dt : float > 0
        Simulation step (ms); must match the network's.
    trials : int or None
        Draw an independent packet (units and times) for each of this many trials.
    rng : None, int or Generator

    Returns
    -------
    SpikeDrive
    """
    rng = np.random.default_rng(rng)
    if isinstance(a, bool) or not isinstance(a, numbers.Integral) or a < 0:
        raise ValueError(f"a must be an integer >= 0, got {a!r}")
    check_positive(sigma, "sigma", strict=False)
    check_positive(t0, "t0", strict=False)
    check_positive(dt, "dt")
    n_units = check_positive(n_units, "n_units", integer=True)
    idx = _units(units, n_units)
    if a > idx.size:
        raise ValueError(f"a = {a} spikes cannot come from distinct units of a pool of "
                         f"{idx.size}: a must be at most the pool size")
    trials = _trials(trials)
    B = 1 if trials is None else trials
    us, ss = [], []
    for _ in range(B):
        us.append(rng.choice(idx, size=a, replace=False))
        times = t0 + sigma * rng.standard_normal(a)
        ss.append(np.maximum(0, np.rint(times / dt)).astype(np.intp))
    tr = None if trials is None else np.repeat(np.arange(B), a)
    return SpikeDrive(units=np.concatenate(us), steps=np.concatenate(ss), n_units=n_units,
                      dt=float(dt), trials=tr)


def poisson_drive(rate_hz, n_units, duration, dt=0.1, *, units=None, weight=None,
                  trials=None, rng=None):
    r"""Independent Poisson spike trains of rate ``rate_hz`` on each unit.

    Each unit's events form a Poisson process of rate :math:`\lambda` (Hz) over
    ``[0, duration)`` ms, placed on the grid (two events of one unit in one step merge into
    one: a unit receives an event in a step with probability :math:`1 - e^{-\lambda dt}`, a
    relative loss of about :math:`\lambda\,dt / 2`: 0.05% at 10 Hz and 0.1 ms, 5% at
    1000 Hz).

    Parameters
    ----------
    rate_hz : float >= 0
    n_units : int
    duration : float > 0, ms
    dt : float > 0, ms
    units : int array, optional
        Only these units receive events (default: all).
    weight : float or None
        None: imposed spikes; a number: input kicks of that size (mV for LIF units), i.e.
        external Poisson input through a synapse of weight ``weight``.
    trials : int or None
        Independent trains for each of this many trials.
    rng : None, int or Generator

    Returns
    -------
    SpikeDrive
    """
    rng = np.random.default_rng(rng)
    check_positive(rate_hz, "rate_hz", strict=False)
    n_units = check_positive(n_units, "n_units", integer=True)
    check_positive(duration, "duration")
    check_positive(dt, "dt")
    idx = np.arange(n_units) if units is None else _units(units, n_units)
    trials = _trials(trials)
    B = 1 if trials is None else trials
    n_steps = max(1, int(round(duration / dt)))
    counts = rng.poisson(rate_hz * 1e-3 * n_steps * dt, size=(B, idx.size))
    total = int(counts.sum())
    trial_of = np.repeat(np.repeat(np.arange(B), idx.size), counts.reshape(-1))
    unit_of = np.repeat(np.tile(idx, B), counts.reshape(-1))
    step_of = rng.integers(0, n_steps, size=total)
    # One event per (trial, unit, step): merge coincident ones.
    key = (trial_of * n_units + unit_of) * n_steps + step_of
    key = np.unique(key)
    step_of = key % n_steps
    unit_of = (key // n_steps) % n_units
    trial_of = key // (n_steps * n_units)
    order = np.argsort(step_of, kind="stable")
    return SpikeDrive(units=unit_of[order], steps=step_of[order], n_units=n_units,
                      dt=float(dt), trials=None if trials is None else trial_of[order],
                      weight=weight)


def spontaneous(n_units, duration, rate_hz, *, dt=0.1, units=None, trials=None, rng=None):
    """Noise-only drive: every unit fires spontaneously as an independent Poisson process.

    The spikes are imposed (the units fire them whatever their input) and travel along the
    graph like any other, so a network driven by this alone learns only from activity it
    generates itself (Fiete et al. 2010). Same as ``poisson_drive(..., weight=None)``. For
    LIF units, the background current of the network (``noise_mean``, ``noise_std``) is the
    other source of spontaneous spikes.

    Parameters
    ----------
    n_units : int
    duration : float > 0, ms
    rate_hz : float >= 0
    dt : float > 0, ms
    units : int array, optional
    trials : int or None
    rng : None, int or Generator

    Returns
    -------
    SpikeDrive
    """
    return poisson_drive(rate_hz, n_units, duration, dt, units=units, weight=None,
                         trials=trials, rng=rng)


def _van_rossum_pairs(times, groups, tau):
    r"""Per group, :math:`\sum_{a, a'} e^{-|t_a - t_{a'}|/\tau}` over the group's times.

    ``times`` sorted within each group and ``groups`` sorted (non-decreasing): a pass per lag
    over neighbours of the same group, stopped once every term of a lag is below 1e-17 (the
    terms shrink with the lag, the times being sorted).
    """
    n_groups = int(groups.max()) + 1 if groups.size else 0
    total = np.bincount(groups, minlength=n_groups).astype(float)  # the a = a' terms
    lag = 1
    while lag < times.size:
        same = groups[lag:] == groups[:-lag]
        if not same.any():
            break
        terms = np.exp(-(times[lag:] - times[:-lag]) / tau) * same
        if terms.max() < 1e-17:
            break
        total += 2.0 * np.bincount(groups[lag:], weights=terms, minlength=n_groups)
        lag += 1
    return total


@dataclass(frozen=True, eq=False)
class SpikeTarget:
    r"""A spike-timing objective: some units should fire at given times.

    The loss of one trial is the mean over the listed units of the squared van Rossum
    distance between the unit's spike train :math:`\{t_a\}` and its target train
    :math:`\{s_b\}` (times in ms): each train is filtered with the causal kernel
    :math:`e^{-t/\tau} H(t)` and

    .. math::

        D^2 = \frac{1}{\tau}\int_0^\infty (f(t) - g(t))^2\,dt
            = \tfrac12 \sum_{a,a'} e^{-|t_a - t_{a'}|/\tau}
            + \tfrac12 \sum_{b,b'} e^{-|s_b - s_{b'}|/\tau}
            - \sum_{a,b} e^{-|t_a - s_b|/\tau},

    computed in closed form (no grid, no end-of-trial cut). One spike off its target by
    :math:`\Delta` costs :math:`1 - e^{-|\Delta|/\tau}`; a missing or an extra isolated
    spike costs 1/2. The distance is zero only for exactly the target times, grows smoothly
    with timing errors on the scale ``tau``, and counts missing and extra spikes, so one
    number scores both timing and count.

    Parameters
    ----------
    units : sequence of int
        The scored (output) units, distinct.
    times : sequence of sequences of float
        Target spike times (ms, from the start of the run) of each unit in ``units``; a
        unit may have none (it should stay silent).
    tau : float > 0
        Time scale of the kernel, ms.

    Notes
    -----
    Call it as ``target(raster, n_trials)`` with a :class:`~recur.rules.SpikeTrains` (spike
    times ``steps * dt``): it returns the ``(n_trials,)`` per-trial losses. This is the
    ``loss`` of a :class:`SpikingNet` data dict; any callable with the same signature will
    do.

    References
    ----------
    M. C. W. van Rossum, "A novel spike distance", Neural Comput. 13:751-763 (2001).
    """

    units: np.ndarray
    times: tuple
    tau: float = 5.0

    def __post_init__(self):
        units = np.asarray(self.units)
        if units.ndim != 1 or not units.size or not np.issubdtype(units.dtype, np.integer):
            raise TypeError(f"units must be a non-empty 1-d sequence of unit indices, got "
                            f"{self.units!r}")
        if units.min() < 0 or np.unique(units).size != units.size:
            raise ValueError("units must be distinct non-negative unit indices")
        try:
            times = tuple(np.sort(np.asarray(t, float).ravel()) for t in self.times)
        except (TypeError, ValueError):
            raise TypeError("times must hold one sequence of spike times (ms) per unit") \
                from None
        if len(times) != units.size:
            raise ValueError(f"times must hold one sequence of target times per unit: "
                             f"{units.size} unit(s), {len(times)} sequence(s)")
        if any(t.size and not np.isfinite(t).all() for t in times):
            raise ValueError("target times must be finite")
        check_positive(self.tau, "tau")
        object.__setattr__(self, "units", units.astype(np.intp))
        object.__setattr__(self, "times", times)
        self_terms = np.array([np.exp(-np.abs(t[:, None] - t[None, :]) / self.tau).sum()
                               for t in times])
        object.__setattr__(self, "_target_terms", self_terms)

    def __call__(self, raster, n_trials=None) -> np.ndarray:
        """Per-trial losses, shape (n_trials,), of a raster (trials None counts as one)."""
        # Any raster with SpikeTrains' fields (tasks sit below the rule vocabulary).
        if not all(hasattr(raster, a) for a in ("units", "steps", "n_units", "dt", "trials")):
            raise TypeError(f"raster must be SpikeTrains, got {type(raster).__name__}")
        if self.units.max() >= raster.n_units:
            raise ValueError(f"the target scores unit {self.units.max()}; the raster has "
                             f"{raster.n_units} units")
        trials = np.zeros(raster.units.size, np.intp) if raster.trials is None else \
            np.asarray(raster.trials, np.intp)
        if n_trials is not None:
            B = check_positive(n_trials, "n_trials", integer=True)
        else:
            B = 1 if raster.trials is None else int(trials.max(initial=-1)) + 1
        M = self.units.size
        slot = np.full(raster.n_units, -1, np.intp)
        slot[self.units] = np.arange(M)
        m = slot[raster.units]
        keep = m >= 0
        if keep.any() and trials[keep].max() >= B:
            raise ValueError(f"the raster has spikes of trial {trials[keep].max()}; "
                             f"n_trials={B}")
        m, b = m[keep], trials[keep]
        t = raster.steps[keep] * float(raster.dt)
        group = b * M + m
        order = np.lexsort((t, group))
        group, t, m = group[order], t[order], m[order]
        own = np.zeros(B * M)
        if group.size:
            own = _van_rossum_pairs(t, group, self.tau)
            own = np.pad(own, (0, B * M - own.size))
        # Cross terms: each output spike against its unit's targets (padded with inf).
        width = max((x.size for x in self.times), default=0)
        cross = np.zeros(B * M)
        if width and group.size:
            pad = np.full((M, width), np.inf)
            for k, x in enumerate(self.times):
                pad[k, :x.size] = x
            c = np.exp(-np.abs(t[:, None] - pad[m]) / self.tau).sum(axis=1)
            cross = np.bincount(group, weights=c, minlength=B * M)
        d2 = 0.5 * own + 0.5 * np.tile(self._target_terms, B) - cross
        return np.maximum(d2, 0.0).reshape(B, M).mean(axis=1)
