"""Input and output roots: the folders a job may read from and write into.

Paths are resolved first (symlinks followed, ``..`` removed), so a link inside a root that
points outside it, or a ``..`` that climbs out, is refused. The roots are checked before the
path is looked at, so the error never tells a client whether a file outside them exists.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from engine.errors import ForbiddenPathError

__all__ = ["resolve_within"]


def resolve_within(path: Path, roots: Sequence[Path], what: str) -> Path:
    """``path`` resolved, when it lies inside one of ``roots``; ``roots`` empty allows any.

    Returns:
        The resolved path when roots are configured (the job then works on it, so a link
        swapped later cannot lead it out); ``path`` unchanged otherwise.

    Raises:
        ForbiddenPathError: the resolved path lies outside every root.
    """
    if not roots:
        return path
    resolved = Path(os.path.realpath(path))
    for root in roots:
        if resolved.is_relative_to(Path(os.path.realpath(root))):
            return resolved
    raise ForbiddenPathError(
        f"{what} {str(path)!r} lies outside the engine's {what} roots "
        "(see 'stepedit serve --help': --input-root/--output-root)"
    )
