"""Loads the Step1 safetensors shards into a ``Step1ForCausalLM`` in the wanted dtype."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from engine.backends.stepaudio.llm.config import Step1Config
from engine.backends.stepaudio.llm.model import Step1ForCausalLM
from engine.errors import CheckpointError

__all__ = ["DTYPES", "load_step1"]

_LOG = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_step1(
    shards: Sequence[Path], config: Step1Config, device: str, dtype: torch.dtype
) -> Step1ForCausalLM:
    """Builds the model without allocating it, then fills it tensor by tensor.

    Each tensor is read, cast (the release stores bf16) and moved on its own, so peak host
    memory stays near one tensor above the model's size.

    Args:
        shards: The safetensors files (the index's shards, or one ``model.safetensors``).
        config: The parsed ``config.json``.
        device: Torch device string.
        dtype: Compute dtype of the model.

    Raises:
        CheckpointError: naming missing tensors or a tensor of the wrong shape.
    """
    from safetensors import safe_open

    with torch.device("meta"):
        model = Step1ForCausalLM(config)
    expected = config.tensor_shapes()
    state: dict[str, torch.Tensor] = {}
    unknown: list[str] = []
    for shard in shards:
        with safe_open(str(shard), framework="pt", device="cpu") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a Mapping
                if key not in expected:
                    unknown.append(key)
                    continue
                tensor = handle.get_tensor(key)
                if tuple(tensor.shape) != expected[key]:
                    raise CheckpointError(
                        f"{shard}: tensor {key} has shape {tuple(tensor.shape)}, expected "
                        f"{expected[key]} from config.json; re-download the checkpoint"
                    )
                state[key] = tensor.to(dtype=dtype).to(device)
    missing = sorted(set(expected) - set(state))
    if missing:
        raise CheckpointError(
            f"{shards[0].parent}: the LLM weights lack {len(missing)} tensor(s), e.g. "
            f"{', '.join(missing[:3])}; re-download the checkpoint"
        )
    if unknown:
        # check_checkpoint already warned the user about these at start-up.
        _LOG.debug("ignoring %d unknown LLM tensor(s), e.g. %s", len(unknown), unknown[:3])
    model.load_state_dict(state, strict=True, assign=True)
    model.eval()
    model.requires_grad_(False)
    return model
