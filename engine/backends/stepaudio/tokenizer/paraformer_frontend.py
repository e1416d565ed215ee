"""Streaming Paraformer front end: Kaldi fbank, LFR stacking and CMVN with caches (spec §3.1).

This reproduces FunASR's ``WavFrontendOnline`` as driven piece by piece by the official vq02
tokenizer, including its edge cases: a final piece too short to complete the pending LFR
frames adds nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.backends.stepaudio.torch_dsp import kaldi_fbank

__all__ = [
    "FUNASR_DEFAULT_DITHER",
    "FrontendConfig",
    "StreamingFrontend",
    "load_cmvn",
    "parse_cmvn",
]

# FunASR's WavFrontendOnline default when config.yaml sets no frontend_conf.dither.
FUNASR_DEFAULT_DITHER = 1.0


@dataclass(frozen=True)
class FrontendConfig:
    """The ``frontend_conf`` values the features depend on.

    Attributes:
        sample_rate: Input rate in Hz (``fs``).
        window: Fbank window (``window``).
        n_mels: Fbank bins (``n_mels``).
        frame_length_ms: Frame length (``frame_length``).
        frame_shift_ms: Frame shift (``frame_shift``).
        lfr_m: Frames stacked per LFR frame (``lfr_m``).
        lfr_n: LFR frame shift in fbank frames (``lfr_n``).
        dither: Gaussian dither (``dither``; FunASR's default 1.0 when unset).
    """

    sample_rate: int = 16000
    window: str = "hamming"
    n_mels: int = 80
    frame_length_ms: float = 25.0
    frame_shift_ms: float = 10.0
    lfr_m: int = 7
    lfr_n: int = 6
    dither: float = FUNASR_DEFAULT_DITHER

    @classmethod
    def from_mapping(cls, conf: Mapping[str, Any]) -> FrontendConfig:
        """Builds the config from ``config.yaml``'s ``frontend_conf`` (FunASR defaults apply)."""
        return cls(
            sample_rate=int(conf.get("fs", 16000)),
            window=str(conf.get("window", "hamming")),
            n_mels=int(conf.get("n_mels", 80)),
            frame_length_ms=float(conf.get("frame_length", 25)),
            frame_shift_ms=float(conf.get("frame_shift", 10)),
            lfr_m=int(conf.get("lfr_m", 1)),
            lfr_n=int(conf.get("lfr_n", 1)),
            dither=float(conf.get("dither", FUNASR_DEFAULT_DITHER)),
        )

    @property
    def feature_size(self) -> int:
        """Width of one LFR frame."""
        return self.n_mels * self.lfr_m

    @property
    def frame_samples(self) -> int:
        return int(self.frame_length_ms * self.sample_rate / 1000)

    @property
    def shift_samples(self) -> int:
        return int(self.frame_shift_ms * self.sample_rate / 1000)


def parse_cmvn(text: str) -> np.ndarray:
    """Reads a Kaldi-nnet text CMVN (``am.mvn``).

    The ``<AddShift>`` and ``<Rescale>`` components are each followed by a line
    ``<LearnRateCoef> 0 [ v1 v2 ... ]``; features become ``(x + shift) * scale``.

    Args:
        text: Contents of ``am.mvn``.

    Returns:
        Float32 ``(2, dim)``: the shift row, then the scale row.

    Raises:
        ValueError: when either block is missing, malformed or the two differ in width.
    """
    lines = text.splitlines()
    rows: dict[str, np.ndarray] = {}
    for index, line in enumerate(lines):
        words = line.split()
        if not words or words[0] not in ("<AddShift>", "<Rescale>") or index + 1 >= len(lines):
            continue
        values = lines[index + 1].split()
        if not values or values[0] != "<LearnRateCoef>" or "[" not in values or "]" not in values:
            raise ValueError(f"{words[0]} is not followed by a '<LearnRateCoef> 0 [ ... ]' line")
        body = values[values.index("[") + 1 : values.index("]")]
        try:
            rows[words[0]] = np.array([float(v) for v in body], dtype=np.float32)
        except ValueError as e:
            raise ValueError(f"{words[0]} holds a non-numeric value: {e}") from None
    missing = [tag for tag in ("<AddShift>", "<Rescale>") if tag not in rows]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} block")
    shift, scale = rows["<AddShift>"], rows["<Rescale>"]
    if shift.shape != scale.shape or shift.size == 0:
        raise ValueError(f"<AddShift> has {shift.size} values but <Rescale> has {scale.size}")
    return np.stack([shift, scale])


