"""Step-Audio-EditX backend benchmark: time per stage, tokens/s, peak memory, and what the
tokenizer cache and iterations on tokens save.

Runs on the tiny random-weight fixture by default (CPU, seconds); with ``--model-dir`` on the
real checkpoints, so that the first run on a GPU machine gives comparable numbers. Ratios are
against baselines from the same run: the clip's own duration (real-time factor), the stream's
real-time token rate (41.67 tokens per second of audio), a first edit of a slice against a
second edit of it (tokenizer cache), and three iterations on tokens against three that
re-tokenize every pass (the official loop). Each edit reads its own slice (10 ms further into
the clip), so only the second edits find their slice in the cache; times are medians of
``--repeats`` edits.

    python bench/bench_stepaudio.py [--model-dir ROOT --device cuda --dtype bf16] [--clip WAV]
        [--quantize int8]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from engine.backends.stepaudio import StepAudioBackend
from engine.edits import EditSpec
from engine.pipeline import render_audio

REPO = Path(__file__).resolve().parent.parent
# 5 mixed tokens per 120 ms of audio.
TOKENS_PER_AUDIO_SECOND = 5 / 0.12
TRANSCRIPT = "unless a system is established"
STAGES = ("tokenize", "generate", "decode")


def fixture_root(folder: Path) -> Path:
    """Writes the tests' tiny official-layout checkpoints into ``folder``."""
    sys.path.insert(0, str(REPO))
    from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
    from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

    write_tokenizer_dir(folder)
    write_editx_dir(folder)
    return folder


def peak_memory_mb(device: str) -> str:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if device.startswith("cuda"):
        import torch

        return f"{rss:.0f} MB host, {torch.cuda.max_memory_allocated() / 2**20:.0f} MB GPU"
    return f"{rss:.0f} MB"


def slices(audio: np.ndarray, rate: int, seconds: float) -> Iterator[np.ndarray]:
    """Slices of ``seconds``, each 10 ms further into ``audio``: the same sound, new content."""
    length = int(seconds * rate)
    for k in itertools.count():
        start = k * rate // 100
        if start + length > audio.shape[1]:
            raise SystemExit(f"the clip is too short for {k + 1} slices of {seconds} s")
        yield audio[:, start : start + length]


def timed_edit(
    backend: StepAudioBackend, audio: np.ndarray, rate: int, edit: EditSpec
) -> dict[str, Any]:
    """One edit through the engine's pipeline: wall seconds, stage seconds, tokenizer work."""
    started = time.perf_counter()
    edited = render_audio(backend, audio, rate, edit, lambda f, s: None)
    return {"wall": time.perf_counter() - started, **edited.timings, **edited.info["tokenizer"]}


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def describe(runs: list[dict[str, Any]]) -> str:
    """Median wall time, stage times and the tokenizer's share and work."""
    wall = median(runs, "wall")
    stages = ", ".join(f"{stage} {median(runs, stage):.3f}" for stage in STAGES)
    share = median(runs, "tokenize") / wall
    work = f"cache {runs[0]['cache']}, {runs[0]['calls']} tokenizer call(s)"
    return f"{wall:.3f} s ({stages}; tokenize {share:.0%} of wall; {work})"


