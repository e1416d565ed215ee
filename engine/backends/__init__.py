"""Backends by name, imported on first use; the first entry is the default.

Each backend class declares its name, description and edits as class attributes and keeps
its heavy imports (DSP libraries, torch) inside ``load``, so listing capabilities or starting
a client imports none of them.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.backends.base import Backend

__all__ = ["BACKEND_NAMES", "DEFAULT_BACKEND", "backend_class", "create_backend"]

# name -> "module:Class"
_REGISTRY: dict[str, str] = {
    "cpu": "engine.backends.cpu:CpuBackend",
    "stepaudio": "engine.backends.stepaudio:StepAudioBackend",
}
BACKEND_NAMES = tuple(_REGISTRY)
DEFAULT_BACKEND = BACKEND_NAMES[0]


def backend_class(name: str) -> type[Backend]:
    """The class registered as ``name``, importing its module on first use.

    Raises:
        ValueError: for an unknown name.
    """
    try:
        module_name, _, class_name = _REGISTRY[name].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown backend {name!r}; available: {', '.join(BACKEND_NAMES)}"
        ) from None
    cls: type[Backend] = getattr(importlib.import_module(module_name), class_name)
    return cls


def create_backend(name: str, **options: object) -> Backend:
    """Instantiates a registered backend (not yet loaded).

    Args:
        name: One of ``BACKEND_NAMES``.
        options: Settings such as ``model_dir``, ``device``, ``dtype``; those the backend
            does not take are ignored, so one command line serves every backend.

    Raises:
        ValueError: for an unknown name, or a setting the backend requires but did not get.
    """
    factory = backend_class(name)
    parameters = inspect.signature(factory).parameters
    given = {k: v for k, v in options.items() if k in parameters and v is not None}
    missing = [p.name for p in parameters.values() if p.default is p.empty and p.name not in given]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ValueError(f"the {name} backend needs {flags}")
    return factory(**given)
