"""The transcript cache: hits per slice content, across cache objects, LRU eviction by size."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine.evaluation.harness import find_clips
from engine.text.cache import TranscriptCache, cache_key
from engine.text.transcribe import transcribe
from engine.text.transcript import Transcript, Word


def _transcript(n: int, label: str = "word") -> Transcript:
    words = tuple(Word(f"{label}{i}", i * 0.5, i * 0.5 + 0.4, 0.9) for i in range(n))
    return Transcript(words, "en", "whisper-tiny.en", n * 0.5)


def _audio(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.1, (1, 1600)).astype(np.float32)


def test_second_call_hits_also_from_a_new_cache_object(data_dir: Path, tmp_path: Path) -> None:
    clip = find_clips([data_dir / "en_stepaudio_happy.wav"])[0]
    cache = TranscriptCache(tmp_path)
    first, hit = transcribe(clip.audio, clip.sample_rate, language="en", cache=cache)
    assert not hit and len(cache) == 1
    second, hit = transcribe(clip.audio, clip.sample_rate, language="en", cache=cache)
    assert hit and second == first
    reopened = TranscriptCache(tmp_path)
    stages: list[str] = []
    third, hit = transcribe(
        clip.audio,
        clip.sample_rate,
        language="en",
        cache=reopened,
        progress=lambda _, stage: stages.append(stage),
    )
    assert hit and third == first and stages == ["cached"]
    # another known text or language is another entry; the same samples cut elsewhere hit
    _, hit = transcribe(clip.audio, clip.sample_rate, language="en", text="you know", cache=cache)
    assert not hit and len(cache) == 2
    _, hit = transcribe(clip.audio.copy(), clip.sample_rate, language="en", cache=cache)
    assert hit


def test_key_covers_samples_rate_model_language_and_text() -> None:
    audio = _audio(0)
    base = cache_key(audio, 16000, "whisper-tiny.en", "en")
    assert base == cache_key(audio.copy(), 16000, "whisper-tiny.en", "en")
    changed = audio.copy()
    changed[0, 100] += 1e-6
    others = {
        cache_key(changed, 16000, "whisper-tiny.en", "en"),
        cache_key(audio, 22050, "whisper-tiny.en", "en"),
        cache_key(audio, 16000, "whisper-base", "en"),
        cache_key(audio, 16000, "whisper-tiny.en", "auto"),
        cache_key(audio, 16000, "whisper-tiny.en", "en", "known text"),
        cache_key(np.concatenate([audio, audio]), 16000, "whisper-tiny.en", "en"),
    }
    assert base not in others and len(others) == 6


def test_eviction_by_size_drops_the_least_recently_used(tmp_path: Path) -> None:
    one = _transcript(20)
    cache = TranscriptCache(tmp_path, max_bytes=1)
    cache.put("probe", one)
    size = cache.total_bytes()
    cache.delete("probe")
    cache = TranscriptCache(tmp_path, max_bytes=int(size * 3.5))
    for key in "abc":
        cache.put(key, one)
    assert len(cache) == 3
    assert cache.get("a") == one  # "a" is now the most recently used
    cache.put("d", one)
    assert len(cache) == 3 and cache.total_bytes() <= size * 3.5
    assert cache.get("b") is None  # the least recently used went first
    assert all(cache.get(k) == one for k in "acd")
    # an entry bigger than the bound stays alone
    cache.put("big", _transcript(200))
    assert len(cache) == 1 and cache.get("big") is not None


def test_storage_is_sqlite_in_wal_mode(tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path)
    cache.put("k", _transcript(3, "日"))
    assert cache.get("k") == _transcript(3, "日")
    with sqlite3.connect(tmp_path / "transcripts.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unreadable_entries_are_dropped(tmp_path: Path) -> None:
    cache = TranscriptCache(tmp_path)
    with sqlite3.connect(cache.path) as db:
        db.execute("INSERT INTO transcripts VALUES ('bad', '{\"words\": 3}', 10, 0)")
    assert cache.get("bad") is None and len(cache) == 0


def test_bound_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        TranscriptCache(tmp_path, max_bytes=0)


def test_the_recognised_words_sent_back_as_text_are_a_hit(data_dir: Path, tmp_path: Path) -> None:
    clip = find_clips([data_dir / "en_ljspeech_LJ050-0131.wav"])[0]
    audio, rate = clip.audio[:, : 3 * clip.sample_rate], clip.sample_rate
    cache = TranscriptCache(tmp_path)
    recognised, hit = transcribe(audio, rate, cache=cache)
    assert not hit
    # What a client shows and sends back: the same words, other case and punctuation.
    echoed, hit = transcribe(audio, rate, text=recognised.text.upper() + ".", cache=cache)
    assert hit and echoed == recognised
    other, hit = transcribe(audio, rate, text="unless a system", cache=cache)
    assert not hit and other.aligned
