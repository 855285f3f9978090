"""The two loops of recur: training a network with a rule, and running it on its own output."""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

from . import kernels
from .masked import values
from .readouts.base import Readout
from .rules.rule import Rule, apply_updates
from .validation import ConvergenceError, DivergenceError, as_float_array, check_positive

__all__ = ["train", "History", "generate"]


@dataclass
class History:
    """What happened during :func:`train`.

    Attributes
    ----------
    rule : str
    hparams : dict
    loss : list of float
        Loss of the parameters before each update (one entry per epoch).
    final_loss : float
        Loss after the last update, on the first chunk of the data.
    probes : dict of str to list
        Values returned by the callbacks, one entry per epoch.
    wall_time : float
        Seconds spent in the loop.
    """

    rule: str
    hparams: dict
    loss: list = field(default_factory=list)
    final_loss: float = float("nan")
    probes: dict = field(default_factory=dict)
    wall_time: float = 0.0

    def updates_to(self, target):
        """Number of updates after which the loss first reached ``target`` (None if never)."""
        losses = np.append(np.asarray(self.loss, dtype=float), self.final_loss)
        hit = np.flatnonzero(losses <= target)
        return int(hit[0]) if hit.size else None


def _progress(iterable, enabled, desc):
    if not enabled:
        return iterable
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return iterable
    # disable=None: tqdm stays silent when the output is not a terminal.
    return tqdm(iterable, desc=desc, disable=None, leave=False)


