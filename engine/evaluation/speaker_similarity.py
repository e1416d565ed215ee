"""Speaker similarity with resemblyzer's bundled voice encoder, run in numpy without torch.

resemblyzer ships ``pretrained.pt`` (a 3-layer, 256-unit LSTM over 40 mel bands) but its
package imports torch, so the file is located with ``importlib.util.find_spec`` (which does
not execute the package) and its legacy torch pickle is read here (survey gotchas 3-4;
install with ``pip install --no-deps resemblyzer==0.1.4``). Preprocessing follows
resemblyzer (16 kHz, long silences trimmed, 1.6 s partials at 1.3 per second, L2-normalised
mean of the partial embeddings) except that the volume is normalised to -30 dBFS both ways:
resemblyzer only raises it, and as the network sees linear mel power, a quieter edit (whisper,
murmur) would otherwise score as a different voice for its level alone. ``threadpoolctl``
(optional) keeps the small LSTM products on one BLAS thread.
"""

from __future__ import annotations

import functools
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.audio import resample, to_mono
from engine.dsp import frame_rms_db, runs, slaney_mel_filters
from engine.errors import BackendError
from engine.evaluation.features import power_spectrogram
from engine.evaluation.packaged import packaged_file

__all__ = ["VoiceEncoder", "load_state_dict", "speaker_similarity"]

_LOG = logging.getLogger(__name__)

_RATE = 16000
_N_FFT, _HOP = 400, 160  # 25 ms windows every 10 ms
_N_MELS = 40
_PARTIAL_FRAMES = 160  # 1.6 s
_PARTIALS_PER_S = 1.3
_MIN_COVERAGE = 0.75
_TARGET_DBFS = -30.0
# Silences longer than this (s) are cut before embedding, like resemblyzer's VAD trimming.
_MAX_SILENCE_S = 0.2
_INSTALL_HINT = "pip install --no-deps resemblyzer==0.1.4"


@dataclass
class _Storage:
    dtype: np.dtype
    size: int
    data: np.ndarray | None = None


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def materialise(self) -> np.ndarray:
        if self.storage.data is None:
            raise BackendError("torch checkpoint storage was never read")
        if not self.shape:
            return self.storage.data[self.offset : self.offset + 1].reshape(())
        item = self.storage.data.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(s * item for s in self.stride),
        )
        return np.array(view)


_STORAGE_TYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StateDict(dict):
    """A dict that also takes attributes (torch pickles ``_metadata`` onto state dicts)."""


class _TorchUnpickler(pickle.Unpickler):
    """Unpickles a legacy (pre-zip) ``torch.save`` object without torch."""

    def __init__(self, file: Any) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch._utils" and name in {"_rebuild_tensor", "_rebuild_tensor_v2"}:
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return np.dtype(_STORAGE_TYPES[name])
        if module == "collections" and name == "OrderedDict":
            return _StateDict
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, *_args: data
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the checkpoint")

    def persistent_load(self, saved_id: Any) -> Any:
        kind, dtype, key, _location, size, _view = saved_id
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(np.dtype(dtype), int(size))
        return self.storages[key]


def _rebuild_tensor(
    storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...], *_: Any
) -> _LazyTensor:
    return _LazyTensor(storage, offset, tuple(shape), tuple(stride))


def load_state_dict(path: Path) -> dict[str, Any]:
    """Reads a legacy ``torch.save`` file into numpy arrays (nested dicts kept).

    Raises:
        BackendError: when the file is not a legacy torch checkpoint.
    """
    with path.open("rb") as f:
        try:
            # Every part goes through the restricted unpickler: it only builds tensors.
            for _ in range(3):  # magic number, protocol version, system info
                _TorchUnpickler(f).load()
            unpickler = _TorchUnpickler(f)
            result = unpickler.load()
            keys = _TorchUnpickler(f).load()
            for key in keys:
                storage = unpickler.storages[key]
                count = int(np.frombuffer(f.read(8), dtype="<i8")[0])
                storage.data = np.frombuffer(f.read(count * storage.dtype.itemsize), storage.dtype)
        except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as e:
            raise BackendError(f"{path} is not a legacy torch checkpoint: {e}") from e

    def convert(value: Any) -> Any:
        if isinstance(value, _LazyTensor):
            return value.materialise()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    return convert(result)


