"""Network kinds. Each is a frozen description; arrays live in the ``params`` dict it makes."""

from .esn import ESN
from .linear import Linear

__all__ = ["ESN", "Linear"]
