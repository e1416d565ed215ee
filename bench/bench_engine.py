"""Engine benchmark: OSC round trips, warm engine vs. one process per edit, CPU edit RTFs.

Every number is measured in this run; ratios compare against a baseline from the same run.

    python bench/bench_engine.py [--clip PATH] [--rounds N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from bridge.client import StepEditClient, new_job_id
from bridge.launcher import start_engine, stop_engine
from bridge.protocol import ADDRESS

REPO = Path(__file__).resolve().parent.parent

EDITS: dict[str, dict[str, object]] = {
    "speed faster": {"type": "speed", "option": "faster"},
    "speed more slower": {"type": "speed", "option": "more slower"},
    "denoise": {"type": "denoise"},
    "vad": {"type": "vad"},
    "emotion happy": {"type": "emotion", "option": "happy"},
    "style whisper": {"type": "style", "option": "whisper"},
    "style child": {"type": "style", "option": "child"},
    "paralinguistic Laughter": {"type": "paralinguistic", "option": "Laughter", "position": 4.0},
}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def ten_second_clip(source: Path, folder: Path) -> Path:
    """The first 10 s of ``source`` (looped if shorter), written as WAV."""
    samples, rate = soundfile.read(source, dtype="float32", always_2d=True)
    need = 10 * rate
    reps = -(-need // len(samples))
    clip = folder / "clip10s.wav"
    soundfile.write(clip, np.tile(samples, (reps, 1))[:need], rate)
    return clip


def one_shot_edit(clip: Path, edit: dict[str, object], folder: Path) -> float:
    """Time of a fresh engine process that loads, renders one edit and exits (a one-shot CLI)."""
    started = time.perf_counter()
    engine = start_engine(folder)
    try:
        with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
            client.edit({"input": str(clip), "edit": edit, "output_dir": str(folder)})
    finally:
        stop_engine(engine)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clip", type=Path, default=REPO / "tests/data/en_ljspeech_LJ050-0131.wav")
    parser.add_argument("--rounds", type=int, default=200, help="ping round trips")
    parser.add_argument("--edits", type=int, default=3, help="repeats per edit type")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="stepedit-bench-"))
    clip = ten_second_clip(args.clip, folder)
    rows: list[tuple[str, str]] = []
    engine = start_engine(folder)
    try:
        with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
            pings = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                client.ping()
                pings.append((time.perf_counter() - t) * 1000)
            rows += [
                ("OSC ping round trip p50", f"{percentile(pings, 50):.3f} ms"),
                ("OSC ping round trip p99", f"{percentile(pings, 99):.3f} ms"),
            ]
            accepted = []
            for _ in range(20):
                job_id = new_job_id()
                t = time.perf_counter()
                first = client.submit(
                    job_id, {"input": str(clip), "edit": EDITS["vad"], "output_dir": str(folder)}
                )
                accepted.append((time.perf_counter() - t) * 1000)
                assert first.address == ADDRESS["accepted"]
                for _message in client.events(job_id, first):
                    pass
            rows.append(
                ("/stepedit/edit -> /stepedit/accepted p50", f"{percentile(accepted, 50):.3f} ms")
            )
            warm: dict[str, float] = {}
            for name, edit in EDITS.items():
                times = []
                for _ in range(args.edits):
                    t = time.perf_counter()
                    client.edit({"input": str(clip), "edit": edit, "output_dir": str(folder)})
                    times.append(time.perf_counter() - t)
                warm[name] = statistics.median(times)
                rows.append(
                    (f"RTF {name} (10 s clip, warm engine, end to end)", f"{warm[name] / 10:.4f}")
                )
    finally:
        stop_engine(engine)

    cold = statistics.median(one_shot_edit(clip, EDITS["denoise"], folder) for _ in range(2))
    rows += [
        ("denoise, warm engine", f"{warm['denoise']:.3f} s"),
        ("denoise, fresh process per edit", f"{cold:.3f} s"),
        ("fresh process / warm engine", f"{cold / warm['denoise']:.1f}x"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