def _weights_path() -> Path:
    return packaged_file(
        "resemblyzer",
        "pretrained.pt",
        "speaker similarity needs resemblyzer's weights",
        _INSTALL_HINT,
    )


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class VoiceEncoder:
    """resemblyzer's GE2E voice encoder in numpy."""

    def __init__(self, weights: Path | None = None) -> None:
        state = load_state_dict(weights or _weights_path())
        model = state.get("model_state", state)
        self._layers = [
            (
                model[f"lstm.weight_ih_l{k}"].T.astype(np.float32),
                model[f"lstm.weight_hh_l{k}"].T.astype(np.float32),
                (model[f"lstm.bias_ih_l{k}"] + model[f"lstm.bias_hh_l{k}"]).astype(np.float32),
            )
            for k in range(3)
        ]
        self._linear = (
            model["linear.weight"].T.astype(np.float32),
            model["linear.bias"].astype(np.float32),
        )
        self._mel = slaney_mel_filters(_RATE, _N_FFT, _N_MELS)

    def _forward(self, mels: np.ndarray) -> np.ndarray:
        """``(batch, frames, 40)`` mel frames -> ``(batch, 256)`` L2-normalised embeddings."""
        x = mels
        for w_ih, w_hh, bias in self._layers:
            hidden = np.zeros((x.shape[0], w_hh.shape[0]), dtype=np.float32)
            cell = np.zeros_like(hidden)
            inputs = x @ w_ih + bias
            outputs = np.empty((x.shape[0], x.shape[1], hidden.shape[1]), dtype=np.float32)
            for t in range(x.shape[1]):
                gates = inputs[:, t] + hidden @ w_hh
                i, f, g, o = np.split(gates, 4, axis=1)
                cell = _sigmoid(f) * cell + _sigmoid(i) * np.tanh(g)
                hidden = _sigmoid(o) * np.tanh(cell)
                outputs[:, t] = hidden
            x = outputs
        raw = np.maximum(x[:, -1] @ self._linear[0] + self._linear[1], 0.0)
        return raw / (np.linalg.norm(raw, axis=1, keepdims=True) + 1e-12)

    def _forward_single_threaded(self, mels: np.ndarray) -> np.ndarray:
        """Runs the network with one BLAS thread: its 480 tiny matrix products slow down
        by 10-50x when OpenBLAS wakes its thread pool for each (worst on a busy machine)."""
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            _LOG.debug("threadpoolctl missing: the voice encoder may run slowly")
            return self._forward(mels)
        with threadpool_limits(limits=1, user_api="blas"):
            return self._forward(mels)

    def embed(self, audio: np.ndarray, sample_rate: int) -> np.ndarray:
        """Utterance embedding (256 values, unit length) of ``(channels, n)`` or 1-D audio."""
        wav = _preprocess(audio, sample_rate)
        samples_per_frame = _HOP
        n_frames = int(np.ceil((len(wav) + 1) / samples_per_frame))
        step = max(1, round(_RATE / _PARTIALS_PER_S / samples_per_frame))
        starts = list(range(0, max(1, n_frames - _PARTIAL_FRAMES + step + 1), step))
        last = starts[-1] * samples_per_frame
        coverage = (len(wav) - last) / (_PARTIAL_FRAMES * samples_per_frame)
        if coverage < _MIN_COVERAGE and len(starts) > 1:
            starts = starts[:-1]
        needed = (starts[-1] + _PARTIAL_FRAMES) * samples_per_frame
        wav = np.pad(wav, (0, max(0, needed - len(wav))))
        mel = power_spectrogram(wav, _N_FFT, _HOP) @ self._mel.T
        mels = np.stack([mel[s : s + _PARTIAL_FRAMES] for s in starts]).astype(np.float32)
        partial = self._forward_single_threaded(mels)
        mean = partial.mean(axis=0)
        return mean / np.linalg.norm(mean)


def _preprocess(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    wav = resample(to_mono(np.atleast_2d(audio)), sample_rate, _RATE).astype(np.float64)
    rms = np.sqrt(np.mean(wav**2)) + 1e-12
    wav = wav * 10 ** ((_TARGET_DBFS - 20 * np.log10(rms)) / 20)
    level = frame_rms_db(wav, _RATE, hop=0.01, window=0.03)
    quiet = level < max(np.percentile(level, 95) - 35.0, np.percentile(level, 10) + 6.0)
    keep = np.ones(len(wav), dtype=bool)
    longest = round(_MAX_SILENCE_S / 0.01)
    for a, b in runs(quiet):
        if b - a > longest:
            keep[(a + longest // 2) * _HOP : (b - longest // 2) * _HOP] = False
    trimmed = wav[keep]
    return trimmed if len(trimmed) >= _RATE // 2 else wav


@functools.lru_cache(maxsize=1)
def _encoder() -> VoiceEncoder:
    return VoiceEncoder()


def speaker_similarity(
    reference: np.ndarray, reference_rate: int, other: np.ndarray, other_rate: int
) -> float:
    """Cosine similarity of the two clips' voice embeddings (same speaker: about 0.85-0.95).

    Raises:
        BackendError: when resemblyzer's weights are not installed (with the install line).
    """
    encoder = _encoder()
    return float(np.dot(encoder.embed(reference, reference_rate), encoder.embed(other, other_rate)))
