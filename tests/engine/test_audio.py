"""Reading slices, loudness, cross-fades and atomic writes."""

from __future__ import annotations

import math
import os
import socket
import stat
import time
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pytest
import soundfile

from engine import audio
from engine.errors import InputError, OutputError


def tone(rate: int, seconds: float, channels: int = 1, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    mono = (level * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return np.stack([mono * (1 - 0.2 * c) for c in range(channels)])


def write(
    path: Path, samples: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str | None = None
) -> Path:
    soundfile.write(path, samples.T, rate, subtype=subtype, format=fmt)
    return path


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000, 96000])
@pytest.mark.parametrize("channels", [1, 2])
def test_read_slice_is_exact(tmp_path: Path, rate: int, channels: int) -> None:
    ramp = np.tile(np.linspace(-0.5, 0.5, rate * 3, dtype=np.float32), (channels, 1))
    path = write(tmp_path / "ramp.wav", ramp, rate, "FLOAT")
    samples, info = audio.read_slice(path, start=1.0, length=0.5)
    assert samples.shape == (channels, rate // 2)
    assert samples.dtype == np.float32
    np.testing.assert_array_equal(samples, ramp[:, rate : rate + rate // 2])
    assert (info.sample_rate, info.channels, info.is_float) == (rate, channels, True)


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("WAV", "PCM_24", ".wav"),
        ("WAV", "PCM_U8", ".wav"),
        ("FLAC", "PCM_16", ".flac"),
        ("OGG", "VORBIS", ".ogg"),
        ("AIFF", "PCM_16", ".aiff"),
        ("MP3", "MPEG_LAYER_III", ".mp3"),
    ],
)
def test_reads_every_container(tmp_path: Path, fmt: str, subtype: str, suffix: str) -> None:
    path = write(tmp_path / f"tone{suffix}", tone(44100, 1.0, 2), 44100, subtype, fmt)
    samples, info = audio.read_slice(path)
    assert samples.shape[0] == 2 and abs(samples.shape[1] - 44100) < 2000  # mp3 adds padding
    assert not info.is_float


def test_read_slice_to_end_and_real_flac(data_dir: Path) -> None:
    samples, info = audio.read_slice(data_dir / "en_jfk_inaugural_1961.flac", start=10.0)
    assert info.channels == 2 and info.sample_rate == 44100
    assert samples.shape == (2, info.frames - 441000)


@pytest.mark.parametrize(
    ("start", "length", "code"),
    [
        (-1.0, None, "bad_slice"),
        (5.0, None, "bad_slice"),
        (0.0, 0.0, "bad_slice"),
        (0.5, 2.0, "bad_slice"),
        (math.nan, None, "bad_slice"),
        (0.0, -1.0, "bad_slice"),
    ],
)
def test_bad_slices(tmp_path: Path, start: float, length: float | None, code: str) -> None:
    path = write(tmp_path / "t.wav", tone(16000, 2.0), 16000)
    with pytest.raises(InputError) as e:
        audio.read_slice(path, start, length)
    assert e.value.code == code


def test_bad_inputs(tmp_path: Path) -> None:
    cases = {
        "input_not_found": tmp_path / "missing.wav",
        "input_not_audio": tmp_path,
        "bad_request": Path("relative.wav"),
    }
    (tmp_path / "notes.txt").write_text("not audio")
    cases_extra = {"input_not_audio": tmp_path / "notes.txt"}
    for code, path in [*cases.items(), *cases_extra.items()]:
        with pytest.raises(InputError) as e:
            audio.read_slice(path)
        assert e.value.code == code, path


def test_truncated_wav(tmp_path: Path) -> None:
    full = write(tmp_path / "full.wav", tone(16000, 2.0), 16000)
    data = full.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # header still claims 2 s
    with pytest.raises(InputError) as e:
        audio.read_slice(cut)
    assert e.value.code == "input_corrupt"


def test_silent_nan_and_too_long(tmp_path: Path) -> None:
    silent = write(tmp_path / "silent.wav", np.zeros((1, 16000), np.float32), 16000, "FLOAT")
    nan = tone(16000, 1.0)
    nan[0, 100] = np.nan
    nan_path = write(tmp_path / "nan.wav", nan, 16000, "FLOAT")
    long_path = write(tmp_path / "long.wav", tone(8000, 5.0), 8000)
    for path, code, max_seconds in [
        (silent, "silent_input", 600.0),
        (nan_path, "non_finite", 600.0),
        (long_path, "too_long", 4.0),
    ]:
        with pytest.raises(InputError) as e:
            audio.read_slice(path, max_seconds=max_seconds)
        assert e.value.code == code


@pytest.mark.parametrize(("rate_in", "rate_out"), [(48000, 24000), (16000, 44100), (22050, 22050)])
def test_resample_keeps_frequency_and_length(rate_in: int, rate_out: int) -> None:
    out = audio.resample(tone(rate_in, 1.0, 2), rate_in, rate_out)
    assert out.shape == (2, rate_out)
    spectrum = np.abs(np.fft.rfft(out[0]))
    assert abs(np.argmax(spectrum) * rate_out / out.shape[1] - 220) < 2


def test_match_loudness_and_peak_ceiling() -> None:
    quiet = tone(48000, 2.0, level=0.01)
    target = audio.integrated_loudness(tone(48000, 2.0, level=0.2), 48000)
    matched = audio.match_loudness(quiet, 48000, target)
    assert abs(audio.integrated_loudness(matched, 48000) - target) < 0.1
    loud = audio.match_loudness(quiet, 48000, target + 30)  # would clip: held at the ceiling
    assert np.max(np.abs(loud)) <= 10 ** (audio.PEAK_CEILING_DBFS / 20) + 1e-6


@pytest.mark.parametrize(
    ("peak", "ceiling"),
    [(0.05, audio.PEAK_CEILING_DBFS), (0.97, 20 * math.log10(0.97)), (1.6, 0.0), (0.0, -1.0)],
)
def test_peak_ceiling_is_the_sources_own_peak_where_higher(peak: float, ceiling: float) -> None:
    source = tone(16000, 0.5, level=peak)
    if peak:
        source[0, 100] = peak  # the exact peak
    assert audio.peak_ceiling_db(source) == pytest.approx(ceiling, abs=1e-4)


def test_fit_loudness_limits_peaks_to_reach_a_louder_target(data_dir: Path) -> None:
    """A take that already peaks at 0 dBFS, 3 dB louder: scaling alone stops at the ceiling
    (1 dB quieter than the take), the smooth limiter gets there."""
    samples, rate = soundfile.read(data_dir / "en_stepaudio_happy.wav", dtype="float32")
    take = samples[np.newaxis, :]
    target = audio.integrated_loudness(take, rate) + 3.0
    scaled = audio.match_loudness(take, rate, target)
    fitted = audio.fit_loudness(take, rate, target)
    assert audio.integrated_loudness(scaled, rate) < target - 3.5
    assert audio.integrated_loudness(fitted, rate) == pytest.approx(target, abs=0.2)
    assert np.max(np.abs(fitted)) <= 10 ** (audio.PEAK_CEILING_DBFS / 20) + 1e-6


def test_short_clip_loudness_is_finite() -> None:
    assert math.isfinite(audio.integrated_loudness(tone(16000, 0.1), 16000))
    assert audio.integrated_loudness(np.zeros((1, 100), np.float32), 16000) == -math.inf


def test_crossfade_concat_is_smooth_and_shorter() -> None:
    a = np.ones((2, 1000), np.float32)
    b = np.ones((2, 500), np.float32)
    out = audio.crossfade_concat([a, b], 100)
    assert out.shape == (2, 1400)
    assert np.max(np.abs(np.diff(out[0]))) < 0.05  # equal-power fade on a constant: no step


def test_fit_channels() -> None:
    mono = tone(8000, 0.1)
    assert audio.fit_channels(mono, 2).shape == (2, 800)
    assert audio.fit_channels(tone(8000, 0.1, 2), 1).shape == (1, 800)


def test_to_mono_averages_the_channels_of_a_take() -> None:
    take = tone(8000, 0.1, 2)
    assert np.allclose(audio.to_mono(take), take.mean(axis=0))


def test_to_mono_keeps_a_channel_recorded_in_inverted_polarity() -> None:
    take = tone(8000, 0.1, 2)
    take[1] *= -1  # a plain average would leave a tenth of the level
    assert np.allclose(audio.to_mono(take), (take[0] - take[1]) / 2)


def test_write_never_overwrites(tmp_path: Path) -> None:
    samples = tone(24000, 0.5, 2)
    first = audio.write_audio_atomic(tmp_path, "take", samples, 24000, float_output=False)
    second = audio.write_audio_atomic(tmp_path, "take", samples, 24000, float_output=True)
    assert (first.name, second.name) == ("take.wav", "take-2.wav")
    assert soundfile.info(first).subtype == "PCM_24"
    assert soundfile.info(second).subtype == "FLOAT"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take-2.wav", "take.wav"]  # no temp left


def test_write_errors(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        audio.write_audio_atomic(tmp_path / "nope", "x", tone(8000, 0.1), 8000, False)
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputError):
            audio.write_audio_atomic(locked, "x", tone(8000, 0.1), 8000, False)


def test_atomic_write_bytes_replaces(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    audio.atomic_write_bytes(path, b"one")
    audio.atomic_write_bytes(path, b"two")
    assert path.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]


def test_fifo_socket_and_device_inputs_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it for reading would block forever
    sock_path = tmp_path / "s.wav"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(sock_path))
        for path, kind in [(fifo, "FIFO"), (sock_path, "socket"), (Path("/dev/zero"), "device")]:
            for check in (audio.check_input_file, audio.read_slice):
                with pytest.raises(InputError, match=kind) as e:
                    check(path)
                assert e.value.code == "input_not_audio"