def load_cmvn(path: Path) -> np.ndarray:
    """Reads ``am.mvn`` from disk (see ``parse_cmvn``)."""
    return parse_cmvn(path.read_text(encoding="utf-8"))


class StreamingFrontend:
    """Turns 16 kHz pieces into CMVN-normalised LFR frames, carrying caches between pieces.

    Args:
        config: Front-end settings.
        cmvn: ``(2, config.feature_size)`` shift and scale rows.
    """

    def __init__(self, config: FrontendConfig, cmvn: np.ndarray) -> None:
        if cmvn.shape != (2, config.feature_size):
            raise ValueError(
                f"CMVN has shape {cmvn.shape}; the front end makes {config.feature_size}-wide "
                f"frames ({config.n_mels} mels x lfr_m {config.lfr_m})"
            )
        self.config = config
        self._cmvn = torch.from_numpy(cmvn)
        self._samples = torch.zeros(0)
        self._splice: torch.Tensor | None = None

    def reset(self) -> None:
        """Forgets the caches; the next piece starts a new stream."""
        self._samples = torch.zeros(0)
        self._splice = None

    def accept(self, piece: torch.Tensor, is_final: bool) -> torch.Tensor:
        """Feeds one piece of 1-D float32 audio (range ±1).

        Args:
            piece: The next samples of the stream.
            is_final: True for the last piece: pending LFR frames are completed by repeating
                the last fbank frame.

        Returns:
            Float32 ``(frames, feature_size)``; may have zero rows.
        """
        cfg = self.config
        samples = torch.cat([self._samples, piece.to(torch.float32)])
        count = self._frame_count(samples.numel())
        self._samples = samples[count * cfg.shift_samples :]
        if count == 0:
            if not is_final or self._splice is None:
                return torch.zeros((0, cfg.feature_size))
            stacked, _ = self._stack(self._splice, is_final=True)
            return self._normalise(stacked)
        fbank = kaldi_fbank(
            samples * 32768.0,
            num_mel_bins=cfg.n_mels,
            sample_rate=cfg.sample_rate,
            frame_length_ms=cfg.frame_length_ms,
            frame_shift_ms=cfg.frame_shift_ms,
            window=cfg.window,
            dither=cfg.dither,
        )
        if self._splice is None:
            # The stream starts with (lfr_m - 1) // 2 copies of its first frame as left context.
            self._splice = fbank[:1].repeat((cfg.lfr_m - 1) // 2, 1)
        frames = torch.cat([self._splice, fbank])
        if frames.shape[0] < cfg.lfr_m:
            self._splice = frames
            return torch.zeros((0, cfg.feature_size))
        stacked, self._splice = self._stack(frames, is_final)
        return self._normalise(stacked)

    def _frame_count(self, samples: int) -> int:
        size, shift = self.config.frame_samples, self.config.shift_samples
        return 1 + (samples - size) // shift if samples >= size else 0

    def _stack(self, frames: torch.Tensor, is_final: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """LFR: stacks ``lfr_m`` frames every ``lfr_n``; returns them and the unconsumed tail.

        Frames that would reach past the end are only made when ``is_final`` (padding with the
        last frame); otherwise stacking stops there and those frames wait in the tail.
        """
        m, n = self.config.lfr_m, self.config.lfr_n
        total = frames.shape[0]
        # One LFR frame per n frames, less the (m - 1) // 2 frames of right context.
        wanted = max(math.ceil((total - (m - 1) // 2) / n), 0)
        complete = (total - m) // n + 1 if total >= m else 0
        made = wanted if is_final else min(wanted, complete)
        tail = frames[min(total - 1, made * n) :]
        index = (torch.arange(made)[:, None] * n + torch.arange(m)[None, :]).clamp(max=total - 1)
        stacked = frames[index].reshape(made, m * frames.shape[1])
        return stacked, tail

    def _normalise(self, stacked: torch.Tensor) -> torch.Tensor:
        return (stacked + self._cmvn[0]) * self._cmvn[1]
