"""Applies an emotion/style recipe: targets, re-synthesis, voice quality, effects, level.

Recipes are rendered by TD-PSOLA (:mod:`psola`), which keeps the recorded
waveform; formant warps, breathiness and creak are added pitch-synchronously or as noise
shaped by the voice itself. Whisper, which removes the voicing, and the child voice, whose
vocal tract only WORLD's envelope warp shortens enough, are re-synthesised by WORLD (at
32 kHz at most; the band above comes from the PSOLA render of the same plan); a take whose
recorded band ends below its rate (an archive transfer, a 22 kHz recording in a 48 kHz
session) gets nothing above that edge (:mod:`bandwidth`). A brighter
recipe brightens the voice, not the noise under it (:mod:`voice_tilt`). After the
level is set, the pauses of the result are replaced by the source's own pauses
(time-mapped, at the source's level), and between them whatever sits near the source's
noise floor is held to the source's level, so room tone and noise floor stay as recorded
whatever the recipe did to the voice (louder, compressed, whispered).

Channels: the analysis and the transform run on the mono mix, and the result is copied to
every input channel. Speech takes are near-mono, and applying one time map to channels
analysed separately would misalign them.
"""

from __future__ import annotations

import logging
import math
import zlib

import numpy as np
from scipy import signal

from engine.audio import fit_length, fit_loudness, integrated_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.cpu import nonverbal
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis, analyse
from engine.backends.cpu.bandwidth import limit_bandwidth, recorded_bandwidth
from engine.backends.cpu.effects import apply_chain
from engine.backends.cpu.psola import Psola
from engine.backends.cpu.recipes import Recipe, recipe_for, timing_kept, toward_neutral
from engine.backends.cpu.synthesis import WORLD_MAX_RATE, add_breath, world_render
from engine.backends.cpu.targets import RenderPlan, plan
from engine.backends.cpu.voice_tilt import apply_voice_tilt, room_spectrum
from engine.dsp import frame_rms_db, runs, smooth
from engine.edits import EditSpec

__all__ = ["apply_recipe", "render_expressive", "uses_world"]

_LOG = logging.getLogger(__name__)

# Rendering rate: the input's, up to 48 kHz, so the whole recorded band is kept.
_MAX_RATE = 48000
# Pause restoration: the rendered speech is kept this long (s) into a pause after a phrase
# and before the next one (decays, breaths and the effects' release), then cross-faded to the
# source's pause over _PAUSE_FADE_S. A reverberant chain keeps its tail longer.
_PAUSE_GUARD_S = 0.03
_PAUSE_FADE_S = 0.04
_TAIL_S = {"ethereal": 0.4}
# Between the restored pauses, where the source is within _FLOOR_NEAR_DB of its noise floor
# (its 10th-percentile frame level) the result is no louder than the source; the hold fades
# out by _FLOOR_FAR_DB. Levels in _FLOOR_WINDOW_S windows, gains smoothed over _FLOOR_SMOOTH
# frames (25 ms).
_FLOOR_NEAR_DB = 3.0
_FLOOR_FAR_DB = 9.0
_FLOOR_WINDOW_S = 0.02
_FLOOR_SMOOTH = 5
# Vocal-tract scale from which WORLD renders (child: x1.15-1.3).
_WORLD_WARP = 1.12
# Above this frequency (Hz) a formant-warped or WORLD render takes the plain PSOLA one
# (order 8 after zero-phase filtering): the formants that matter sit well below it.
_TOP_BAND_HZ = 12000.0
_TOP_BAND_ORDER = 4
# Voicing gate of the breath noise: smoothed over this many frames (no abrupt noise onsets).
_BREATH_GATE_FRAMES = 4


def apply_recipe(
    analysis: Analysis, recipe: Recipe, seed: int = 0, progress: Progress | None = None
) -> tuple[np.ndarray, RenderPlan]:
    """Renders ``recipe`` on an analysed clip (without its hesitation fillers).

    Args:
        analysis: The clip (mono) and its analysis.
        recipe: A concrete, already scaled recipe.
        seed: Seeds jitter, creak and breath noise (reproducible renders).
        progress: Optional progress callback.

    Returns:
        Mono ``float32`` audio at ``analysis.sample_rate`` (level not yet matched) and the
        plan, whose ``output_time`` maps source times onto the result.
    """
    y, targets, _ = _render(analysis, recipe, seed, progress)
    return y, targets


