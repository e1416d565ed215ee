"""StepEdit edits as pedalboard-style effects, a chain that mixes them with pedalboard's
plugins, and whole-file processing through ``pedalboard.io.AudioFile``.

``pedalboard.Pedalboard`` holds only its native plugins (its constructor refuses any other
object, and a Python subclass of a plugin is called natively, its ``process`` bypassed;
checked with pedalboard 0.9), so ``Chain`` takes both.

Example:
    >>> from pedalboard import Compressor, HighpassFilter
    >>> from bridge.pedalboard_effect import Chain, StepEdit, process_file
    >>> chain = Chain([HighpassFilter(80), StepEdit(emotion="happy", iterations=2), Compressor()])
    >>> edited = chain(audio, sample_rate)  # float32 (channels, samples)
    >>> process_file("take.flac", "take-happy.flac", chain)
"""

from __future__ import annotations

import functools
import logging
import tempfile
from collections.abc import Iterable, MutableSequence, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal, overload

import numpy as np
import pedalboard
import soundfile
from pedalboard.io import AudioFile

from bridge import auth, protocol
from bridge.client import ClientError, StepEditClient, new_job_id
from bridge.edit_flags import edit_from_flags
from bridge.remote import PathMap, audio_travels, run_with_upload
from engine.edits import parse_edit

if TYPE_CHECKING:
    from engine.backends.base import Backend

__all__ = ["Chain", "Mode", "StepEdit", "process_file"]

_LOG = logging.getLogger(__name__)

Mode = Literal["engine", "in_process"]


