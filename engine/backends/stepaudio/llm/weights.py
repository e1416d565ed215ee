"""Loads the Step1 safetensors shards into a ``Step1ForCausalLM`` in the wanted dtype."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch

from engine.backends.stepaudio.llm.config import Step1Config
from engine.backends.stepaudio.llm.int8 import quantize_linears, quantize_weight
from engine.backends.stepaudio.llm.model import Step1ForCausalLM
from engine.backends.stepaudio.options import QUANTIZE_NAMES
from engine.errors import CheckpointError

__all__ = ["DTYPES", "load_step1"]

_LOG = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def load_step1(
    shards: Sequence[Path],
    config: Step1Config,
    device: str,
    dtype: torch.dtype,
    quantize: str = "none",
) -> Step1ForCausalLM:
    """Builds the model without allocating it, then fills it tensor by tensor.

    Each tensor is read, cast (the release stores bf16) or quantized, and moved on its own,
    so peak host memory stays near one tensor above the (quantized) model's size.

    Args:
        shards: The safetensors files (the index's shards, or one ``model.safetensors``).
        config: The parsed ``config.json``.
        device: Torch device string.
        dtype: Compute dtype of the model.
        quantize: ``"none"``, or ``"int8"``: the decoder layers' Linear weights become
            weight-only int8 (see ``int8.py``); embeddings, norms and the output head keep
            ``dtype``.

    Raises:
        CheckpointError: naming missing tensors or a tensor of the wrong shape.
        ValueError: for an unknown ``quantize``.
    """
    from safetensors import safe_open

    if quantize not in QUANTIZE_NAMES:
        raise ValueError(
            f"unknown quantize {quantize!r}; choose one of {', '.join(QUANTIZE_NAMES)}"
        )
    with torch.device("meta"):
        model = Step1ForCausalLM(config)
    quantized: set[str] = set()
    if quantize == "int8":
        quantized = {f"{name}.weight" for name in quantize_linears(model)}
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
                if key in quantized:
                    # From the stored values, so fp16 is not rounded twice.
                    weight, scale = quantize_weight(tensor)
                    state[key] = weight.to(device)
                    state[key.removesuffix("weight") + "scale"] = scale.to(device)
                else:
                    # Quantized: a tensor kept as stored would be a view of the mapped
                    # file and keep all of it resident (6.7 GB at full size), so copy it.
                    state[key] = tensor.to(dtype=dtype, copy=bool(quantized)).to(device)
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
    if quantized:
        _LOG.info("LLM: %d Linear weights in int8, the rest %s", len(quantized), dtype)
    return model
