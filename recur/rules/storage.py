"""Placeholder: being written."""


def storkey(*args, **kwargs):
    raise NotImplementedError


def pseudo_inverse(*args, **kwargs):
    raise NotImplementedError
