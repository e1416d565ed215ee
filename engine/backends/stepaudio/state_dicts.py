"""Reads the checkpoint's ``torch.save`` state dicts (Paraformer ``model.pt``, flow, HiFT)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from engine.errors import CheckpointError

__all__ = ["read_state_dict"]


def read_state_dict(path: Path, fix: str) -> dict[str, Any]:
    """Loads a state dict on the CPU, as FunASR and CosyVoice accept it.

    Zip archives are memory-mapped; the legacy pickle format is read whole. A
    ``{"state_dict": ...}`` wrapper and ``module.`` key prefixes are removed.

    Args:
        path: The ``.pt`` file.
        fix: What the user should do when the file is unusable.

    Returns:
        The entries by key (values are not checked to be tensors).

    Raises:
        CheckpointError: ``"<path>: <problem>; <fix>"`` when the file is missing, unreadable
            or holds something other than a dict.
    """
    try:
        try:
            raw = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # legacy (non-zip) files cannot be memory-mapped
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: file is missing; {fix}") from None
    except Exception as e:  # torch raises many exception types for a corrupt file
        raise CheckpointError(
            f"{path}: not a readable torch checkpoint ({type(e).__name__}: {e}); {fix}"
        ) from e
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path}: holds a {type(raw).__name__}, not a state dict; {fix}")
    return {str(key).removeprefix("module."): value for key, value in raw.items()}
