"""Prompt loading rules and the tokenizer's 16 kHz preprocessing (spec §2.1-§2.2).

The official pipeline reads a prompt, mixes it to mono and caps its peak at 0.6 (§2.1); that
one signal feeds the prompt mel, the speaker embedding and the tokenizer. The tokenizer then
resamples to 16 kHz, normalises the peak to 0.999 and trims silence to a fixed frame grid
(§2.2).

Deviation: the official resampler asserts that the input rate is at least 16 kHz. Here lower
rates are upsampled with the same windowed sinc instead of failing.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from engine.backends.stepaudio.torch_dsp import sinc_resample

__all__ = [
    "PROMPT_PEAK",
    "TOKENIZER_RATE",
    "energy_normalize",
    "nonsilent_bounds",
    "prepare_prompt",
    "resample",
    "tokenizer_input",
    "trim_silence",
]

_LOG = logging.getLogger(__name__)

# Peak cap applied to every prompt after mono mixing (louder prompts are scaled down to it).
PROMPT_PEAK = 0.6
# Rate of both tokenizer streams.
TOKENIZER_RATE = 16000


def prepare_prompt(audio: np.ndarray) -> np.ndarray:
    """Mixes a prompt to mono and scales it down to a peak of 0.6 if it is louder.

    Args:
        audio: ``(channels, samples)`` or 1-D samples, at any rate.

    Returns:
        1-D float32 mono signal; quieter audio keeps its level.
    """
    mono = np.asarray(audio, dtype=np.float32)
    if mono.ndim == 2:
        mono = mono.mean(axis=0, dtype=np.float32) if mono.shape[0] > 1 else mono[0]
    elif mono.ndim != 1:
        raise ValueError(f"expected (channels, samples) or 1-D audio, got shape {mono.shape}")
    peak = np.max(np.abs(mono)) if mono.size else np.float32(0.0)
    if peak > PROMPT_PEAK:
        mono = mono / peak * np.float32(PROMPT_PEAK)
    return np.ascontiguousarray(mono, dtype=np.float32)


def resample(
    audio: np.ndarray, orig_rate: int, new_rate: int, *, kernel_dtype: torch.dtype
) -> np.ndarray:
    """Resamples 1-D float32 audio with torchaudio's windowed sinc (see ``dsp.sinc_resample``).

    Args:
        audio: 1-D samples.
        orig_rate: Their rate in Hz.
        new_rate: Wanted rate in Hz (up or down).
        kernel_dtype: ``torch.float64`` for the tokenizer path (torchaudio's ``Resample``
            transform), ``torch.float32`` for the speaker and mel path (its functional form).

    Returns:
        1-D float32 samples at ``new_rate``.
    """
    if orig_rate == new_rate:
        return np.asarray(audio, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))
    return sinc_resample(tensor, orig_rate, new_rate, kernel_dtype=kernel_dtype).numpy()


def energy_normalize(audio: np.ndarray) -> np.ndarray:
    """Scales the peak to 0.999; signals quieter than 0.01 peak are scaled as if at 0.01."""
    peak = np.max(np.abs(audio)) if audio.size else np.float32(0.0)
    return (audio / max(peak, np.float32(0.01)) * np.float32(0.999)).astype(np.float32)


def nonsilent_bounds(
    audio: np.ndarray, top_db: float = 20.0, frame_length: int = 512, hop_length: int = 128
) -> tuple[int, int]:
    """Sample range ``[start, end)`` of the frames within ``top_db`` of the loudest frame.

    The semantics of ``librosa.effects.trim``: the RMS of each frame of ``frame_length``
    samples, every ``hop_length`` samples, over the signal zero-padded by ``frame_length // 2``
    on both sides; frames whose level is above ``-top_db`` dB relative to the loudest frame
    are kept; ``start`` is the first kept frame times ``hop_length`` and ``end`` the frame
    after the last kept one (capped at the signal length). No kept frame gives ``(0, 0)``.

    Args:
        audio: 1-D float32 samples.
        top_db: Threshold below the loudest frame, in dB.
        frame_length: Frame length in samples.
        hop_length: Frame hop in samples.

    Returns:
        ``(start, end)`` in samples.
    """
    signal = np.asarray(audio, dtype=np.float32)
    padded = np.pad(signal, frame_length // 2)
    count = 1 + (padded.shape[0] - frame_length) // hop_length
    step = padded.strides[0]
    frames = np.lib.stride_tricks.as_strided(
        padded, shape=(frame_length, count), strides=(step, hop_length * step), writeable=False
    )
    rms = np.sqrt(np.mean(np.square(frames), axis=0))
    power = np.square(rms)
    reference = np.square(np.max(rms))
    db = 10.0 * np.log10(np.maximum(np.float32(1e-10), power))
    db = db - 10.0 * np.log10(np.maximum(np.float32(1e-10), reference))
    kept = np.flatnonzero(db > -top_db)
    if kept.size == 0:
        return 0, 0
    return int(kept[0] * hop_length), min(signal.shape[0], int((kept[-1] + 1) * hop_length))


def trim_silence(
    audio: np.ndarray,
    sample_rate: int = TOKENIZER_RATE,
    keep_left: float = 0.05,
    keep_right: float = 0.22,
    hop_size: int = 240,
) -> np.ndarray:
    """Cuts leading and trailing silence onto the official fixed grid.

    The output starts ``keep_left`` seconds before the voiced onset (zero-padded if the onset
    is earlier) and is exactly ``hop_size * ceil(voiced / hop_size) +
    int((keep_left + keep_right) * sample_rate)`` samples long (zero-padded at the end when
    the signal runs out): 240·ceil(voiced/240) + 4320 at 16 kHz.

    Args:
        audio: 1-D float32 samples.
        sample_rate: Their rate in Hz.
        keep_left: Seconds kept before the onset.
        keep_right: Seconds added after the voiced frames (part of the fixed length).
        hop_size: Grid the voiced length is rounded up to, in samples.

    Returns:
        The trimmed 1-D float32 signal.
    """
    start, end = nonsilent_bounds(audio)
    frames = math.ceil((end - start) / hop_size)
    offset = start - int(keep_left * sample_rate)
    trimmed = audio[offset:] if offset > 0 else np.pad(audio, (-offset, 0))
    length = int(frames * hop_size + (keep_left + keep_right) * sample_rate)
    if length < trimmed.shape[0]:
        trimmed = trimmed[:length]
    else:
        trimmed = np.pad(trimmed, (0, length - trimmed.shape[0]))
    return np.ascontiguousarray(trimmed, dtype=np.float32)


def tokenizer_input(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """Turns a prepared prompt (see ``prepare_prompt``) into the tokenizer's 16 kHz input.

    Resample to 16 kHz (windowed sinc; rates below 16 kHz are upsampled, where the official
    code fails), normalise the peak to 0.999, trim silence.

    Args:
        audio: 1-D float32 mono samples.
        sample_rate: Their rate in Hz.

    Returns:
        1-D float32 samples at 16 kHz.
    """
    if sample_rate < TOKENIZER_RATE:
        _LOG.info(
            "upsampling a %d Hz prompt to %d Hz for the tokenizer", sample_rate, TOKENIZER_RATE
        )
    audio16 = resample(audio, sample_rate, TOKENIZER_RATE, kernel_dtype=torch.float64)
    return trim_silence(energy_normalize(audio16), TOKENIZER_RATE)
