"""Placeholder: being written."""


class Hopfield:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Hopfield is being written")
