"""Opening the bundled ONNX models (S3 tokenizer, CAM++) with onnxruntime on the right device."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime

from engine.errors import CheckpointError

__all__ = ["open_session"]

_LOG = logging.getLogger(__name__)


def _providers(device: str) -> list[str]:
    available = onnxruntime.get_available_providers()
    if device.startswith("cuda") and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device.startswith("cuda"):
        _LOG.warning("onnxruntime has no CUDA provider here; running ONNX models on the CPU")
    return ["CPUExecutionProvider"]


def open_session(
    path: Path, device: str, inputs: int, threads: int, fix: str
) -> onnxruntime.InferenceSession:
    """Opens an ONNX model with full graph optimisation.

    Args:
        path: The ``.onnx`` file.
        device: Torch-style device name; ``cuda*`` uses the CUDA provider when onnxruntime has
            it, anything else the CPU provider.
        inputs: Number of inputs the caller feeds by position.
        threads: Intra-op threads (0 lets onnxruntime choose).
        fix: What the user should do when the file is unusable.

    Returns:
        The session.

    Raises:
        CheckpointError: when the file is missing, unreadable or has fewer inputs.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: file is missing; {fix}")
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    try:
        session = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=_providers(device)
        )
    except Exception as e:  # onnxruntime raises its own exception types for bad models
        raise CheckpointError(f"{path}: not a loadable ONNX model ({e}); {fix}") from e
    if len(session.get_inputs()) < inputs:
        raise CheckpointError(
            f"{path}: the model has {len(session.get_inputs())} inputs, expected {inputs}; {fix}"
        )
    return session
