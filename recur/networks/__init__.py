"""Network kinds. Each is a frozen description; arrays live in the ``params`` dict it makes."""

from .boltzmann import Boltzmann
from .energy import EnergyNet
from .esn import ESN
from .hopfield import Hopfield
from .linear import Linear
from .spiking import SpikingNet

__all__ = ["ESN", "Linear", "Hopfield", "Boltzmann", "EnergyNet", "SpikingNet"]
