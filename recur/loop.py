"""Running networks on their own output: closed-loop generation (and, later, training)."""

from __future__ import annotations

import numpy as np

from . import kernels
from .readouts.base import Readout
from .validation import DivergenceError, as_float_array, check_positive

__all__ = ["generate"]


def generate(net, params, readout, state, steps, *, inputs=None, target=None, learn_every=1,
             return_state=False):
    r"""Run a network in closed loop: each prediction is fed back as the next input.

    Starting from ``state`` (the state after the last input the network saw), for
    ``t = 0 .. steps-1``

    .. math::

        \hat y_t = \mathrm{readout}(x_t), \qquad x_{t+1} = F(x_t,\ u = \hat y_t)

    so ``y[0]`` is the readout at ``state``: the prediction of the input that follows the last
    one seen, and the output continues the input series. The prediction enters through the
    input weights (then ``n_in`` must equal the readout's ``n_out``) and, in a network with
    feedback, through the feedback weights as well. When ``inputs`` is given the inputs drive
    the input channel and the prediction is fed back through the feedback weights only.

    With ``target`` the loop also trains an online readout (``Force``, ``Lms``): at every
    ``learn_every``-th step the readout takes ``partial_fit(x_t, target[t])`` after its
    prediction ``y_t`` was made and fed back (FORCE learning, Sussillo & Abbott 2009).

    Parameters
    ----------
    net : network
        A recur network with ``step`` (an :class:`~recur.ESN`).
    params : dict
    readout : Readout or object with ``predict``
    state : array, shape (N,) or (B, N)
    steps : int >= 1
    inputs : array, shape (steps, n_in) or (B, steps, n_in), optional
    target : array, shape (steps, n_out), optional
        Teacher signal for online learning in the loop.
    learn_every : int >= 1
    return_state : bool
        Also return the final state, to continue generating.

    Returns
    -------
    y : ndarray, shape (steps, n_out) or (B, steps, n_out)
    state : ndarray, shape (N,) or (B, N)
        Only with ``return_state``.
    """
    check_positive(steps, "steps", integer=True)
    check_positive(learn_every, "learn_every", integer=True)
    if not hasattr(readout, "predict"):
        raise TypeError(f"readout must have a predict method, got {type(readout).__name__}")
    state = as_float_array(state, "state", ndim=(1, 2), dtype=net.dtype)
    if state.shape[-1] != net.n_units:
        raise ValueError(f"state must have {net.n_units} units in its last axis, got {state.shape}")
    batch = state.shape[0] if state.ndim == 2 else None
    if inputs is not None:
        if not net.feedback:
            raise ValueError("inputs drive the input channel, so the prediction can only be "
                             "fed back through feedback weights: build the network with "
                             "feedback=True")
        inputs = as_float_array(inputs, "inputs", ndim=(2, 3), dtype=net.dtype)
        if inputs.shape[-2] != steps:
            raise ValueError(f"inputs must have {steps} steps, got shape {inputs.shape}")
    elif net.n_in and net.n_in != net.n_out:
        raise ValueError(f"closed loop feeds the {net.n_out}-dimensional prediction back as "
                         f"the input, but the network has n_in={net.n_in}")
    if target is not None:
        if not hasattr(readout, "partial_fit"):
            raise TypeError("learning in the loop needs a readout with partial_fit")
        target = as_float_array(target, "target", ndim=(2, 3))
        if target.shape[-2] != steps:
            raise ValueError(f"target must have {steps} steps, got shape {target.shape}")
    net.check_params(params)

    fast = (target is None and inputs is None and batch is None and isinstance(readout, Readout)
            and hasattr(net, "leak"))
    if fast:
        readout._check_fitted()
        W_y = _feedback_path(net, params)
        y, x = kernels.closed_loop(params["W"], W_y, params["b"], readout.coef_,
                                   readout.intercept_, state, net.leak, steps, net.backend)
        if not np.isfinite(y).all():
            raise DivergenceError(f"closed-loop output became NaN or inf at step "
                                  f"{int(np.argmin(np.isfinite(y).all(axis=1)))}")
        return (y, x) if return_state else y

    out = []
    x = state
    fitted = getattr(readout, "n_features_in_", None) is not None or not isinstance(readout, Readout)
    for t in range(steps):
        y = readout.predict(x) if fitted else np.zeros(state.shape[:-1] + (net.n_out,))
        out.append(y)
        if target is not None and t % learn_every == 0:
            readout.partial_fit(x, target[..., t, :])
            fitted = True
        u_t = inputs[..., t, :] if inputs is not None else (y if net.n_in else None)
        x = net.step(params, x, u_t, feedback=y if net.feedback else None)
    y = np.stack(out, axis=-2)
    return (y, x) if return_state else y


def _feedback_path(net, params):
    """The matrix through which a prediction re-enters the network, shape (N, n_out)."""
    W_y = np.zeros((net.n_units, net.n_out), dtype=net.dtype)
    if net.n_in:
        W_y = W_y + params["W_in"]
    if net.feedback:
        W_y = W_y + params["W_fb"]
    return W_y
