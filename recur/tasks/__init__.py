"""Signals and the self-generated training targets made from them."""

from .objectives import ClosedLoop, TeacherForced, as_objective, windows
from .normalisation import rescale, squash, standardize, unsquash
from .patterns import bars_and_stripes, corrupt, random_patterns
from .series import lorenz, mackey_glass, narma, sine_sum
from .spiking import SpikeDrive, SpikeTarget, poisson_drive, pulse_packet, spontaneous
from .targets import next_step

__all__ = [
    "mackey_glass",
    "lorenz",
    "narma",
    "sine_sum",
    "next_step",
    "TeacherForced",
    "ClosedLoop",
    "windows",
    "as_objective",
    "standardize",
    "rescale",
    "squash",
    "unsquash",
    "random_patterns",
    "corrupt",
    "bars_and_stripes",
    "pulse_packet",
    "poisson_drive",
    "spontaneous",
    "SpikeDrive",
    "SpikeTarget",
]
