"""Network kinds. Each is a frozen description; arrays live in the ``params`` dict it makes."""

from .esn import ESN

__all__ = ["ESN"]
