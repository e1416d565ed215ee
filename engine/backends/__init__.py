"""Backends by name; the first entry is the default."""

from __future__ import annotations

from collections.abc import Callable

from engine.backends.base import Backend
from engine.backends.cpu import CpuBackend
from engine.backends.stepaudio import StepAudioBackend

__all__ = ["DEFAULT_BACKEND", "REGISTRY", "create_backend"]

# name -> class; each class declares its name, description and edits as class attributes,
# so capabilities are known without loading a model.
REGISTRY: dict[str, Callable[..., Backend]] = {
    CpuBackend.name: CpuBackend,
    StepAudioBackend.name: StepAudioBackend,
}
DEFAULT_BACKEND = CpuBackend.name


def create_backend(name: str, **options: object) -> Backend:
    """Instantiates a registered backend (not yet loaded).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    try:
        factory = REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backend {name!r}; available: {', '.join(REGISTRY)}") from None
    return factory(**options)