def _render(
    analysis: Analysis, recipe: Recipe, seed: int, progress: Progress | None
) -> tuple[np.ndarray, RenderPlan, Psola]:
    """:func:`apply_recipe`, plus the unwarped PSOLA of the clip, for the pauses."""
    report = progress or (lambda _f, _s: None)
    targets = plan(analysis, recipe, seed)
    report(0.3, "synthesis")
    rate = analysis.sample_rate
    plain = Psola(analysis)
    warp = _warp(recipe)
    if uses_world(recipe):
        y = world_render(analysis, targets, warp, recipe.whisper)
        if rate > WORLD_MAX_RATE:
            y = _with_top_band(y, plain.render(targets), rate)
    else:
        if warp == 1.0:
            y = plain.render(targets)
        else:
            y = Psola(analysis, warp).render(targets)
            if rate > 2 * _TOP_BAND_HZ:
                y = _with_top_band(y, plain.render(targets), rate)
        y = add_breath(y, rate, _breath_per_sample(analysis, targets, len(y)), seed)
    report(0.7, "effects")
    if recipe.tilt_db_per_oct:
        y = apply_voice_tilt(y, rate, recipe.tilt_db_per_oct, room_spectrum(analysis))
    y = apply_chain(y, analysis.sample_rate, recipe.effects)
    return y, targets, plain


def uses_world(recipe: Recipe) -> bool:
    """True for whisper and for a vocal-tract change of :data:`_WORLD_WARP` or more.

    On the female test clip, child's nominal x1.16 warp measured x1.067 done by resampling
    before PSOLA (Praat's "Change gender" gave x1.069, x1.078 even at x1.25); WORLD's
    envelope warp measured x1.084. Smaller warps (smiling, older, deeper) stay PSOLA.
    """
    return recipe.whisper or abs(math.log(_warp(recipe))) >= math.log(_WORLD_WARP)


def _warp(recipe: Recipe) -> float:
    """The envelope scale rendered: the F1-region warp counts by its square root."""
    return recipe.formant_warp * recipe.f1_warp**0.5


def _with_top_band(rendered: np.ndarray, plain: np.ndarray, sample_rate: int) -> np.ndarray:
    """``rendered`` below :data:`_TOP_BAND_HZ` and ``plain`` (PSOLA of the same plan, the
    source's own band) above it: a warp down leaves the top of the band empty, a warp up
    fills it from lower down, and WORLD stops at 16 kHz. Zero-phase Butterworth pair, power
    complementary (the two renders are not phase-locked).
    """
    plain = fit_length(plain[np.newaxis, :], len(rendered))[0]
    low = signal.butter(_TOP_BAND_ORDER, _TOP_BAND_HZ, "lowpass", fs=sample_rate, output="sos")
    high = signal.butter(_TOP_BAND_ORDER, _TOP_BAND_HZ, "highpass", fs=sample_rate, output="sos")
    out = signal.sosfiltfilt(low, rendered) + signal.sosfiltfilt(high, plain)
    return out.astype(np.float32)


def _output_positions(analysis: Analysis, targets: RenderPlan, samples: np.ndarray) -> np.ndarray:
    """Nearest source frame shown at each of the output ``samples`` (indices)."""
    times = (samples + 0.5) / analysis.sample_rate
    return np.rint(targets.source_position(times)).astype(int)


def _breath_per_sample(analysis: Analysis, targets: RenderPlan, count: int) -> np.ndarray:
    """The plan's breath offset on voiced frames (breathiness is a phonation), per sample."""
    voiced = smooth((targets.f0 > 0).astype(float), _BREATH_GATE_FRAMES)
    per_frame = np.maximum(targets.breath, 0.0) * voiced
    return per_frame[_output_positions(analysis, targets, np.arange(count))]


def _pause_weight(analysis: Analysis, targets: RenderPlan, count: int, tail_s: float) -> np.ndarray:
    """Per output sample, 1 inside the source's (time-mapped) silences, 0 in speech, faded."""
    rate = analysis.sample_rate
    pause = analysis.room_tone[_output_positions(analysis, targets, np.arange(count))]
    weight = np.zeros(count)
    fade = round(_PAUSE_FADE_S * rate)
    lead, lag = round((_PAUSE_GUARD_S + tail_s) * rate), round(_PAUSE_GUARD_S * rate)
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, fade))
    for a, b in runs(pause):
        start = a if a == 0 else a + lead
        stop = b if b == count else b - lag
        if stop - start < 2 * fade:
            continue
        weight[start:stop] = 1.0
        if a > 0:
            weight[start : start + fade] = ramp
        if b < count:
            weight[stop - fade : stop] = ramp[::-1]
    return weight


def _keep_background(
    y: np.ndarray, analysis: Analysis, targets: RenderPlan, psola: Psola, tail_s: float
) -> np.ndarray:
    """The source's background in ``y``: its pauses replaced by the source's own,
    time-mapped (PSOLA) at its level, and, unless the recipe leaves a tail (reverb), what
    lies near the source's noise floor held to the source's level (:func:`_floor_gain`)."""
    bed = fit_length(psola.retime(targets.durations)[np.newaxis, :], len(y))[0]
    weight = _pause_weight(analysis, targets, len(y), tail_s)
    if not tail_s:
        y = y * _floor_gain(y, bed, analysis, targets)
    return (y * (1 - weight) + bed * weight).astype(np.float32)


