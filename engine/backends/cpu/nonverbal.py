"""The ten nonverbal sounds, synthesised with WORLD from the speaker's own clip, and inserted.

No stock recordings: every sound is built from the clip's analysis. The speaker's voiced
frames are sorted by their first two formants (Praat Burg, Lobanov-normalised per speaker)
and the envelopes of the frames nearest each vowel target are averaged, giving that
speaker's own /a/, /o/, /u/, /e/, /i/ and schwa; the voiced frames with the least energy
above 1 kHz give a nasal murmur. Breath is aspiration noise (WORLD with F0 = 0) through
the speaker's schwa envelope with a flatter source, as an /h/ is (spec §4: "breath =
aperiodic excitation through the envelope with a rise-fall; sigh = breath plus a voiced
tail falling ~5 st; uhm = schwa/nasal, F0 held low and flat").

Each sound is a short score of segments (envelope, F0 in semitones from the speaker's
median, breathiness, level); it is rendered with WORLD, its loudness set relative to the
speech around the insertion point, and spliced in at the quietest moment near the requested
time, at a zero crossing, with 10 ms cross-fades.
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass, replace

import numpy as np
import parselmouth
import pyworld

from engine.audio import crossfade_concat, integrated_loudness, match_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis, analyse
from engine.dsp import broaden_envelope, low_energy_point, smooth, zero_crossing_near
from engine.edits import LANGUAGE_TAGS, PARALINGUISTIC_TAGS, EditSpec, paralinguistic_tag
from engine.errors import EditError

__all__ = [
    "SOUNDS",
    "Insertion",
    "Segment",
    "VoiceSample",
    "insert_tags",
    "render_paralinguistic",
    "synthesise",
]

_LOG = logging.getLogger(__name__)

# Analysis/synthesis rate for the sounds (they are resampled to the clip's rate).
_RATE_CAP = 32000
# Half-width (s) of the search for a quiet insertion point, cross-fade length (s).
_SEARCH_S, _FADE_S = 0.4, 0.010
# Formant broadening of breath noise (Hz, standard deviation across frequency).
_BREATH_BANDWIDTH_HZ = 120.0
# Above this frequency (Hz) every sound takes the voice's average envelope (see
# ``_voice_high_band``); below it the vowels keep their own formants (F1-F3).
_HIGH_BAND_HZ = 3500.0
# At most this many voiced frames are analysed for the speaker's envelopes.
_MAX_FRAMES = 600
# Micro-variation that keeps the synthetic voice from sounding machine-flat: F0 jitter
# (relative, smoothed over 15 ms), shimmer (dB) and a little extra breath.
_JITTER, _SHIMMER_DB, _BASE_BREATH = 0.006, 0.5, 0.04
# Longest laugh bout drawn (s); the fixed template lasts 0.88 s.
_MAX_LAUGH_S = 1.1
# Seconds of speech on each side whose loudness the inserted sound is matched against.
_CONTEXT_S = 1.5
# Vowel targets as Lobanov z-scores of (F1, F2): typical normalised positions of English
# vowels (open /a/ high F1; back rounded /o/, /u/ low F2; front /e/, /i/ high F2).
_VOWEL_TARGETS = {
    "a": (1.5, 0.0),
    "o": (0.3, -1.3),
    "u": (-1.2, -1.5),
    "e": (0.0, 1.2),
    "i": (-1.2, 1.6),
    "schwa": (0.0, 0.0),
}


@dataclass(frozen=True)
class Segment:
    """One stretch of a nonverbal sound; values glide linearly from start to end.

    Attributes:
        seconds: Length.
        envelope: Envelope name at the start (a vowel, ``"nasal"`` or ``"breath"``).
        to: Envelope name at the end (``""`` = same as ``envelope``).
        f0: ``(start, end)`` semitones relative to the speaker's median; ``None`` = breath
            noise (unvoiced).
        breathiness: Aperiodicity added to the voiced frames.
        level: ``(start, end)`` level in dB relative to the sound's peak.
    """

    seconds: float
    envelope: str
    to: str = ""
    f0: tuple[float, float] | None = (0.0, 0.0)
    breathiness: float = 0.0
    level: tuple[float, float] = (0.0, 0.0)


def _laughter(rng: np.random.Generator | None = None) -> tuple[Segment, ...]:
    """A laugh bout: breathy /h/-vowel bursts with falling pitch and intensity.

    With ``rng`` every bout is drawn anew, within the ranges measured on human laughter
    (Bachorowski, Smoski & Owren 2001: 3-5 calls of about 0.1 s at 4-5 calls per second,
    F0 well above speech and falling over the bout, intervals growing towards its end):
    burst count, call and gap lengths, starting pitch, pitch and level decay per burst and
    the vowel. Without it the bout is the fixed template (4 bursts).
    """
    if rng is None:
        count, top, pitch_decay, level_decay, vowel = 4, 5.0, 0.8, 1.0, "a"
    else:
        count = int(rng.integers(3, 6))
        top = rng.uniform(3.5, 7.0)
        pitch_decay = rng.uniform(0.4, 1.3)
        level_decay = rng.uniform(0.8, 3.0)
        vowel = str(rng.choice(["a", "a", "e", "schwa"]))
    bursts: list[Segment] = []
    for i in range(count):
        # Per-burst jitter: laughter calls are never evenly spaced (drawn only with rng).
        jitter = rng.uniform(-1.0, 1.0, 4) if rng is not None else np.zeros(4)
        onset = 0.06 * (1 + 0.3 * jitter[0])
        call = 0.10 * (1 + 0.25 * jitter[1]) * (1 + 0.06 * i)
        gap = 0.06 * (1 + 0.4 * jitter[2]) * (1 + 0.15 * i)
        pitch = top - pitch_decay * i + 0.4 * jitter[3]
        fall = 1.5 if rng is None else rng.uniform(0.8, 2.5)
        drop = level_decay * i
        bursts += [
            Segment(onset, "breath", vowel, None, level=(-14.0, -6.0 - drop)),
            Segment(
                call,
                vowel,
                f0=(pitch, pitch - fall),
                breathiness=0.3,
                level=(-2.0 - drop, -8.0 - drop),
            ),
            Segment(gap, vowel, "breath", None, level=(-18.0, -34.0)),
        ]
    total = sum(seg.seconds for seg in bursts)
    if total > _MAX_LAUGH_S:  # a long draw is compressed, keeping its rhythm
        bursts = [replace(seg, seconds=seg.seconds * _MAX_LAUGH_S / total) for seg in bursts]
    return tuple(bursts)


def _varied(score: tuple[Segment, ...], rng: np.random.Generator) -> tuple[Segment, ...]:
    """The template ``score`` as one person says it once: overall tempo +-15 %, each
    segment +-8 %, pitch +-1.5 st overall and +-0.7 st per contour end, levels +-1.5 dB."""
    tempo = rng.uniform(0.85, 1.15)
    shift = rng.uniform(-1.5, 1.5)
    out = []
    for seg in score:
        f0 = seg.f0
        if f0 is not None:
            f0 = (f0[0] + shift, f0[1] + shift + rng.uniform(-0.7, 0.7))
        level = (seg.level[0] + rng.uniform(-1.5, 1.5), seg.level[1] + rng.uniform(-1.5, 1.5))
        seconds = seg.seconds * tempo * rng.uniform(0.92, 1.08)
        out.append(Segment(seconds, seg.envelope, seg.to, f0, seg.breathiness, level))
    return tuple(out)


def _score(tag: str, rng: np.random.Generator) -> tuple[Segment, ...]:
    """A fresh rendition of ``tag``'s score, drawn from ``rng``."""
    if tag == "Laughter":
        return _laughter(rng)
    return _varied(SOUNDS[tag][0], rng)


