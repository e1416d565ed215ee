"""Audio I/O and the array helpers every stage shares.

Convention (pedalboard's): ``float32`` arrays shaped ``(channels, samples)`` with an explicit
sample rate. This module is the one place that reads and writes files, slices, resamples,
matches loudness and cross-fades.
"""

from __future__ import annotations

import logging
import math
import os
import re
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile
import soxr

from engine.errors import InputError, OutputError

__all__ = [
    "PEAK_CEILING_DBFS",
    "SILENCE_PEAK_DBFS",
    "SourceInfo",
    "atomic_write_bytes",
    "check_input_file",
    "check_samples",
    "crossfade_concat",
    "fit_channels",
    "fit_length",
    "fit_loudness",
    "integrated_loudness",
    "match_loudness",
    "peak_ceiling_db",
    "read_slice",
    "remove_stale_temp_files",
    "resample",
    "to_mono",
    "write_audio_atomic",
    "write_new_file",
]

_LOG = logging.getLogger(__name__)

# Below this level (dBFS peak) a slice counts as silent: nothing to edit.
SILENCE_PEAK_DBFS = -70.0
# Output peaks are kept under this (dBFS) after loudness matching, or under the source's own
# peak where that is higher (``peak_ceiling_db``).
PEAK_CEILING_DBFS = -1.0
# The most gain reduction (dB) ``fit_loudness`` may apply to peaks to reach a loudness under
# the ceiling.
_MAX_LIMITING_DB = 6.0
# The limiter's gain is held and smoothed over this long (s): it moves at under 20 Hz, so
# it does not distort, and it is down before each peak arrives. pedalboard's Limiter (80 ms
# release) cost 0.2-0.6 DNSMOS OVRL for +6 dB on clean clips (issue 13).
_LIMITER_WINDOW_S = 0.05
# More channels than this is an absurd header, not a recording anyone edits.
MAX_CHANNELS = 64
# Rates above this are an absurd header.
MAX_SAMPLE_RATE = 768_000
# The default cost bound: ``max_seconds`` of 7.1 audio at 48 kHz, in samples (frames x channels).
_CEILING_RATE = 48_000
_CEILING_CHANNELS = 8
# libsndfile's SF_ERR_MALFORMED_FILE: the format is known but the file is damaged.
_SF_ERR_MALFORMED_FILE = 3


@dataclass(frozen=True)
class SourceInfo:
    """Facts about the source file, kept so the result can be written the same way.

    Attributes:
        path: The source file.
        sample_rate: Its rate in Hz.
        channels: Its channel count.
        frames: Its length in samples per channel.
        subtype: libsndfile subtype, e.g. ``"PCM_16"`` or ``"FLOAT"``.
    """

    path: Path
    sample_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def is_float(self) -> bool:
        return self.subtype in {"FLOAT", "DOUBLE"}


