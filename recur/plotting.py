"""Figures for the demo and the examples. matplotlib is an optional extra ("recur[plot]") and is
imported only when a figure is drawn, with a non-interactive backend."""

from __future__ import annotations

import numpy as np

__all__ = ["have_matplotlib", "plot_generation"]


def have_matplotlib() -> bool:
    """True when matplotlib can be imported (figures are then written)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def plot_generation(truth, generated, path, *, title="closed-loop generation"):
    """Truth against closed-loop generation (top) and the absolute error on a log scale.

    Parameters
    ----------
    truth, generated : array, shape (T,) or (T, 1)
    path : str or Path
        PNG file to write.
    """
    plt = _pyplot()
    truth = np.asarray(truth).reshape(len(truth), -1)[:, 0]
    generated = np.asarray(generated).reshape(len(generated), -1)[:, 0]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5), sharex=True,
                                      gridspec_kw={"height_ratios": [2, 1]})
    top.plot(truth, color="0.3", lw=2.0, label="truth")
    top.plot(generated, color="tab:red", lw=1.0, ls="--", label="generated")
    top.set_title(title)
    top.legend(loc="upper right")
    bottom.semilogy(np.abs(truth - generated) + 1e-16, color="tab:blue", lw=1.0)
    bottom.set_ylabel("|error|")
    bottom.set_xlabel("steps of autonomous generation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
