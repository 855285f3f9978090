"""Placeholder: being written."""


class Boltzmann:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Boltzmann is being written")
