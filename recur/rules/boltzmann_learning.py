"""Placeholder: being written."""


def boltzmann(*args, **kwargs):
    raise NotImplementedError
