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

from ..registry import Registry

LOSSES = Registry("loss")
register_loss = LOSSES.register   # a name taken by another class is an error (re-importing its module is not)