# The template scores of the ten tags (each insertion varies its own, see ``_score``), and
# their loudness relative to the surrounding speech (dB).
SOUNDS: dict[str, tuple[tuple[Segment, ...], float]] = {
    "Breathing": (
        (
            Segment(0.30, "breath", f0=None, level=(-30.0, 0.0)),
            Segment(0.25, "breath", f0=None, level=(0.0, -30.0)),
        ),
        -18.0,
    ),
    "Sigh": (
        (
            Segment(0.30, "breath", "a", None, level=(-25.0, 0.0)),
            Segment(0.40, "a", "schwa", (2.0, -3.0), breathiness=0.45, level=(-3.0, -25.0)),
        ),
        -10.0,
    ),
    "Laughter": (_laughter(), -3.0),
    "Uhm": (
        (
            Segment(0.04, "schwa", f0=(0.0, 0.0), level=(-20.0, 0.0)),
            Segment(0.20, "schwa", f0=(0.0, -0.5)),
            Segment(0.06, "schwa", "nasal", (-0.5, -1.0)),
            Segment(0.25, "nasal", f0=(-1.0, -2.0), level=(0.0, -20.0)),
        ),
        -4.0,
    ),
    "Surprise-oh": (
        (
            Segment(0.04, "o", f0=None, level=(-20.0, -8.0)),
            Segment(0.14, "o", f0=(2.0, 7.0), breathiness=0.1, level=(-4.0, 0.0)),
            Segment(0.22, "o", "u", (7.0, 3.0), level=(0.0, -18.0)),
        ),
        0.0,
    ),
    "Surprise-ah": (
        (
            Segment(0.12, "a", f0=(3.0, 7.0), level=(-10.0, 0.0)),
            Segment(0.25, "a", f0=(7.0, 2.0), breathiness=0.1, level=(0.0, -18.0)),
        ),
        0.0,
    ),
    "Surprise-wa": (
        (
            Segment(0.07, "u", f0=(1.0, 2.0), level=(-16.0, -6.0)),
            Segment(0.08, "u", "a", (2.0, 5.0), level=(-6.0, 0.0)),
            Segment(0.25, "a", f0=(6.0, 2.0), level=(0.0, -18.0)),
        ),
        0.0,
    ),
    "Confirmation-en": (
        (
            Segment(0.06, "schwa", "nasal", (1.0, 0.5), level=(-14.0, 0.0)),
            Segment(0.24, "nasal", f0=(0.5, -3.0), level=(0.0, -18.0)),
        ),
        -4.0,
    ),
    "Question-ei": (
        (
            Segment(0.15, "e", f0=(0.0, 1.5), level=(-12.0, 0.0)),
            Segment(0.18, "e", "i", (1.5, 6.0), level=(0.0, -12.0)),
        ),
        -2.0,
    ),
    "Dissatisfaction-hnn": (
        (
            Segment(0.08, "breath", "nasal", None, level=(-20.0, -6.0)),
            Segment(0.32, "nasal", f0=(-1.0, -4.0), breathiness=0.2, level=(0.0, -16.0)),
        ),
        -4.0,
    ),
}


