"""Transcription benchmark: cold loads, and real-time factors of recognition (Whisper tiny.en,
multilingual base), forced alignment and the whole ``transcribe`` on 10 s and 60 s clips.

The clips are the committed test clips (tests/data), resampled to 16 kHz mono: English
10 s = the LibriSpeech clip with silence to 10 s; English 60 s = six read clips end to end
with pauses; Mandarin = the two Mandarin clips repeated. RTF = seconds / audio seconds.

    python bench/bench_transcribe.py [--rounds N]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from engine.audio import read_slice, resample, to_mono

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
RATE = 16_000
ENGLISH_60 = (
    "en_jfk_inaugural_1961.flac",
    "en_ljspeech_LJ001-0001.wav",
    "en_ljspeech_LJ050-0131.wav",
    "en_librispeech_1995-1837-0001.wav",
    "en_stepaudio_happy.wav",
    "en_jfk_inaugural_1961.flac",
)
MANDARIN = ("zh_stepaudio_vad.wav", "zh_aishell1_BAC009S0724W0121.wav")


def transcripts() -> dict[str, str]:
    with open(DATA / "manifest.csv", newline="", encoding="utf-8") as f:
        return {row["file"]: row["transcript"] for row in csv.DictReader(f)}


def mono16k(name: str) -> np.ndarray:
    samples, source = read_slice(DATA / name)
    return resample(to_mono(samples), source.sample_rate, RATE)


def joined(names: tuple[str, ...], seconds: float) -> np.ndarray:
    """The clips end to end, pauses between them stretched so the whole lasts ``seconds``."""
    pieces = [mono16k(n) for n in names]
    spare = round(seconds * RATE) - sum(len(p) for p in pieces)
    if spare < 0:
        return np.concatenate(pieces)[: round(seconds * RATE)]
    gap = np.zeros(spare // max(1, len(pieces)), dtype=np.float32)
    out = np.concatenate([x for p in pieces for x in (p, gap)])
    return np.pad(out, (0, round(seconds * RATE) - len(out)))


def timed(fn: Callable[[], object], rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="best of N per row (default 1)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["STEPEDIT_STATE_DIR"] = tempfile.mkdtemp(prefix="stepedit-bench-")

    from engine.text import align, asr, models, speech
    from engine.text.cache import TranscriptCache
    from engine.text.transcribe import transcribe

    print(f"cpu threads: {os.cpu_count()}, beam size {asr.BEAM_SIZE}, int8")
    print("\ncold loads (first use in this process)")
    cold = {
        "Silero VAD (first call, 1 s)": lambda: speech.speech_regions(np.zeros(RATE, np.float32)),
        "Whisper tiny.en": lambda: asr.load_model(models.tiny_en()),
        "pocketsphinx aligner": lambda: align.align_english(np.zeros(RATE, np.float32), ["a"]),
    }
    if models.have_multilingual():
        cold["join base model (145 MB, hash)"] = models.whisper_base
        cold["Whisper base"] = lambda: asr.load_model(models.whisper_base())
    for label, fn in cold.items():
        print(f"  {label:34s} {timed(fn, 1):6.2f} s")

    text = transcripts()
    clips: dict[str, tuple[str, np.ndarray, str]] = {
        "en 10 s": (
            "en",
            joined(("en_librispeech_1995-1837-0001.wav",), 10.0),
            text["en_librispeech_1995-1837-0001.wav"],
        ),
        "en 60 s": ("en", joined(ENGLISH_60, 60.0), " ".join(text[n] for n in ENGLISH_60)),
    }
    if models.have_multilingual():
        zh = np.concatenate([mono16k(n) for n in MANDARIN])
        clips["zh 10 s"] = ("zh", zh[: 10 * RATE], "")
        clips["zh 60 s"] = ("zh", np.tile(zh, 5)[: 60 * RATE], "")
    tiny = models.tiny_en()
    base = models.whisper_base() if models.have_multilingual() else None
    transcribe(clips["en 10 s"][1][None, :], RATE, language="en")  # warm every stage

    rows: list[tuple[str, str, float]] = []
    for name, (language, audio, known) in clips.items():
        seconds = len(audio) / RATE
        stages: dict[str, Callable[[], object]] = {}
        mono = audio[None, :]
        if language == "en":
            stages["recognition tiny.en"] = partial(asr.recognise, audio, tiny, "en")
            stages["forced alignment (known text)"] = partial(
                align.align_english, audio, known.split()
            )
            stages["transcribe(), tiny.en"] = partial(transcribe, mono, RATE, language="en")
            stages["transcribe(), known text"] = partial(
                transcribe, mono, RATE, language="en", text=known
            )
        if base is not None:
            stages["recognition base"] = partial(asr.recognise, audio, base, language)
        if language == "zh":
            stages["transcribe(), base"] = partial(transcribe, mono, RATE, language="zh")
        for label, fn in stages.items():
            rows.append((name, label, timed(fn, args.rounds) / seconds))

    with tempfile.TemporaryDirectory() as folder:
        cache = TranscriptCache(Path(folder))
        audio = clips["en 60 s"][1][None, :]
        transcribe(audio, RATE, language="en", cache=cache)
        hit = timed(lambda: transcribe(audio, RATE, language="en", cache=cache), 3)
        rows.append(("en 60 s", "cache hit (hash + SQLite)", hit / 60.0))

    print(f"\n{'clip':8s} {'stage':34s} {'RTF':>7s}")
    for name, label, rtf in rows:
        print(f"{name:8s} {label:34s} {rtf:7.3f}")


if __name__ == "__main__":
    main()
