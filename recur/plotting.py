"""Figures for the demo and the examples. matplotlib is an optional extra ("recur[plot]") and is
imported only when a figure is drawn, with a non-interactive backend."""

from __future__ import annotations

import numpy as np

__all__ = ["have_matplotlib", "new_figure", "save_figure", "plot_generation"]


def have_matplotlib() -> bool:
    """True when matplotlib can be imported (figures are then written)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def new_figure(**kwargs):
    """A matplotlib ``Figure`` (constrained layout), or None without matplotlib.

    Built without pyplot: no global state, no backend switch, no display needed, so the
    library never changes the figure backend of the program that imports it.
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure(layout="constrained", **kwargs)


def save_figure(fig, path, dpi=120):
    """Write ``fig`` to ``path`` (creating its folder); returns the path."""
    from pathlib import Path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_generation(truth, generated, path, *, title="closed-loop generation"):
    """Truth against closed-loop generation (top) and the absolute error on a log scale.

    Parameters
    ----------
    truth, generated : array, shape (T,) or (T, 1)
    path : str or Path
        PNG file to write.

    Returns
    -------
    Path or None
        None when matplotlib is not installed.
    """
    fig = new_figure(figsize=(9, 5))
    if fig is None:
        return None
    truth = np.asarray(truth).reshape(len(truth), -1)[:, 0]
    generated = np.asarray(generated).reshape(len(generated), -1)[:, 0]
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    top.plot(truth, color="0.3", lw=2.0, label="truth")
    top.plot(generated, color="tab:red", lw=1.0, ls="--", label="generated")
    top.set_title(title)
    top.legend(loc="upper right")
    bottom.semilogy(np.abs(truth - generated) + 1e-16, color="tab:blue", lw=1.0)
    bottom.set_ylabel("|error|")
    bottom.set_xlabel("steps of autonomous generation")
    return save_figure(fig, path)
