"""Registry of study training methods: a config's ``method`` section names one.

A study whose runs need their own training step (several augmented views, experts, a
stage switch) registers it with the schema of its ``method`` section::

    @register_method("sla_multiexpert", SLAMethod)
    def build_step(ctx): ...

A method named ``NAME`` is registered by importing the module ``NAME``, so a config that
says ``method: {name: sla_multiexpert, ...}`` runs from any command line.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel

from .registry import Registry


@dataclass(frozen=True)
class Method:
    schema: type[BaseModel]      # the ``method`` section
    build_step: Callable         # RunContext -> (step, epoch_hooks)


METHODS = Registry("method")


def register_method(name: str, schema: type[BaseModel]):
    def wrap(build_step):
        METHODS.add(name, Method(schema, build_step))
        return build_step
    return wrap


def get_method(name: str) -> Method | None:
    """The registered method ``name``, importing module ``name`` first if needed; None if none."""
    if name not in METHODS:
        try:
            importlib.import_module(name)
        except ImportError:
            return None
    return METHODS.get(name)