def train(net, params, rule, data, *, epochs, rng=None, progress=True, callbacks=None,
          state=None, max_loss_growth=1e8):
    r"""Train a network's parameters with a rule.

    Each epoch: the network collects the evidence the rule requires on the data, the rule
    turns it into updates, :func:`~recur.rules.apply_updates` adds them, and the network's
    invariants are enforced:

    .. math::

        e_k = \mathrm{collect}(\theta_k, D), \quad
        (\Delta_k, s_{k+1}) = \mathrm{rule.update}(e_k, s_k, \theta_k), \quad
        \theta_{k+1} = \mathrm{constrain}(\theta_k + \Delta_k)

    Parameters
    ----------
    net : network
        Anything with ``collect`` and ``constrain`` (an :class:`~recur.ESN`).
    params : dict
        Starting parameters; not modified.
    rule : Rule
        An estimator, possibly chained with transforms.
    data : objective, (inputs, targets), or list of them
        A list is a stream cut into chunks: epoch ``k`` uses chunk ``k mod len(data)`` and
        starts from the state where the previous chunk ended (from ``state`` at the first
        chunk), so a local rule sees the state advance through the whole stream. For a
        closed-loop chunk that is the state after its teacher-forced warm-up: the free run
        leaves the true series, so it does not carry over.
    epochs : int >= 1
    rng : None, int or Generator
        Source of every random draw (perturbations, stochastic rules).
    progress : bool
        Show a tqdm progress bar when tqdm is installed and the output is a terminal.
    callbacks : list of callables, optional
        ``cb(epoch, params, evidence, updates)``; a returned dict is recorded in
        ``History.probes``.
    state : array, optional
        Initial network state.
    max_loss_growth : float
        Training stops with :class:`DivergenceError` when the loss exceeds this multiple of
        its first value: a run away to huge but finite weights is divergence too.

    Returns
    -------
    params : dict
    history : History

    Raises
    ------
    DivergenceError
        When states, updates or weights become NaN/inf; names the epoch and the rule.
    ConvergenceError
        When a phase the network must settle (an energy network's fixed point) does not; a
        subclass of DivergenceError, raised before any update of that epoch is applied.
    NotImplementedError
        When the network cannot collect the evidence the rule requires.
    """
    check_positive(epochs, "epochs", integer=True)
    check_positive(max_loss_growth, "max_loss_growth")
    if not isinstance(rule, Rule):
        raise TypeError(f"rule must be a recur Rule, got {type(rule).__name__}")
    if rule.is_transform:
        raise ValueError(f"{rule.name} is a transform and has no evidence to learn from; "
                         "chain it after an estimator")
    chunks = list(data) if isinstance(data, list) else [data]
    if not chunks:
        raise ValueError("data is an empty list")
    rng = np.random.default_rng(rng)
    requests = rule.requests
    history = History(rule=rule.name, hparams=dict(rule.hparams))
    rule_state = rule.init(params)
    carried = state
    # Two streams for the whole run (spawning per epoch costs more than a small epoch).
    g_collect, g_update = rng.spawn(2)
    n_chunks = len(chunks)
    # A network whose state is a sampler's chains (persistent CD) keeps it across passes.
    persists = getattr(net, "state_persists", False)
    started = time.perf_counter()
    for epoch in _progress(range(epochs), progress, rule.name):
        chunk = chunks[epoch % n_chunks]
        if epoch % n_chunks == 0 and not (epoch and persists):
            carried = state
        try:
            evidence = net.collect(params, chunk, requests, state=carried, rng=g_collect)
            carried = evidence.state
            # Non-finite updates are caught below with the rule and epoch named.
            with np.errstate(over="ignore", invalid="ignore"):
                updates, rule_state = rule.update(evidence, rule_state, params, rng=g_update)
        except NotImplementedError as exc:
            raise NotImplementedError(f"rule {rule.name!r} requires evidence that "
                                      f"{type(net).__name__} cannot provide: {exc}") from exc
        except ConvergenceError as exc:
            raise ConvergenceError(f"training with rule {rule.name!r} stopped at epoch "
                                   f"{epoch}: a phase did not settle: {exc}") from exc
        except DivergenceError as exc:
            raise DivergenceError(f"training with rule {rule.name!r} diverged at epoch "
                                  f"{epoch}: {exc}") from exc
        history.loss.append(evidence.loss)
        # A first loss of 0 (a silent first chunk of a spiking network) sets no scale.
        if history.loss[0] > 0 and evidence.loss > max_loss_growth * history.loss[0]:
            raise DivergenceError(f"training with rule {rule.name!r} diverged at epoch {epoch}: "
                                  f"the loss grew from {history.loss[0]:.3g} to "
                                  f"{evidence.loss:.3g}")
        params = net.constrain(apply_updates(params, updates))
        # Checking the parameters alone is enough (a non-finite update reaches them unless the
        # network's constraint discards it), and on a small network each check costs as much
        # as a matrix product; the update is examined only to name the culprit.
        for name, p in params.items():
            if not kernels.all_finite(p if type(p) is np.ndarray else values(p)):
                if name in updates and not kernels.all_finite(values(updates[name])):
                    raise DivergenceError(f"rule {rule.name!r} produced a NaN or inf update "
                                          f"for {name!r} at epoch {epoch}")
                raise DivergenceError(f"parameter {name!r} became NaN or inf at epoch {epoch} "
                                      f"under rule {rule.name!r}")
        for cb in callbacks or ():
            probed = cb(epoch, params, evidence, updates)
            if isinstance(probed, dict):
                for key, value in probed.items():
                    history.probes.setdefault(key, []).append(value)
    try:
        # A stochastic network's loss draws (a spiking net's background noise): from this
        # run's stream, so the final loss is reproducible too.
        takes_rng = "rng" in inspect.signature(net.loss).parameters
        history.final_loss = net.loss(params, chunks[0], state,
                                      **({"rng": g_collect} if takes_rng else {}))
    except DivergenceError as exc:
        raise DivergenceError(f"training with rule {rule.name!r} diverged after the last "
                              f"epoch: {exc}") from exc
    history.wall_time = time.perf_counter() - started
    return params, history


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
    if inputs is not None and inputs.shape[-1] != net.n_in:
        raise ValueError(f"inputs must have {net.n_in} channel(s), got shape {inputs.shape}")
    if inputs is not None and inputs.shape[:-2] != state.shape[:-1]:
        raise ValueError(f"inputs {inputs.shape} and state {state.shape} disagree on the batch")
    if target is not None:
        if not hasattr(readout, "partial_fit"):
            raise TypeError("learning in the loop needs a readout with partial_fit")
        target = as_float_array(target, "target", ndim=(2, 3))
        if target.shape[-2] != steps:
            raise ValueError(f"target must have {steps} steps, got shape {target.shape}")
        if target.shape[-1] != net.n_out:
            raise ValueError(f"target must have {net.n_out} channel(s), got shape {target.shape}")
    elif isinstance(readout, Readout):
        readout._check_fitted()
        if readout.coef_.shape != (net.n_out, net.n_units):
            raise ValueError(f"the readout maps {readout.coef_.shape[1]} features to "
                             f"{readout.coef_.shape[0]} output(s); the network needs "
                             f"{net.n_units} to {net.n_out}")
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
        if target is not None and t % learn_every == 0:
            readout.partial_fit(x, target[..., t, :])
            fitted = True
            # An exploring readout emitted a noisy output while it learned: that output, not
            # the noise-free prediction, is what the network hears (Hoerzer et al. 2014).
            y = getattr(readout, "last_output_", y)
        out.append(y)
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