def test_absurd_channel_counts_and_rates_are_corrupt(tmp_path: Path) -> None:
    wide = write(tmp_path / "wide.wav", np.full((65, 100), 0.1, np.float32), 8000)
    with pytest.raises(InputError, match="65 channels") as e:
        audio.read_slice(wide)
    assert e.value.code == "input_corrupt"


def test_cost_counts_samples_channels_and_rate(tmp_path: Path) -> None:
    # 2 s at 384 kHz x 5 channels: 3.84 M samples, like the 88 KB FLAC but shorter.
    fast = write(tmp_path / "fast.flac", tone(384000, 2.0, 5), 384000, fmt="FLAC")
    with pytest.raises(InputError, match="samples") as e:
        audio.read_slice(fast, max_seconds=9.0)  # under 9 s, but over 9 s x 48 kHz x 8
    assert e.value.code == "too_long"
    with pytest.raises(InputError) as e:
        audio.read_slice(fast, max_samples=1_000_000)
    assert e.value.code == "too_long"
    samples, _ = audio.read_slice(fast, start=1.0, length=0.1, max_seconds=9.0)
    assert samples.shape == (5, 38400)


@pytest.mark.parametrize("channels", [6, 8])
def test_surround_loudness_from_a_real_clip(tmp_path: Path, data_dir: Path, channels: int) -> None:
    speech, rate = soundfile.read(data_dir / "en_ljspeech_LJ001-0001.wav", dtype="float32")
    layout = np.stack([speech * (0.9 - 0.1 * c) for c in range(channels)])
    layout[3] = 0.0  # LFE
    path = write(tmp_path / f"surround{channels}.wav", layout, rate, "FLOAT")
    samples, info = audio.read_slice(path)
    assert info.channels == channels
    loudness = audio.integrated_loudness(samples, rate)
    assert math.isfinite(loudness)
    bed = audio.integrated_loudness(samples[[0, 1, 2, 4, 5]], rate)
    assert loudness == pytest.approx(bed)
    matched = audio.match_loudness(samples, rate, loudness - 6)
    assert matched.shape == samples.shape
    assert audio.integrated_loudness(matched, rate) == pytest.approx(loudness - 6, abs=0.1)