@dataclass(frozen=True)
class VoiceSample:
    """The speaker's own material for nonverbal sounds.

    Attributes:
        sample_rate: Rate of the envelopes (Hz).
        median_f0: The speaker's median F0 (Hz).
        envelopes: WORLD spectral envelopes by name (vowels, ``"nasal"``, ``"breath"``).
        aperiodicity: Median WORLD aperiodicity of the speaker's vowels.
    """

    sample_rate: int
    median_f0: float
    envelopes: dict[str, np.ndarray]
    aperiodicity: np.ndarray

    @classmethod
    def from_analysis(cls, analysis: Analysis) -> VoiceSample:
        """Collects vowel, nasal and breath envelopes from an analysed clip.

        Raises:
            EditError: when the clip has too little voiced speech (under 0.2 s) to learn from.
        """
        strong = analysis.voiced & (analysis.level_db > np.percentile(analysis.level_db, 95) - 25)
        frames = np.flatnonzero(strong)
        if frames.size < round(0.2 / FRAME_PERIOD):
            raise EditError(
                "the clip holds too little voiced speech (< 0.2 s) to synthesise a nonverbal "
                "sound in its voice; select a longer stretch of speech"
            )
        frames = frames[:: max(1, frames.size // _MAX_FRAMES)]
        sp, ap = analysis.envelope_at(frames)
        envelopes = _vowel_envelopes(analysis, sp, frames)
        envelopes["nasal"] = _nasal_envelope(sp, analysis.sample_rate)
        voice = _power_mean(sp)
        envelopes = {
            name: _voice_high_band(env, voice, analysis.sample_rate)
            for name, env in envelopes.items()
        }
        envelopes["breath"] = _breath_envelope(envelopes["schwa"], analysis.sample_rate)
        median = analysis.median_f0 or 150.0
        return cls(analysis.sample_rate, median, envelopes, np.median(ap, axis=0))


def _power_mean(sp: np.ndarray) -> np.ndarray:
    """Average of power envelopes (one row per frame): the long-term spectrum of the frames.

    Averaging in the log domain (a geometric mean) instead is dominated by each frame's
    dips: it measured 15-20 dB darker above 3 kHz than the frames' own average and, on the
    male test voice, left a 5-6 kHz hole 7 dB under its neighbours in the laughter.
    """
    return np.mean(sp, axis=0)


def _voice_high_band(envelope: np.ndarray, voice: np.ndarray, sample_rate: int) -> np.ndarray:
    """``envelope`` below ``_HIGH_BAND_HZ``, the speaker's average voiced envelope ``voice``
    (at the same level) above it, blended over 1 kHz.

    The few frames averaged for one vowel (3 % of the voiced frames) still carry their own
    dips above the formants that tell vowels apart; all voiced frames together give the
    voice's own high band. Measured on the 18 clips of ``shared/audio``: the laughter's
    5-6 kHz band lay up to 11 dB under the mean of 4-5 and 6-7 kHz with the vowel frames
    alone, at most 4.1 dB with this (the speech itself: up to 2.8 dB).
    """
    freqs = np.linspace(0, sample_rate / 2, len(envelope))
    low, high = _HIGH_BAND_HZ - 500, _HIGH_BAND_HZ + 500
    near = (freqs >= low) & (freqs <= high)
    own, shared = np.log(np.maximum(envelope, 1e-16)), np.log(np.maximum(voice, 1e-16))
    offset = float(np.mean(own[near] - shared[near])) if near.any() else 0.0
    weight = np.clip((high - freqs) / (high - low), 0.0, 1.0)
    return np.exp(weight * own + (1 - weight) * (shared + offset))


def _vowel_envelopes(
    analysis: Analysis, sp: np.ndarray, frames: np.ndarray
) -> dict[str, np.ndarray]:
    """Averages the envelopes (``sp``, one row per frame) of the frames nearest each vowel's
    (F1, F2) target."""
    sound = parselmouth.Sound(analysis.signal, sampling_frequency=analysis.sample_rate)
    ceiling = 5000.0 if analysis.median_f0 < 160 else 5500.0
    formant = sound.to_formant_burg(
        time_step=FRAME_PERIOD * 2, max_number_of_formants=5, maximum_formant=ceiling
    )
    f1 = np.array([formant.get_value_at_time(1, t) for t in analysis.times[frames]])
    f2 = np.array([formant.get_value_at_time(2, t) for t in analysis.times[frames]])
    usable = np.isfinite(f1) & np.isfinite(f2)
    if usable.sum() < 10:
        schwa = _power_mean(sp)
        return {name: schwa for name in _VOWEL_TARGETS}
    sp, f1, f2 = sp[usable], f1[usable], f2[usable]
    z = np.stack([(f1 - f1.mean()) / f1.std(), (f2 - f2.mean()) / f2.std()], axis=1)
    count = max(5, round(0.03 * len(sp)))
    envelopes = {}
    for name, target in _VOWEL_TARGETS.items():
        nearest = np.argsort(np.sum((z - np.array(target)) ** 2, axis=1))[:count]
        envelopes[name] = _power_mean(sp[nearest])
    return envelopes


def _band_power(sp: np.ndarray, sample_rate: int, low: float, high: float) -> np.ndarray:
    freqs = np.linspace(0, sample_rate / 2, sp.shape[-1])
    band = (freqs >= low) & (freqs < high)
    return sp[..., band].sum(axis=-1)


def _nasal_envelope(sp: np.ndarray, sample_rate: int) -> np.ndarray:
    """The speaker's murmur: voiced frames with the least energy above 1 kHz vs below 500 Hz."""
    ratio = _band_power(sp, sample_rate, 1000, 5000) / np.maximum(
        _band_power(sp, sample_rate, 60, 500), 1e-20
    )
    count = max(5, round(0.05 * len(sp)))
    return _power_mean(sp[np.argsort(ratio)[:count]])


def _breath_envelope(schwa: np.ndarray, sample_rate: int) -> np.ndarray:
    """Aspiration through the schwa tract: source 6 dB/oct flatter above 500 Hz, no hum,
    formants broadened (an open glottis damps them)."""
    freqs = np.linspace(0, sample_rate / 2, len(schwa))
    octaves = np.log2(np.clip(freqs, 500.0, 6000.0) / 500.0)
    highpass = np.clip(freqs / 300.0, 0.05, 1.0) ** 2
    broad = broaden_envelope(schwa, sample_rate, _BREATH_BANDWIDTH_HZ)
    return broad * 10 ** (6.0 * octaves / 10) * highpass


def synthesise(tag: str, voice: VoiceSample, f0_scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """Renders one nonverbal sound in the speaker's voice (mono, ``voice.sample_rate``).

    Args:
        tag: One of ``PARALINGUISTIC_TAGS``.
        voice: The speaker's material.
        f0_scale: Multiplies the F0 (to follow an edit that moved the voice's pitch).
        seed: Draws this rendition (timing, pitch and level contours; for laughter the
            burst count and spacing) and its jitter and shimmer: the same seed gives the
            same samples, another seed another rendition.

    Returns:
        ``float32`` samples that start and end at silence, peak-normalised to 0.5.
    """
    rng = np.random.default_rng(seed)
    score = _score(tag, rng)
    f0_parts, sp_parts, ap_parts, gain_parts = [], [], [], []
    median = voice.median_f0 * f0_scale
    for seg in score:
        n = max(2, round(seg.seconds / FRAME_PERIOD))
        w = np.linspace(0.0, 1.0, n)[:, np.newaxis]
        start = np.log(np.maximum(voice.envelopes[seg.envelope], 1e-16))
        end = np.log(np.maximum(voice.envelopes[seg.to or seg.envelope], 1e-16))
        sp_parts.append(np.exp(start * (1 - w) + end * w))
        if seg.f0 is None:
            f0_parts.append(np.zeros(n))
            ap_parts.append(np.ones((n, len(voice.aperiodicity))))
        else:
            f0_parts.append(median * 2 ** (np.linspace(*seg.f0, n) / 12))
            breath = voice.aperiodicity + _BASE_BREATH + seg.breathiness
            ap_parts.append(np.clip(np.tile(breath, (n, 1)), 0, 1))
        gain_parts.append(np.linspace(*seg.level, n))
    f0 = np.concatenate(f0_parts)
    f0 *= 1 + _JITTER * smooth(rng.standard_normal(len(f0)), 3) * np.sqrt(3)
    gain = np.concatenate(gain_parts) + _SHIMMER_DB * smooth(rng.standard_normal(len(f0)), 3)
    sp = np.concatenate(sp_parts) * 10 ** (gain[:, np.newaxis] / 10)
    y = pyworld.synthesize(
        np.ascontiguousarray(f0),
        np.ascontiguousarray(sp),
        np.ascontiguousarray(np.concatenate(ap_parts)),
        voice.sample_rate,
        FRAME_PERIOD * 1000,
    )
    edge = min(len(y) // 4, round(0.01 * voice.sample_rate))
    ramp = np.sin(np.linspace(0, np.pi / 2, edge)) ** 2
    y[:edge] *= ramp
    y[len(y) - edge :] *= ramp[::-1]
    peak = float(np.max(np.abs(y))) or 1.0
    return (0.5 * y / peak).astype(np.float32)


@dataclass(frozen=True)
class Insertion:
    """Where a sound went.

    Attributes:
        tag: The sound.
        at: Chosen (quiet) time in the input (s).
        start: First sample of the sound in the output.
        length: Its length in samples (the output grows by this much).
    """

    tag: str
    at: float
    start: int
    length: int


def insert_tags(
    audio: np.ndarray,
    sample_rate: int,
    voice: VoiceSample,
    requests: list[tuple[str, float]],
    f0_scale: float = 1.0,
) -> tuple[np.ndarray, list[Insertion]]:
    """Inserts each ``(tag, seconds)`` into ``(channels, samples)`` audio.

    Each sound goes to the quietest moment within 0.4 s of its requested time.
    The cut is moved to the nearest zero crossing; the sound is matched to the loudness of
    the 1.5 s of speech on each side plus the tag's relative level and joined with 10 ms
    cross-fades. Everything else is the input, shifted.

    Returns:
        The longer audio and one :class:`Insertion` per request, in time order.
    """
    mono = to_mono(audio)
    fade = round(_FADE_S * sample_rate)
    placed = []
    for tag, seconds in requests:
        at = low_energy_point(mono, sample_rate, seconds, _SEARCH_S)
        cut = zero_crossing_near(mono, round(at * sample_rate), round(0.002 * sample_rate))
        placed.append((cut, tag))
    placed.sort()
    # Keep every stretch of the input between cuts either empty or longer than a fade, so
    # each join overlaps exactly ``fade`` samples and the length grows by the sounds alone.
    total, snapped, previous = audio.shape[-1], [], 0
    for cut, tag in placed:
        if cut < fade or cut - previous < fade:
            cut = previous
        if total - cut < fade:
            cut = total
        snapped.append((cut, tag))
        previous = cut
    items: list[tuple[bool, np.ndarray]] = []  # (is_sound, samples)
    insertions, previous, shift = [], 0, 0
    for index, (cut, tag) in enumerate(snapped):
        # Each insertion its own rendition, the same one whenever this request is rendered
        # again: seeded by the tag, its place, its rank in this render and the audio there.
        near = mono[max(0, cut - fade) : cut + fade]
        seed = zlib.crc32(near.tobytes(), zlib.crc32(f"{tag}:{cut}:{index}".encode()))
        sound = resample(synthesise(tag, voice, f0_scale, seed), voice.sample_rate, sample_rate)
        context = mono[
            max(0, cut - round(_CONTEXT_S * sample_rate)) : cut + round(_CONTEXT_S * sample_rate)
        ]
        target = integrated_loudness(context[np.newaxis, :], sample_rate) + SOUNDS[tag][1]
        sound = match_loudness(sound[np.newaxis, :], sample_rate, target)[0]
        if cut > previous:
            items.append((False, audio[:, previous:cut]))
        items.append((True, np.tile(sound, (audio.shape[0], 1))))
        insertions.append(Insertion(tag, cut / sample_rate, cut + shift, len(sound)))
        shift += len(sound)
        previous = cut
    if previous < total:
        items.append((False, audio[:, previous:]))
    pieces = []
    for k, (is_sound, samples) in enumerate(items):
        if is_sound:
            # Silence to fade against: before it after input audio, after it before anything.
            left = fade if k > 0 and not items[k - 1][0] else 0
            right = fade if k < len(items) - 1 else 0
            samples = np.pad(samples, ((0, 0), (left, right)))
        pieces.append(samples)
    return crossfade_concat(pieces, fade), insertions


_TAG_PATTERN = re.compile(r"\[([^\[\]]+)\]")


def positions_from_text(target_text: str, analysis: Analysis) -> list[tuple[str, float]]:
    """Turns inline ``[Tag]`` markers into times by their place in the text.

    Without word timings the character offset of each marker (in the text with the markers
    removed) is spread over the speech time, pauses excluded; the quiet-point search then
    moves the insertion onto the nearest word boundary or pause.

    Language and dialect prefixes (``[Cantonese]``, ...) are not sounds: they are skipped.

    Raises:
        EditError: for a marker that is neither one of the ten tags nor a language tag.
    """
    clean, found, offset = [], [], 0
    for match in _TAG_PATTERN.finditer(target_text):
        clean.append(target_text[offset : match.start()])
        offset = match.end()
        if match.group(1).strip() in LANGUAGE_TAGS:
            continue
        tag = paralinguistic_tag(match.group(1))
        if tag is None:
            raise EditError(
                f"unknown tag [{match.group(1)}] in target_text; "
                f"allowed: {', '.join(PARALINGUISTIC_TAGS)}"
            )
        found.append((tag, sum(len(c) for c in clean)))
    total = sum(len(c) for c in clean) + len(target_text[offset:])
    speech = np.flatnonzero(analysis.speech)
    if speech.size == 0:
        return [(tag, 0.0) for tag, _ in found]
    positions = []
    for tag, chars in found:
        share = chars / total if total else 0.0
        if share >= 1.0:
            frame = speech[-1] + 1
        else:
            frame = speech[min(int(share * speech.size), speech.size - 1)]
        # A slice that ends mid-speech puts "after the last word" one frame past its end.
        positions.append((tag, min(float(frame * FRAME_PERIOD), analysis.duration)))
    return positions


def render_paralinguistic(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders a ``paralinguistic`` edit: ``option`` at every ``positions`` time, or the
    ``[Tag]`` markers of ``target_text``.

    Raises:
        EditError: when neither positions nor markers say where to insert.
    """
    progress(0.0, "analysis")
    mono = to_mono(audio)
    rate = min(sample_rate, _RATE_CAP)
    analysis = analyse(resample(mono, sample_rate, rate), rate)
    if edit.positions:
        requests = [(edit.option, p) for p in edit.positions]
    elif _TAG_PATTERN.search(edit.target_text):
        requests = positions_from_text(edit.target_text, analysis)
    else:
        raise EditError(
            "a paralinguistic edit needs 'position' (seconds into the slice) or a target_text "
            "with inline [Tag] markers"
        )
    duration = len(mono) / sample_rate
    late = [p for _, p in requests if p > duration]
    if late:
        raise EditError(f"position(s) {late} s lie past the end of the {duration:.3f} s slice")
    progress(0.3, "voice")
    voice = VoiceSample.from_analysis(analysis)
    progress(0.6, "synthesis")
    out, insertions = insert_tags(audio.astype(np.float32), sample_rate, voice, requests)
    progress(1.0, "synthesis")
    _LOG.debug("inserted %s", ", ".join(f"{i.tag}@{i.at:.2f}s" for i in insertions))
    # Report the loudness the insertions added, so the engine's loudness match leaves the
    # speech around them exactly as it was.
    offset = integrated_loudness(out, sample_rate) - integrated_loudness(audio, sample_rate)
    return Rendered(
        out,
        sample_rate,
        loudness_offset_db=offset,
        info={
            "insertions": [
                {"tag": i.tag, "position": i.at, "duration": i.length / sample_rate}
                for i in insertions
            ]
        },
    )