class StepEdit:
    """One edit as an effect: ``effect(audio, sample_rate)`` or ``effect.process(...)``.

    Name exactly one edit by keyword: ``emotion=``, ``style=``, ``speed=``,
    ``paralinguistic=`` (or ``tag=``; with ``position=``), ``denoise=True``, ``vad=True``,
    ``clone="new words"``, ``as_text="the transcript as it should be"``, ``fillers=True``.

    The edit renders on a resident engine when one answers a ping within ``ping_timeout``,
    else here, in this process, through the engine's own pipeline (``mode`` says which);
    both give the same audio for the same backend. For the engine the audio is written as a
    32-bit float WAV in a temporary folder: one on this machine, which an engine on
    loopback reads and writes its result to, or ``shared_dir`` when the engine sees that
    folder at the same path. An engine that cannot read it (not on loopback and no
    ``shared_dir``, or ``remote=True``) gets the WAV's bytes over TCP and sends the result
    back (``bridge.remote.run_with_upload``, signed with ``secret``); ``sends_audio`` says
    which. Float WAVs both ways: the audio is not quantised either way.

    Unlike pedalboard's plugins, an edit works on a whole take and may change its length
    (speed, silence removal, insertions): use the returned array's length. It keeps no
    state between calls, so ``reset`` does nothing.

    Args:
        emotion: e.g. ``"happy"``.
        style: e.g. ``"whisper"``.
        speed: ``"faster"``, ``"slower"``, ``"more faster"`` or ``"more slower"``.
        paralinguistic: A tag to insert, e.g. ``"Laughter"``, at ``position``.
        tag: Another name for ``paralinguistic``.
        denoise: Remove background noise.
        vad: Remove silences.
        clone: Say this text in the clip's voice.
        as_text: Edit as text: the transcript as it should be (``text``: as it was).
        fillers: Remove um, uh, 嗯 ... and their pauses.
        mask: What ``{masked}`` words of an ``as_text`` edit become.
        iterations: 1-5 passes; each strengthens the edit.
        text: Transcript of the input.
        position: Insertion time(s) in seconds.
        language: ``auto``, ``en`` or ``zh``.
        keep_length: Fit the result to the input's duration.
        in_process: ``None``: the engine when it answers, else here; ``True``: always here;
            ``False``: always the engine.
        remote: Send the audio to the engine even on loopback (as for an engine on
            another machine), unless ``shared_dir`` is given.
        host: The engine's address.
        port: Its port.
        secret: The engine's secret (``stepedit secret``), to sign requests; ``None``
            sends plain ones, which only a loopback engine takes.
        key_id: The secret's name in the engine's keyring.
        timeout: Seconds to wait for the engine to answer a request.
        ping_timeout: Seconds to wait for a ping when choosing where to render.
        shared_dir: A folder the engine sees at the same path (shared storage): the
            audio goes by path, not over TCP.
        backend: The backend of in-process renders (loaded once per process).

    Attributes:
        sends_audio: Whether the engine gets the audio itself rather than a path.

    Raises:
        ValueError: not exactly one edit named, or both ``paralinguistic`` and ``tag``.
        engine.errors.EditError: the edit is invalid (a ``ValueError``).
    """

    def __init__(
        self,
        *,
        emotion: str | None = None,
        style: str | None = None,
        speed: str | None = None,
        paralinguistic: str | None = None,
        tag: str | None = None,
        denoise: bool = False,
        vad: bool = False,
        clone: str | None = None,
        as_text: str | None = None,
        fillers: bool = False,
        mask: str | None = None,
        iterations: int = 1,
        text: str | None = None,
        position: float | Sequence[float] | None = None,
        language: str | None = None,
        keep_length: bool = False,
        in_process: bool | None = None,
        remote: bool = False,
        host: str = "127.0.0.1",
        port: int = protocol.DEFAULT_PORT,
        secret: str | None = None,
        key_id: str = auth.DEFAULT_KEY_ID,
        timeout: float = 5.0,
        ping_timeout: float = 0.3,
        shared_dir: str | Path | None = None,
        backend: str = "cpu",
    ) -> None:
        if paralinguistic and tag:
            raise ValueError("give paralinguistic= or tag=, not both")
        self.edit = edit_from_flags(
            emotion=emotion,
            style=style,
            speed=speed,
            paralinguistic=paralinguistic or tag,
            denoise=denoise,
            vad=vad,
            clone=clone,
            as_text=as_text,
            fillers=fillers,
            mask=mask,
            iterations=iterations,
            text=text,
            position=position,
            language=language,
            keep_length=keep_length,
        )
        parse_edit(self.edit)
        self.host, self.port, self.timeout, self.ping_timeout = host, port, timeout, ping_timeout
        self._secret = None if secret is None else auth.check_secret(secret)
        self.key_id = key_id
        self.shared_dir = None if shared_dir is None else Path(shared_dir)
        self.backend = backend
        folder = str(self.shared_dir or tempfile.gettempdir())
        self.sends_audio = audio_travels(
            host,
            {"input": folder, "output_dir": folder},
            remote=remote,
            maps=[PathMap(folder, folder)] if self.shared_dir else [],
        )
        self._mode: Mode | None = "in_process" if in_process else None
        self._engine_required = in_process is False

    def __repr__(self) -> str:
        where: str = self._mode or "engine if reachable"
        if self.sends_audio and where != "in_process":
            where += ", audio sent"
        return f"StepEdit({self.edit!r}, {where}, engine={self.host}:{self.port})"

    @property
    def mode(self) -> Mode:
        """``"engine"`` or ``"in_process"``: where the next call renders (pings the engine
        the first time it is asked, unless ``in_process`` decided it). ``"engine"`` is a
        remote one too: ``sends_audio`` says whether the audio travels to it.

        Raises:
            bridge.client.ClientError: the engine refuses the ping (``unauthorized``: give
                ``secret``), or, with ``in_process=False``, does not answer.
        """
        if self._mode is None:
            self._mode = "engine" if self._engine_answers() else "in_process"
        return self._mode

    def _engine_answers(self) -> bool:
        if self._engine_required:
            return True
        try:
            with self._client(self.ping_timeout) as client:
                client.ping()
        except ClientError as e:
            if e.code != "no_engine":
                raise
            _LOG.info("no engine at %s:%d: rendering in-process", self.host, self.port)
            return False
        return True

    def _client(self, timeout: float) -> StepEditClient:
        """A client of the engine: over TCP when the audio travels (as it must), else UDP."""
        return StepEditClient(
            self.host,
            self.port,
            timeout=timeout,
            secret=self._secret,
            key_id=self.key_id,
            transport="tcp" if self.sends_audio else "udp",
        )

    def process(
        self,
        input_array: np.ndarray,
        sample_rate: float,
        buffer_size: int = 8192,
        reset: bool = True,
    ) -> np.ndarray:
        """Renders the edit on ``input_array``.

        Args:
            input_array: ``(channels, samples)``, ``(samples, channels)`` when the first
                dimension is the longer (as pedalboard guesses), or 1-D mono.
            sample_rate: Its rate in Hz.
            buffer_size: Ignored: an edit works on the whole array at once.
            reset: Ignored: nothing is kept between calls.

        Returns:
            ``float32`` in the input's layout, at its rate and channel count.

        Raises:
            bridge.client.ClientError: the engine's error code and message.
            engine.errors.StepEditError: the same codes, from an in-process render.
        """
        samples = np.asarray(input_array, dtype=np.float32)
        if samples.ndim not in (1, 2):
            raise ValueError(f"expected a 1-D or 2-D array, got shape {samples.shape}")
        channels_last = samples.ndim == 2 and samples.shape[0] > samples.shape[1]
        planar = np.ascontiguousarray(samples.T if channels_last else np.atleast_2d(samples))
        rate = round(sample_rate)
        if self.mode == "in_process":
            edited = self._render_here(planar, rate)
        else:
            try:
                edited = self._render_on_engine(planar, rate)
            except ClientError as e:
                if e.code != "no_engine" or self._engine_required:
                    raise
                _LOG.warning("the engine stopped answering (%s): rendering in-process", e)
                self._mode = "in_process"
                edited = self._render_here(planar, rate)
        if samples.ndim == 1:
            return edited[0]
        return np.ascontiguousarray(edited.T) if channels_last else edited

    __call__ = process

    def reset(self) -> None:
        """Does nothing: an edit keeps no state between calls (pedalboard's plugins do)."""

    def _render_on_engine(self, samples: np.ndarray, rate: int) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="stepedit-", dir=self.shared_dir) as folder:
            source = Path(folder) / "input.wav"
            soundfile.write(source, samples.T, rate, subtype="FLOAT")
            request = {"input": str(source), "edit": self.edit, "output_dir": folder}
            with self._client(self.timeout) as client:
                if self.sends_audio:
                    outcome = run_with_upload(client, protocol.ADDRESS["edit"], request)
                else:
                    outcome = client.edit(request, job_id=new_job_id())
            edited, _ = soundfile.read(outcome.output_path, dtype="float32", always_2d=True)
        return np.ascontiguousarray(edited.T)

    def _render_here(self, samples: np.ndarray, rate: int) -> np.ndarray:
        from engine.audio import check_samples
        from engine.capabilities import check_supported
        from engine.pipeline import render_audio

        check_samples(samples, "the audio")
        edit = parse_edit(self.edit)
        backend = _loaded_backend(self.backend)
        check_supported(backend, edit)
        return render_audio(backend, samples, rate, edit, lambda _f, _s: None).audio


