"""The pedalboard-hosted wrapper: StepEdit, Chain and process_file, in-process and on a real
engine.

Equality with the engine is bit-exact: the audio reaches the engine as a 32-bit float WAV
(a file, or its bytes over TCP for a remote engine) and the engine writes float results for
float sources, so nothing is quantised on the way.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pedalboard
import pytest
import soundfile
from pedalboard import Compressor, Gain, HighpassFilter, Pedalboard
from pedalboard.io import AudioFile

from bridge.client import ClientError, StepEditClient
from bridge.launcher import EngineProcess, free_udp_port, start_engine, stop_engine
from bridge.pedalboard_effect import Chain, StepEdit, process_file
from engine.errors import EditError, StepEditError

pytestmark = pytest.mark.slow

CLIP = "en_vctk_p287_006_noisy.wav"  # 5 s, 16 kHz mono PCM 16


def read(path: Path) -> tuple[np.ndarray, float]:
    with AudioFile(str(path)) as f:
        return f.read(f.frames), f.samplerate


def engine_render(
    engine: EngineProcess, audio: np.ndarray, rate: float, folder: Path
) -> np.ndarray:
    """The engine's own render of ``emotion happy x2`` on ``audio``, through a file."""
    source = folder / "reference-input.wav"
    soundfile.write(source, audio.T, round(rate), subtype="FLOAT")
    edit = {"type": "emotion", "option": "happy", "iterations": 2}
    with StepEditClient(port=engine.port, timeout=5.0) as client:
        outcome = client.edit({"input": str(source), "edit": edit, "output_dir": str(folder)})
    edited, _ = soundfile.read(outcome.output_path, dtype="float32", always_2d=True)
    return np.ascontiguousarray(edited.T)


def test_pedalboard_itself_cannot_hold_a_python_effect() -> None:
    # Why Chain exists: Pedalboard refuses other objects, and calls plugin subclasses natively.
    with pytest.raises(TypeError):
        Pedalboard([HighpassFilter(80), StepEdit(denoise=True)])  # type: ignore[list-item]

    class Silence(Gain):
        def process(self, *args: object, **kwargs: object) -> np.ndarray:
            return np.zeros((1, 10), np.float32)

    ones = np.ones((1, 1000), np.float32)
    assert Pedalboard([Silence(gain_db=0)])(ones, 16000).max() == 1.0


@pytest.mark.parametrize("in_process", [True, None], ids=["in_process", "engine"])
def test_chain_equals_the_engines_render(
    engine: EngineProcess, data_dir: Path, tmp_path: Path, in_process: bool | None
) -> None:
    audio, rate = read(data_dir / CLIP)
    highpass, compressor = HighpassFilter(80), Compressor(threshold_db=-24, ratio=4)
    effect = StepEdit(emotion="happy", iterations=2, in_process=in_process, port=engine.port)
    got = Chain([highpass, effect, compressor])(audio, rate)
    assert effect.mode == ("in_process" if in_process else "engine")

    edited = engine_render(engine, Pedalboard([highpass])(audio, rate), rate, tmp_path)
    expected = Pedalboard([compressor])(edited, rate)
    assert got.dtype == np.float32 and got.shape[0] == 1
    np.testing.assert_array_equal(got, expected)