def _floor_gain(
    y: np.ndarray, bed: np.ndarray, analysis: Analysis, targets: RenderPlan
) -> np.ndarray:
    """Per sample, the gain that brings ``y`` down to the source's level (``bed``) where the
    source sits near its noise floor, fully within :data:`_FLOOR_NEAR_DB` of it, fading out
    by :data:`_FLOOR_FAR_DB`. The pauses the room tone finds are restored whole; in a noisy
    take they are few (voicing and the VAD read noise as speech), and the gaps between words
    took the recipe's level: shout raised a VCTK take's noise there by 13 dB.
    """
    rate = analysis.sample_rate
    floor = np.percentile(analysis.level_db, 10)
    near = np.clip(
        (floor + _FLOOR_FAR_DB - analysis.level_db) / (_FLOOR_FAR_DB - _FLOOR_NEAR_DB), 0, 1
    )
    step = round(FRAME_PERIOD * rate)
    frames = np.arange(0, len(y), step)
    near = near[np.clip(_output_positions(analysis, targets, frames), 0, len(near) - 1)]
    level = frame_rms_db(y, rate, hop=FRAME_PERIOD, window=_FLOOR_WINDOW_S)
    source = frame_rms_db(bed, rate, hop=FRAME_PERIOD, window=_FLOOR_WINDOW_S)
    cut_db = smooth(-np.maximum(level - source, 0.0) * smooth(near, _FLOOR_SMOOTH), _FLOOR_SMOOTH)
    return np.interp(np.arange(len(y)), frames, 10 ** (cut_db[: len(frames)] / 20))


def _insert_hesitations(
    analysis: Analysis, recipe: Recipe, targets: RenderPlan, y: np.ndarray
) -> np.ndarray:
    """Puts ``recipe.hesitations`` "Uhm" fillers into the longest pauses (or mid-clip).

    Inserted after the level is set and the pauses restored (the filler is matched to the
    loudness of the speech around it), so the time map still holds for both.
    """
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
    return toward_neutral(kind, analysis.f0_span(), pauses, iterations)


def render_expressive(
    audio: np.ndarray, sample_rate: int, edit: EditSpec, progress: Progress
) -> Rendered:
    """Renders an ``emotion`` or ``style`` edit (all its iterations) on ``(channels, n)``.

    Args:
        audio: ``float32 (channels, samples)`` at any rate.
        sample_rate: Its rate in Hz.
        edit: The edit; ``edit.type`` is ``"emotion"`` or ``"style"``. With
            ``keep_length`` the recipe's timing changes are left out
            (:func:`~engine.backends.cpu.recipes.timing_kept`); the engine fits what
            length is left (fillers, stress) to the slice.
        progress: Progress callback.

    Returns:
        Audio with the input's channel count at the working rate (the input's, at most
        48 kHz), its speech level set to the input loudness plus the recipe's intensity;
        pauses keep the input's level. ``loudness_offset_db`` is the loudness change the
        render reached (a loud take may end a little under its intensity rather than
        squashed), so the engine keeps it as it is instead of limiting it a second time.
    """
    mono = to_mono(audio)
    input_lufs = integrated_loudness(mono[np.newaxis, :], sample_rate)
    progress(0.0, "analysis")
    rate = min(sample_rate, _MAX_RATE)
    analysis = analyse(resample(mono, sample_rate, rate), rate)
    removing = edit.option == "remove"
    if removing:
        recipe = _neutral_recipe(edit.type, analysis, edit.iterations)
    else:
        recipe = recipe_for(edit.type, edit.option, edit.iterations, analysis.median_f0)
    if edit.keep_length:
        recipe = timing_kept(recipe)
    seed = zlib.crc32(f"{edit.type}:{edit.option}:{edit.iterations}".encode())

    def stage(fraction: float, name: str) -> None:
        progress(0.1 + 0.85 * fraction, name)

    y, targets, plain = _render(analysis, recipe, seed, stage)
    out = fit_loudness(y[np.newaxis, :], rate, input_lufs + recipe.intensity_db)[0]
    tail = _TAIL_S.get(recipe.effects, 0.0)
    out = _keep_background(out, analysis, targets, plain, tail)
    if recipe.hesitations:
        out = _insert_hesitations(analysis, recipe, targets, out)
    info: dict[str, object] = {
        "recipe": recipe.name,
        "renderer": "world" if uses_world(recipe) else "psola",
    }
    if edit.keep_length:
        info["timing"] = "kept: tempo, pauses and phrase ends left as recorded"
    if removing and np.mean(analysis.voiced) < 0.15:
        info["note"] = "the clip is almost unvoiced (whispered?); its voicing cannot be restored"
    edge = recorded_bandwidth(analysis.signal, rate)
    if edge is not None:
        out = limit_bandwidth(out[np.newaxis, :], rate, edge)[0]
    progress(1.0, "effects")
    reached = integrated_loudness(out[np.newaxis, :], rate) - input_lufs
    channels = audio.shape[0] if audio.ndim == 2 else 1
    return Rendered(
        np.repeat(out[np.newaxis, :], channels, axis=0),
        rate,
        loudness_offset_db=reached if math.isfinite(reached) else recipe.intensity_db,
        info=info,
    )
