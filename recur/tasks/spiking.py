r"""Drives for spiking networks: pulse packets, Poisson input and spontaneous activity.

Every function returns a :class:`SpikeDrive`: external spike events
(unit, step, trial) on the simulation grid of step ``dt`` (ms), either imposed spikes
(``weight=None``: the unit fires at that step) or input kicks of size ``weight`` (mV for LIF
units). Steps are counted from the start of the run that receives the drive.
"""

from __future__ import annotations

import numbers

import numpy as np

from dataclasses import dataclass

from ..validation import as_float_array, check_positive

__all__ = ["pulse_packet", "poisson_drive", "spontaneous", "SpikeDrive"]


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
    one: a relative loss of about :math:`\lambda\,dt / 2`, 0.0005% at 10 Hz and 0.1 ms).

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
