"""Placeholder: being written."""


class SpikingNet:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("SpikingNet is being written")
