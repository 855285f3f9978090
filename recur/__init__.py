"""recur: reservoir and recurrent networks that learn from signals they generate themselves.

Import costs nothing beyond numpy, scipy and networkx: reservoirpy, numba-compiled kernels'
caches, the topology catalogue and plotting load only when used.
"""

from . import chains, diagnostics, graphs, metrics, rules, tasks, weights
from ._version import __version__
from .loop import History, generate, train
from .networks import ESN, Boltzmann, EnergyNet, Hopfield, Linear, SpikingNet
from .readouts import ExploratoryHebbian, Force, Lms, NotFittedError, Ridge
from .topology import Topology
from .validation import ConvergenceError, DivergenceError

__all__ = [
    "__version__",
    "Topology",
    "ESN",
    "Linear",
    "Hopfield",
    "Boltzmann",
    "EnergyNet",
    "SpikingNet",
    "Ridge",
    "Force",
    "Lms",
    "ExploratoryHebbian",
    "generate",
    "train",
    "History",
    "rules",
    "chains",
    "graphs",
    "diagnostics",
    "weights",
    "tasks",
    "metrics",
    "DivergenceError",
    "ConvergenceError",
    "NotFittedError",
]
