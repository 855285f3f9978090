"""Echo-state network: a leaky-tanh rate network on any topology."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .. import kernels
from .. import weights as wts
from ..rules import evidence as ev
from ..tasks.objectives import ClosedLoop, as_objective
from ..topology import Topology
from ..validation import DivergenceError, as_float_array, check_in_interval, check_positive

__all__ = ["ESN", "Trajectory"]

@dataclass(frozen=True)
class Trajectory:
    """One pass of an ESN over an objective's data, with everything learning rules read.

    Time-major arrays, with a leading batch axis when the data is batched. Step ``t`` reads
    ``u[t]`` and moves the state from ``x_prev[t]`` to ``x[t]``; the readout of ``x[t]`` is
    ``y_hat[t]``, to be compared with ``target[t]`` on the steps where ``counted`` is True.
    On closed-loop steps (``free`` True) the input ``u[t]`` is the prediction ``y_hat[t-1]``.

    Attributes
    ----------
    x_prev, x : ndarray, shape (..., T, N)
    u : ndarray, shape (..., T, n_in)
    y_hat, target : ndarray, shape (..., T, n_out)
    counted, free : ndarray of bool, shape (T,)
    loss : float
        Mean squared error over the counted steps.
    final_state : ndarray, shape (..., N)
        The state after the last teacher-forced input (for a closed-loop objective, after
        the warm-up: the free run is the network's own and is not continued from).
    """

    x_prev: np.ndarray
    x: np.ndarray
    u: np.ndarray
    y_hat: np.ndarray
    target: np.ndarray
    counted: np.ndarray
    free: np.ndarray
    loss: float
    final_state: np.ndarray


# A mask denser than this is stored as a dense array: past it CSR costs more than it saves.
SPARSE_MAX_DENSITY = 0.25
_DISTRIBUTIONS = ("normal", "uniform")


@dataclass(frozen=True, eq=False)
class ESN:
    r"""Echo-state network: leaky-tanh units wired by a topology.

    .. math::

        x_t = (1 - a)\, x_{t-1} + a \tanh(W x_{t-1} + W_{in} u_t + W_{fb} y_{t-1} + b)

    with leak ``a``; ``W[post, pre]`` is nonzero only on the topology's edges (edge ``u -> v``
    lets unit ``v`` read unit ``u``). This is reservoirpy's ``Reservoir`` update with
    ``lr = leak``.

    Parameters
    ----------
    topology : Topology
        Wiring of the recurrent weights.
    leak : float in (0, 1]
        Leak rate ``a``; 1 is a plain (non-leaky) tanh network.
    spectral_radius : float > 0 or None
        ``W`` is rescaled to this spectral radius; ``None`` keeps the raw draw (needed for
        acyclic graphs, whose spectral radius is 0).
    input_scaling : float >= 0
        ``W_in`` entries are drawn from ``U[-input_scaling, input_scaling)``.
    bias_scaling : float >= 0
        ``b`` entries are drawn from ``U[-bias_scaling, bias_scaling)``.
    n_in : int >= 0
        Input channels ``u_t``.
    n_out : int >= 1
        Output channels of a readout; the size of the feedback ``y``.
    feedback : bool
        Add output feedback ``W_fb y_{t-1}``.
    feedback_scaling : float >= 0
        ``W_fb`` entries are drawn from ``U[-feedback_scaling, feedback_scaling)``.
    output_scaling : float >= 0
        The built-in linear readout ``y = W_out x + b_out`` starts with
        ``W_out ~ N(0, output_scaling**2 / N)`` and ``b_out = 0``; learning rules train it
        (a separate :class:`~recur.Ridge` readout can be used instead).
    weight_distribution : {"normal", "uniform"}
        Distribution of the raw recurrent weights before spectral scaling.
    sparse : bool or None
        Store ``W`` as a CSR matrix; ``None`` chooses CSR when the mask density is at most
        ``SPARSE_MAX_DENSITY``.
    dtype : numpy floating type
        ``float64`` (default) or ``float32``.
    backend : {"auto", "numba", "numpy"}
        Step loop implementation; ``"auto"`` uses numba when installed.

    Notes
    -----
    ``params`` holds ``"W"`` (N, N), ``"W_in"`` (N, n_in), ``"b"`` (N,) and, with feedback,
    ``"W_fb"`` (N, n_out). States are ``(T, N)`` for one sequence, ``(B, T, N)`` for a batch.

    References
    ----------
    .. [1] H. Jaeger, "The 'echo state' approach to analysing and training recurrent neural
       networks", GMD Report 148 (2001).
    .. [2] M. Lukoševičius, "A practical guide to applying echo state networks", in Neural
       Networks: Tricks of the Trade, Springer (2012).
    """

    topology: Topology
    leak: float = 1.0
    spectral_radius: float | None = 0.9
    input_scaling: float = 1.0
    bias_scaling: float = 0.0
    n_in: int = 1
    n_out: int = 1
    feedback: bool = False
    feedback_scaling: float = 1.0
    output_scaling: float = 1.0
    weight_distribution: str = "normal"
    sparse: bool | None = None
    dtype: type = np.float64
    backend: str = "auto"

    def __post_init__(self):
        if not isinstance(self.topology, Topology):
            raise TypeError(f"topology must be a recur.Topology, got {type(self.topology).__name__}")
        check_in_interval(self.leak, "leak", 0.0, 1.0)
        if self.spectral_radius is not None:
            check_positive(self.spectral_radius, "spectral_radius")
        check_positive(self.input_scaling, "input_scaling", strict=False)
        check_positive(self.bias_scaling, "bias_scaling", strict=False)
        check_positive(self.feedback_scaling, "feedback_scaling", strict=False)
        check_positive(self.output_scaling, "output_scaling", strict=False)
        check_positive(self.n_in, "n_in", strict=False, integer=True)
        check_positive(self.n_out, "n_out", integer=True)
        if self.n_in == 0 and not self.feedback:
            raise ValueError("an ESN needs n_in >= 1 or feedback=True to receive any signal")
        if self.weight_distribution not in _DISTRIBUTIONS:
            raise ValueError(f"weight_distribution must be one of {_DISTRIBUTIONS}, "
                             f"got {self.weight_distribution!r}")
        if np.dtype(self.dtype) not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype!r}")
        kernels.resolve_backend(self.backend)

    # -- parameters -----------------------------------------------------------------------
    @property
    def n_units(self) -> int:
        return self.topology.n_units

    @property
    def is_sparse(self) -> bool:
        if self.sparse is None:
            return self.topology.density <= SPARSE_MAX_DENSITY
        return bool(self.sparse)

    def init(self, rng=None) -> dict:
        """Draw parameters.

        Parameters
        ----------
        rng : None, int or numpy.random.Generator

        Returns
        -------
        params : dict
            ``"W"`` (csr_array or ndarray, (N, N)), ``"W_in"`` (N, n_in), ``"b"`` (N,),
            ``"W_out"`` (n_out, N), ``"b_out"`` (n_out,), and ``"W_fb"`` (N, n_out) when
            ``feedback``.
        """
        rng = np.random.default_rng(rng)
        r_w, r_in, r_b, r_fb, r_out = rng.spawn(5)
        dtype = np.dtype(self.dtype)
        mask = self.topology.mask if self.is_sparse else self.topology.mask.toarray()
        if self.weight_distribution == "normal":
            W = wts.normal(mask, 1.0, rng=r_w)
        else:
            W = wts.uniform(mask, -0.5, 0.5, rng=r_w)
        if self.spectral_radius is not None:
            if self.topology.n_edges == 0:
                raise ValueError("the topology has no edges, so W cannot be scaled to a "
                                 "spectral radius; pass spectral_radius=None")
            W = wts.scale_spectral_radius(W, self.spectral_radius)
        params = {
            "W": W.astype(dtype),
            "W_in": wts.input_weights(self.n_units, self.n_in, self.input_scaling, rng=r_in,
                                      dtype=dtype),
            "b": r_b.uniform(-self.bias_scaling, self.bias_scaling, self.n_units).astype(dtype),
        }
        if self.feedback:
            params["W_fb"] = wts.input_weights(self.n_units, self.n_out, self.feedback_scaling,
                                               rng=r_fb, dtype=dtype)
        scale = self.output_scaling / np.sqrt(self.n_units)
        params["W_out"] = r_out.normal(0.0, scale, (self.n_out, self.n_units)).astype(dtype)
        params["b_out"] = np.zeros(self.n_out, dtype=dtype)
        return params

    def initial_state(self, batch=None) -> np.ndarray:
        """Zero state, shape (N,) or (batch, N)."""
        shape = (self.n_units,) if batch is None else (check_positive(batch, "batch", integer=True), self.n_units)
        return np.zeros(shape, dtype=self.dtype)

    # -- validation -----------------------------------------------------------------------
    def check_params(self, params) -> None:
        """Raise if ``params`` does not fit this network or holds NaN/inf."""
        if not isinstance(params, dict):
            raise TypeError(f"params must be a dict of arrays, got {type(params).__name__}")
        n = self.n_units
        want = {"W": (n, n), "W_in": (n, self.n_in), "b": (n,)}
        if self.feedback:
            want["W_fb"] = (n, self.n_out)
        optional = {"W_out": (self.n_out, n), "b_out": (self.n_out,)}
        want.update({k: v for k, v in optional.items() if k in params})
        for key, shape in want.items():
            if key not in params:
                raise ValueError(f"params is missing {key!r}")
            arr = params[key]
            if tuple(arr.shape) != shape:
                raise ValueError(f"params[{key!r}] must have shape {shape}, got {tuple(arr.shape)}")
            values = arr.data if sp.issparse(arr) else arr
            if not np.all(np.isfinite(values)):
                raise DivergenceError(f"params[{key!r}] contains NaN or inf")

    def _check_state(self, state, batch):
        if state is None:
            return self.initial_state(batch)
        state = as_float_array(state, "state", dtype=self.dtype)
        want = (self.n_units,) if batch is None else (batch, self.n_units)
        if state.shape != want:
            raise ValueError(f"state must have shape {want}, got {state.shape}")
        return state

    def _sequence(self, x, name, width):
        """Validate a (T, D) or (B, T, D) sequence with D == width."""
        x = as_float_array(x, name, ndim=(2, 3), dtype=self.dtype)
        if x.shape[-1] != width:
            hint = " (a 1-D series needs a trailing axis: x[:, None])" if x.ndim == 2 and width == 1 and x.shape[0] == 1 else ""
            raise ValueError(f"{name} must have {width} channel(s) in its last axis, got shape "
                             f"{x.shape}{hint}")
        if x.shape[-2] == 0:
            raise ValueError(f"{name} has no time steps")
        return x

    # -- dynamics -------------------------------------------------------------------------
    def _drive(self, params, u, feedback):
        """``W_in u_t + W_fb y_{t-1} + b`` for every step: (T, N) or (B, T, N)."""
        drive = None
        with np.errstate(over="ignore", invalid="ignore"):
            if u is not None and self.n_in:
                drive = u @ params["W_in"].T
            if feedback is not None:
                fb = feedback @ params["W_fb"].T
                drive = fb if drive is None else drive + fb
            drive = drive + params["b"]
        if not np.isfinite(drive).all():
            raise DivergenceError("the input drive W_in u + W_fb y + b overflowed to NaN or "
                                  f"inf at {self._first_bad_step(drive)}")
        return np.ascontiguousarray(drive, dtype=self.dtype)

    def run(self, params, inputs=None, state=None, *, feedback=None, rng=None):
        """Run the network over a sequence or a batch of sequences.

        Parameters
        ----------
        params : dict
            From :meth:`init`.
        inputs : array, shape (T, n_in) or (B, T, n_in)
            ``u_1 ... u_T``; may be None for a network with ``n_in == 0``.
        state : array, shape (N,) or (B, N), optional
            ``x_0``; zeros by default.
        feedback : array, shape (T, n_out) or (B, T, n_out), optional
            ``y_0 ... y_{T-1}``, the outputs fed back at each step (teacher forcing). Required
            when the network has feedback.
        rng : ignored
            The ESN is deterministic; accepted for the common network protocol.

        Returns
        -------
        states : array, shape (T, N) or (B, T, N)
            ``x_1 ... x_T``.
        state : array, shape (N,) or (B, N)
            ``x_T``, to continue from (chunked runs equal one run).

        Raises
        ------
        DivergenceError
            If a state becomes NaN or inf; the message names the step.
        """
        self.check_params(params)
        if inputs is None and self.n_in:
            raise ValueError(f"inputs is required: this network has n_in={self.n_in}")
        if inputs is not None and not self.n_in:
            raise ValueError("this network has n_in=0 and takes no inputs")
        if self.feedback and feedback is None:
            raise ValueError("feedback is required for a network with feedback=True "
                             "(the outputs y_0..y_{T-1} fed back at each step)")
        if feedback is not None and not self.feedback:
            raise ValueError("feedback given, but the network was built with feedback=False")
        u = self._sequence(inputs, "inputs", self.n_in) if inputs is not None else None
        fb = self._sequence(feedback, "feedback", self.n_out) if feedback is not None else None
        if u is not None and fb is not None and u.shape[:-1] != fb.shape[:-1]:
            raise ValueError(f"inputs and feedback must cover the same steps, got shapes "
                             f"{u.shape} and {fb.shape}")
        ref = u if u is not None else fb
        batch = ref.shape[0] if ref.ndim == 3 else None
        x0 = self._check_state(state, batch)
        drive = self._drive(params, u, fb)
        W = params["W"]
        if batch is None:
            states, x = kernels.run_sequence(W, drive, x0, self.leak, self.backend)
        else:
            states, x = kernels.run_batch(W, drive, x0, self.leak, self.backend)
        if not np.isfinite(x).all() or not np.isfinite(states[..., -1, :]).all():
            raise DivergenceError(self._divergence_message(states))
        return states, x

    @staticmethod
    def _first_bad_step(x):
        finite = np.isfinite(x).reshape(-1, x.shape[-2], x.shape[-1]).all(axis=(0, 2))
        return f"step {int(np.argmin(finite))} of {x.shape[-2]}"

    def _divergence_message(self, states):
        return f"ESN states became NaN or inf at {self._first_bad_step(states)}"

    def step(self, params, state, u=None, *, feedback=None, rng=None):
        """One transition: ``x' = (1 - a) x + a tanh(W x + W_in u + W_fb y + b)``.

        ``state`` (N,) or (B, N); ``u`` (n_in,) or (B, n_in); ``feedback`` (n_out,) or
        (B, n_out). Returns the new state, same shape as ``state``.
        """
        state = np.asarray(state, dtype=self.dtype)
        if state.shape[-1] != self.n_units or state.ndim not in (1, 2):
            raise ValueError(f"state must have shape (N,) or (B, N) with N={self.n_units}, "
                             f"got {state.shape}")
        W = params["W"]
        pre = W @ state if state.ndim == 1 else (W @ state.T).T
        pre = pre + params["b"]
        if self.n_in:
            if u is None:
                raise ValueError(f"u is required: this network has n_in={self.n_in}")
            u = np.asarray(u, dtype=self.dtype)
            if u.shape != state.shape[:-1] + (self.n_in,):
                raise ValueError(f"u must have shape {state.shape[:-1] + (self.n_in,)}, got "
                                 f"{u.shape}")
            pre = pre + u @ params["W_in"].T
        if self.feedback:
            if feedback is None:
                raise ValueError("feedback is required for a network with feedback=True")
            feedback = np.asarray(feedback, dtype=self.dtype)
            if feedback.shape != state.shape[:-1] + (self.n_out,):
                raise ValueError(f"feedback must have shape "
                                 f"{state.shape[:-1] + (self.n_out,)}, got {feedback.shape}")
            pre = pre + feedback @ params["W_fb"].T
        new = (1.0 - self.leak) * state + self.leak * np.tanh(pre)
        if not np.isfinite(new).all():
            raise DivergenceError("ESN state became NaN or inf")
        return new.astype(self.dtype, copy=False)

    # -- learning -------------------------------------------------------------------------
    def output(self, params, states):
        """Built-in linear readout ``y = W_out x + b_out``; ``states`` (..., N) -> (..., n_out)."""
        return states @ params["W_out"].T + params["b_out"]

    def constrain(self, params):
        """Enforce the invariants training must keep: a dense ``W`` stays zero off the graph
        (a sparse ``W`` cannot leave it)."""
        W = params["W"]
        if sp.issparse(W):
            return params
        mask = self.topology.mask.toarray()
        if not W[~mask].any():
            return params
        return {**params, "W": np.where(mask, W, 0.0).astype(W.dtype)}

    def trajectory(self, params, data, state=None) -> Trajectory:
        """Run the network over an objective's data and score its predictions.

        Parameters
        ----------
        params : dict
            Must hold the readout ``"W_out"``, ``"b_out"``.
        data : TeacherForced, ClosedLoop or (inputs, targets)
        state : array, shape (N,) or (B, N), optional

        Returns
        -------
        Trajectory
        """
        objective = as_objective(data)
        if self.feedback:
            raise NotImplementedError("training rules on an ESN with output feedback is not "
                                      "supported yet; train its readout with Force in the loop")
        if "W_out" not in params:
            raise ValueError("params has no readout ('W_out', 'b_out'): make them with ESN.init")
        if self.n_in != self.n_out and isinstance(objective, ClosedLoop):
            raise ValueError(f"a closed-loop objective feeds the {self.n_out}-dimensional "
                             f"prediction back as the input, but n_in={self.n_in}")
        if objective.inputs.shape[-1] != self.n_in:
            raise ValueError(f"the data has {objective.inputs.shape[-1]} input channel(s), the "
                             f"network n_in={self.n_in}")
        u = objective.inputs.astype(self.dtype, copy=False)
        x, last = self.run(params, u, state)
        x0 = self._check_state(state, u.shape[0] if u.ndim == 3 else None)
        x_prev = np.concatenate([x0[..., None, :], x[..., :-1, :]], axis=-2)
        y_hat = self.output(params, x)
        T = u.shape[-2]
        if isinstance(objective, ClosedLoop):
            # Free run: the prediction made at the last teacher-forced step is the next input.
            H = objective.horizon
            xs, ys, us = [x], [y_hat], [u]
            xp = [x_prev]
            xt, yt = last, y_hat[..., -1, :]
            for _ in range(H - 1):
                xn = self.step(params, xt, yt)
                yn = self.output(params, xn)
                xp.append(xt[..., None, :])
                xs.append(xn[..., None, :])
                us.append(yt[..., None, :].astype(self.dtype))
                ys.append(yn[..., None, :])
                xt, yt = xn, yn
            x_prev, x = np.concatenate(xp, axis=-2), np.concatenate(xs, axis=-2)
            u, y_hat = np.concatenate(us, axis=-2), np.concatenate(ys, axis=-2)
            total = T + H - 1
            counted = np.arange(total) >= T - 1
            free = np.arange(total) >= T
            target = np.zeros(y_hat.shape, dtype=np.float64)
            target[..., T - 1 :, :] = objective.targets
            final = last
        else:
            if objective.targets.shape[-1] != self.n_out:
                raise ValueError(f"the data has {objective.targets.shape[-1]} target channel(s), "
                                 f"the network n_out={self.n_out}")
            counted = np.arange(T) >= objective.washout
            free = np.zeros(T, dtype=bool)
            target = objective.targets
            final = last
        err = (y_hat - target)[..., counted, :]
        loss = float(np.mean(err.astype(np.float64) ** 2))
        if not np.isfinite(loss):
            raise DivergenceError("the readout's predictions became NaN or inf")
        return Trajectory(x_prev=x_prev, x=x, u=u, y_hat=y_hat, target=target, counted=counted,
                          free=free, loss=loss, final_state=final)

    def loss(self, params, data, state=None) -> float:
        """Mean squared error of the built-in readout on an objective (see :meth:`trajectory`)."""
        return self.trajectory(params, data, state).loss

    def collect(self, params, data, requires, *, state=None, rng=None) -> ev.Evidence:
        """Collect the evidence a rule asked for.

        Parameters
        ----------
        params : dict
        data : TeacherForced, ClosedLoop or (inputs, targets)
        requires : request or tuple of requests
            :class:`~recur.rules.Activity`, :class:`~recur.rules.Perturbed`,
            :class:`~recur.rules.Gradient`.
        state : array, optional
            Initial state (threaded by :func:`recur.train` across chunks of a stream).
        rng : None, int or Generator
            Draws the perturbations.

        Returns
        -------
        Evidence
        """
        requests = ev.as_requests(requires)
        traj = self.trajectory(params, data, state)
        rng = np.random.default_rng(rng)
        results = {}
        for req in requests:
            if isinstance(req, ev.Activity):
                results[req] = self._activity(params, traj)
            elif isinstance(req, ev.Gradient):
                from .esn_gradient import esn_gradient

                results[req] = esn_gradient(self, params, traj)
            elif isinstance(req, ev.Perturbed):
                from .esn_perturbation import esn_perturbations

                results[req] = esn_perturbations(self, params, data, req, state=state, rng=rng,
                                                 clean=traj)
            else:
                raise NotImplementedError(f"ESN cannot collect {type(req).__name__} evidence")
        return ev.Evidence(loss=traj.loss, results=results, state=traj.final_state)

    def _activity(self, params, traj) -> ev.ActivityTrace:
        """Pre/post activity per weight, over the counted steps and all sequences."""
        sel = traj.counted

        def flat(a):
            a = a[..., sel, :]
            return a.reshape(-1, a.shape[-1])

        x_prev, x, u, y_hat = flat(traj.x_prev), flat(traj.x), flat(traj.u), flat(traj.y_hat)
        W = params["W"]
        z = (W @ x_prev.T).T + u @ params["W_in"].T + params["b"]
        pre = {"W": x_prev, "W_in": u, "W_out": x}
        post = {"W": x, "W_in": x, "W_out": y_hat}
        masks = {} if sp.issparse(W) else {"W": self.topology.mask.toarray()}
        return ev.ActivityTrace(pre=pre, post=post, target=flat(traj.target),
                                preactivation=z, masks=masks)