@functools.cache
def _loaded_backend(name: str) -> Backend:
    """One loaded backend per name and process: loading costs far more than a render."""
    from engine.backends import create_backend

    backend = create_backend(name)
    backend.load()
    return backend


Processor = pedalboard.Plugin | StepEdit


class Chain(MutableSequence[Processor]):
    """``pedalboard.Pedalboard`` for lists that hold ``StepEdit`` effects too.

    Runs of pedalboard plugins are processed as one ``Pedalboard`` (its own buffering and
    latency compensation); a ``StepEdit`` takes the whole array between them. A list, as
    ``Pedalboard`` is: index, ``append``, ``insert``, ``remove``, ``len``, iteration.

    Args:
        plugins: pedalboard plugins (a ``Pedalboard`` too) and ``StepEdit`` effects.

    Raises:
        TypeError: an item is neither.
    """

    def __init__(self, plugins: Iterable[Processor] = ()) -> None:
        self._items: list[Processor] = []
        self.extend(plugins)

    def __repr__(self) -> str:
        return f"Chain({self._items!r})"

    @overload
    def __getitem__(self, index: int) -> Processor: ...
    @overload
    def __getitem__(self, index: slice) -> Chain: ...
    def __getitem__(self, index: int | slice) -> Processor | Chain:
        if isinstance(index, slice):
            return Chain(self._items[index])
        return self._items[index]

    def __setitem__(self, index: int, item: Processor) -> None:  # type: ignore[override]
        self._items[index] = _checked(item)

    def __delitem__(self, index: int | slice) -> None:
        del self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def insert(self, index: int, item: Processor) -> None:
        self._items.insert(index, _checked(item))

    def process(
        self,
        input_array: np.ndarray,
        sample_rate: float,
        buffer_size: int = 8192,
        reset: bool = True,
    ) -> np.ndarray:
        """Runs ``input_array`` through every item in order.

        Args:
            input_array: As ``pedalboard.Pedalboard.process`` takes it (``(channels,
                samples)``, ``(samples, channels)`` or 1-D), any float dtype.
            sample_rate: Its rate in Hz.
            buffer_size: Block size of the pedalboard plugins.
            reset: Reset the pedalboard plugins first (``False`` keeps their tails between
                calls, as pedalboard's streaming use does).

        Returns:
            ``float32`` in the input's layout; its length may differ (``StepEdit``).
        """
        audio = np.asarray(input_array, dtype=np.float32)
        plugins: list[pedalboard.Plugin] = []
        for item in [*self._items, None]:
            if isinstance(item, pedalboard.Plugin):
                plugins.append(item)
                continue
            if plugins:
                board = pedalboard.Pedalboard(plugins)
                audio = board.process(audio, sample_rate, buffer_size=buffer_size, reset=reset)
                plugins = []
            if item is not None:
                audio = item.process(audio, sample_rate)
        return audio

    __call__ = process

    def reset(self) -> None:
        """Clears every item's internal state (reverb tails, compressor envelopes)."""
        for item in self._items:
            item.reset()


