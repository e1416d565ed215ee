"""Iterations on tokens (within an edit, and on an edit's result: "one more pass") and the
tokenizer cache, on the tiny official-layout fixture."""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from engine.audio import integrated_loudness, read_slice
from engine.backends.base import TokenFeedbackBackend
from engine.backends.stepaudio import StepAudioBackend, StepAudioPrompt, tokenizer_cache
from engine.backends.stepaudio.llm.generate import Generation
from engine.backends.stepaudio.tokenizer import DualCodes
from engine.backends.stepaudio.tokenizer_cache import (
    CACHE_FILE,
    PromptFeatures,
    StoredPass,
    TokenizerCache,
    file_hashes,
    llm_identity,
    model_identity,
)
from engine.edits import EditSpec
from engine.errors import BackendError
from engine.keep_length import fit_to_source
from engine.pipeline import render_audio
from engine.render import WrittenEdit, render_file
from tests.engine.backends.stepaudio.test_stepaudio_backend import FAST, RATE, clip, noop

EDIT = EditSpec("emotion", "happy", iterations=3, text="it was a fine day", guard=False)


def _loaded(model_dir: Path, **kwargs: Any) -> StepAudioBackend:
    backend = StepAudioBackend(model_dir, options=FAST, **kwargs)
    backend.load()
    return backend


