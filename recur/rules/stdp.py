"""Placeholder: being written."""


def stdp(*args, **kwargs):
    raise NotImplementedError("rules.stdp is being written")
