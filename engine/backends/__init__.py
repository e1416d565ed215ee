"""Backends by name; the first entry is the default."""

from __future__ import annotations

import inspect

from engine.backends.base import Backend
from engine.backends.cpu import CpuBackend
from engine.backends.stepaudio import StepAudioBackend

__all__ = ["DEFAULT_BACKEND", "REGISTRY", "create_backend"]

# name -> class; each class declares its name, description and edits as class attributes,
# so capabilities are known without loading a model.
REGISTRY: dict[str, type[Backend]] = {
    CpuBackend.name: CpuBackend,
    StepAudioBackend.name: StepAudioBackend,
}
DEFAULT_BACKEND = CpuBackend.name


def create_backend(name: str, **options: object) -> Backend:
    """Instantiates a registered backend (not yet loaded).

    Args:
        name: A key of ``REGISTRY``.
        options: Settings such as ``model_dir``, ``device``, ``dtype``; those the backend
            does not take are ignored, so one command line serves every backend.

    Raises:
        ValueError: for an unknown name, or a setting the backend requires but did not get.
    """
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}") from None
    parameters = inspect.signature(factory).parameters
    given = {k: v for k, v in options.items() if k in parameters and v is not None}
    missing = [
        p.name for p in parameters.values() if p.default is p.empty and p.name not in given
    ]
    if missing:
        flags = ", ".join("--" + m.replace("_", "-") for m in missing)
        raise ValueError(f"the {name} backend needs {flags}")
    return factory(**given)
