"""Applies an emotion/style recipe: F0, timing, loudness, tilt, voice quality, effects.

Two renderers share one analysis and one set of targets. Recipes that only touch pitch and
timing go through Praat PSOLA (the quality leader in the survey: PESQ 3.65, speaker
similarity 0.97); recipes that change voice quality (breathiness, whisper, creak, formant
warp) need WORLD, which re-synthesises from F0, envelope and aperiodicity. Both receive
the same per-frame F0 targets and duration factors, computed on the source timeline.

Channels: the analysis and the transform run on the mono mix, and the result is copied to
every input channel. Speech takes are near-mono, and applying one time map to channels
analysed separately would misalign them.
"""

from __future__ import annotations

import logging
import zlib
from dataclasses import dataclass

import numpy as np
import parselmouth
import pyworld
from parselmouth.praat import call
from scipy.ndimage import gaussian_filter1d

from engine.audio import integrated_loudness, match_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu import nonverbal
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis, analyse
from engine.backends.cpu.recipes import Recipe, nominal, recipe_for, toward_neutral
from engine.backends.dsp import apply_tilt, smooth
from engine.edits import EditSpec

__all__ = ["RenderPlan", "apply_recipe", "plan", "render_expressive", "span_semitones"]

_LOG = logging.getLogger(__name__)

# WORLD runs at most at this rate: 16 kHz of bandwidth keeps sibilants, and it is 2.5x
# cheaper than 48 kHz (survey §2). PSOLA runs at the input rate (up to 48 kHz).
_WORLD_MAX_RATE = 32000
_PSOLA_MAX_RATE = 48000
# Length (s) of the phrase-final pitch movement, phrase-final lengthening, breathy onsets
# and the creaky stretch at full strength.
_FINAL_PITCH_S, _FINAL_LENGTH_S, _ONSET_S, _CREAK_S = 0.3, 0.25, 0.15, 0.15
_TRAIL_S = 0.5
# Added to D4C's aperiodicity in every WORLD render. Measured: plain copy-synthesis raised
# Praat HNR by 1.1-3.1 dB on three clips (the resynthesis is more periodic than the voice
# was); +0.1 brings it back within 0.6 dB, so "breathier" recipes are breathier than the
# input, not merely than WORLD's own copy.
_AP_CALIBRATION = 0.1
# Standard deviation (Hz) of the smoothing that broadens the formants of whispered speech.
_WHISPER_BANDWIDTH_HZ = 60.0
# Levels the effect chains are driven at, so their thresholds mean the same on every clip.
_CHAIN_INPUT_LUFS = -23.0
# Peak level the engine allows (dBFS) and the most gain reduction a limiter may apply to get
# a louder delivery under it (dB).
_LIMIT_DBFS = -1.0
_MAX_LIMITING_DB = 6.0


@dataclass
class RenderPlan:
    """Per-frame targets on the source timeline, shared by both renderers.

    Attributes:
        f0: Target F0 per frame (Hz, 0 = unvoiced).
        durations: Duration factor per frame (2 = that frame lasts twice as long).
        gain_db: Level change per frame (emphasis, tremor, soft onsets, trailing off).
        breath: Aperiodicity offset per frame (breathiness, breathy onsets, creak).
    """

    f0: np.ndarray
    durations: np.ndarray
    gain_db: np.ndarray
    breath: np.ndarray

    def output_time(self, source_time: float) -> float:
        """Where a moment of the source lands in the rendered audio (seconds)."""
        cumulative = np.concatenate([[0.0], np.cumsum(self.durations)]) * FRAME_PERIOD
        frames = np.arange(len(cumulative))
        return float(np.interp(source_time / FRAME_PERIOD, frames, cumulative))


def span_semitones(f0: np.ndarray) -> float:
    """5-95 % span of the voiced F0 values in semitones (0 with fewer than 10 frames)."""
    voiced = f0[f0 > 0]
    if voiced.size < 10:
        return 0.0
    low, high = np.percentile(voiced, [5, 95])
    return float(12 * np.log2(high / low))


def _ramp(count: int) -> np.ndarray:
    """Raised-cosine rise from 0 to 1 over ``count`` frames."""
    return 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, max(count, 1)))


def _final_voiced(analysis: Analysis, phrase: tuple[int, int]) -> int:
    voiced = np.flatnonzero(analysis.voiced[phrase[0] : phrase[1]])
    return phrase[0] + int(voiced[-1]) + 1 if voiced.size else phrase[1]