def _count_tokenizer_calls(backend: StepAudioBackend, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Wraps the loaded tokenizer; the list grows by one per tokenizer run."""
    tokenizer = backend._tokenizer
    assert tokenizer is not None
    calls: list[int] = []
    run: Callable[[np.ndarray, int], DualCodes] = tokenizer.tokenize

    def counted(audio: np.ndarray, sample_rate: int) -> DualCodes:
        calls.append(audio.shape[0])
        return run(audio, sample_rate)

    monkeypatch.setattr(tokenizer, "tokenize", counted)
    return calls


@pytest.fixture(scope="module")
def backend(model_dir: Path) -> StepAudioBackend:
    return _loaded(model_dir)


def _by_hand(values: list[int]) -> DualCodes:
    """The next pass's codes written from the rule: whole groups of ``a a b b b``."""
    kept = values[: len(values) // 5 * 5]
    return DualCodes(
        vq02=[v for i, v in enumerate(kept) if i % 5 < 2],
        vq06=[v - 1024 for i, v in enumerate(kept) if i % 5 >= 2],
        llm_ids=[65536 + v for v in kept],
        token_string="".join(f"<audio_{v}>" for v in kept),
    )


def test_is_a_token_feedback_backend(backend: StepAudioBackend) -> None:
    assert isinstance(backend, TokenFeedbackBackend) and backend.retokenize is False
    assert StepAudioBackend(Path("x"), retokenize=True).retokenize is True


def test_later_passes_call_no_tokenizer_and_equal_tokens_fed_by_hand(
    backend: StepAudioBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = clip(1.5, seed=3)
    calls = _count_tokenizer_calls(backend, monkeypatch)
    fractions: list[float] = []
    edited = render_audio(backend, source, RATE, EDIT, lambda f, _: fractions.append(f))
    assert len(calls) == 1  # the input only; passes 2 and 3 start from tokens
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert edited.info["tokenizer"] == {"cache": "miss", "calls": 1}
    assert set(edited.timings) == {"tokenize", "generate", "decode"}

    # The same passes by hand: each pass's tokens become the next prompt's codes, and the
    # decoder keeps the input's voice (tokens, mel, speaker) and loudness reference.
    first = backend.tokenize(source, RATE, noop)
    prompt, generated = first, backend.generate(first, EDIT, noop)
    for _ in range(EDIT.iterations - 1):
        codes = _by_hand(generated.values)
        prompt = dataclasses.replace(first, codes=codes, duration=codes.groups * 0.12)
        generated = backend.generate(prompt, EDIT, noop)
    assert len(calls) == 2
    rendered = backend.decode(generated, prompt, noop)
    expected = fit_to_source(rendered, RATE, source.shape[0], integrated_loudness(source, RATE))
    assert np.array_equal(edited.audio, expected)


def test_decode_passes_decodes_earlier_passes_without_tokenizing_them(
    backend: StepAudioBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = clip(1.5, seed=3)
    plain = render_audio(backend, source, RATE, EDIT, noop)
    calls = _count_tokenizer_calls(backend, monkeypatch)
    edit = dataclasses.replace(EDIT, decode_passes=True)
    edited = render_audio(backend, source, RATE, edit, noop)
    assert len(calls) == 1 and len(edited.passes) == EDIT.iterations - 1
    assert all(p.shape[0] == source.shape[0] and p.dtype == np.float32 for p in edited.passes)
    assert np.array_equal(edited.audio, plain.audio)  # decoding a pass changes nothing after


def test_next_prompt_keeps_the_voice_and_needs_a_whole_group(backend: StepAudioBackend) -> None:
    prompt = backend.tokenize(clip(1.0, seed=4), RATE, noop)
    values = [3, 7, 1024 + 5, 1024 + 9, 1024 + 11, 12, 13]  # a short second group is dropped
    generated = Generation(values, "eos", 75, 8, 0, 100, 7)
    fed = backend.next_prompt(generated, prompt, noop)
    assert fed.codes == _by_hand(values) and fed.codes.vq06 == [5, 9, 11]
    assert fed.voice_codes == prompt.codes and fed.mel is prompt.mel
    assert fed.speaker is prompt.speaker and fed.loudness == prompt.loudness
    assert fed.duration == pytest.approx(0.12) and fed.tokenizer_calls == prompt.tokenizer_calls
    with pytest.raises(BackendError, match="less than one group of 5"):
        backend.next_prompt(dataclasses.replace(generated, values=values[:4]), prompt, noop)


def test_the_retokenize_option_still_retokenizes(
    model_dir: Path, backend: StepAudioBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    official = _loaded(model_dir, retokenize=True)
    source = clip(1.5, seed=5)
    calls = _count_tokenizer_calls(official, monkeypatch)
    fractions: list[float] = []
    edited = render_audio(official, source, RATE, EDIT, lambda f, _: fractions.append(f))
    assert len(calls) == EDIT.iterations
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert edited.info["tokenizer"] == {"cache": "miss", "calls": EDIT.iterations}

    # The official loop: every pass decoded, its audio tokenized again; loudness changes add.
    audio, rate, change = source, RATE, 0.0
    for _ in range(EDIT.iterations):
        prompt = official.tokenize(audio, rate, noop)
        rendered = official.decode(official.generate(prompt, EDIT, noop), prompt, noop)
        audio, rate, change = (
            rendered.audio,
            rendered.sample_rate,
            change + rendered.loudness_offset_db,
        )
    rendered.loudness_offset_db = change
    expected = fit_to_source(rendered, RATE, source.shape[0], integrated_loudness(source, RATE))
    assert np.array_equal(edited.audio, expected)
    # Token feedback gives another result from the same seed.
    assert not np.array_equal(render_audio(backend, source, RATE, EDIT, noop).audio, expected)


def test_second_edit_and_a_restart_hit_the_cache(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = clip(1.2, seed=6)
    cached = _loaded(model_dir, cache_dir=tmp_path)
    calls = _count_tokenizer_calls(cached, monkeypatch)
    first = cached.tokenize(source, RATE, noop)
    assert (first.cache, first.tokenizer_calls, len(calls)) == ("miss", 1, 1)
    again = cached.tokenize(source.copy(), RATE, noop)
    assert (again.cache, again.tokenizer_calls, len(calls)) == ("hit", 0, 1)
    _assert_same_features(again, first)

    restarted = _loaded(model_dir, cache_dir=tmp_path)
    calls = _count_tokenizer_calls(restarted, monkeypatch)
    edited = render_audio(
        restarted, source, RATE, EditSpec("style", "whisper", text="hi", guard=False), noop
    )
    assert edited.info["tokenizer"] == {"cache": "hit", "calls": 0} and calls == []
    # Another slice, or the same samples at another rate, is another entry.
    assert restarted.tokenize(clip(1.2, seed=7), RATE, noop).cache == "miss"
    assert restarted.tokenize(source, 48000, noop).cache == "miss"
    assert len(calls) == 2 and (tmp_path / CACHE_FILE).is_file()


def _assert_same_features(a: StepAudioPrompt, b: StepAudioPrompt) -> None:
    assert a.codes == b.codes and a.voice_codes == b.voice_codes
    assert np.array_equal(a.mel, b.mel) and np.array_equal(a.speaker, b.speaker)
    assert (a.duration, a.loudness) == (b.duration, b.loudness)


def test_the_result_reports_stage_times_and_tokenizer_work(model_dir: Path, tmp_path: Path) -> None:
    from bridge.protocol import build_result

    cached = _loaded(model_dir, cache_dir=tmp_path / "cache")
    source = tmp_path / "take.wav"
    soundfile.write(source, clip(1.2, channels=1).T, RATE, subtype="PCM_16")
    results = []
    for stem in ("first", "second"):
        written = render_file(
            cached,
            EditSpec("emotion", "sad", iterations=2, text="hi there", guard=False),
            source=source,
            start=0.0,
            length=None,
            output_dir=tmp_path,
            stem=stem,
            max_input_seconds=600.0,
            progress=lambda f, s: None,
        )
        results.append(
            build_result(
                duration=written.duration,
                sample_rate=written.sample_rate,
                channels=written.channels,
                backend=cached.name,
                edit={},
                input=str(source),
                start=0.0,
                length=None,
                timings=written.timings,
                extra=written.info,
            )
        )
    assert [r["tokenizer"] for r in results] == [
        {"cache": "miss", "calls": 1},
        {"cache": "hit", "calls": 0},
    ]
    for result in results:
        timings = result["timings"]
        assert {"read", "tokenize", "generate", "decode", "render", "write"} <= set(timings)
        assert timings["tokenize"] + timings["generate"] + timings["decode"] <= timings["render"]


def _features(frames: int, seed: int) -> PromptFeatures:
    rng = np.random.default_rng(seed)
    codes = DualCodes.from_codes(
        rng.integers(0, 1024, 20).tolist(), rng.integers(0, 4096, 30).tolist()
    )
    mel = rng.standard_normal((frames, 80)).astype(np.float32)
    return PromptFeatures(codes, mel, rng.standard_normal(192).astype(np.float32))


def test_cache_evicts_the_least_recently_used_by_size(tmp_path: Path) -> None:
    entry = len(_features(100, 0).to_bytes())
    cache = TokenizerCache(tmp_path, "models", max_bytes=int(entry * 2.5))
    for seed in range(2):
        cache.put(str(seed), _features(100, seed))
    assert cache.get("0") is not None  # "0" is now the most recently used
    cache.put("2", _features(100, 2))
    assert len(cache.store) == 2 and cache.store.total_bytes() <= entry * 2.5
    assert cache.get("1") is None
    kept = cache.get("0")
    assert kept is not None and np.array_equal(kept.mel, _features(100, 0).mel)
    assert kept.codes == _features(100, 0).codes
    # An entry bigger than the bound stays alone.
    cache.put("big", _features(400, 3))
    assert len(cache.store) == 1 and cache.get("big") is not None


def test_unreadable_entries_are_misses(tmp_path: Path) -> None:
    cache = TokenizerCache(tmp_path, "models", max_bytes=1 << 20)
    cache.store.put("bad", b"not an archive")
    assert cache.get("bad") is None and len(cache.store) == 0


def test_key_covers_samples_rate_and_model_identity(tmp_path: Path) -> None:
    mono = clip(0.5, channels=1)[0]
    cache = TokenizerCache(tmp_path, "models-a", max_bytes=1 << 20)
    key = cache.key(mono, RATE)
    assert key == cache.key(mono.copy(), RATE)
    changed = mono.copy()
    changed[10] += 1e-6
    other_models = TokenizerCache(tmp_path, "models-b", max_bytes=1 << 20)
    others = {cache.key(changed, RATE), cache.key(mono, 48000), other_models.key(mono, RATE)}
    assert key not in others and len(others) == 3


def test_model_identity_hashes_file_contents_and_settings(tmp_path: Path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.npy"
    a.write_bytes(b"weights")
    b.write_bytes(b"codebook")
    base = model_identity([a, b], {"dither": 0.0})
    assert base == model_identity([a, b], {"dither": 0.0})
    assert base != model_identity([a, b], {"dither": None})
    b.write_bytes(b"codebooK")
    assert base != model_identity([a, b], {"dither": 0.0})


def test_the_command_line_sets_the_option_and_serve_the_cache_folder(
    model_dir: Path, tmp_path: Path
) -> None:
    from bridge.cli import _backend_options, _parser
    from engine.backends import create_backend

    argv = ["serve", "--backend", "stepaudio", "--model-dir", str(model_dir)]
    for extra, expected in (([], False), (["--retokenize"], True)):
        options = _backend_options(_parser().parse_args([*argv, *extra]))
        made = create_backend("stepaudio", cache_dir=tmp_path, **options)
        assert isinstance(made, StepAudioBackend)
        assert made.retokenize is expected and made.cache_dir == tmp_path


def test_a_broken_cache_file_never_fails_an_edit(tmp_path: Path) -> None:
    cache = TokenizerCache(tmp_path, "models", max_bytes=1 << 20)
    for leftover in tmp_path.glob(CACHE_FILE + "-*"):
        leftover.unlink()
    (tmp_path / CACHE_FILE).write_bytes(b"not a database" * 100)
    cache.put("k", _features(10, 0))  # logged and skipped
    assert cache.get("k") is None


def test_an_unusable_cache_folder_leaves_the_backend_without_a_cache(
    model_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / CACHE_FILE).write_bytes(b"not a database" * 100)
    uncached = _loaded(model_dir, cache_dir=tmp_path)
    assert uncached._cache is None
    assert uncached.tokenize(clip(0.5), RATE, noop).cache == "miss"


MORE = dataclasses.replace(EDIT, iterations=1)  # what "one more pass" sends


def _render_file(
    backend: StepAudioBackend, edit: EditSpec, source: Path, length: float | None = None
) -> WrittenEdit:
    return render_file(
        backend,
        edit,
        source=source,
        start=0.0,
        length=length,
        output_dir=source.parent,
        stem=f"{source.stem}.edited",
        max_input_seconds=600.0,
        progress=lambda f, s: None,
    )


def _take(folder: Path, subtype: str, seed: int) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / "take.wav"
    soundfile.write(path, clip(1.5, seed=seed).T, RATE, subtype=subtype)
    return path


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])  # results in 24-bit PCM, float
def test_one_more_pass_on_the_result_continues_on_its_tokens(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subtype: str
) -> None:
    cached = _loaded(model_dir, cache_dir=tmp_path / "cache")
    source = _take(tmp_path / "takes", subtype, seed=8)
    first = _render_file(cached, EDIT, source)
    calls = _count_tokenizer_calls(cached, monkeypatch)
    # As REAPER sends a take that plays its whole file: from 0 for the file's length.
    more = _render_file(cached, MORE, first.path, length=soundfile.info(first.path).duration)
    assert calls == [] and more.info["tokenizer"] == {"cache": "tokens", "calls": 0}

    # By hand: the edit's passes, then one more from its last tokens, in the input's voice,
    # its loudness reference the level the engine gave the result.
    samples, _ = read_slice(source)
    prompt = cached.tokenize(samples, RATE, noop)
    generated = cached.generate(prompt, EDIT, noop)
    for on_result in [False] * (EDIT.iterations - 1) + [True]:  # the edit's passes, one more
        decoded = cached.decode(generated, prompt, noop) if on_result else None
        codes = _by_hand(generated.values)
        prompt = dataclasses.replace(prompt, codes=codes, duration=codes.groups * 0.12)
        if decoded is not None:
            prompt = dataclasses.replace(
                prompt, loudness=prompt.loudness + decoded.loudness_offset_db
            )
        generated = cached.generate(prompt, EDIT, noop)
    rendered = cached.decode(generated, prompt, noop)
    taken, info = read_slice(first.path)
    assert info.is_float is (subtype == "FLOAT")
    expected = fit_to_source(rendered, RATE, 2, integrated_loudness(taken, RATE))
    edited = render_audio(cached, taken, RATE, MORE, noop)
    assert edited.info["tokenizer"]["cache"] == "tokens" and np.array_equal(edited.audio, expected)
    assert calls == [] and edited.last_pass is not None
    assert edited.last_pass.generated == generated


def test_another_slice_or_a_changed_sample_tokenizes(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cached = _loaded(model_dir, cache_dir=tmp_path / "cache")
    first = _render_file(cached, EDIT, _take(tmp_path / "takes", "PCM_16", seed=9))
    calls = _count_tokenizer_calls(cached, monkeypatch)
    part = _render_file(cached, MORE, first.path, length=first.duration - 0.05)
    assert part.info["tokenizer"] == {"cache": "miss", "calls": 1} and len(calls) == 1

    changed = tmp_path / "changed"
    changed.mkdir()
    data, rate = soundfile.read(first.path, dtype="int32")
    data[1000, 0] += 256  # one 24-bit step
    soundfile.write(changed / "take.wav", data, rate, subtype="PCM_24")
    edited = _render_file(cached, MORE, changed / "take.wav")
    assert edited.info["tokenizer"] == {"cache": "miss", "calls": 1} and len(calls) == 2


def test_the_stored_pass_survives_a_restart_and_needs_token_feedback(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _render_file(
        _loaded(model_dir, cache_dir=tmp_path / "cache"),
        EDIT,
        _take(tmp_path / "takes", "PCM_16", seed=10),
    )
    restarted = _loaded(model_dir, cache_dir=tmp_path / "cache")
    calls = _count_tokenizer_calls(restarted, monkeypatch)
    assert _render_file(restarted, MORE, first.path).info["tokenizer"]["cache"] == "tokens"
    assert calls == []
    # The official loop re-tokenizes; without a cache folder nothing is kept.
    official = _loaded(model_dir, cache_dir=tmp_path / "cache", retokenize=True)
    assert _render_file(official, MORE, first.path).info["tokenizer"]["cache"] == "miss"
    uncached = _loaded(model_dir)
    again = _render_file(uncached, EDIT, first.path)
    assert uncached.recall("any") is None and again.info["tokenizer"]["cache"] == "miss"


def test_a_stored_pass_round_trips_and_an_unreadable_one_is_a_miss(tmp_path: Path) -> None:
    generation = Generation([3, 7, 1029, 1033, 1035, 12], "eos", 75, 7, 0, 100, 5)
    codes = _by_hand(generation.values)
    stored = StoredPass(
        generation, codes, _features(20, 0), np.ones((1, 30), np.float32), 0.12, -23.5
    )
    cache = TokenizerCache(tmp_path, "models", max_bytes=1 << 20)
    cache.put_pass("result", stored)
    back = cache.get_pass("result")
    assert back is not None and back.generation == generation and back.codes == codes
    assert back.voice.codes == stored.voice.codes and np.array_equal(
        back.voice.mel, stored.voice.mel
    )
    assert (back.duration, back.loudness) == (0.12, -23.5)
    assert np.array_equal(back.speaker_sample, stored.speaker_sample)
    assert TokenizerCache(tmp_path, "other models", max_bytes=1 << 20).get_pass("result") is None
    assert cache.get("result") is None  # prompts and passes are separate tables
    cache.passes.put(cache._pass_row("bad"), _features(10, 1).to_bytes())  # a prompt, not a pass
    assert cache.get_pass("bad") is None and len(cache.passes) == 1


def test_a_pass_of_another_llm_is_not_recalled(tmp_path: Path) -> None:
    generation = Generation([3, 7, 1029, 1033, 1035, 12], "eos", 75, 7, 0, 100, 5)
    stored = StoredPass(
        generation,
        _by_hand(generation.values),
        _features(20, 0),
        np.ones((1, 30), np.float32),
        0.12,
        -23.5,
    )
    TokenizerCache(tmp_path, "models", max_bytes=1 << 20, llm="llm-a").put_pass("result", stored)
    same = TokenizerCache(tmp_path, "models", max_bytes=1 << 20, llm="llm-a")
    other = TokenizerCache(tmp_path, "models", max_bytes=1 << 20, llm="llm-b")
    assert same.get_pass("result") is not None and other.get_pass("result") is None


def test_llm_identity_reads_the_config_and_only_stats_the_weights(tmp_path: Path) -> None:
    config, shard = tmp_path / "config.json", tmp_path / "model.safetensors"
    config.write_text('{"hidden_size": 64}')
    shard.write_bytes(b"w" * 100)
    base = llm_identity(config, [shard], {"dtype": "fp32"})
    assert base == llm_identity(config, [shard], {"dtype": "fp32"})
    assert base != llm_identity(config, [shard], {"dtype": "bf16"})
    assert base != llm_identity(config, [shard], {"dtype": "fp32", "quantize": "int8"})
    config.write_text('{"hidden_size": 65}')
    changed_config = llm_identity(config, [shard], {"dtype": "fp32"})
    stat = shard.stat()
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new checkpoint file
    assert len({base, changed_config, llm_identity(config, [shard], {"dtype": "fp32"})}) == 3


def test_another_llm_checkpoint_tokenizes_the_result_again(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models"
    shutil.copytree(model_dir, models)
    first = _render_file(
        _loaded(models, cache_dir=tmp_path / "cache"), EDIT, _take(tmp_path / "takes", "FLOAT", 4)
    )
    for shard in models.glob("Step-Audio-EditX/*.safetensors"):
        stat = shard.stat()
        os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    other = _loaded(models, cache_dir=tmp_path / "cache")
    calls = _count_tokenizer_calls(other, monkeypatch)
    again = _render_file(other, MORE, first.path)
    assert again.info["tokenizer"]["cache"] != "tokens" and len(calls) == 1


def _counted_digests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Wraps the file hashing of ``model_identity``; the list grows by each file read."""
    hashed: list[str] = []
    real = tokenizer_cache._file_digest

    def counted(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setattr(tokenizer_cache, "_file_digest", counted)
    return hashed


def test_model_file_hashes_are_remembered_until_a_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = _counted_digests(monkeypatch)
    a, b = tmp_path / "a.onnx", tmp_path / "b.npy"
    a.write_bytes(b"weights")
    b.write_bytes(b"codebook")
    memo = file_hashes(tmp_path)
    base = model_identity([a, b], {"dither": 0.0}, memo)
    assert hashed == ["a.onnx", "b.npy"] and base == model_identity([a, b], {"dither": 0.0})
    hashed.clear()
    assert model_identity([a, b], {"dither": 0.0}, file_hashes(tmp_path)) == base
    assert hashed == []  # a restart: nothing read
    b.write_bytes(b"codebooK")  # same size; a new modification time
    stat = b.stat()
    os.utime(b, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert model_identity([a, b], {"dither": 0.0}, memo) != base and hashed == ["b.npy"]


def test_a_second_load_does_not_read_the_tokenizer_files_again(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hashed = _counted_digests(monkeypatch)
    first = _loaded(model_dir, cache_dir=tmp_path)
    assert len(hashed) >= 2 and first._cache is not None
    hashed.clear()
    second = _loaded(model_dir, cache_dir=tmp_path)
    assert hashed == [] and second._cache is not None
    assert second._cache.identity == first._cache.identity
    assert second._cache.llm == first._cache.llm != ""
