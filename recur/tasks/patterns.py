"""Pattern sets for memory and generative networks: random +-1 memories, corrupted cues, and
the bars-and-stripes images."""

from __future__ import annotations

import itertools

import numpy as np

from ..validation import as_float_array, check_in_interval, check_positive

__all__ = ["random_patterns", "corrupt", "bars_and_stripes"]


def random_patterns(n_patterns, n_units, *, rng=None, bias=0.0):
    r"""Independent random +-1 patterns.

    Each entry is +1 with probability :math:`(1 + \text{bias}) / 2`, independently
    (``bias = 0``: the unbiased patterns of Amit, Gutfreund & Sompolinsky's capacity
    calculation).

    Parameters
    ----------
    n_patterns, n_units : int >= 1
    rng : numpy Generator, int or None
    bias : float in (-1, 1)
        Mean of each entry.

    Returns
    -------
    ndarray, shape (n_patterns, n_units), float64 of +-1
    """
    check_positive(n_patterns, "n_patterns", integer=True)
    check_positive(n_units, "n_units", integer=True)
    check_in_interval(bias, "bias", -1.0, 1.0, high_open=True)
    rng = np.random.default_rng(rng)
    return np.where(rng.random((n_patterns, n_units)) < (1.0 + bias) / 2.0, 1.0, -1.0)


def corrupt(patterns, fraction, *, rng=None):
    """Cues made by flipping the sign of exactly ``round(fraction * N)`` units of each pattern.

    The flipped units are drawn independently for each row, so the overlap of each cue with
    its pattern is exactly ``1 - 2 * round(fraction * N) / N``.

    Parameters
    ----------
    patterns : array, shape (P, N) or (N,), entries +-1
    fraction : float in [0, 1]
    rng : numpy Generator, int or None

    Returns
    -------
    ndarray of the same shape, float64
    """
    x = as_float_array(patterns, "patterns", ndim=(1, 2))
    if not np.all(np.abs(x) == 1.0):
        raise ValueError("patterns must have entries +1 or -1")
    check_in_interval(fraction, "fraction", 0.0, 1.0, low_open=False)
    rng = np.random.default_rng(rng)
    rows = np.atleast_2d(x).copy()
    n = rows.shape[1]
    n_flip = int(round(fraction * n))
    if n_flip:
        # argpartition of uniform keys picks a uniform random subset per row, vectorised
        idx = np.argpartition(rng.random(rows.shape), n_flip - 1, axis=1)[:, :n_flip]
        np.multiply.at(rows, (np.arange(rows.shape[0])[:, None], idx), -1.0)
    return rows.reshape(x.shape)


def bars_and_stripes(rows, cols=None):
    """Every bars-and-stripes image of a ``rows x cols`` grid, as 0/1 vectors.

    An image is either a set of full rows switched on (stripes) or a set of full columns
    (bars). The empty and the full image are both, and appear once, so there are
    :math:`2^{r} + 2^{c} - 2` distinct images (MacKay 2003; Hinton 2002 uses them to measure
    how well a Boltzmann machine models a distribution exactly).

    Parameters
    ----------
    rows : int >= 1
    cols : int >= 1, optional
        Defaults to ``rows``.

    Returns
    -------
    ndarray, shape (2**rows + 2**cols - 2, rows * cols), float64 of 0/1
        Row-major pixels; no duplicates.
    """
    check_positive(rows, "rows", integer=True)
    cols = rows if cols is None else cols
    check_positive(cols, "cols", integer=True)
    if rows * cols > 30:
        raise ValueError(f"a {rows}x{cols} grid has {rows * cols} pixels; bars_and_stripes "
                         "enumerates images for grids of at most 30 pixels")
    images = []
    for on in itertools.product((0.0, 1.0), repeat=rows):
        images.append(np.repeat(np.asarray(on)[:, None], cols, axis=1).ravel())
    for on in itertools.product((0.0, 1.0), repeat=cols):
        img = np.repeat(np.asarray(on)[None, :], rows, axis=0).ravel()
        if 0.0 < img.mean() < 1.0:
            images.append(img)
    return np.unique(np.asarray(images), axis=0)