def _wav_missing_bytes(path: Path) -> int:
    """How many bytes a RIFF WAVE file's ``data`` chunk claims beyond the end of the file.

    libsndfile silently shortens truncated WAV files; a DAW user must hear about it instead.
    Placeholder sizes (0 or 0xFFFFFFFF, left by streaming writers and RF64) are not checked.
    """
    with path.open("rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"RIFF" or header[8:12] != b"WAVE":
            return 0
        size = path.stat().st_size
        while len(chunk := f.read(8)) == 8:
            declared = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                if declared in (0, 0xFFFFFFFF):
                    return 0
                return max(0, f.tell() + declared - size)
            f.seek(declared + (declared & 1), 1)
    return 0


def _aiff_missing_bytes(path: Path) -> int:
    """How many bytes an AIFF/AIFC file's ``SSND`` chunk claims beyond the end of the file.

    libsndfile shortens truncated AIFF files to what is there, as it does for WAV.
    """
    with path.open("rb") as f:
        header = f.read(12)
        if len(header) < 12 or header[:4] != b"FORM" or header[8:12] not in (b"AIFF", b"AIFC"):
            return 0
        size = path.stat().st_size
        while len(chunk := f.read(8)) == 8:
            declared = int.from_bytes(chunk[4:], "big")
            if chunk[:4] == b"SSND":
                return max(0, f.tell() + declared - size)
            f.seek(declared + (declared & 1), 1)
    return 0


def _ogg_is_truncated(path: Path) -> bool:
    """True when an Ogg file does not end with a complete end-of-stream page.

    Ogg headers declare no length, and libsndfile counts the frames it finds, so a cut file
    looks whole to it; a complete stream always ends with a page flagged end-of-stream.
    """
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(4) != b"OggS":
            return False
        f.seek(max(0, size - 65_536))  # an Ogg page is at most 65,307 bytes
        tail = f.read()
    base = size - len(tail)
    at = tail.rfind(b"OggS")
    while at >= 0:
        page = tail[at:]
        if len(page) >= 27 and page[4] == 0:
            segments = page[26]
            if len(page) < 27 + segments:
                return True
            body = sum(page[27 : 27 + segments])
            if base + at + 27 + segments + body > size:
                return True
            return not page[5] & 0x04
        at = tail.rfind(b"OggS", 0, at)
    return True


def check_input_file(path: Path) -> None:
    """Raises ``InputError`` (``input_not_found`` or ``input_not_audio``) unless ``path``
    is an existing regular file (symlinks are followed).

    Directories, FIFOs, devices and sockets are refused from ``os.stat`` alone, without
    opening them: reading a FIFO would block the render worker forever. Cheap enough to
    check when a job is submitted.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise InputError(f"input file does not exist: {path}", "input_not_found") from None
    except OSError as e:
        raise InputError(f"cannot inspect input {path}: {e.strerror}", "input_not_audio") from e
    if stat.S_ISREG(mode):
        return
    kind = (
        "a directory"
        if stat.S_ISDIR(mode)
        else "a FIFO (named pipe)"
        if stat.S_ISFIFO(mode)
        else "a device"
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
        else "a socket"
        if stat.S_ISSOCK(mode)
        else "not a regular file"
    )
    raise InputError(
        f"input is {kind}, not an audio file: {path}; inputs must be regular files",
        "input_not_audio",
    )


def _open(path: Path) -> soundfile.SoundFile:
    if not path.is_absolute():
        raise InputError(f"input path must be absolute, got {str(path)!r}", "bad_request")
    check_input_file(path)
    try:
        opened = soundfile.SoundFile(path)
    except soundfile.LibsndfileError as e:
        if e.code == _SF_ERR_MALFORMED_FILE:  # a known container, cut or damaged
            raise InputError(f"{path} is corrupt or truncated: {e}", "input_corrupt") from e
        raise InputError(
            f"cannot read {path} as audio ({e}); use WAV, FLAC, MP3, OGG or AIFF",
            "input_not_audio",
        ) from e
    except RuntimeError as e:
        raise InputError(
            f"cannot read {path} as audio ({e}); use WAV, FLAC, MP3, OGG or AIFF",
            "input_not_audio",
        ) from e
    try:
        missing = _wav_missing_bytes(path) or _aiff_missing_bytes(path)
        if missing:
            raise InputError(
                f"{path} is truncated: its header promises {missing} more bytes of audio",
                "input_corrupt",
            )
        if opened.format == "OGG" and _ogg_is_truncated(path):
            raise InputError(
                f"{path} is truncated: its Ogg stream stops before its last page",
                "input_corrupt",
            )
    except BaseException:
        opened.close()
        raise
    return opened


def read_slice(
    path: Path,
    start: float = 0.0,
    length: float | None = None,
    max_seconds: float = 600.0,
    max_samples: int | None = None,
) -> tuple[np.ndarray, SourceInfo]:
    """Reads ``[start, start + length)`` seconds of a file.

    The cost is bounded from the header, before anything is decoded: a file with more than
    ``MAX_CHANNELS`` channels, a rate above ``MAX_SAMPLE_RATE`` or no frames is
    ``input_corrupt``; a slice longer than ``max_seconds`` or holding more than
    ``max_samples`` samples (frames x channels) is ``too_long``.

    Args:
        path: Absolute path of a WAV/FLAC/MP3/OGG/AIFF file.
        start: Offset into the file in seconds.
        length: Seconds to read; ``None`` reads to the end of the file.
        max_seconds: Longest slice accepted.
        max_samples: Most samples (frames x channels) a slice may hold; ``None`` means
            ``max_seconds`` of 8 channels at 48 kHz (600 s: 230.4 M samples, 922 MB as
            ``float32``), so a 384 kHz or 64-channel file is refused long before that.

    Returns:
        The slice as ``float32 (channels, samples)`` and the source's facts.

    Raises:
        InputError: with code ``input_not_found``, ``input_not_audio``, ``input_corrupt``,
            ``bad_slice``, ``too_long``, ``silent_input`` or ``non_finite``.
    """
    with _open(path) as f:
        info = SourceInfo(path, f.samplerate, f.channels, f.frames, f.subtype)
        if info.frames <= 0:
            raise InputError(f"{path} holds no audio samples", "input_corrupt")
        if not 0 < info.channels <= MAX_CHANNELS:
            raise InputError(
                f"{path} declares {info.channels} channels; at most {MAX_CHANNELS} are accepted",
                "input_corrupt",
            )
        if not 0 < info.sample_rate <= MAX_SAMPLE_RATE:
            raise InputError(
                f"{path} declares a rate of {info.sample_rate} Hz; at most "
                f"{MAX_SAMPLE_RATE} Hz is accepted",
                "input_corrupt",
            )
        if not math.isfinite(start) or start < 0:
            raise InputError(f"start must be >= 0 seconds, got {start}", "bad_slice")
        if length is not None and (not math.isfinite(length) or length <= 0):
            raise InputError(f"length must be > 0 seconds, got {length}", "bad_slice")
        if start >= info.duration:
            raise InputError(
                f"start {start:.3f} s is past the end of {path.name} ({info.duration:.3f} s)",
                "bad_slice",
            )
        first = round(start * info.sample_rate)
        count = info.frames - first if length is None else round(length * info.sample_rate)
        if first + count > info.frames + round(0.001 * info.sample_rate):
            raise InputError(
                f"slice {start:.3f}+{length:.3f} s runs past the end of {path.name} "
                f"({info.duration:.3f} s)",
                "bad_slice",
            )
        count = min(count, info.frames - first)
        if count / info.sample_rate > max_seconds:
            raise InputError(
                f"slice is {count / info.sample_rate:.1f} s; the engine accepts at most "
                f"{max_seconds:.0f} s (raise --max-seconds or send a shorter slice)",
                "too_long",
            )
        if count <= 0:
            raise InputError("the slice holds no samples", "bad_slice")
        budget = (
            round(max_seconds * _CEILING_RATE * _CEILING_CHANNELS)
            if max_samples is None
            else max_samples
        )
        if count * info.channels > budget:
            raise InputError(
                f"slice holds {count * info.channels} samples ({count} frames x "
                f"{info.channels} channels at {info.sample_rate} Hz); the engine accepts at "
                f"most {budget} (send a shorter slice, fewer channels or a lower rate)",
                "too_long",
            )
        try:
            f.seek(first)
            data = f.read(count, dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as e:
            raise InputError(f"{path} is corrupt or truncated: {e}", "input_corrupt") from e
    if data.shape[0] < count * 0.99:
        raise InputError(
            f"{path} is truncated: read {data.shape[0]} of {count} samples", "input_corrupt"
        )
    audio = np.ascontiguousarray(data.T)
    check_samples(audio, f"the slice of {path.name}")
    return audio, info


def check_samples(audio: np.ndarray, what: str) -> None:
    """Raises ``InputError`` (``non_finite`` or ``silent_input``) for audio no edit can use.

    Args:
        audio: Samples of any shape.
        what: How messages name the audio, e.g. ``"the slice of take.wav"``.
    """
    if not np.all(np.isfinite(audio)):
        raise InputError(f"{what} contains NaN or infinite samples", "non_finite")
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 10 ** (SILENCE_PEAK_DBFS / 20):
        raise InputError(
            f"{what} is silent (peak below {SILENCE_PEAK_DBFS:.0f} dBFS)", "silent_input"
        )


def to_mono(audio: np.ndarray) -> np.ndarray:
    """Averages ``(channels, samples)`` to a 1-D mono signal, each channel in the polarity
    of the loudest one.

    A plain average cancels a channel recorded with inverted polarity (a miswired cable, a
    mid/side pair): such a take mixed to near silence, so it was transcribed as nothing and
    its edits refused for want of speech. Of the two polarities of a channel, the one that
    correlates with the loudest channel is the one that adds up; channels of one take are
    otherwise in phase, and unrelated ones (a talker per side) are left as they are.
    """
    if audio.ndim == 1:
        return audio
    loudest = audio[int(np.argmax(np.einsum("ij,ij->i", audio, audio)))]
    polarity = np.where(audio @ loudest < 0, -1.0, 1.0).astype(np.float32)
    return (polarity @ audio / audio.shape[0]).astype(np.float32)


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resamples ``(channels, samples)`` (or 1-D) audio with soxr's high quality setting."""
    if rate_in == rate_out:
        return audio.astype(np.float32, copy=False)
    out = soxr.resample(audio.T, rate_in, rate_out, quality="HQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def fit_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Returns ``audio`` with ``channels`` rows: mono is copied out, extra rows averaged."""
    if audio.shape[0] == channels:
        return audio
    mono = to_mono(audio)
    return np.repeat(mono[np.newaxis, :], channels, axis=0)


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """Returns ``audio`` with exactly ``length`` samples: the end is trimmed or zero-padded.

    For processors (time-stretch, resampling) that land a few samples off the exact length.
    """
    missing = length - audio.shape[-1]
    if missing <= 0:
        return audio[..., :length]
    pad = [(0, 0)] * (audio.ndim - 1) + [(0, missing)]
    return np.pad(audio, pad)


def _bs1770_channels(audio: np.ndarray) -> np.ndarray:
    """The channels BS.1770 weighs, as ``(channels, samples)``.

    Up to 5 channels are measured as they are (L, R, C, Ls, Rs). With 6 or more, the file is
    taken to be in WAV/SMPTE order (L, R, C, LFE, Ls, Rs, ...): the LFE (4th channel) is
    left out, as BS.1770 does, and L, R, C, Ls, Rs are measured; the side/height channels of
    7.1 and wider layouts are not, so their loudness follows the 5.1 bed.
    """
    if audio.ndim == 2 and audio.shape[0] > 5:
        return audio[[0, 1, 2, 4, 5]]
    return audio


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """BS.1770 integrated loudness in LUFS; RMS-based for clips under 0.4 s.

    Any channel count is accepted: see ``_bs1770_channels`` for which channels of a 5.1,
    7.1 or wider file are measured. Returns ``-inf`` for digital silence.
    """
    audio = _bs1770_channels(audio)
    if audio.shape[-1] >= int(0.4 * sample_rate):
        # Imported here: pyloudnorm loads scipy.signal (about 1 s), which client commands
        # that only need atomic_write_bytes (stepedit ping/capabilities --output) must not pay.
        import pyloudnorm

        value = pyloudnorm.Meter(sample_rate).integrated_loudness(audio.T.astype(np.float64))
        if math.isfinite(value):
            return float(value)
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return 20 * math.log10(rms) - 0.691 if rms > 0 else -math.inf


def match_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling_db: float = PEAK_CEILING_DBFS
) -> np.ndarray:
    """Scales ``audio`` to ``target_lufs``, never letting peaks pass ``ceiling_db`` (dBFS)."""
    current = integrated_loudness(audio, sample_rate)
    if not (math.isfinite(current) and math.isfinite(target_lufs)):
        return audio
    gain = 10 ** ((target_lufs - current) / 20)
    peak = float(np.max(np.abs(audio))) * gain
    ceiling = 10 ** (ceiling_db / 20)
    if peak > ceiling:
        _LOG.debug("loudness match limited by peak: %.2f dB short", 20 * math.log10(peak / ceiling))
        gain *= ceiling / peak
    return (audio * gain).astype(np.float32)


def peak_ceiling_db(source: np.ndarray) -> float:
    """The highest peak (dBFS) a render of ``source`` may reach: :data:`PEAK_CEILING_DBFS`,
    or the source's own peak where that is higher (up to full scale). A take mastered to
    0 dBFS would otherwise come back from any edit, even one that changes no level, about
    1 dB quieter than the take beside it.
    """
    peak = float(np.max(np.abs(source))) if source.size else 0.0
    own = 20 * math.log10(peak) if peak > 0 else -math.inf
    return max(PEAK_CEILING_DBFS, min(own, 0.0))


def fit_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling_db: float = PEAK_CEILING_DBFS
) -> np.ndarray:
    """Brings ``(channels, n)`` audio to ``target_lufs``, limiting peaks (by at most
    :data:`_MAX_LIMITING_DB`) to make room under ``ceiling_db``.

    A louder delivery of an already loud take, or a time-scale whose peaks overshoot the
    source's, is only possible with a limiter, as vocal effort is in life (spec §4.3: "into
    a limiter"). The limiter is smooth (:func:`_limit_peaks`), so a take with sharp peaks may
    end a little under the target rather than squashed: limiting again to reach it cost up to
    0.5 more DNSMOS OVRL at +6 dB on a clean Mandarin clip (issue 13).
    """
    out = audio.astype(np.float32)
    current = integrated_loudness(out, sample_rate)
    if not (math.isfinite(current) and math.isfinite(target_lufs)):
        return out
    out = out * np.float32(10 ** ((target_lufs - current) / 20))
    peak = float(np.max(np.abs(out)))
    excess = 20 * math.log10(peak) - ceiling_db if peak > 0 else 0.0
    if excess > 0:
        out = out * np.float32(10 ** (-max(excess - _MAX_LIMITING_DB, 0.0) / 20))
        out = _limit_peaks(out, sample_rate, ceiling_db - 0.5)
        _LOG.debug("limited %.1f dB of peaks to reach %.1f LUFS", excess, target_lufs)
    return match_loudness(out, sample_rate, target_lufs, ceiling_db)


