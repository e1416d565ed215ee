"""Named prosody recipes for every emotion and style the CPU backend renders.

Each recipe is the rule-table row of ``shared/spec/cpu-backend.md`` §4 (values for medium
intensity, i.e. one iteration), with its basis cited. Source keys as in the table: **S** =
Schröder's dimensional rules (MARY TTS) with Russell & Mehrabian (1977) PAD values, **E** =
Emofilt rule file (Burkhardt 2005), **M** = Murray & Arnott (1993); "own" marks engineering
defaults chosen inside the cited direction.

``iterations`` 2-5 strengthen a recipe through :data:`INTENSITY` and every parameter is then
clamped to :data:`BOUNDS`, so repeated requests never push the voice past natural limits
(±6 semitones, tempo 0.67-1.5x, as §4.1 recommends).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import numpy as np

from engine.edits import MAX_ITERATIONS
from engine.errors import EditError, UnsupportedEditError

__all__ = [
    "BOUNDS",
    "EMOTIONS",
    "INTENSITY",
    "STYLES",
    "Recipe",
    "nominal",
    "recipe_for",
    "scaled",
    "timing_kept",
    "toward_neutral",
]

# Intensity factor k per iteration (1..5): every delta of a recipe is multiplied by k (in the
# log domain for ratios). Steps shrink so iteration 5 is 1.5x the nominal, the top of the
# 0-1.5 intensity scale of spec §4.1.
INTENSITY: tuple[float, ...] = (1.0, 1.2, 1.35, 1.45, 1.5)

# How far ``remove`` pulls toward neutral per iteration (share of the distance).
_PULL: tuple[float, ...] = (0.5, 0.65, 0.75, 0.82, 0.87)

# Voices at or below this median F0 (Hz) use a recipe's low-voice values, at or above
# _HIGH_VOICE_HZ its high-voice values; between, values are interpolated on a log scale.
# 120/210 Hz: typical adult male / female speaking F0 (Peterson & Barney 1952: 136/235 on /i/).
_LOW_VOICE_HZ = 120.0
_HIGH_VOICE_HZ = 210.0

# F0 5-95 % spans (semitones, Analysis.f0_span) of neutral read speech: 6.5-13.8 st over
# the read clips in shared/audio (VCTK 6.5, LibriSpeech 8.9, AISHELL 9.1, LJ Speech 12.8 and
# 13.8). ``remove`` reads no activation from a span inside NEUTRAL_READ_SPAN_ST and pulls
# the span toward NEUTRAL_SPAN_ST (own value inside the read range).
NEUTRAL_READ_SPAN_ST = (6.0, 15.0)
NEUTRAL_SPAN_ST = (9.5, 12.0)
# Internal pauses longer than this (seconds) count as lengthened when removing an emotion.
NEUTRAL_PAUSE_S = 0.5


@dataclass(frozen=True)
class Recipe:
    """One emotion or style as changes relative to the input delivery.

    Attributes:
        name: Option name, e.g. ``"happy"``.
        summary: One line on what it does to the voice.
        basis: Where the numbers come from.
        f0_shift: Relative change of the median F0 (+0.15 = 15 % higher).
        f0_shift_high: ``f0_shift`` for a high (female) voice; ``None`` = same as
            ``f0_shift``. Interpolated on log F0 between 120 and 210 Hz.
        f0_target_hz: When set, ``f0_shift`` aims the median here instead, kept within
            ``[f0_shift_min, f0_shift]``.
        f0_shift_min: Smallest shift used with ``f0_target_hz``.
        f0_range: Factor on log-F0 excursions around the median (ratio of semitone spans).
        tempo: Relative change of the speech rate inside phrases (+0.1 = 10 % faster).
        pause_change: Relative change of internal pause durations (+0.3 = 30 % longer).
        intensity_db: Loudness change in dB (reported to the engine, which keeps it).
        tilt_db_per_oct: Spectral tilt change above 1 kHz in dB/octave (+ = brighter).
        breathiness: Breath noise mixed into voiced speech, on WORLD's aperiodicity scale
            (0..1; + = breathier; the PSOLA renderer cannot make a voice less breathy than
            recorded, so negative values, "tense", leave it as it is). The noise fills the
            band where the voice is strongest, so each 0.05 costs about 0.05 DNSMOS OVRL:
            amounts are kept small (issue 13).
        formant_warp: Frequency scale of the spectral envelope (>1 = shorter vocal tract).
        formant_warp_high: ``formant_warp`` for a high voice; ``None`` = same.
        f1_warp: Extra envelope scale meant for the F1 region; rendered as a warp of the
            whole envelope by its square root (the resampling warp acts on all formants).
        jitter: Random frame-to-frame F0 perturbation (relative standard deviation).
        tremor_hz: Rate of the F0/amplitude tremor.
        tremor_depth: Relative F0 tremor amplitude (0.03 = ±3 %).
        tremor_db: Amplitude tremor (± dB).
        final_st: Pitch movement over the last 300 ms of each phrase (+ rise, - fall), st.
        declination_st: Pitch fall across each phrase, st.
        final_lengthening: Extra relative duration of each phrase's last 250 ms.
        stress_contrast: Stressed syllables ``1 + c`` times longer, weak ones ``1 - c``.
        emphasis_db: Stressed syllables louder (weak ones softer) by up to this, dB.
        onset_breathiness: Extra aperiodicity on the first 150 ms of each phrase.
        creak: Share (0..1) of phrase-final voicing turned creaky (low, irregular F0).
        trail_off_db: Fade over the last 0.5 s of speech, dB.
        soft_onset_ms: Length of a gentle fade-in at each phrase onset (0 = none).
        whisper: Replace voicing by breath noise (WORLD F0 = 0; the only WORLD render).
        effects: Named post-processing chain (``"radio"``, ``"news"``, ``"shout"``,
            ``"ethereal"``) or ``""``.
        hesitations: How many "Uhm" fillers to insert at the longest pauses.
    """

    name: str
    summary: str
    basis: str
    f0_shift: float = 0.0
    f0_shift_high: float | None = None
    f0_target_hz: float | None = None
    f0_shift_min: float = 0.0
    f0_range: float = 1.0
    tempo: float = 0.0
    pause_change: float = 0.0
    intensity_db: float = 0.0
    tilt_db_per_oct: float = 0.0
    breathiness: float = 0.0
    formant_warp: float = 1.0
    formant_warp_high: float | None = None
    f1_warp: float = 1.0
    jitter: float = 0.0
    tremor_hz: float = 0.0
    tremor_depth: float = 0.0
    tremor_db: float = 0.0
    final_st: float = 0.0
    declination_st: float = 0.0
    final_lengthening: float = 0.0
    stress_contrast: float = 0.0
    emphasis_db: float = 0.0
    onset_breathiness: float = 0.0
    creak: float = 0.0
    trail_off_db: float = 0.0
    soft_onset_ms: float = 0.0
    whisper: bool = False
    effects: str = ""
    hesitations: int = 0

    @property
    def speech_duration_factor(self) -> float:
        """How much longer the speech inside phrases becomes (``1 / (1 + tempo)``)."""
        return 1.0 / (1.0 + self.tempo)

    @property
    def pause_duration_factor(self) -> float:
        return 1.0 + self.pause_change


def _r(name: str, summary: str, basis: str, **values: float | bool | str | None) -> Recipe:
    return Recipe(name, summary, basis, **values)  # type: ignore[arg-type]


EMOTIONS: dict[str, Recipe] = {
    r.name: r
    for r in (
        _r(
            "happy",
            "higher, wider, faster, brighter, smiling",
            "S (+19 %, x1.5, +42 %); "
            "E joy (F0 x1.5, range x2, durations x0.7); M; Tartter 1980 (smiling raises F0 "
            "and formants)",
            f0_shift=0.15,
            f0_range=1.4,
            tempo=0.10,
            intensity_db=3.0,
            tilt_db_per_oct=1.5,
            formant_warp=1.04,
            final_st=1.0,
        ),
        _r(
            "angry",
            "higher, much wider, faster, louder and tense, abrupt falls",
            "S (+10 %, x1.6, +19 %); E hotAnger (range x2, durations x0.7, jitter, falling "
            "accents); M (abrupt on stressed syllables)",
            f0_shift=0.10,
            f0_range=1.6,
            tempo=0.15,
            intensity_db=6.0,
            tilt_db_per_oct=4.0,
            breathiness=-0.05,
            jitter=0.007,  # 0.015 read as a rough voice: -0.3 DNSMOS OVRL on LJ001 (issue 13)
            emphasis_db=3.0,
            final_st=-2.0,
        ),
        _r(
            "sad",
            "lower, narrower, slower with longer pauses, soft and breathy, falling",
            "S (-11 %, x0.72, -26 %); E sad (range x0.8, durations x1.4, soft, jitter); M "
            "(downward inflections)",
            f0_shift=-0.08,
            f0_range=0.7,
            tempo=-0.20,
            pause_change=0.30,
            intensity_db=-4.0,
            tilt_db_per_oct=-3.0,
            breathiness=0.15,
            jitter=0.005,
            declination_st=1.5,
            final_st=-1.0,
        ),
        _r(
            "fear",
            "much higher, wider, faster, trembling, pauses doubled, final rise",
            "S (+16 %, x1.6, +17 %); E scared (F0 x2, range x1.6, pauses x2.1, final rise, "
            "jitter); M (irregular voicing)",
            f0_shift=0.25,
            f0_range=1.3,
            tempo=0.15,
            pause_change=1.0,
            tilt_db_per_oct=1.0,
            breathiness=0.10,
            tremor_hz=7.0,
            tremor_depth=0.03,
            final_st=2.0,
        ),
        _r(
            "surprised",
            "higher, much wider, faster, breathy onsets, rising",
            "S (+25 %, x1.7, +42 %); extension of M with a surprise column (origin not traced)",
            f0_shift=0.20,
            f0_range=1.6,
            tempo=0.10,
            intensity_db=3.0,
            onset_breathiness=0.2,
            final_st=3.0,
        ),
        _r(
            "disgusted",
            "lower, slower, grumbling chest tone, creaky wide terminal falls",
            "M (very much lower, slightly wider, very much slower, wide downward terminal "
            "inflections)",
            f0_shift=-0.10,
            f0_range=1.1,
            tempo=-0.20,
            intensity_db=-2.0,
            tilt_db_per_oct=-1.0,
            breathiness=0.05,
            creak=0.5,
            final_st=-3.0,
        ),
        _r(
            "excited",
            "higher, much wider, faster, louder and bright",
            "S with MARY arousal 0.8 (+18 %, x1.6, +30 %); Russell & Mehrabian 'interested' "
            "(+20 %, x1.5, +38 %)",
            f0_shift=0.20,
            f0_range=1.6,
            tempo=0.20,
            intensity_db=5.0,
            tilt_db_per_oct=3.0,
            final_st=1.5,
        ),
        _r(
            "depressed",
            "lower, monotone, slow with long pauses, soft, breathy, falling",
            "S 'discouraged' (-8 %, x0.85, -20 %); E boredom (F0 x0.8, range x0.5, durations "
            "x1.2, soft); E sad",
            f0_shift=-0.10,
            f0_range=0.6,
            tempo=-0.20,
            pause_change=0.40,
            intensity_db=-5.0,
            tilt_db_per_oct=-3.0,
            breathiness=0.07,  # 0.15 cost 0.1 DNSMOS OVRL median (issue 13)
            declination_st=1.0,
            final_st=-1.0,
        ),
        _r(
            "coldness",
            "flat, precise, stressed syllables drawn out, low boundary tones",
            "E coldAnger (range x0.8, stressed x1.3, unstressed x0.7); S (power > 0: low "
            "boundary); F0 value own",
            f0_shift=-0.03,
            f0_range=0.75,
            intensity_db=1.0,
            breathiness=-0.05,
            stress_contrast=0.3,
            final_st=-2.0,
        ),
        _r(
            "empathy",
            "slightly lower, calmer, slower, soft and breathy, soft attacks",
            "tenderness pattern of Juslin & Laukka (2003): slow, soft, low F0 level and "
            "variability, little high-frequency energy; numbers own",
            f0_shift=-0.03,
            f0_range=0.85,
            tempo=-0.12,
            pause_change=0.20,
            intensity_db=-3.0,
            tilt_db_per_oct=-2.0,
            breathiness=0.05,  # 0.10 cost 0.03-0.05 DNSMOS OVRL (issue 13)
            soft_onset_ms=60.0,
        ),
        _r(
            "admiration",
            "slightly higher, wider, unhurried, drawn-out stressed words, breathy 'wow' onsets",
            "Kamiloglu, Fischer & Sauter (2020): lower pitch than amusement/interest; S "
            "'respectful' (+8 %, x1.1, +14 %); numbers own",
            f0_shift=0.05,
            f0_range=1.3,
            tempo=-0.05,
            intensity_db=1.0,
            stress_contrast=0.2,
            onset_breathiness=0.15,
        ),
        _r(
            "embarrass",
            "narrower, slower, hesitant, soft and breathy, trailing off",
            "S 'shamed' (-2 %, x1.0, -11 %) and 'shy' (+4 %, x1.05, 0 %); hesitations own",
            f0_shift=0.03,
            f0_range=0.8,
            tempo=-0.10,
            pause_change=0.30,
            intensity_db=-4.0,
            tilt_db_per_oct=-2.0,
            breathiness=0.07,  # 0.15 cost 0.1 DNSMOS OVRL median (issue 13)
            trail_off_db=6.0,
            final_st=-1.0,
            hesitations=1,
        ),
        _r(
            "confusion",
            "question-like final rises, slower, filled pause, drawn-out endings",
            "Brennan & Williams (1995): rising intonation and filled pauses signal low "
            "confidence; Jiang & Pell (2017); Tomlinson & Fox Tree (2011)",
            f0_shift=0.05,
            f0_range=1.2,
            tempo=-0.12,
            intensity_db=-1.0,
            final_st=4.0,
            final_lengthening=0.4,
            hesitations=1,
        ),
        _r(
            "humour",
            "higher, wider, a little faster, smiling, playful",
            "Kamiloglu et al. (2020): amusement has high pitch; Tartter (1980): smiling raises "
            "F0 and formants; numbers own",
            f0_shift=0.12,
            f0_range=1.4,
            tempo=0.05,
            intensity_db=2.0,
            tilt_db_per_oct=1.0,
            formant_warp=1.05,
            final_st=1.0,
        ),
    )
}

STYLES: dict[str, Recipe] = {
    r.name: r
    for r in (
        _r(
            "whisper",
            "no voicing: breath noise through the speaker's vocal tract",
            "Traunmüller & Eriksson (2000); Swerdlin, Smith & Wolfe (2010) measured raised "
            "R1-R4, but the x1.05 warp that mimics it cost 0.05 speaker similarity (0.79 -> "
            "0.73) on our clips, so only the broader formants and flatter source are kept",
            whisper=True,
            tempo=-0.05,
            intensity_db=-12.0,
            tilt_db_per_oct=3.0,
        ),
        _r(
            "child",
            "F0 aimed at 275 Hz and a much shorter vocal tract, a little slower",
            "Peterson & Barney (1952): /i/ F0 136 (men), 235 (women), 272 Hz (children), "
            "children's F1/F2 x1.37/x1.40 of men's; Vorperian & Kent (2007)",
            f0_target_hz=275.0,
            f0_shift=1.0,
            f0_shift_min=0.2,
            f0_range=1.2,
            tempo=-0.10,
            formant_warp=1.3,
            formant_warp_high=1.15,
        ),
        _r(
            "older",
            "slower, tremulous, breathy and rougher, slightly longer vocal tract",
            "Harnsberger et al. (2008); Skoog Waller et al. (2015, 2016); Linville & Fisher "
            "(1985); Brückl & Sendlmeier (2003)",
            f0_shift=0.05,
            f0_shift_high=-0.08,
            f0_range=1.1,
            tempo=-0.15,
            intensity_db=-2.0,
            breathiness=0.10,
            jitter=0.01,
            tremor_hz=5.0,
            tremor_depth=0.02,
            tremor_db=1.0,
            formant_warp=0.97,
        ),
        _r(
            "deeply",
            "about 3 semitones lower with a longer, darker vocal tract",
            "own; feasibility measured (WORLD alpha 0.9, F0 x0.8 -> F1-F3 x0.91)",
            f0_shift=-0.15,
            f0_range=0.85,
            tempo=-0.05,
            intensity_db=1.0,
            tilt_db_per_oct=-2.0,
            formant_warp=0.92,
        ),
        _r(
            "loudly",
            "raised vocal effort: higher, brighter, louder, longer vowels",
            "Traunmüller & Eriksson (2000); Bond & Moore (1990); Shen & Janse (2019/2020). "
            "A moderate raise: F0 +12 % (2 st), +4.5 dB, F1 +8 %, +2.5 dB/oct, no compressor. "
            "DNSMOS OVRL scores level itself (+6 dB of plain gain: -0.17 to -0.32); at +15 %, "
            "+6 dB, F1 +5 % a clean LibriTTS clip lost 0.82, now 0.53 (issue 13)",
            f0_shift=0.12,
            tempo=-0.05,
            intensity_db=4.5,
            tilt_db_per_oct=2.5,
            f1_warp=1.08,
        ),
        _r(
            "shout",
            "shouting: F0 up about 6 st, much brighter and louder, compressed",
            "Andersson, Eriksson & Traunmüller (1996); Traunmüller & Eriksson (2000): F0 up to "
            "x2, level +30 dB mostly in the upper spectrum, vowels longer. Table: +60 %, "
            "+6 dB/oct; here +40 % (the ±6 st naturalness bound of spec §4.1) and +5 dB/oct",
            f0_shift=0.40,
            tempo=-0.10,
            intensity_db=10.0,
            tilt_db_per_oct=5.0,
            breathiness=-0.05,
            f1_warp=1.1,
            effects="shout",
        ),
        _r(
            "murmur",
            "quiet, low, narrow, breathy, dull",
            "own; inverse of the vocal-effort findings (Traunmüller & Eriksson 2000)",
            f0_shift=-0.08,
            f0_range=0.7,
            tempo=-0.05,
            intensity_db=-10.0,
            tilt_db_per_oct=-4.0,
            breathiness=0.15,  # the least that lowers HNR 1 dB; 0.20 cost DNSMOS
        ),
        _r(
            "serious",
            "slightly lower, narrower, slower, declarative falls",
            "S (power > 0: low boundary tones), fewer accents; numbers own",
            f0_shift=-0.05,
            f0_range=0.8,
            tempo=-0.08,
            intensity_db=1.0,
            final_st=-2.0,
        ),
        _r(
            "gentle",
            "soft, breathy, slower, slightly narrower, soft attacks",
            "tenderness pattern (Juslin & Laukka 2003); numbers own",
            f0_shift=0.03,
            f0_range=0.9,
            tempo=-0.10,
            intensity_db=-4.0,
            tilt_db_per_oct=-2.0,
            breathiness=0.10,
            soft_onset_ms=60.0,
        ),
        _r(
            "radio",
            "broadcast voice: a little lower, dynamic intonation, EQ and compression",
            "Rodero (2013): low-pitched, resonant voices with dynamic intonation are "
            "preferred; Gasser et al. (2019)",
            f0_shift=-0.03,
            f0_range=1.2,
            tempo=0.05,
            intensity_db=2.0,
            effects="radio",
        ),
        _r(
            "news",
            "newsreader: higher, livelier, faster with much shorter pauses, compressed",
            "Rodero (2012): 160-180 wpm; Savino (2024): higher pitch, faster mainly through "
            "fewer, shorter pauses; Gasser et al. (2019)",
            f0_shift=0.05,
            f0_range=1.2,
            tempo=0.10,
            pause_change=-0.30,
            intensity_db=1.0,
            effects="news",
        ),
        _r(
            "ethereal",
            "airy and floating: breathy, soft, slow, narrow, in a soft, diffuse reverb",
            "own: breathiness, soft level and slow rate of the tenderness pattern (Juslin & "
            "Laukka 2003) plus a diffuse reverberant space",
            f0_shift=0.05,
            f0_range=0.85,
            tempo=-0.08,  # -0.12 and breath 0.12 cost 0.2 more DNSMOS OVRL on one take
            intensity_db=-3.0,
            tilt_db_per_oct=1.0,
            breathiness=0.08,
            effects="ethereal",
        ),
    )
}

# Clamps applied after intensity scaling: (low, high) per field.
BOUNDS: dict[str, tuple[float, float]] = {
    "f0_range": (0.4, 2.0),
    "pause_change": (-0.6, 1.5),
    "intensity_db": (-18.0, 12.0),
    "tilt_db_per_oct": (-6.0, 8.0),
    "breathiness": (-0.1, 0.4),
    "formant_warp": (0.8, 1.35),
    "f1_warp": (0.85, 1.2),
    "jitter": (0.0, 0.03),
    "tremor_depth": (0.0, 0.05),
    "tremor_db": (0.0, 3.0),
    "final_st": (-6.0, 6.0),
    "declination_st": (0.0, 4.0),
    "final_lengthening": (0.0, 0.8),
    "stress_contrast": (0.0, 0.45),
    "emphasis_db": (0.0, 6.0),
    "onset_breathiness": (0.0, 0.4),
    "creak": (0.0, 1.0),
    "trail_off_db": (0.0, 12.0),
    "soft_onset_ms": (0.0, 120.0),
}
# Speech duration factor 0.67-1.5 (spec §4.1); F0 shift at most 6 st unless the nominal
# recipe itself asks for more (child, shout), and never more than an octave.
_DURATION_BOUNDS = (0.67, 1.5)
_SHIFT_ST_MIN, _SHIFT_ST_MAX = 6.0, 12.0
# Fields that are ratios around 1 (scaled as powers) and fields left as they are.
_RATIO_FIELDS = frozenset({"f0_range", "formant_warp", "formant_warp_high", "f1_warp"})
_FIXED_FIELDS = frozenset(
    {
        "name",
        "summary",
        "basis",
        "f0_target_hz",
        "f0_shift_min",
        "tremor_hz",
        "whisper",
        "effects",
        "hesitations",
    }
)


def _bounded_shift(shift: float, nominal: float) -> float:
    cap = min(max(_SHIFT_ST_MIN, abs(12 * math.log2(1 + nominal))), _SHIFT_ST_MAX)
    semitones = float(np.clip(12 * math.log2(1 + shift), -cap, cap))
    return 2 ** (semitones / 12) - 1


def scaled(recipe: Recipe, iterations: int) -> Recipe:
    """The recipe strengthened for ``iterations`` (1 = nominal) and clamped to its bounds.

    Deltas are multiplied by ``INTENSITY[iterations - 1]``; ratios (F0 shift, range, tempo,
    pauses, warps) are raised to that power, so each iteration moves the same way by a
    shrinking step.

    Raises:
        EditError: when ``iterations`` is outside 1..MAX_ITERATIONS.
    """
    if not 1 <= iterations <= MAX_ITERATIONS:
        raise EditError(f"iterations must be 1 to {MAX_ITERATIONS}, got {iterations}")
    if iterations == 1:
        return recipe
    k = INTENSITY[iterations - 1]
    values: dict[str, object] = {}
    for f in fields(recipe):
        value = getattr(recipe, f.name)
        if f.name in _FIXED_FIELDS or value is None:
            continue
        if f.name in _RATIO_FIELDS:
            value = value**k
        elif f.name in {"f0_shift", "f0_shift_high"}:
            value = _bounded_shift((1 + value) ** k - 1, value)
        elif f.name == "tempo":
            duration = float(np.clip((1 / (1 + value)) ** k, *_DURATION_BOUNDS))
            value = 1 / duration - 1
        elif f.name == "pause_change":
            value = (1 + value) ** k - 1
        else:
            value = value * k
        low, high = BOUNDS.get(f.name, (-math.inf, math.inf))
        if f.name == "formant_warp_high":
            low, high = BOUNDS["formant_warp"]
        values[f.name] = float(np.clip(value, low, high))
    return replace(recipe, **values)  # type: ignore[arg-type]


def _voice_height(median_f0: float) -> float:
    """0 for a low (male) voice, 1 for a high (female) one, log-interpolated between."""
    if median_f0 <= 0:
        return 0.0
    span = math.log(_HIGH_VOICE_HZ / _LOW_VOICE_HZ)
    return float(np.clip(math.log(median_f0 / _LOW_VOICE_HZ) / span, 0.0, 1.0))


def for_voice(recipe: Recipe, median_f0: float) -> Recipe:
    """Resolves the voice-dependent fields for a speaker with this median F0.

    Returns a recipe whose ``*_high`` fields are folded into ``f0_shift``/``formant_warp``
    and whose ``f0_target_hz`` is turned into a concrete ``f0_shift``.
    """
    height = _voice_height(median_f0)
    shift = recipe.f0_shift
    if recipe.f0_shift_high is not None:
        shift = (1 - height) * recipe.f0_shift + height * recipe.f0_shift_high
    if recipe.f0_target_hz is not None and median_f0 > 0:
        shift = float(np.clip(recipe.f0_target_hz / median_f0 - 1, recipe.f0_shift_min, shift))
    warp = recipe.formant_warp
    if recipe.formant_warp_high is not None:
        warp = recipe.formant_warp ** (1 - height) * recipe.formant_warp_high**height
    return replace(
        recipe,
        f0_shift=shift,
        f0_shift_high=None,
        f0_target_hz=None,
        formant_warp=warp,
        formant_warp_high=None,
    )


def nominal(kind: str, option: str) -> Recipe:
    """The rule-table recipe for an ``emotion``/``style`` option, before any scaling.

    Raises:
        UnsupportedEditError: for a name this backend has no recipe for.
    """
    table = EMOTIONS if kind == "emotion" else STYLES if kind == "style" else None
    if table is None or option not in table:
        known = ", ".join(table) if table else "emotion, style"
        raise UnsupportedEditError(f"no CPU recipe for {kind} {option!r}; available: {known}")
    return table[option]


def recipe_for(kind: str, option: str, iterations: int, median_f0: float) -> Recipe:
    """The concrete recipe for an ``emotion``/``style`` option (not ``remove``).

    Args:
        kind: ``"emotion"`` or ``"style"``.
        option: The recipe's name.
        iterations: 1..5.
        median_f0: The speaker's median F0 in Hz (for voice-dependent recipes).

    Raises:
        UnsupportedEditError: for a name this backend has no recipe for.
    """
    return scaled(for_voice(nominal(kind, option), median_f0), iterations)


def timing_kept(recipe: Recipe) -> Recipe:
    """``recipe`` without its changes of tempo, pauses and phrase-final length.

    For edits that keep the take's length: the delivery then comes from pitch, level and
    voice quality, instead of a tempo change that a time-scale would undo afterwards at a
    cost (issue 13 measured happy at -0.05 DNSMOS OVRL without keep-length and -0.33 with
    it, when the slowed or quickened render was stretched back).
    """
    return replace(recipe, tempo=0.0, pause_change=0.0, final_lengthening=0.0)


def toward_neutral(
    kind: str, span_st: float, pause_seconds: list[float], iterations: int
) -> Recipe:
    """The ``remove`` recipe for a clip: pulls its prosody back toward neutral delivery.

    There is no neutral recording of the speaker to go back to, so the clip's own F0 span
    is compared with neutral read speech. A span outside :data:`NEUTRAL_READ_SPAN_ST` is
    read as activation A (by how far it lies beyond the nearer end) with Schröder's rule
    ``range = 4 + 0.04 A`` (range scales with ``1 + A/100``), and the F0 level and rate that
    Schröder ties to A (``pitch % = 0.3 A``, ``rate % = 0.5 A``) are undone by the same
    share; inside it, level and rate stay. The span itself is pulled toward
    :data:`NEUTRAL_SPAN_ST`. Pauses longer than :data:`NEUTRAL_PAUSE_S` are shortened.
    Voice quality (breathiness, whisper) is left alone: it cannot be told apart from the
    speaker's own voice.

    Args:
        kind: ``"emotion"`` or ``"style"`` (only changes the name and summary).
        span_st: The clip's F0 5-95 % span in semitones (:meth:`Analysis.f0_span`).
        pause_seconds: Durations of its internal pauses.
        iterations: 1..5; each pulls further (50 % of the way at 1, 87 % at 5).
    """
    pull = _PULL[min(max(iterations, 1), MAX_ITERATIONS) - 1]
    span = max(span_st, 1.0)
    read_low, read_high = NEUTRAL_READ_SPAN_ST
    nearest_read = min(max(span, read_low), read_high)
    activation = 100 * (span / nearest_read - 1)
    target = min(max(span, NEUTRAL_SPAN_ST[0]), NEUTRAL_SPAN_ST[1])
    long_pauses = [p for p in pause_seconds if p > NEUTRAL_PAUSE_S]
    pause_change = 0.0
    if long_pauses:
        excess = float(np.mean(long_pauses)) / NEUTRAL_PAUSE_S
        pause_change = float(np.clip(excess ** (-pull) - 1, BOUNDS["pause_change"][0], 0.0))
    return Recipe(
        name="remove",
        summary=f"{kind} removed: F0 span, level, rate and long pauses pulled toward neutral",
        basis="Schröder's activation rules (pitch 0.3 A %, range 4 + 0.04 A st, rate 0.5 A %) "
        f"inverted from the clip's span against {read_low:.0f}-{read_high:.0f} st of neutral "
        "read speech",
        f0_shift=float(np.clip(-pull * 0.003 * activation, -0.2, 0.2)),
        f0_range=float(np.clip((target / span) ** pull, 0.6, 1.6)),
        tempo=float(np.clip(-pull * 0.005 * activation, -0.2, 0.2)),
        pause_change=pause_change,
    )