def test_effect_equals_the_engine_rendering_the_clip_itself(
    engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    # A float source reads the same through AudioFile and the engine (libsndfile), so the
    # engine's render of the file's first 6 s is the wrapper's, bit for bit. (Integer PCM
    # is scaled differently by the two readers, by up to 1.5e-5, so it is not compared.)
    clip = data_dir / "en_ami_meeting_trn04.wav"  # 32-bit float
    with AudioFile(str(clip)) as f:
        audio, rate = f.read(6 * round(f.samplerate)), f.samplerate
    request = {
        "input": str(clip),
        "length": 6.0,
        "edit": {"type": "speed", "option": "faster"},
        "output_dir": str(tmp_path),
    }
    with StepEditClient(port=engine.port, timeout=5.0) as client:
        outcome = client.edit(request)
    expected, _ = soundfile.read(outcome.output_path, dtype="float32", always_2d=True)
    got = StepEdit(speed="faster", in_process=True)(audio, rate)
    np.testing.assert_array_equal(got, expected.T)


def test_layouts_as_pedalboard_takes_them(data_dir: Path) -> None:
    stereo, rate = read(data_dir / "en_jfk_inaugural_1961.flac")
    stereo = stereo[:, : round(3 * rate)]
    effect = StepEdit(speed="faster", in_process=True)
    planar = effect(stereo, rate)
    assert planar.shape[0] == 2 and planar.shape[1] == pytest.approx(stereo.shape[1] / 1.25, abs=2)
    np.testing.assert_array_equal(effect.process(stereo.T, rate), planar.T)
    np.testing.assert_array_equal(
        effect(stereo[0].astype(np.float64), rate), effect(stereo[:1], rate)[0]
    )
    assert effect(stereo[0], rate).dtype == np.float32


@pytest.mark.parametrize(
    ("keywords", "edit"),
    [
        (
            {"emotion": "happy", "iterations": 2},
            {"type": "emotion", "option": "happy", "iterations": 2},
        ),
        ({"style": "whisper"}, {"type": "style", "option": "whisper", "iterations": 1}),
        ({"speed": "more faster"}, {"type": "speed", "option": "more faster", "iterations": 1}),
        ({"denoise": True}, {"type": "denoise", "iterations": 1}),
        ({"vad": True}, {"type": "vad", "iterations": 1}),
        (
            {"tag": "Laughter", "position": 1.5},
            {"type": "paralinguistic", "option": "Laughter", "iterations": 1, "position": 1.5},
        ),
        (
            {"paralinguistic": "Breathing", "position": [0.5, 2.0]},
            {
                "type": "paralinguistic",
                "option": "Breathing",
                "iterations": 1,
                "position": [0.5, 2.0],
            },
        ),
        (
            {"clone": "hello there"},
            {"type": "clone", "iterations": 1, "target_text": "hello there"},
        ),
        (
            {"as_text": "the {plan} is", "text": "so the plan is", "mask": "bleep"},
            {
                "type": "text",
                "option": "bleep",
                "iterations": 1,
                "text": "so the plan is",
                "target_text": "the {plan} is",
            },
        ),
        (
            {"fillers": True, "language": "en"},
            {"type": "fillers", "iterations": 1, "language": "en"},
        ),
    ],
)
def test_one_keyword_per_edit_type(keywords: dict[str, object], edit: dict[str, object]) -> None:
    assert StepEdit(in_process=True, **keywords).edit == edit  # type: ignore[arg-type]


def test_bad_constructions_name_the_problem() -> None:
    with pytest.raises(ValueError, match=r"exactly one edit.*got none"):
        StepEdit()
    with pytest.raises(ValueError, match="got emotion, denoise"):
        StepEdit(emotion="happy", denoise=True)
    with pytest.raises(ValueError, match="paralinguistic= or tag="):
        StepEdit(paralinguistic="Laughter", tag="Sigh", position=1.0)
    with pytest.raises(EditError, match="unknown option 'gleeful'"):
        StepEdit(emotion="gleeful")
    with pytest.raises(EditError, match="needs 'position'"):
        StepEdit(tag="Laughter")


def test_without_an_engine_it_renders_in_process(data_dir: Path) -> None:
    audio, rate = read(data_dir / CLIP)
    nobody = free_udp_port()
    effect = StepEdit(speed="faster", port=nobody, ping_timeout=0.1)
    assert effect.mode == "in_process"
    np.testing.assert_array_equal(
        effect(audio, rate), StepEdit(speed="faster", in_process=True)(audio, rate)
    )
    # An engine elsewhere that does not answer (TEST-NET address): here too.
    assert StepEdit(denoise=True, host="192.0.2.7", ping_timeout=0.1).mode == "in_process"
    with pytest.raises(ClientError) as e:
        StepEdit(speed="faster", port=nobody, in_process=False, timeout=0.2)(audio, rate)
    assert e.value.code == "no_engine"


def test_engine_path_signs_with_the_secret(tmp_path: Path, data_dir: Path) -> None:
    audio, rate = read(data_dir / CLIP)
    signed_only = start_engine(tmp_path, "--require-auth")
    try:
        with pytest.raises(ClientError) as e:
            StepEdit(vad=True, port=signed_only.port).mode  # noqa: B018 (the ping)
        assert e.value.code == "unauthorized"
        assert signed_only.secret is not None
        effect = StepEdit(vad=True, port=signed_only.port, secret=signed_only.secret)
        assert effect.mode == "engine"
        np.testing.assert_array_equal(
            effect(audio, rate), StepEdit(vad=True, in_process=True)(audio, rate)
        )
        with pytest.raises(ClientError) as e:
            StepEdit(vad=True, port=signed_only.port, secret="0" * 64)(audio, rate)
        assert e.value.code == "unauthorized"
    finally:
        stop_engine(signed_only)


def test_where_the_audio_goes(tmp_path: Path) -> None:
    assert not StepEdit(vad=True).sends_audio  # loopback: by path
    assert StepEdit(vad=True, remote=True).sends_audio
    assert StepEdit(vad=True, host="192.0.2.7").sends_audio  # elsewhere: over TCP
    assert not StepEdit(vad=True, host="192.0.2.7", shared_dir=tmp_path).sends_audio
    assert not StepEdit(vad=True, remote=True, shared_dir=tmp_path).sends_audio


def test_chain_on_a_remote_engine_equals_the_in_process_render(
    remote_engine: EngineProcess, data_dir: Path
) -> None:
    # Bit-exact (tolerance 0): float WAV bytes up, the engine's float result down.
    audio, rate = read(data_dir / CLIP)
    highpass, compressor = HighpassFilter(80), Compressor(threshold_db=-24, ratio=4)
    effect = StepEdit(
        emotion="happy",
        iterations=2,
        remote=True,
        port=remote_engine.port,
        secret=remote_engine.secret,
        in_process=False,
    )
    assert effect.mode == "engine" and effect.sends_audio
    got = Chain([highpass, effect, compressor])(audio, rate)
    here = StepEdit(emotion="happy", iterations=2, in_process=True)
    expected = Chain([highpass, here, compressor])(audio, rate)
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    # It rendered there, from the upload: no request named the wrapper's temporary folder.
    log = remote_engine.log_text()
    assert "upload" in log and f"{Path(tempfile.gettempdir())}/stepedit-" not in log


def test_a_remote_engine_needs_the_secret(remote_engine: EngineProcess, data_dir: Path) -> None:
    audio, rate = read(data_dir / CLIP)
    for secret in (None, "0" * 64):
        with pytest.raises(ClientError) as refused:
            StepEdit(vad=True, remote=True, port=remote_engine.port, secret=secret)(audio, rate)
        assert refused.value.code == "unauthorized"
    signed = StepEdit(vad=True, remote=True, port=remote_engine.port, secret=remote_engine.secret)
    np.testing.assert_array_equal(
        signed(audio, rate), StepEdit(vad=True, in_process=True)(audio, rate)
    )


def test_errors_carry_the_engines_codes(engine: EngineProcess) -> None:
    silence = np.zeros((1, 16000), np.float32)
    with pytest.raises(ClientError) as on_engine:
        StepEdit(denoise=True, port=engine.port)(silence, 16000)
    with pytest.raises(StepEditError) as here:
        StepEdit(denoise=True, in_process=True)(silence, 16000)
    assert on_engine.value.code == here.value.code == "silent_input"


def test_chain_is_a_list_of_plugins_and_edits() -> None:
    effect = StepEdit(speed="faster", in_process=True)
    chain = Chain([HighpassFilter(80)])
    chain.append(effect)
    chain.insert(0, Gain(gain_db=-3))
    assert [type(p) for p in chain] == [Gain, HighpassFilter, StepEdit]
    assert isinstance(chain[1:], Chain) and len(chain[1:]) == 2
    del chain[0]
    assert chain[-1] is effect
    with pytest.raises(TypeError, match="got str"):
        chain.append("reverb")  # type: ignore[arg-type]
    chain.reset()  # resets the plugins; the edit keeps no state


def _write(path: Path, audio: np.ndarray, rate: float) -> None:
    """Writes ``audio`` in the format ``path``'s suffix names (.aif and .bwf as AIFF and WAV)."""
    aliases = {".aif": "aiff", ".bwf": "wav"}
    fmt = aliases.get(path.suffix.lower(), path.suffix.lower()[1:])
    with (
        path.open("wb") as out,
        AudioFile(out, "w", rate, audio.shape[0], bit_depth=24, format=fmt) as f,
    ):
        f.write(audio)


# Read back against the chain's own output: a float WAV exactly; 24-bit files within
# 2**-22 (a step is 2**-23, and pedalboard's int24 writer and reader scale by slightly different
# factors, which adds up to a quarter step); lossy formats by duration and level only.
_ATOL = {"float32": 0.0, "int24": 2**-22}


@pytest.mark.parametrize("suffix", pedalboard.io.get_supported_read_formats())
def test_process_file_reads_and_writes_through_audiofile(
    data_dir: Path, tmp_path: Path, suffix: str
) -> None:
    clip, rate = read(data_dir / CLIP)
    source = tmp_path / f"take{suffix}"
    _write(source, clip, rate)
    chain = Chain([HighpassFilter(80), StepEdit(speed="faster", in_process=True)])
    writable = suffix in pedalboard.io.get_supported_write_formats()
    destination = tmp_path / "out" / f"edited{suffix if writable else '.wav'}"
    destination.parent.mkdir()

    written = process_file(source, destination, chain, bit_depth=32 if suffix == ".wav" else None)
    assert written == destination
    expected = chain(read(source)[0], rate)
    got, got_rate = read(written)
    assert got_rate == rate and got.shape[0] == expected.shape[0]
    with AudioFile(str(written)) as f:
        lossless = "" if written.suffix in (".mp3", ".ogg") else f.file_dtype
    if lossless:
        assert lossless == ("float32" if suffix == ".wav" else "int24")  # asked, or the source's
        np.testing.assert_allclose(got, expected, rtol=0, atol=_ATOL[lossless])
    else:  # encoder delay and padding: up to ~0.15 s
        assert got.shape[1] == pytest.approx(expected.shape[1], abs=0.15 * rate)
        level = 20 * np.log10(np.sqrt(np.mean(got**2)) / np.sqrt(np.mean(expected**2)))
        assert abs(level) < 1.0


def test_process_file_never_overwrites(data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "take.wav"
    shutil.copy(data_dir / CLIP, source)
    first = process_file(source, tmp_path / "take.wav", Gain(gain_db=-6))
    assert first == tmp_path / "take-2.wav"
    assert read(source)[0].max() == pytest.approx(read(data_dir / CLIP)[0].max())
    assert process_file(source, tmp_path / "take.wav", Gain(gain_db=-6)) == tmp_path / "take-3.wav"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with pytest.raises(ValueError, match="pedalboard writes"):
        process_file(source, tmp_path / "take.m4a", Gain())
