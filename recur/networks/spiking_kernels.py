"""Compiled step loop of :class:`recur.networks.spiking.SpikingNet`.

The numpy loop in ``spiking.py`` pays the interpreter and numpy's per-call overhead a dozen
times per step (about 50-100 us per step whatever the network's size, so ~1 s per
simulated second at ``dt = 0.1`` ms); this loop runs a block of steps without leaving
compiled code. It performs the same floating-point operations in the same order as the
numpy loop, so the two give the same spikes and the same state to the last bit for the
same random numbers (``tests/test_spiking.py`` checks it):

- the membrane update ``v * b``, ``+ I * p_vI``, ``+ noise`` (or ``+ mu``), [``+ x * p_vx``],
  ``+ drive * current``, each rounded as numpy rounds the corresponding array operation
  (numba does not contract ``a * b + c`` into a fused multiply-add without fastmath);
- the spikes of a step reach their targets through a zeroed scratch array that is then
  added to the ring buffer, exactly as numpy's ``bincount`` sums them before adding.

The background noise is drawn by numpy outside the kernel (per trial generator, in blocks),
so both backends consume the generators identically. For perturbation learning the loop
also takes one row of weights per trial (``g_data`` (B, nnz)), an input current per trial
(``current`` (T, B, N)), and a noise block of fewer trials than the batch, shared by the
copies of each trial (trial ``b`` reads row ``b % B'``).
"""

from __future__ import annotations

import numpy as np

from .. import kernels

__all__ = ["run_steps"]

_JIT = kernels.LazyJit(globals(), after=[kernels.JIT])


@_JIT.register
def _run_steps(t_start, t_end, step0, lif, alpha, theta, reset, n_ref, theta_bin,
               pb, pvI, pvx, pa, pIx, pdrive, mu_term, has_noise, noise, noise_t0,
               has_current, current, v, I, x, ref, buf, fire,
               f_b, f_u, f_bounds, k_b, k_u, k_w, k_bounds,
               g_delay, g_indptr, g_indices, g_data, scratch,
               out_u, out_s, out_b, n_out):  # pragma: no cover - compiled
    B = v.shape[0]
    N = v.shape[1]
    L = buf.shape[0]
    G = g_delay.shape[0]
    cb = current.shape[1]    # current for every trial (1) or one per trial (B)
    nb = noise.shape[1]      # trial b reads noise row b % nb (copies sharing their noise)
    wb = g_data.shape[0]     # weights shared by every trial (1) or one row per trial (B)
    for t in range(t_start, t_end):
        # Room for every unit of every trial to fire, or hand back to grow the output.
        if n_out + B * N > out_u.shape[0]:
            return n_out, t
        slot = (step0 + t) % L
        for e in range(k_bounds[t], k_bounds[t + 1]):
            buf[slot, k_b[e], k_u[e]] += k_w[e]
        for b in range(B):
            bn = b % nb
            bc = b if cb > 1 else 0
            for i in range(N):
                arr = buf[slot, b, i]
                if lif:
                    vv = v[b, i] * pb
                    vv = vv + I[b, i] * pvI
                    if has_noise:
                        vv = vv + noise[t - noise_t0, bn, i]
                    elif mu_term != 0.0:
                        vv = vv + mu_term
                    if alpha:
                        xx = x[b, i]
                        vv = vv + xx * pvx
                        ii = I[b, i] * pa
                        I[b, i] = ii + xx * pIx
                        xa = xx * pa
                        x[b, i] = xa + arr
                    else:
                        ia = I[b, i] * pa
                        I[b, i] = ia + arr
                    if has_current:
                        vv = vv + pdrive * current[t, bc, i]
                    if n_ref > 0 and ref[b, i] > 0:
                        vv = reset
                        ref[b, i] -= 1
                    v[b, i] = vv
                    fire[b, i] = vv >= theta
                else:
                    fire[b, i] = arr >= theta_bin
                buf[slot, b, i] = 0.0
        for e in range(f_bounds[t], f_bounds[t + 1]):
            fire[f_b[e], f_u[e]] = True
        n0 = n_out
        for b in range(B):
            for i in range(N):
                if fire[b, i]:
                    out_u[n_out] = i
                    out_s[n_out] = t
                    out_b[n_out] = b
                    n_out += 1
                    if lif:
                        v[b, i] = reset
                        ref[b, i] = n_ref
        if n_out == n0:
            continue
        for g in range(G):
            target = (step0 + t + g_delay[g]) % L
            touched = False
            for s in range(n0, n_out):
                j = out_u[s]
                b = out_b[s]
                bw = b if wb > 1 else 0
                for q in range(g_indptr[g, j], g_indptr[g, j + 1]):
                    scratch[b, g_indices[q]] += g_data[bw, q]
                    touched = True
            if touched:
                for b in range(B):
                    for i in range(N):
                        buf[target, b, i] += scratch[b, i]
                        scratch[b, i] = 0.0
    return n_out, t_end


def run_steps(t_start, t_end, step0, model, arrays, events, groups, out):
    """Run steps ``[t_start, t_end)`` of a run with the compiled loop.

    Parameters
    ----------
    t_start, t_end : int
        Steps of this run (relative to its start).
    step0 : int
        Steps simulated before this run (the ring buffer's phase).
    model : dict
        Scalars: ``lif``, ``alpha``, ``theta``, ``reset``, ``n_ref``, ``theta_bin`` and the
        propagators ``b, vI, vx, a, Ix, drive``, ``mu_term``.
    arrays : dict
        ``v, I, x, ref, buf, fire, scratch`` (updated in place), ``noise`` (block of
        scaled noise plus mu, starting at step ``noise_t0``, or None; (m, B', N) with
        ``B`` a multiple of ``B'``: trial ``b`` reads row ``b % B'``) and ``current``
        ((T, N) for every trial, (T, B, N) one per trial, or None).
    events : tuple
        ``(f_b, f_u, f_bounds, k_b, k_u, k_w, k_bounds)``.
    groups : tuple
        ``(g_delay, g_indptr, g_indices, g_data)`` of the delay groups; ``g_data`` is
        (1, nnz) (weights shared by every trial) or (B, nnz) (each trial's own weights).
    out : dict
        ``units, steps, trials`` (growable int arrays) and ``n`` (filled so far).
    """
    _JIT.ensure()
    has_noise = arrays["noise"] is not None
    noise = arrays["noise"] if has_noise else np.zeros((1, 1, 1))
    has_current = arrays["current"] is not None
    if has_current:
        current = np.asarray(arrays["current"], float)
        current = np.ascontiguousarray(current[:, None, :] if current.ndim == 2 else current)
    else:
        current = np.zeros((1, 1, 1))
    t = t_start
    while t < t_end:
        n, t = _run_steps(
            t, t_end, step0, model["lif"], model["alpha"], model["theta"], model["reset"],
            model["n_ref"], model["theta_bin"], model["b"], model["vI"], model["vx"],
            model["a"], model["Ix"], model["drive"], model["mu_term"], has_noise, noise,
            arrays["noise_t0"], has_current, current, arrays["v"], arrays["I"], arrays["x"],
            arrays["ref"], arrays["buf"], arrays["fire"], *events, *groups,
            arrays["scratch"], out["units"], out["steps"], out["trials"], out["n"])
        out["n"] = n
        if t < t_end:
            size = 2 * out["units"].size
            for key in ("units", "steps", "trials"):
                grown = np.empty(size, dtype=np.intp)
                grown[:n] = out[key][:n]
                out[key] = grown
