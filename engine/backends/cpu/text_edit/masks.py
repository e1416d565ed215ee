"""Masked words: a piece's words overwritten with room tone, silence or a bleep.

Masked words are overwritten from the end of the pause before them to the start of the
pause after them (the length stays exact): room tone (the take's quietest 0.25 s, looped
with cross-fades), silence, or a 1 kHz tone at the take's speech loudness; 5 ms
equal-power ramps at both ends.
"""

from __future__ import annotations

import math

import numpy as np

from engine.audio import crossfade_concat, match_loudness
from engine.backends.cpu.text_edit.layout import FADE_S, Piece
from engine.backends.cpu.text_edit.take import HOP_S, Take

__all__ = ["RAMP_S", "piece_audio"]

RAMP_S = 0.005
_ROOM_TONE_S = 0.25
_BLEEP_HZ = 1000.0


def _room_tone(audio: np.ndarray, take: Take, length: int) -> np.ndarray:
    """``length`` samples of the take's quietest stretch, looped with cross-fades."""
    frames = max(1, min(round(_ROOM_TONE_S / HOP_S), len(take.levels)))
    power = np.convolve(10 ** (take.levels / 10), np.ones(frames), mode="valid")
    start = int(np.argmin(power)) * round(HOP_S * take.rate)
    stretch = audio[:, start : start + round(_ROOM_TONE_S * take.rate)]
    if stretch.shape[-1] < 4:
        return np.zeros((audio.shape[0], length), dtype=np.float32)
    fade = min(round(FADE_S * take.rate), stretch.shape[-1] // 4)
    out, k = stretch, 1
    while out.shape[-1] < length:  # forwards and backwards in turn: no audible loop
        out = crossfade_concat([out, stretch[:, ::-1] if k % 2 else stretch], fade)
        k += 1
    return out[:, :length]


def _bleep(channels: int, length: int, rate: int, loudness: float) -> np.ndarray:
    tone = np.sin(2 * np.pi * _BLEEP_HZ * np.arange(length) / rate).astype(np.float32)
    tone = np.tile(tone, (channels, 1))
    if math.isfinite(loudness) and length:
        tone = match_loudness(tone, rate, loudness)
    return tone


def _mask(piece: np.ndarray, start: int, end: int, fill: np.ndarray, ramp: int) -> None:
    """Overwrites ``piece[:, start:end]`` with ``fill``, with equal-power ramps inside."""
    ramp = min(ramp, (end - start) // 4)
    original = piece[:, start:end].copy()
    piece[:, start:end] = fill
    if ramp > 0:
        w = np.sin(np.linspace(0.0, np.pi / 2, ramp, dtype=np.float32))
        piece[:, start : start + ramp] = original[:, :ramp] * w[::-1] + fill[:, :ramp] * w
        piece[:, end - ramp : end] = original[:, -ramp:] * w + fill[:, -ramp:] * w[::-1]


def _masked_runs(piece: Piece) -> list[tuple[int, int]]:
    """First and last unit of each run of masked units in a piece."""
    runs: list[tuple[int, int]] = []
    for step in piece.steps:
        masked = step.action == "masked" or (step.action == "moved" and step.masked)
        if masked and step.unit is not None:
            if runs and runs[-1][1] == step.unit - 1:
                runs[-1] = (runs[-1][0], step.unit)
            else:
                runs.append((step.unit, step.unit))
    return runs


def piece_audio(
    audio: np.ndarray, piece: Piece, take: Take, mask_sound: str, speech_loudness: float
) -> np.ndarray:
    """A piece's samples, its masked words overwritten (from the end of the pause before
    them to the start of the pause after them)."""
    rate, channels = take.rate, audio.shape[0]
    a = round(piece.left * rate)
    b = max(round(piece.right * rate), a + 1)
    out = audio[:, a:b].copy()
    for first, last in _masked_runs(piece):
        m0 = min(max(round(take.gap(first - 1).end * rate) - a, 0), b - a)
        m1 = min(max(round(take.gap(last).start * rate) - a, m0), b - a)
        if mask_sound == "silence":
            fill = np.zeros((channels, m1 - m0), dtype=np.float32)
        elif mask_sound == "bleep":
            fill = _bleep(channels, m1 - m0, rate, speech_loudness)
        else:
            fill = _room_tone(audio, take, m1 - m0)
        _mask(out, m0, m1, fill, round(RAMP_S * rate))
    return out
