"""The ten nonverbal sounds: length, placement, kind of sound, own voice, untouched rest."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import parselmouth
import pytest
import soundfile
from scipy import signal

from engine.audio import integrated_loudness, to_mono
from engine.backends.base import Rendered
from engine.backends.cpu import CpuBackend
from engine.backends.cpu.nonverbal import SOUNDS, render_paralinguistic
from engine.dsp import frame_rms_db
from engine.edits import PARALINGUISTIC_TAGS, EditSpec
from engine.errors import EditError
from engine.evaluation.harness import Clip, find_clips

MALE, FEMALE = "en_stepaudio_happy.wav", "en_librispeech_1995-1837-0001.wav"
FADE_S = 0.010
# Tags made of breath noise, or of noise and voice; the rest are voiced.
NOISE = {"Breathing"}
MIXED = {"Sigh", "Laughter"}


def _nothing(_fraction: float, _stage: str) -> None:
    """Progress sink."""


@pytest.fixture(scope="module")
def clips(data_dir: Path) -> dict[str, Clip]:
    return {c.name: c for c in find_clips([data_dir / MALE, data_dir / FEMALE])}


def _insert(clip: Clip, tag: str, *positions: float) -> Rendered:
    return render_paralinguistic(
        clip.audio,
        clip.sample_rate,
        EditSpec("paralinguistic", tag, positions=positions),
        _nothing,
    )


@pytest.fixture(scope="module")
def rendered(clips: dict[str, Clip]) -> dict[str, tuple[Rendered, float]]:
    """Each tag inserted once into the male clip at 3.0 s, with its render time."""
    out = {}
    for tag in PARALINGUISTIC_TAGS:
        started = time.perf_counter()
        result = _insert(clips[MALE], tag, 3.0)
        out[tag] = (result, time.perf_counter() - started)
    return out


def _span(result: Rendered, index: int = 0) -> tuple[int, int]:
    """Output start and length (samples) of an insertion; earlier ones shifted it."""
    insertions = result.info["insertions"]
    before = sum(round(i["duration"] * result.sample_rate) for i in insertions[:index])
    insertion = insertions[index]
    start = round(insertion["position"] * result.sample_rate) + before
    return start, round(insertion["duration"] * result.sample_rate)


def _voicing(samples: np.ndarray, sample_rate: int) -> tuple[float, np.ndarray]:
    """Share of the sounding frames that are voiced, and the F0 of the voiced ones."""
    sound = parselmouth.Sound(samples.astype(np.float64), sampling_frequency=sample_rate)
    pitch = sound.to_pitch_ac(time_step=0.01, pitch_floor=50.0, pitch_ceiling=700.0)
    f0 = pitch.selected_array["frequency"]
    level = np.interp(
        pitch.xs(),
        np.arange(-(-len(samples) // round(0.01 * sample_rate))) * 0.01,
        frame_rms_db(samples, sample_rate, hop=0.01),
    )
    sounding = level > level.max() - 30
    return float(np.mean(f0[sounding] > 0)), f0[f0 > 0]


@pytest.mark.parametrize("tag", PARALINGUISTIC_TAGS)
def test_sound_is_inserted_and_everything_else_is_kept(
    clips: dict[str, Clip], rendered: dict[str, tuple[Rendered, float]], tag: str
) -> None:
    clip = clips[MALE]
    result, seconds = rendered[tag]
    start, length = _span(result)
    fade = round(FADE_S * clip.sample_rate)
    assert result.sample_rate == clip.sample_rate
    assert result.audio.shape == (clip.audio.shape[0], clip.audio.shape[1] + length)
    assert 0.2 * clip.sample_rate < length < 1.2 * clip.sample_rate
    # Before and after: the original samples, only shifted (10 ms fades at the cut).
    np.testing.assert_array_equal(result.audio[:, : start - fade], clip.audio[:, : start - fade])
    np.testing.assert_array_equal(
        result.audio[:, start + length + fade :], clip.audio[:, start + fade :]
    )
    rest = np.concatenate([result.audio[0, :start], result.audio[0, start + length :]])
    assert np.corrcoef(rest, clip.audio[0])[0, 1] > 0.999
    assert seconds / clip.duration < 0.5  # real-time factor


@pytest.mark.parametrize("tag", PARALINGUISTIC_TAGS)
def test_inserted_region_holds_the_right_kind_of_sound(
    clips: dict[str, Clip], rendered: dict[str, tuple[Rendered, float]], tag: str
) -> None:
    clip = clips[MALE]
    result, _ = rendered[tag]
    start, length = _span(result)
    region = to_mono(result.audio[:, start : start + length])
    voiced, f0 = _voicing(region, clip.sample_rate)
    if tag in NOISE:
        assert voiced < 0.2
    elif tag in MIXED:
        assert 0.2 <= voiced <= 0.85
    else:
        assert voiced >= 0.6
    if f0.size:
        # The speaker's own voice: within an octave-and-a-half of the speaker's median F0.
        speaker = np.median(_voicing(to_mono(clip.audio), clip.sample_rate)[1])
        assert abs(12 * np.log2(np.median(f0) / speaker)) < 9


def test_laughter_comes_in_bursts(rendered: dict[str, tuple[Rendered, float]]) -> None:
    result, _ = rendered["Laughter"]
    start, length = _span(result)
    level = frame_rms_db(to_mono(result.audio[:, start : start + length]), result.sample_rate)
    loud = level > level.max() - 12
    onsets = np.flatnonzero(loud[1:] & ~loud[:-1])
    assert len(onsets) + int(loud[0]) >= 3


@pytest.mark.parametrize(("tag", "rising"), [("Question-ei", True), ("Confirmation-en", False)])
def test_intonation_of_question_and_confirmation(
    clips: dict[str, Clip], rendered: dict[str, tuple[Rendered, float]], tag: str, rising: bool
) -> None:
    result, _ = rendered[tag]
    start, length = _span(result)
    _, f0 = _voicing(to_mono(result.audio[:, start : start + length]), result.sample_rate)
    third = max(1, len(f0) // 3)
    movement = 12 * np.log2(np.median(f0[-third:]) / np.median(f0[:third]))
    assert movement > 2.0 if rising else movement < -1.5


@pytest.mark.parametrize("tag", PARALINGUISTIC_TAGS)
def test_loudness_is_matched_to_the_speech_around(
    clips: dict[str, Clip], rendered: dict[str, tuple[Rendered, float]], tag: str
) -> None:
    clip = clips[MALE]
    result, _ = rendered[tag]
    start, length = _span(result)
    context = clip.audio[
        :, max(0, start - round(1.5 * clip.sample_rate)) : start + round(1.5 * clip.sample_rate)
    ]
    region = result.audio[:, start : start + length]
    relative = integrated_loudness(region, clip.sample_rate) - integrated_loudness(
        context, clip.sample_rate
    )
    assert relative == pytest.approx(SOUNDS[tag][1], abs=3.0)


def test_cut_lands_in_a_quiet_spot_near_the_request(clips: dict[str, Clip]) -> None:
    clip = clips[MALE]
    mono = to_mono(clip.audio)
    level = frame_rms_db(mono, clip.sample_rate, hop=0.005, window=0.03)
    loudest = float(np.argmax(level[200:1200]) + 200) * 0.005  # inside a word, 1-6 s
    result = _insert(clip, "Uhm", loudest)
    at = result.info["insertions"][0]["position"]
    assert abs(at - loudest) <= 0.4
    assert level[round(at / 0.005)] < level[round(loudest / 0.005)] - 10


def test_several_positions_in_one_edit(clips: dict[str, Clip]) -> None:
    clip = clips[FEMALE]
    result = _insert(clip, "Breathing", 6.0, 1.0)
    insertions = result.info["insertions"]
    assert [round(i["position"]) for i in insertions] == [1, 6]  # time order
    added = sum(round(i["duration"] * clip.sample_rate) for i in insertions)
    assert result.audio.shape[-1] == clip.audio.shape[-1] + added


def test_own_voice_follows_the_speaker(clips: dict[str, Clip]) -> None:
    """The same tag comes out near each speaker's own pitch (male ~118 Hz, female ~200 Hz)."""
    medians = []
    for name in (MALE, FEMALE):
        result = _insert(clips[name], "Uhm", 2.0)
        start, length = _span(result)
        _, f0 = _voicing(to_mono(result.audio[:, start : start + length]), result.sample_rate)
        speaker = np.median(_voicing(to_mono(clips[name].audio), result.sample_rate)[1])
        assert abs(12 * np.log2(np.median(f0) / speaker)) < 3
        medians.append(np.median(f0))
    assert medians[1] > 1.4 * medians[0]


