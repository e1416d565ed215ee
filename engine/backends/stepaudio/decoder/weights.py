"""Reads ``flow.pt`` / ``hift.pt`` state dicts into our modules.

Weight-normed convolutions are folded (``w = g * v / ||v||``, the norm over every axis but
0) from either the ``parametrizations.weight.original0/1`` form or the older
``weight_g``/``weight_v`` form, and the few official names that encode container indices
(``conv.block.6``, ``adaLN_modulation.1`` ...) are renamed to this package's modules.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from engine.backends.stepaudio.decoder.files import DECODER_CONFIG_FILE, DECODER_DIR
from engine.backends.stepaudio.state_dicts import read_state_dict
from engine.errors import CheckpointError

__all__ = ["fold_weight_norm", "load_state", "read_state"]

_LOG = logging.getLogger(__name__)

_FIX = "re-download it"

_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^encoder\.(up_)?embed\.out\.0\.", r"encoder.\1embed.linear."),
        (r"^encoder\.(up_)?embed\.out\.1\.", r"encoder.\1embed.norm."),
        (r"\.t_embedder\.mlp\.0\.", ".time_embed.fc1."),
        (r"\.t_embedder\.mlp\.2\.", ".time_embed.fc2."),
        (r"\.adaLN_modulation\.1\.", ".modulation."),
        (r"\.conv\.block\.1\.", ".conv.conv1."),
        (r"\.conv\.block\.3\.", ".conv.norm."),
        (r"\.conv\.block\.6\.", ".conv.conv2."),
    )
)
# condnet interleaves convolutions (even indices) with ELUs (odd).
_CONDNET = re.compile(r"^f0_predictor\.condnet\.(\d+)\.")


def _rename(key: str) -> str:
    for pattern, replacement in _RENAMES:
        key = pattern.sub(replacement, key)
    return _CONDNET.sub(lambda m: f"f0_predictor.convs.{int(m.group(1)) // 2}.", key)


def fold_weight_norm(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Replaces every weight-norm pair by the effective ``weight``; other keys pass through."""
    pairs = {
        ".parametrizations.weight.original0": ".parametrizations.weight.original1",
        ".weight_g": ".weight_v",
    }
    folded: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        for magnitude, direction in pairs.items():
            if key.endswith(direction):
                break
            if key.endswith(magnitude):
                stem = key[: -len(magnitude)]
                g, v = tensor.float(), state[stem + direction].float()
                norm = v.norm(dim=tuple(range(1, v.dim())), keepdim=True)
                folded[stem + ".weight"] = g * v / norm
                break
        else:
            folded[key] = tensor
    return folded


def read_state(path: Path) -> dict[str, torch.Tensor]:
    """Reads a state dict, folds weight norm and renames keys to this package's modules.

    Raises:
        CheckpointError: when the file is not a readable state dict of tensors.
    """
    state = read_state_dict(path, _FIX)
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: is not a state dict of tensors; {_FIX}")
    return {_rename(k): v for k, v in fold_weight_norm(state).items()}


def load_state(module: nn.Module, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Loads ``state`` (from ``read_state(path)``) into ``module`` strictly.

    Every parameter must be present with its shape; keys the module lacks are logged and
    ignored.

    Raises:
        CheckpointError: for missing tensors or shape mismatches, naming the file and the
            first offending keys.
    """
    own = module.state_dict()
    unknown = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in own.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or wrong:
        details = []
        if missing:
            details.append(f"{len(missing)} missing tensor(s), e.g. {', '.join(missing[:3])}")
        if wrong:
            details.append(f"{len(wrong)} tensor(s) of another shape, e.g. {'; '.join(wrong[:3])}")
        raise CheckpointError(
            f"{path}: does not match {DECODER_CONFIG_FILE}: {'; '.join(details)}; re-download "
            f"the {DECODER_DIR} folder"
        )
    if unknown:
        _LOG.warning(
            "%s: ignoring %d unknown tensor(s), e.g. %s", path.name, len(unknown), unknown[:3]
        )
    module.load_state_dict({k: state[k] for k in own}, strict=True)