def _checked(item: object) -> Processor:
    if not isinstance(item, pedalboard.Plugin | StepEdit):
        raise TypeError(
            f"a Chain holds pedalboard plugins and StepEdit effects, got {type(item).__name__}"
        )
    return item


def process_file(
    source: str | Path,
    destination: str | Path,
    chain: Chain | StepEdit | pedalboard.Plugin,
    *,
    bit_depth: int | None = None,
    quality: str | float | None = None,
) -> Path:
    """Reads ``source`` whole, runs ``chain`` on it and writes the result as a new file.

    Every format ``pedalboard.io.AudioFile`` reads (WAV, AIFF, FLAC, MP3, Ogg Vorbis; see
    ``pedalboard.io.get_supported_read_formats()``) and writes (WAV, AIFF, FLAC, MP3, Ogg
    Vorbis), chosen by the suffix. Nothing is overwritten: when ``destination`` exists the
    result gets the next free name (``take-2.flac``), written atomically either way.

    Args:
        source: The file to read.
        destination: The file to write; its folder must exist.
        chain: What to run: a ``Chain``, a ``StepEdit`` or a pedalboard plugin.
        bit_depth: Bits per sample of a WAV, AIFF or FLAC result; default the source's
            (24 at most for FLAC and AIFF, 32 meaning float for WAV).
        quality: Encoder quality of an MP3 or Ogg result (pedalboard's ``quality``).

    Returns:
        The path written.

    Raises:
        ValueError: pedalboard cannot write the destination's format.
        engine.errors.OutputError: the folder is missing or not writable.
    """
    from engine.audio import write_new_file

    destination = Path(destination)
    suffix = destination.suffix.lower()
    if suffix not in pedalboard.io.get_supported_write_formats():
        raise ValueError(
            f"cannot write {destination.name}: pedalboard writes "
            f"{', '.join(pedalboard.io.get_supported_write_formats())}"
        )
    with AudioFile(str(source)) as f:
        audio, rate, file_dtype = f.read(f.frames), f.samplerate, f.file_dtype
    edited = chain.process(audio, rate)
    depth = bit_depth or _SOURCE_BITS.get(file_dtype, 16)
    if suffix in (".flac", ".aiff"):
        depth = min(depth, 24)

    def write(out: BinaryIO) -> None:
        with AudioFile(
            out, "w", rate, edited.shape[0], bit_depth=depth, quality=quality, format=suffix[1:]
        ) as f:
            f.write(edited)

    return write_new_file(destination.parent, destination.stem, destination.suffix, write)


# Bits per sample of a result, by the source's sample type (AudioFile's ``file_dtype``).
_SOURCE_BITS = {"int8": 8, "int16": 16, "int24": 24, "int32": 24, "float32": 32, "float64": 32}