def _limit_peaks(audio: np.ndarray, sample_rate: int, ceiling_db: float) -> np.ndarray:
    """``(channels, n)`` audio with its peaks brought under ``ceiling_db`` by a smooth gain.

    The gain each sample needs is held over :data:`_LIMITER_WINDOW_S` and averaged over the
    same length: every average then includes only values at or below the need of the sample
    it lands on, so no peak passes, and the gain ramps over 50 ms instead of snapping.
    Channels share one gain (the image does not move).
    """
    # Imported here, as pyloudnorm is above: client commands must not pay for scipy.
    from scipy.ndimage import minimum_filter1d, uniform_filter1d

    ceiling = 10 ** (ceiling_db / 20)
    magnitude = np.max(np.abs(audio), axis=0)
    needed = np.minimum(1.0, ceiling / np.maximum(magnitude, 1e-12))
    size = 2 * round(_LIMITER_WINDOW_S * sample_rate / 2) + 1
    held = minimum_filter1d(needed, size, mode="nearest")
    gain = np.minimum(uniform_filter1d(held, size, mode="nearest"), needed)
    return (audio * gain).astype(np.float32)


def crossfade_concat(pieces: list[np.ndarray], fade: int) -> np.ndarray:
    """Joins ``(channels, samples)`` pieces with equal-power cross-fades of ``fade`` samples.

    Each join overlaps the end of one piece with the start of the next, so the result is
    ``(len(pieces) - 1) * fade`` samples shorter than the plain concatenation (fades are
    shortened when a piece is too short for them).
    """
    if not pieces:
        raise ValueError("crossfade_concat needs at least one piece")
    out = pieces[0].astype(np.float32, copy=True)
    for piece in pieces[1:]:
        n = min(fade, out.shape[-1], piece.shape[-1])
        if n <= 0:
            out = np.concatenate([out, piece], axis=-1)
            continue
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        fade_in = np.sin(ramp * np.pi / 2)
        fade_out = np.cos(ramp * np.pi / 2)
        middle = out[..., -n:] * fade_out + piece[..., :n] * fade_in
        out = np.concatenate([out[..., :-n], middle, piece[..., n:]], axis=-1)
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replaces ``path`` with ``data`` atomically (temp file in the same folder + rename)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    """The process umask: from ``/proc`` on Linux, else by setting it and putting it back."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


_UMASK_LOCK = threading.Lock()
# What write_new_file's temporary files look like: mkstemp's 8 random characters between
# ".<stem>." and "<suffix>.tmp".
_TEMP_NAME = re.compile(r"\A\..+\.[a-z0-9_]{8}\.[A-Za-z0-9]+\.tmp\Z")


def remove_stale_temp_files(
    folder: Path, older_than: float = 60.0, stem: str | None = None
) -> list[Path]:
    """Removes the temporary files ``write_new_file`` leaves when the engine is killed mid-write.

    Only files named like its temporaries (``.<stem>.<8 random characters><suffix>.tmp``,
    e.g. ``.take.k2j4_x9q.wav.tmp``) and last modified more than ``older_than`` seconds ago
    are removed, so a write in progress (by this engine or another) is left alone. Meant to
    be called on each output folder at start and before each write.

    Args:
        folder: An output folder; a missing or unreadable folder is skipped.
        older_than: Minimum age in seconds of a file to remove.
        stem: Only temporaries of files named ``stem`` (those of one job, which no other
            writer can be writing, so any age will do).

    Returns:
        The files removed.
    """
    removed: list[Path] = []
    cutoff = time.time() - older_than
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not _TEMP_NAME.match(entry.name) or (
            stem is not None and not entry.name.startswith(f".{stem}.")
        ):
            continue
        try:
            if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError as e:
            _LOG.warning("cannot remove stale temp file %r: %s", entry.path, e.strerror)
    return removed


def _publish_new(tmp: Path, path: Path) -> bool:
    """Moves ``tmp`` to ``path`` only if ``path`` does not exist; True on success."""
    try:
        os.link(tmp, path)  # atomic and never replaces an existing file
    except FileExistsError:
        return False
    except OSError:  # file systems without hard links: rename is the next best
        if path.exists():
            return False
        os.rename(tmp, path)
        return True
    tmp.unlink()
    return True


def write_new_file(
    directory: Path, stem: str, suffix: str, write: Callable[[BinaryIO], None]
) -> Path:
    """Writes a file under a new, unique name, atomically; never overwrites anything.

    Published files get the permissions of any new file, ``0666 & ~umask``, so a colleague
    or a DAW running as another user can read them when the umask allows it. (The engine's
    own files written by ``atomic_write_bytes`` stay private, ``0600``.) The temporary file
    is named ``.<stem>.<random><suffix>.tmp``; ``remove_stale_temp_files`` removes those a
    killed engine left behind.

    Args:
        directory: Existing, writable folder.
        stem: Name without suffix; ``-2``, ``-3``... is appended when it is taken.
        suffix: e.g. ``".wav"``.
        write: Writes the content into the open (temporary) file.

    Returns:
        The path of the new file.

    Raises:
        OutputError: when the folder is missing or not writable.
    """
    if not directory.is_dir():
        raise OutputError(f"output folder does not exist: {directory}")
    try:
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{stem}.", suffix=f"{suffix}.tmp")
    except OSError as e:
        raise OutputError(f"cannot write into {directory}: {e.strerror}") from e
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, 0o666 & ~_current_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
        for n in range(1, 10_000):
            path = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
            if _publish_new(tmp, path):
                return path
        raise OutputError(f"no free file name for {stem} in {directory}")
    except OSError as e:
        raise OutputError(f"cannot write {stem}{suffix} into {directory}: {e}") from e
    finally:
        tmp.unlink(missing_ok=True)


def write_audio_atomic(
    directory: Path, stem: str, audio: np.ndarray, sample_rate: int, float_output: bool
) -> Path:
    """Writes a WAV file under a new, unique name; never overwrites anything.

    Args:
        directory: Existing, writable folder.
        stem: Name without extension; ``-2``, ``-3``... is appended when it is taken.
        audio: ``float32 (channels, samples)``.
        sample_rate: Rate to write.
        float_output: 32-bit float WAV when true, else 24-bit PCM.

    Returns:
        The path of the new file.

    Raises:
        OutputError: when the folder is missing or not writable.
    """
    subtype = "FLOAT" if float_output else "PCM_24"

    def wav(f: BinaryIO) -> None:
        soundfile.write(f, audio.T, sample_rate, subtype=subtype, format="WAV")

    return write_new_file(directory, stem, ".wav", wav)
