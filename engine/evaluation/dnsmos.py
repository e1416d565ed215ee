"""DNSMOS P.835 (signal, background, overall quality) with the model bundled in speechmos.

``speechmos`` imports librosa and requests at import time, though the P.835 model takes raw
16 kHz audio (survey gotcha 6). So its ONNX file is located with ``find_spec`` and run with
onnxruntime directly, with speechmos' windowing (9.01 s windows, 1 s hop, short clips
repeated) and its polynomial calibration. The score of one alignment is unstable on noisy
clips: on VCTK+DEMAND p287_006 the OVRL of the unedited clip ranged 1.32-2.38 when 0-400
zero samples were put before it (3.26-3.41 on clean LJ001), so an edit's change could not be
told from the clip's own position in the window. Scores are therefore averaged over
:data:`ALIGNMENTS` (leading silences of 0-44 ms; one alignment varied with a standard
deviation of 0.27 over 16 leads on that clip, eight bring it to about 0.1), as many as make
eight 9 s windows in all: a long clip has them already.
Install: ``pip install speechmos==0.0.1.1 onnxruntime`` (speechmos' own dependencies are
not needed). DNSMOS rates synthetic whisper low even when clean (gotcha 7): judge whisper
by voicing and HNR instead.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from engine.audio import resample, to_mono
from engine.errors import BackendError
from engine.evaluation.packaged import packaged_file

__all__ = ["ALIGNMENTS", "dnsmos"]

_LOG = logging.getLogger(__name__)

_RATE = 16000
_WINDOW_S = 9.01
# Leading zero samples (at 16 kHz) of the alignments averaged; 0 alone is speechmos' score.
ALIGNMENTS: tuple[int, ...] = (0, 97, 199, 307, 401, 503, 599, 701)
_INSTALL_HINT = "pip install speechmos==0.0.1.1 onnxruntime"
# speechmos' calibration polynomials for the non-personalised P.835 model.
_SIG = np.poly1d([-0.08397278, 1.22083953, 0.0052439])
_BAK = np.poly1d([-0.13166888, 1.60915514, -0.39604546])
_OVRL = np.poly1d([-0.06766283, 1.11546468, 0.04602535])


@functools.lru_cache(maxsize=1)
def _session() -> Any:
    try:
        import onnxruntime
    except ImportError as e:
        raise BackendError(f"DNSMOS needs onnxruntime: {_INSTALL_HINT}") from e
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    options.log_severity_level = 3
    model = packaged_file(
        "speechmos",
        "dnsmos_models/sig_bak_ovr.onnx",
        "DNSMOS needs the speechmos models",
        _INSTALL_HINT,
    )
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def dnsmos(
    audio: np.ndarray, sample_rate: int, alignments: tuple[int, ...] | None = None
) -> dict[str, float]:
    """DNSMOS P.835 scores (1-5) of ``(channels, n)`` or 1-D audio.

    Args:
        audio: The audio.
        sample_rate: Its rate in Hz.
        alignments: Leading zero samples (16 kHz) of each scored copy; ``(0,)`` scores the
            audio once, as speechmos does. ``None``: the first of :data:`ALIGNMENTS`, as
            many as make eight windows in all (a clip of 16 s or more has them already).

    Returns:
        ``{"sig": ..., "bak": ..., "ovrl": ...}`` averaged over 9 s windows and alignments.

    Raises:
        BackendError: when speechmos or onnxruntime is not installed (with the install line).
    """
    wav = resample(to_mono(np.atleast_2d(audio)), sample_rate, _RATE).astype(np.float32)
    wav = np.clip(wav, -1.0, 1.0)
    length = int(_WINDOW_S * _RATE)
    if wav.size == 0:
        raise ValueError("DNSMOS needs audio, got an empty clip")
    if alignments is None:
        windows = max(int(wav.size / _RATE - _WINDOW_S) + 1, 1)
        alignments = ALIGNMENTS[: -(-len(ALIGNMENTS) // windows)]
    if not alignments or min(alignments) < 0:
        raise ValueError(f"DNSMOS needs alignments >= 0, got {alignments}")
    scores = [_windows(np.pad(wav, (lead, 0)), length) for lead in alignments]
    sig, bak, ovrl = np.mean(scores, axis=0)
    return {"sig": float(sig), "bak": float(bak), "ovrl": float(ovrl)}


def _windows(wav: np.ndarray, length: int) -> np.ndarray:
    """Calibrated (sig, bak, ovrl) of one alignment, averaged over its 9 s windows."""
    while wav.size < length:
        wav = np.concatenate([wav, wav])
    hops = int(np.floor(wav.size / _RATE) - _WINDOW_S) + 1
    session = _session()
    scores = []
    for k in range(max(hops, 1)):
        segment = wav[k * _RATE : k * _RATE + length]
        if segment.size < length:
            continue
        sig, bak, ovrl = session.run(None, {"input_1": segment[np.newaxis, :]})[0][0]
        scores.append((_SIG(sig), _BAK(bak), _OVRL(ovrl)))
    return np.mean(scores, axis=0)
