"""The engine's state folder: caches and prepared model files that outlive one process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["CACHE_SUBDIR", "STATE_DIR_ENV", "state_dir"]

STATE_DIR_ENV = "STEPEDIT_STATE_DIR"
# The caches' folder (transcripts, tokenizer prompts) inside the state folder.
CACHE_SUBDIR = "cache"


def state_dir() -> Path:
    """Where the engine keeps state between runs (created on first use).

    ``$STEPEDIT_STATE_DIR`` when set; otherwise ``$XDG_STATE_HOME/stepedit`` (default
    ``~/.local/state/stepedit``) on Linux, ``~/Library/Application Support/stepedit`` on
    macOS and ``%LOCALAPPDATA%\\stepedit`` on Windows.

    Raises:
        OSError: when the folder cannot be created.
    """
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        path = Path(configured).expanduser()
    elif sys.platform == "win32":
        path = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        path = path / "stepedit"
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "stepedit"
    else:
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        path = Path(base) / "stepedit"
    path.mkdir(parents=True, exist_ok=True)
    return path