def same_run_ratios(
    backend: StepAudioBackend, audio: Iterator[np.ndarray], rate: int, repeats: int
) -> list[tuple[str, str]]:
    """Second edit vs first (tokenizer cache); 3 iterations on tokens vs re-tokenizing."""
    edit = EditSpec("emotion", "happy", text=TRANSCRIPT)
    first: list[dict[str, Any]] = []
    second: list[dict[str, Any]] = []
    for _ in range(repeats):
        piece = next(audio)
        first.append(timed_edit(backend, piece, rate, edit))
        second.append(timed_edit(backend, piece, rate, edit))
    rows = [
        ("first edit of a slice", describe(first)),
        ("second edit of it", describe(second)),
        (
            "second / first edit",
            f"{median(second, 'wall') / median(first, 'wall'):.2f} (tokenize "
            f"{median(second, 'tokenize') / median(first, 'tokenize'):.3f})",
        ),
    ]
    three = dataclasses.replace(edit, iterations=3)
    walls = {}
    for retokenize in (False, True):
        backend.options = dataclasses.replace(backend.options, retokenize=retokenize)
        runs = [timed_edit(backend, next(audio), rate, three) for _ in range(repeats)]
        name = "re-tokenizing" if retokenize else "on tokens"
        rows.append((f"3 iterations {name}", describe(runs)))
        walls[retokenize] = median(runs, "wall")
    backend.options = dataclasses.replace(backend.options, retokenize=False)
    rows.append(("3 iterations: on tokens / re-tokenizing", f"{walls[False] / walls[True]:.2f}"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, help="real checkpoints (default: tiny fixture)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--quantize", default="none", help="none or int8 (LLM weights)")
    parser.add_argument("--clip", type=Path, default=REPO / "tests/data/en_ljspeech_LJ050-0131.wav")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the clip used")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    parser.add_argument("--repeats", type=int, default=3, help="edits per same-run ratio")
    parser.add_argument(
        "--length-multiple",
        type=float,
        help="generation bound per pass, times the expected length (default: the backend's "
        "3 on real checkpoints; 1 on the fixture, whose random weights never draw "
        "end-of-audio, so that each iteration does not triple the length)",
    )
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    samples, rate = soundfile.read(args.clip, dtype="float32", always_2d=True)
    pieces = slices(np.ascontiguousarray(samples.T), rate, args.seconds)
    duration = args.seconds
    with tempfile.TemporaryDirectory(prefix="stepedit-bench-") as folder:
        root = args.model_dir or fixture_root(Path(folder))
        backend = StepAudioBackend(
            root,
            device=args.device,
            dtype=args.dtype,
            quantize=args.quantize,
            length_multiple=args.length_multiple or (None if args.model_dir else 1.0),
            cache_dir=Path(folder) / "cache",
        )
        started = time.perf_counter()
        backend.load()
        rows = [("load", f"{time.perf_counter() - started:.2f} s")]
        edits = {
            "emotion happy": EditSpec("emotion", "happy", text="unless a system is established"),
            "clone": EditSpec(
                "clone",
                text="unless a system is established",
                target_text="Speech editing that feels like editing text.",
            ),
        }
        for name, edit in edits.items():
            times = {}
            audio = next(pieces)
            t = time.perf_counter()
            prompt = backend.tokenize(audio, rate, lambda f, s: None)
            times["tokenize"] = time.perf_counter() - t
            t = time.perf_counter()
            generated = backend.generate(prompt, edit, lambda f, s: None)
            times["generate"] = time.perf_counter() - t
            t = time.perf_counter()
            rendered = backend.decode(generated, prompt, lambda f, s: None)
            times["decode"] = time.perf_counter() - t
            tokens = len(generated.values)
            out_seconds = rendered.audio.shape[-1] / rendered.sample_rate
            rows += [
                (
                    f"{name}: tokenize ({duration:.1f} s in)",
                    f"{times['tokenize']:.2f} s, RTF {times['tokenize'] / duration:.3f}",
                ),
                (
                    f"{name}: generate ({tokens} tokens, {generated.stop_reason})",
                    f"{times['generate']:.2f} s, {tokens / times['generate']:.1f} tok/s "
                    f"= {tokens / times['generate'] / TOKENS_PER_AUDIO_SECOND:.2f}x real time",
                ),
                (
                    f"{name}: decode ({out_seconds:.1f} s out)",
                    f"{times['decode']:.2f} s, RTF {times['decode'] / out_seconds:.3f}",
                ),
            ]
        rows += same_run_ratios(backend, pieces, rate, args.repeats)
    rows.append(("peak memory", peak_memory_mb(args.device)))
    width = max(len(k) for k, _ in rows)
    source = "real checkpoints" if args.model_dir else "tiny fixture"
    print(
        f"stepaudio backend on {args.device} ({args.dtype}, quantize {args.quantize}, "
        f"{source}, {args.threads} thread(s))"
    )
    print(f"{'measure':<{width}}  value\n{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
