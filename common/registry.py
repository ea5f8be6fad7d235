"""One registry type for everything a config chooses by name: models, losses, study methods,
optimisers and schedules.

A :class:`Registry` is a plain ``name -> entry`` mapping (so ``name in REG``, ``sorted(REG)``
and the configs' ``one_of(REG, ...)`` check work as on a dict) with two additions: ``register``
refuses a name that another entry already holds, and looking up an unknown name raises a
:class:`ValueError` that names the closest registered one::

    MODELS = Registry("model")

    @MODELS.register("resnet32")
    def build_resnet32(num_classes, ...): ...
"""
from __future__ import annotations

from .cli import close_match


def _origin(entry) -> tuple[str, str]:
    """Where an entry was defined: re-registering the same definition (a module imported
    again) is allowed, another one under a taken name is not."""
    entry = getattr(entry, "func", entry)                       # functools.partial
    return getattr(entry, "__module__", ""), getattr(entry, "__qualname__", repr(entry))


class Registry(dict):
    def __init__(self, what: str, entries: dict | None = None):
        super().__init__()
        self.what = what
        for name, entry in (entries or {}).items():
            self.add(name, entry)

    def add(self, name: str, entry):
        taken = self.get(name)
        if taken is not None and _origin(taken) != _origin(entry):
            raise ValueError(f"{self.what} name {name!r} is taken by {'.'.join(_origin(taken))}")
        self[name] = entry
        return entry

    def register(self, name: str):
        """Decorator: ``@REG.register(name)`` adds the decorated function or class as ``name``."""
        return lambda entry: self.add(name, entry)

    def __missing__(self, name):
        raise ValueError(f"unknown {self.what} {name!r}{close_match(name, self)}; registered: {', '.join(sorted(self))}")
