"""Placeholder: being written."""


class EnergyNet:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("EnergyNet is being written")
