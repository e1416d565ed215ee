"""Locates model files shipped inside installed packages, without importing the packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.errors import BackendError

__all__ = ["packaged_file"]


def packaged_file(package: str, relative: str, needs: str, install_hint: str) -> Path:
    """The path of ``relative`` inside the installed ``package``.

    ``find_spec`` finds the package folder without running its ``__init__``: the packages
    that bundle these models import torch or librosa at import time, which the
    evaluation never needs.

    Args:
        package: Importable name, e.g. ``"speechmos"``.
        relative: The file's path inside the package folder.
        needs: What needs the file, for the error, e.g. ``"DNSMOS needs the speechmos models"``.
        install_hint: The ``pip install`` line that provides it.

    Raises:
        BackendError: when the package is not installed or lacks the file.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(f"{needs}: {install_hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise BackendError(f"{path} is missing; reinstall with: {install_hint}")
    return path
