"""Placeholder: being written."""


def equilibrium_propagation(*args, **kwargs):
    raise NotImplementedError


def contrastive_hebbian(*args, **kwargs):
    raise NotImplementedError


def generec(*args, **kwargs):
    raise NotImplementedError
