"""Placeholder: being written."""


def pulse_packet(*args, **kwargs):
    raise NotImplementedError


def poisson_drive(*args, **kwargs):
    raise NotImplementedError


def spontaneous(*args, **kwargs):
    raise NotImplementedError
