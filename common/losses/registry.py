"""The loss registry: a name -> loss class table that configs, grids and reports read.

A loss is a :class:`~common.losses.base.ClassCountLoss` subclass built as
``cls(class_counts, **kwargs)`` whose ``forward(logits, targets)`` returns the batch mean.
Registering it is one decorator on the class::

    @register_loss("my_loss")
    class MyLoss(ClassCountLoss):
        def __init__(self, class_counts, margin: float = 0.5, weight=None): ...

Its constructor's keyword arguments (with type hints and defaults) become the config keys of
the ``loss`` section (``loss: {name: my_loss, margin: 0.3}``, ``--set loss.margin=0.3``,
``python -m common.train --loss my_loss --loss-margin 0.3``), checked before any training.
"""
from __future__ import annotations

LOSSES: dict[str, type] = {}


def register_loss(name: str):
    """Class decorator: make the loss available as ``name`` everywhere a loss is chosen. A name
    taken by another class is an error (re-importing the same module is not)."""
    def wrap(cls):
        taken = LOSSES.get(name)
        if taken is not None and (taken.__module__, taken.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"loss name {name!r} is taken by {taken.__module__}.{taken.__qualname__}")
        LOSSES[name] = cls
        return cls
    return wrap
