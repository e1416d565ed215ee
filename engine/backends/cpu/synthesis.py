"""Voice-quality additions to PSOLA renders, and WORLD where the voice itself must change.

PSOLA (:mod:`psola`) keeps the recorded waveform (noise floor, room tone, the band above
16 kHz, clean onsets) and moves only pitch marks. Voice quality is added on top of it, as
shaped noise: breathiness mixes in aspiration noise that carries the output's own spectral
envelope (creak is the irregular half-F0 the plan already asks for, and formant warps
resample the source before PSOLA). WORLD, which issue 13 measured at 0.3-0.9 DNSMOS OVRL
lost on average with a click train in pauses and nothing above 16 kHz, is left for whisper
(no voicing to keep) and large vocal-tract changes (the child voice), whose pauses and top
band the caller takes from PSOLA."""

from __future__ import annotations

import numpy as np
import pyworld
from scipy import signal
from scipy.ndimage import uniform_filter1d

from engine.audio import fit_length, resample
from engine.backends.cpu.analysis import FRAME_PERIOD, Analysis
from engine.backends.cpu.targets import RenderPlan
from engine.dsp import broaden_envelope

__all__ = ["WORLD_MAX_RATE", "add_breath", "world_render"]

# WORLD runs at most at this rate (16 kHz of band; 48 kHz cost 2.5 times as much, survey §2).
WORLD_MAX_RATE = 32000
# Added to D4C's aperiodicity in every voiced WORLD render. Measured: plain copy-synthesis
# raised Praat HNR by 1.1-3.1 dB on three clips (the resynthesis is more periodic than the
# voice was); +0.1 brings it back within 0.6 dB.
_AP_CALIBRATION = 0.1
# Standard deviation (Hz) of the smoothing that broadens the formants of whispered speech
# (enough to keep the voiced-frame share under 10 %; wider cost speaker similarity).
_WHISPER_BANDWIDTH_HZ = 60.0
# Breath noise: amplitude relative to the voice per unit of ``RenderPlan.breath`` (on WORLD's
# aperiodicity scale; 2.0 gives the HNR drop the WORLD renders gave: -1.6 dB for sad's
# 0.15 on the male test clip) and the band it fills (from 100 Hz, full from 500 Hz: a
# noise confined above 1-2 kHz, where aspiration is loudest, left Praat's HNR unchanged,
# as most of the voice's energy is lower), and the width (Hz) over which the voice's
# spectrum is smoothed into an envelope (wider than the harmonic spacing of a low voice, so
# no harmonics are copied).
_BREATH_GAIN = 2.0
_BREATH_LOW_HZ, _BREATH_FULL_HZ = 100.0, 500.0
_BREATH_SMOOTH_HZ = 400.0
_BREATH_WINDOW_S = 0.02


def add_breath(y: np.ndarray, sample_rate: int, breath: np.ndarray, seed: int) -> np.ndarray:
    """Mixes aspiration noise into voiced speech.

    The noise is the voice's own short-time spectrum smoothed over frequency (no harmonics)
    with random phase, high-passed like glottal turbulence, so it follows every formant and
    every change of level sample-exactly. The voice is turned down as the noise comes up, so
    the level stays.

    Args:
        y: Mono rendered speech.
        sample_rate: Its rate in Hz.
        breath: Breath amount per sample of ``y`` (0 = none; WORLD aperiodicity scale).
        seed: Seeds the random phases.

    Returns:
        ``y`` with the noise, ``float32``.
    """
    amount = np.clip(_BREATH_GAIN * breath, 0.0, 0.9)
    if not np.any(amount > 0):
        return y
    window = 2 ** int(np.ceil(np.log2(_BREATH_WINDOW_S * sample_rate)))
    freqs, _, spectrum = signal.stft(y, sample_rate, nperseg=window, noverlap=3 * window // 4)
    bins = max(1, round(_BREATH_SMOOTH_HZ / (freqs[1] - freqs[0])))
    # A running mean can land a hair below zero where the band is empty (a 22 kHz take
    # played at 48 kHz), and its square root would be NaN.
    power = np.maximum(uniform_filter1d(np.abs(spectrum) ** 2, bins, axis=0, mode="nearest"), 0)
    band = np.clip((freqs - _BREATH_LOW_HZ) / (_BREATH_FULL_HZ - _BREATH_LOW_HZ), 0.0, 1.0)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, spectrum.shape)
    noisy = np.sqrt(power) * band[:, np.newaxis] * np.exp(1j * phase)
    _, noise = signal.istft(noisy, sample_rate, nperseg=window, noverlap=3 * window // 4)
    noise = fit_length(noise[np.newaxis, :], len(y))[0]
    out = y * np.sqrt(1 - amount**2) + amount * noise
    return out.astype(np.float32)


def world_render(
    analysis: Analysis, targets: RenderPlan, warp: float = 1.0, whisper: bool = False
) -> np.ndarray:
    """Re-synthesises with WORLD: F0, timing, breath and gains of the plan, warped envelope.

    Runs at :data:`WORLD_MAX_RATE` at most (the caller takes the band above from PSOLA).

    Args:
        analysis: The clip and its analysis.
        targets: The plan.
        warp: Frequency scale of the spectral envelope (``sp'(f) = sp(f / warp)``).
        whisper: Breath noise only (F0 0, aperiodicity 1) through a broadened envelope.

    Returns:
        Mono ``float32`` samples at ``analysis.sample_rate``.
    """
    rate = min(analysis.sample_rate, WORLD_MAX_RATE)
    x = resample(analysis.signal.astype(np.float32), analysis.sample_rate, rate)
    x = np.ascontiguousarray(x, dtype=np.float64)
    f0 = np.ascontiguousarray(analysis.f0)
    sp = pyworld.cheaptrick(x, f0, analysis.times, rate)
    sp = sp * 10 ** (targets.gain_db[:, np.newaxis] / 10)
    bins = sp.shape[1]
    if warp != 1.0:
        axis = np.clip(np.arange(bins) / warp, 0, bins - 1)
        lo = np.floor(axis).astype(int)
        hi = np.minimum(lo + 1, bins - 1)
        w = axis - lo
        sp = sp[:, lo] * (1 - w) + sp[:, hi] * w
    if whisper:
        sp = broaden_envelope(sp, rate, _WHISPER_BANDWIDTH_HZ)
        ap = np.ones_like(sp)
    else:
        ap = pyworld.d4c(x, f0, analysis.times, rate)
        ap = np.clip(ap + _AP_CALIBRATION + targets.breath[:, np.newaxis], 0.001, 1.0)
    position = targets.source_position((np.arange(targets.output_frames) + 0.5) * FRAME_PERIOD)
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, len(sp) - 1)
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
    if whisper:
        f0_out[:] = 0.0
    y = pyworld.synthesize(
        np.ascontiguousarray(f0_out),
        np.ascontiguousarray(sp_out),
        np.ascontiguousarray(ap_out),
        rate,
        FRAME_PERIOD * 1000,
    )
    return resample(y.astype(np.float32), rate, analysis.sample_rate)
