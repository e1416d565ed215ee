"""What the backends can render: support checks and the capability listing, both generated
from the vocabulary and the backends' declarations."""

from __future__ import annotations

from typing import Any

from engine import __version__
from engine.backends import BACKEND_NAMES, backend_class
from engine.backends.base import Backend
from engine.edits import EDIT_TYPES, MAX_ITERATIONS, EditSpec
from engine.errors import UnsupportedEditError

__all__ = ["backends_rendering", "check_supported", "describe", "renders"]


def renders(backend: type[Backend], edit: EditSpec) -> bool:
    """Whether a backend class declares this edit type and option.

    A paralinguistic edit without an option carries its tags inline in ``target_text``,
    which backends declare with ``tagged_text``.
    """
    options = backend.edits.get(edit.type)
    if options is None:
        return False
    if edit.type == "paralinguistic" and not edit.option:
        return backend.tagged_text
    return not options or edit.option in options


def backends_rendering(*edits: EditSpec, besides: str) -> list[str]:
    """The registered backends other than ``besides`` that declare every one of ``edits``."""
    return [
        name
        for name in BACKEND_NAMES
        if name != besides and all(renders(backend_class(name), e) for e in edits)
    ]


def check_supported(backend: Backend, edit: EditSpec) -> None:
    """Raises ``UnsupportedEditError`` unless ``backend`` renders this type and option,
    naming the registered backends that do."""
    if renders(type(backend), edit):
        return
    others = backends_rendering(edit, besides=backend.name)
    what = f"{edit.type} {edit.option!r}" if edit.option else edit.type
    if edit.type == "paralinguistic" and not edit.option:
        what = "paralinguistic tags inline in target_text"
    where = (
        f"backends that support it: {', '.join(others)}"
        if others
        else "no installed backend supports it yet"
    )
    raise UnsupportedEditError(f"the {backend.name} backend cannot render {what}; {where}")


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
            for name, cls in ((n, backend_class(n)) for n in BACKEND_NAMES)
        },
    }