def test_tags_from_target_text(clips: dict[str, Clip]) -> None:
    clip = clips[FEMALE]
    words = clip.transcript.split()
    half = len(" ".join(words[: len(words) // 2]))
    text = clip.transcript[:half] + " [Laughter]" + clip.transcript[half:] + " [sigh]"
    result = render_paralinguistic(
        clip.audio,
        clip.sample_rate,
        EditSpec("paralinguistic", text=clip.transcript, target_text=text),
        _nothing,
    )
    tags = [(i["tag"], i["position"]) for i in result.info["insertions"]]
    assert [t for t, _ in tags] == ["Laughter", "Sigh"]
    assert 0.3 * clip.duration < tags[0][1] < 0.7 * clip.duration
    assert tags[1][1] > 0.85 * clip.duration


def test_language_tags_are_not_sounds(clips: dict[str, Clip]) -> None:
    """[Cantonese]-style prefixes choose a model's language: skipped, never an error."""
    clip = clips[FEMALE]
    plain = clip.transcript + " [Laughter]"
    for text in (plain, "[Cantonese] " + plain, "[japanese]" + plain):
        edit = EditSpec("paralinguistic", text=clip.transcript, target_text=text)
        if text.startswith("[japanese]"):  # only the spellings the model knows
            with pytest.raises(EditError, match=r"unknown tag \[japanese\]"):
                render_paralinguistic(clip.audio, clip.sample_rate, edit, _nothing)
            continue
        result = render_paralinguistic(clip.audio, clip.sample_rate, edit, _nothing)
        assert [i["tag"] for i in result.info["insertions"]] == ["Laughter"]


def test_stereo_channels_are_kept_apart(data_dir: Path) -> None:
    jfk = find_clips([data_dir / "en_jfk_inaugural_1961.flac"])[0]
    audio = np.ascontiguousarray(jfk.audio[:, : 5 * jfk.sample_rate])
    result = render_paralinguistic(
        audio, jfk.sample_rate, EditSpec("paralinguistic", "Sigh", positions=(2.5,)), _nothing
    )
    start, length = _span(result)
    fade = round(FADE_S * jfk.sample_rate)
    assert result.audio.shape[0] == 2
    np.testing.assert_array_equal(result.audio[:, : start - fade], audio[:, : start - fade])
    np.testing.assert_array_equal(
        result.audio[:, start + length + fade :], audio[:, start + fade :]
    )


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (EditSpec("paralinguistic", target_text="no tags in here"), "needs 'position'"),
        (EditSpec("paralinguistic", "Uhm", positions=(99.0,)), "past the end"),
        (EditSpec("paralinguistic", target_text="so [Giggle] what"), "unknown tag"),
    ],
)
def test_unusable_requests_are_explained(
    clips: dict[str, Clip], edit: EditSpec, message: str
) -> None:
    clip = clips[MALE]
    with pytest.raises(EditError, match=message):
        render_paralinguistic(clip.audio, clip.sample_rate, edit, _nothing)


@pytest.mark.parametrize("positions", [(0.0,), (7.44,), (3.0, 3.0), (3.0, 3.005, 7.44, 0.0)])
def test_length_grows_by_exactly_the_sounds_at_edges_and_shared_spots(
    clips: dict[str, Clip], positions: tuple[float, ...]
) -> None:
    clip = clips[MALE]
    result = _insert(clip, "Confirmation-en", *positions)
    insertions = result.info["insertions"]
    assert len(insertions) == len(positions)
    added = sum(round(i["duration"] * clip.sample_rate) for i in insertions)
    assert result.audio.shape[-1] == clip.audio.shape[-1] + added


def test_trailing_tag_on_a_slice_cut_mid_speech(data_dir: Path) -> None:
    """A DAW slice often ends inside a word; a tag after the last word still fits."""
    samples, rate = soundfile.read(data_dir / "en_ljspeech_LJ050-0131.wav", dtype="float32")
    cut = samples[: int(3.505 * rate)][np.newaxis, :]
    backend = CpuBackend()
    backend.load()
    edit = EditSpec("paralinguistic", target_text="hello there [Laughter]")
    rendered = backend.render(cut, rate, edit, _nothing)
    assert rendered.audio.shape[-1] > cut.shape[-1]
    np.testing.assert_array_equal(rendered.audio[0, :rate], cut[0, :rate])


def _burst_onsets(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Seconds where the level rises into a burst (within 12 dB of the loudest frame)."""
    level = frame_rms_db(samples, sample_rate, hop=0.005)
    loud = level > level.max() - 12
    return (np.flatnonzero(loud[1:] & ~loud[:-1]) + 1) * 0.005


def test_two_laughs_differ_and_neither_is_evenly_spaced(clips: dict[str, Clip]) -> None:
    clip = clips[MALE]
    result = _insert(clip, "Laughter", 1.0, 5.0)
    laughs = []
    for index in range(2):
        start, length = _span(result, index)
        laughs.append(to_mono(result.audio[:, start : start + length]))
        intervals = np.diff(_burst_onsets(laughs[-1], clip.sample_rate))
        assert len(intervals) >= 2  # at least three bursts
        assert intervals.max() - intervals.min() >= 0.02, f"even spacing: {intervals}"
    shorter = min(len(laugh) for laugh in laughs)
    assert len(laughs[0]) != len(laughs[1]) or not np.array_equal(laughs[0], laughs[1])
    assert abs(np.corrcoef(laughs[0][:shorter], laughs[1][:shorter])[0, 1]) < 0.5
    # The same request renders the same samples again.
    np.testing.assert_array_equal(_insert(clip, "Laughter", 1.0, 5.0).audio, result.audio)


@pytest.mark.parametrize("tag", ["Breathing", "Uhm"])
def test_other_tags_vary_between_insertions(clips: dict[str, Clip], tag: str) -> None:
    result = _insert(clips[FEMALE], tag, 2.0, 2.0)
    first, second = (
        result.audio[0, start : start + length]
        for start, length in (_span(result, 0), _span(result, 1))
    )
    assert first.shape != second.shape or not np.array_equal(first, second)


@pytest.mark.parametrize("name", [MALE, FEMALE])
def test_laughter_has_no_spectral_hole(clips: dict[str, Clip], name: str) -> None:
    """The 5-6 kHz band is not under its neighbours (it was 7 dB under on the male voice)."""
    clip = clips[name]
    result = _insert(clip, "Laughter", 3.0)
    start, length = _span(result)
    freqs, power = signal.welch(to_mono(result.audio[:, start : start + length]), clip.sample_rate)

    def band(low: float, high: float) -> float:
        return float(10 * np.log10(power[(freqs >= low) & (freqs < high)].mean()))

    neighbours = (band(4000, 5000) + band(6000, 7000)) / 2
    assert band(5000, 6000) > neighbours - 3.0
