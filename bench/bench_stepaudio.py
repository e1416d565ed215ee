"""Step-Audio-EditX backend benchmark: time per stage, tokens/s, peak memory.

Runs on the tiny random-weight fixture by default (CPU, seconds); with ``--model-dir`` on the
real checkpoints, so that the first run on a GPU machine gives comparable numbers. Ratios are
against baselines from the same run: the clip's own duration (real-time factor) and the
stream's real-time token rate (41.67 tokens per second of audio).

    python bench/bench_stepaudio.py [--model-dir ROOT --device cuda --dtype bf16] [--clip WAV]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from engine.backends.stepaudio import StepAudioBackend
from engine.edits import EditSpec

REPO = Path(__file__).resolve().parent.parent
# 5 mixed tokens per 120 ms of audio.
TOKENS_PER_AUDIO_SECOND = 5 / 0.12


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-dir", type=Path, help="real checkpoints (default: tiny fixture)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--clip", type=Path, default=REPO / "tests/data/en_ljspeech_LJ050-0131.wav")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the clip used")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    samples, rate = soundfile.read(args.clip, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(samples[: int(args.seconds * rate)].T)
    duration = audio.shape[1] / rate
    with tempfile.TemporaryDirectory(prefix="stepedit-bench-") as folder:
        root = args.model_dir or fixture_root(Path(folder))
        backend = StepAudioBackend(root, device=args.device, dtype=args.dtype)
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
    rows.append(("peak memory", peak_memory_mb(args.device)))
    width = max(len(k) for k, _ in rows)
    source = "real checkpoints" if args.model_dir else "tiny fixture"
    print(f"stepaudio backend on {args.device} ({args.dtype}, {source}, {args.threads} thread(s))")
    print(f"{'measure':<{width}}  value\n{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