def _contour_st(analysis: Analysis, recipe: Recipe, rng: np.random.Generator) -> np.ndarray:
    """Pitch shape added to the F0 (semitones): declination, final movement, tremor, jitter."""
    shape = np.zeros(len(analysis.f0))
    final = round(_FINAL_PITCH_S / FRAME_PERIOD)
    for start, end in analysis.phrases():
        if recipe.declination_st:
            shape[start:end] += recipe.declination_st * np.linspace(0.5, -0.5, end - start)
        if recipe.final_st:
            stop = _final_voiced(analysis, (start, end))
            begin = max(start, stop - final)
            shape[begin:stop] += recipe.final_st * _ramp(stop - begin)
    if recipe.tremor_depth:
        wobble = 1 + recipe.tremor_depth * np.sin(2 * np.pi * recipe.tremor_hz * analysis.times)
        shape += 12 * np.log2(wobble)
    if recipe.jitter:
        shape += 12 * np.log2(np.clip(1 + recipe.jitter * rng.standard_normal(len(shape)), 0.5, 2))
    return shape


def _weighted_percentiles(
    values: np.ndarray, weights: np.ndarray, percents: list[float]
) -> list[float]:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    cut = np.searchsorted(cumulative, np.array(percents) / 100 * cumulative[-1])
    return [float(v) for v in values[order][np.minimum(cut, len(values) - 1)]]