@pytest.mark.parametrize(
    ("fmt", "subtype", "suffix"),
    [
        ("AIFF", "PCM_16", ".aiff"),
        ("OGG", "VORBIS", ".ogg"),
        ("FLAC", "PCM_16", ".flac"),
        ("MP3", "MPEG_LAYER_III", ".mp3"),
        ("WAV", "PCM_16", ".wav"),
    ],
)
@pytest.mark.parametrize("kept", [0.25, 0.5, 0.9])
def test_truncated_files_are_corrupt(
    tmp_path: Path, fmt: str, subtype: str, suffix: str, kept: float
) -> None:
    full = write(tmp_path / f"full{suffix}", tone(44100, 3.0, 2), 44100, subtype, fmt)
    audio.read_slice(full)  # whole: fine
    data = full.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: int(len(data) * kept)])
    with pytest.raises(InputError) as e:
        audio.read_slice(cut)
    assert e.value.code == "input_corrupt"


def _write_x(f: BinaryIO) -> None:
    f.write(b"x")


def test_published_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = audio.write_audio_atomic(tmp_path, "take", tone(8000, 0.1), 8000, False)
        os.umask(0o002)
        other = audio.write_new_file(tmp_path, "notes", ".txt", _write_x)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert stat.S_IMODE(other.stat().st_mode) == 0o664


def test_remove_stale_temp_files(tmp_path: Path) -> None:
    stale = tmp_path / ".take.k2j4_x9q.wav.tmp"
    fresh = tmp_path / ".take.abcdefgh.wav.tmp"
    others = [tmp_path / n for n in ("take.wav", ".take.wav.tmp", "x.k2j4_x9q.wav.tmp")]
    for path in [stale, fresh, *others]:
        path.write_bytes(b"x")
    an_hour_ago = time.time() - 3600
    for path in [stale, *others]:
        os.utime(path, (an_hour_ago, an_hour_ago))
    assert audio.remove_stale_temp_files(tmp_path) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in [fresh, *others])
    assert audio.remove_stale_temp_files(tmp_path / "missing") == []


def test_remove_stale_temp_files_matches_what_the_writer_leaves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def killed(src: Path, dst: Path) -> None:
        raise KeyboardInterrupt  # as if killed between writing and publishing

    monkeypatch.setattr(os, "link", killed)
    monkeypatch.setattr(Path, "unlink", lambda self, missing_ok=False: None)
    with pytest.raises(KeyboardInterrupt):
        audio.write_audio_atomic(tmp_path, "take", tone(8000, 0.1), 8000, False)
    monkeypatch.undo()
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".take.") and left.name.endswith(".wav.tmp")
    os.utime(left, (0, 0))
    assert audio.remove_stale_temp_files(tmp_path) == [left]
