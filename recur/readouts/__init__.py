"""Linear readouts with the scikit-learn estimator shape: ``fit``, ``partial_fit``,
``predict``, fitted ``coef_`` (n_out, n_features), ``intercept_`` (n_out,),
``n_features_in_``."""

from .base import NotFittedError, Readout
from .exploratory_hebbian import ExploratoryHebbian
from .force import Force
from .lms import Lms
from .ridge import Ridge

__all__ = ["Readout", "NotFittedError", "Ridge", "Force", "Lms", "ExploratoryHebbian"]