def _creaky_frames(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """The last ``creak x 150 ms`` of voicing in each phrase."""
    creaky = np.zeros(len(analysis.f0), dtype=bool)
    if recipe.creak:
        length = round(recipe.creak * _CREAK_S / FRAME_PERIOD)
        for phrase in analysis.phrases():
            stop = _final_voiced(analysis, phrase)
            creaky[max(phrase[0], stop - length) : stop] = True
    return creaky & analysis.voiced


def _target_f0(
    analysis: Analysis, recipe: Recipe, durations: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Maps the F0 track: shape, then span to ``f0_range`` x the original, then level.

    Median and span are taken over the *rendered* frames (each source frame weighted by its
    duration factor), so the heard median lands on ``(1 + f0_shift)`` x the original and the
    heard span on ``f0_range`` x the original: lengthening stressed, high syllables must not
    raise or widen the pitch by itself.
    """
    f0 = analysis.f0
    voiced = analysis.voiced
    out = np.zeros_like(f0)
    if recipe.whisper or voiced.sum() < 10:
        return out
    median = analysis.median_f0
    creaky = _creaky_frames(analysis, recipe)
    shaped = 12 * np.log2(f0[voiced] / median) + _contour_st(analysis, recipe, rng)[voiced]
    modal = ~creaky[voiced]
    weights = durations[voiced][modal]
    low, centre, high = _weighted_percentiles(shaped[modal], weights, [5, 50, 95])
    scale = recipe.f0_range * span_semitones(f0) / max(high - low, 0.1)
    relative = (shaped - centre) * scale + 12 * np.log2(1 + recipe.f0_shift)
    out[voiced] = median * 2 ** (relative / 12)
    # Creak: about half the F0, irregular; left out of the span above, as listeners (and
    # pitch trackers) hear it as a different phonation, not as a lower note.
    irregular = 0.5 * (1 + 0.12 * rng.standard_normal(int(creaky.sum())))
    out[creaky] *= irregular
    floor = 0.5 * analysis.pitch_floor
    return np.where(out > 0, np.maximum(out, floor), 0.0)


def _durations(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """Duration factor per frame: speech and pauses apart, stress contrast, final lengthening."""
    speech = analysis.speech
    d = np.ones(len(speech))
    if speech.any() and recipe.stress_contrast:
        contrast = 1 + recipe.stress_contrast * (2 * analysis.prominence() - 1)
        d[speech] = contrast[speech] / contrast[speech].mean()
    d[speech] *= recipe.speech_duration_factor
    for start, end in analysis.pauses():
        d[start:end] = recipe.pause_duration_factor
    if recipe.final_lengthening:
        final = round(_FINAL_LENGTH_S / FRAME_PERIOD)
        for start, end in analysis.phrases():
            begin = max(start, end - final)
            d[begin:end] *= 1 + recipe.final_lengthening * _ramp(end - begin)
    return np.maximum(smooth(d, 3), 0.05)


def _gain_db(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    """Level change per frame: stressed syllables, tremor, soft onsets, trailing off."""
    gain = np.zeros(len(analysis.times))
    if recipe.emphasis_db:
        gain += recipe.emphasis_db * (2 * analysis.prominence() - 1) * analysis.speech
    if recipe.tremor_db:
        gain += recipe.tremor_db * np.sin(2 * np.pi * recipe.tremor_hz * analysis.times)
    phrases = analysis.phrases()
    if recipe.soft_onset_ms:
        onset = round(recipe.soft_onset_ms / 1000 / FRAME_PERIOD)
        for start, end in phrases:
            stop = min(end, start + onset)
            gain[start:stop] += 20 * np.log10(np.maximum(_ramp(stop - start), 0.05))
    if recipe.trail_off_db and phrases:
        end = phrases[-1][1]
        begin = max(0, end - round(_TRAIL_S / FRAME_PERIOD))
        gain[begin:end] -= recipe.trail_off_db * _ramp(end - begin)
        gain[end:] -= recipe.trail_off_db
    return gain


def _breath(analysis: Analysis, recipe: Recipe) -> np.ndarray:
    breath = np.full(len(analysis.times), float(recipe.breathiness))
    onset = round(_ONSET_S / FRAME_PERIOD)
    for start, end in analysis.phrases():
        stop = min(end, start + onset)
        breath[start:stop] += recipe.onset_breathiness * (1 - _ramp(stop - start))
    breath[_creaky_frames(analysis, recipe)] += 0.2
    return breath


def plan(analysis: Analysis, recipe: Recipe, seed: int = 0) -> RenderPlan:
    """Computes the per-frame targets of ``recipe`` for this clip (deterministic per seed)."""
    rng = np.random.default_rng(seed)
    durations = _durations(analysis, recipe)
    return RenderPlan(
        f0=_target_f0(analysis, recipe, durations, rng),
        durations=durations,
        gain_db=_gain_db(analysis, recipe),
        breath=_breath(analysis, recipe),
    )


def _warp_axis(bins: int, sample_rate: int, warp: float, f1_warp: float) -> np.ndarray:
    """Source bin (fractional) for each output bin: ``sp'(f) = sp(f / alpha(f))``.

    ``alpha`` is ``warp * f1_warp`` up to 1 kHz and ``warp`` from 2 kHz, blended between.
    """
    freqs = np.linspace(0, sample_rate / 2, bins)
    blend = np.clip((freqs - 1000.0) / 1000.0, 0.0, 1.0)
    alpha = warp * f1_warp ** (1 - blend)
    source = np.maximum.accumulate(freqs / alpha)
    return np.clip(source / (sample_rate / 2) * (bins - 1), 0, bins - 1)


def _world_render(analysis: Analysis, recipe: Recipe, targets: RenderPlan) -> np.ndarray:
    sp, ap = analysis.envelope()
    sp = sp * 10 ** (targets.gain_db[:, np.newaxis] / 10)
    bins = sp.shape[1]
    if recipe.formant_warp != 1 or recipe.f1_warp != 1:
        axis = _warp_axis(bins, analysis.sample_rate, recipe.formant_warp, recipe.f1_warp)
        lo = np.floor(axis).astype(int)
        hi = np.minimum(lo + 1, bins - 1)
        w = axis - lo
        sp = sp[:, lo] * (1 - w) + sp[:, hi] * w
    if recipe.whisper:
        # Whispered formants are broader (an open glottis damps them): smoothing the log
        # envelope across frequency keeps narrow F1 peaks from ringing like a voice.
        width = _WHISPER_BANDWIDTH_HZ / (analysis.sample_rate / 2 / (bins - 1))
        sp = np.exp(gaussian_filter1d(np.log(np.maximum(sp, 1e-16)), width, axis=1))
    ap = np.clip(ap + _AP_CALIBRATION + targets.breath[:, np.newaxis], 0.001, 1.0)

    cumulative = np.concatenate([[0.0], np.cumsum(targets.durations)])
    out_frames = int(cumulative[-1])
    position = np.interp(np.arange(out_frames) + 0.5, cumulative, np.arange(len(cumulative)))
    position = np.clip(position - 0.5, 0, len(targets.f0) - 1)
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(targets.f0) - 1)
    w = (position - lo)[:, np.newaxis]
    log_sp = np.log(np.maximum(sp, 1e-16))
    sp_out = np.exp(log_sp[lo] * (1 - w) + log_sp[hi] * w)
    ap_out = ap[lo] * (1 - w) + ap[hi] * w
    nearest = np.rint(position).astype(int)
    f0_out = np.where(
        (targets.f0[lo] > 0) & (targets.f0[hi] > 0),
        targets.f0[lo] * (1 - w[:, 0]) + targets.f0[hi] * w[:, 0],
        targets.f0[nearest],
    )
    if recipe.whisper:
        f0_out[:] = 0.0
        ap_out[:] = 1.0
    y = pyworld.synthesize(
        np.ascontiguousarray(f0_out),
        np.ascontiguousarray(sp_out),
        np.ascontiguousarray(ap_out),
        analysis.sample_rate,
        FRAME_PERIOD * 1000,
    )
    return y.astype(np.float32)


def _psola_render(analysis: Analysis, targets: RenderPlan, seed: int) -> np.ndarray:
    sr = analysis.sample_rate
    samples = np.arange(len(analysis.signal)) / sr
    gain = 10 ** (np.interp(samples, analysis.times, targets.gain_db) / 20)
    sound = parselmouth.Sound(analysis.signal * gain, sampling_frequency=sr)
    duration = sound.get_total_duration()
    manipulation = call(
        sound, "To Manipulation", 0.01, analysis.pitch_floor, analysis.pitch_ceiling
    )
    pitch = call("Create PitchTier", "target", 0.0, duration)
    for t, hz in zip(analysis.times[::2], targets.f0[::2], strict=True):
        if hz > 0:
            call(pitch, "Add point", float(t), float(hz))
    call([pitch, manipulation], "Replace pitch tier")
    tier = call("Create DurationTier", "target", 0.0, duration)
    for t, factor in zip(analysis.times[::2], targets.durations[::2], strict=True):
        call(tier, "Add point", float(t), float(factor))
    call([tier, manipulation], "Replace duration tier")
    # Overlap-add draws on Praat's random generator (survey gotcha 9): seed it.
    parselmouth.praat.run(f"random_initializeWithSeedUnsafelyButPredictably ({seed})")
    result = call(manipulation, "Get resynthesis (overlap-add)")
    return result.values[0].astype(np.float32)


def _effects(y: np.ndarray, sample_rate: int, chain: str) -> np.ndarray:
    """Runs a named pedalboard chain (broadcast EQ/compression, limiter, reverb)."""
    if not chain:
        return y
    import pedalboard as pb  # here: only the styles with effects need it

    chains: dict[str, list[pb.Plugin]] = {
        "radio": [
            pb.HighpassFilter(80.0),
            pb.LowShelfFilter(120.0, gain_db=2.0),
            pb.PeakFilter(3500.0, gain_db=3.0, q=0.8),
            pb.Compressor(threshold_db=-26.0, ratio=3.0, attack_ms=5.0, release_ms=80.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "news": [
            pb.HighpassFilter(70.0),
            pb.Compressor(threshold_db=-26.0, ratio=2.0, attack_ms=5.0, release_ms=100.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "loud": [
            pb.Compressor(threshold_db=-28.0, ratio=2.5, attack_ms=3.0, release_ms=60.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "shout": [
            pb.Compressor(threshold_db=-26.0, ratio=3.0, attack_ms=3.0, release_ms=60.0),
            pb.Limiter(threshold_db=-1.0),
        ],
        "ethereal": [
            pb.HighpassFilter(120.0),
            pb.Reverb(room_size=0.8, damping=0.4, wet_level=0.15, dry_level=0.9, width=1.0),
        ],
    }
    if chain not in chains:
        raise ValueError(f"unknown effect chain {chain!r}; known: {', '.join(chains)}")
    driven = match_loudness(y[np.newaxis, :], sample_rate, _CHAIN_INPUT_LUFS)
    return pb.Pedalboard(chains[chain])(driven, sample_rate)[0].astype(np.float32)


def _set_loudness(y: np.ndarray, sample_rate: int, target_lufs: float) -> np.ndarray:
    """Brings ``y`` to ``target_lufs``, limiting peaks (by at most 6 dB) to make room.

    The engine keeps peaks under -1 dBFS, so a louder delivery of an already loud take is
    only possible with a limiter, as vocal effort is in life (spec §4.3: "into a limiter").
    """
    import pedalboard  # here: only needed when a render runs out of headroom

    out = y[np.newaxis, :].astype(np.float32)
    current = integrated_loudness(out, sample_rate)
    if not (np.isfinite(current) and np.isfinite(target_lufs)):
        return out
    out = out * np.float32(10 ** ((target_lufs - current) / 20))
    peak_db = 20 * np.log10(float(np.max(np.abs(out))) + 1e-12)
    excess = peak_db - _LIMIT_DBFS
    if excess > 0:
        out = out * np.float32(10 ** (-max(excess - _MAX_LIMITING_DB, 0.0) / 20))
        limiter = pedalboard.Limiter(threshold_db=_LIMIT_DBFS - 0.5, release_ms=80.0)
        out = limiter(out, sample_rate)
        _LOG.debug("limited %.1f dB of peaks to reach %.1f LUFS", excess, target_lufs)
    return match_loudness(out, sample_rate, target_lufs)


def apply_recipe(
    analysis: Analysis, recipe: Recipe, seed: int = 0, progress: Progress | None = None
) -> tuple[np.ndarray, RenderPlan]:
    """Renders ``recipe`` on an analysed clip.

    Args:
        analysis: The clip (mono) and its analysis.
        recipe: A concrete, already scaled recipe.
        seed: Seeds jitter, creak and Praat's generator, so renders are reproducible.
        progress: Optional progress callback.

    Returns:
        Mono ``float32`` audio at ``analysis.sample_rate`` (level not yet matched) and the
        plan, whose ``output_time`` maps source times onto the result.
    """
    report = progress or (lambda _f, _s: None)
    targets = plan(analysis, recipe, seed)
    report(0.3, "synthesis")
    if recipe.needs_world:
        y = _world_render(analysis, recipe, targets)
    else:
        y = _psola_render(analysis, targets, seed)
    report(0.7, "effects")
    y = apply_tilt(y, analysis.sample_rate, recipe.tilt_db_per_oct)
    y = _effects(y, analysis.sample_rate, recipe.effects)
    if recipe.hesitations:
        y = _insert_hesitations(analysis, recipe, targets, y)
    return y, targets


def _insert_hesitations(
    analysis: Analysis, recipe: Recipe, targets: RenderPlan, y: np.ndarray
) -> np.ndarray:
    """Puts ``recipe.hesitations`` "Uhm" fillers into the longest pauses (or mid-clip)."""
    pauses = sorted(analysis.pauses(), key=lambda p: p[1] - p[0], reverse=True)
    spots = [(a + b) / 2 * FRAME_PERIOD for a, b in pauses[: recipe.hesitations]]
    if not spots:
        spots = [0.4 * analysis.duration]
    times = tuple(targets.output_time(t) for t in spots)
    voice = nonverbal.VoiceSample.from_analysis(analysis)
    inserted, _ = nonverbal.insert_tags(
        y[np.newaxis, :],
        analysis.sample_rate,
        voice,
        [("Uhm", t) for t in times],
        f0_scale=1 + recipe.f0_shift,
    )
    return inserted[0]


def _neutral_recipe(kind: str, analysis: Analysis, iterations: int) -> Recipe:
    pauses = [(b - a) * FRAME_PERIOD for a, b in analysis.pauses()]
    return toward_neutral(kind, span_semitones(analysis.f0), pauses, iterations)


def render_expressive(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders an ``emotion`` or ``style`` edit (all its iterations) on ``(channels, n)``.

    Args:
        audio: ``float32 (channels, samples)`` at any rate.
        sample_rate: Its rate in Hz.
        edit: The edit; ``edit.type`` is ``"emotion"`` or ``"style"``.
        progress: Progress callback.

    Returns:
        Audio with the input's channel count at the working rate, its level set to the
        input loudness plus the recipe's intensity, which ``loudness_offset_db`` reports.
    """
    mono = to_mono(audio)
    input_lufs = integrated_loudness(mono[np.newaxis, :], sample_rate)
    progress(0.0, "analysis")
    removing = edit.option == "remove"
    world = not removing and nominal(edit.type, edit.option).needs_world
    rate = min(sample_rate, _WORLD_MAX_RATE if world else _PSOLA_MAX_RATE)
    analysis = analyse(resample(mono, sample_rate, rate), rate)
    if removing:
        recipe = _neutral_recipe(edit.type, analysis, edit.iterations)
    else:
        recipe = recipe_for(edit.type, edit.option, edit.iterations, analysis.median_f0)
    seed = zlib.crc32(f"{edit.type}:{edit.option}:{edit.iterations}".encode())

    def stage(fraction: float, name: str) -> None:
        progress(0.1 + 0.85 * fraction, name)

    y, _ = apply_recipe(analysis, recipe, seed, stage)
    out = _set_loudness(y, rate, input_lufs + recipe.intensity_db)
    info: dict[str, object] = {
        "recipe": recipe.name,
        "renderer": "world" if recipe.needs_world else "psola",
    }
    if removing and np.mean(analysis.voiced) < 0.15:
        info["note"] = "the clip is almost unvoiced (whispered?); its voicing cannot be restored"
    progress(1.0, "done")
    channels = audio.shape[0] if audio.ndim == 2 else 1
    return Rendered(
        np.repeat(out, channels, axis=0),
        rate,
        loudness_offset_db=recipe.intensity_db,
        info=info,
    )
