"""The capability listing, generated from the vocabulary and the backends' declarations."""

from __future__ import annotations

from typing import Any

from engine import __version__
from engine.backends import REGISTRY
from engine.backends.base import Backend
from engine.edits import EDIT_TYPES, MAX_ITERATIONS

__all__ = ["describe"]


def describe(active: Backend) -> dict[str, Any]:
    """Everything a client needs to build its menus; never written by hand.

    Args:
        active: The backend this engine runs.
    """
    return {
        "engine_version": __version__,
        "backend": active.name,
        "device": active.device,
        "max_iterations": MAX_ITERATIONS,
        "edit_types": {
            kind.name: {
                "options": list(kind.options),
                "uses": sorted(kind.uses),
                "requires": sorted(kind.requires),
                "summary": kind.summary,
            }
            for kind in EDIT_TYPES.values()
        },
        "backends": {
            name: {
                "description": cls.description,
                "edits": {t: list(o) for t, o in cls.edits.items()},
                "tagged_text": cls.tagged_text,
            }
            for name, cls in REGISTRY.items()
        },
    }
