"""Text-edit benchmark: a 60 s take transcribed and then edited as text through a warm engine.

Times the first transcription (cache miss), the second (hit), a delete-words edit, a fillers
edit and a mask edit end to end over OSC, each as a ratio to the take's duration (RTF), and
the delete-words edit against a plain speed edit of the same take measured in the same run.

    python bench/bench_text_edit.py [--rounds N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import soundfile
from bench_transcribe import ENGLISH_60, RATE, joined

from bridge.client import StepEditClient
from bridge.launcher import start_engine, stop_engine


def sixty_second_take(folder: Path) -> Path:
    """The transcription benchmark's 60 s English take (read clips end to end), as a WAV."""
    path = folder / "take60.wav"
    soundfile.write(path, joined(ENGLISH_60, 60.0), RATE)
    return path


def timed(run: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    value = run()
    return time.perf_counter() - started, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=2, help="edits per kind (median)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        take = sixty_second_take(root)
        duration = soundfile.info(take).duration
        engine = start_engine(root)
        try:
            with StepEditClient("127.0.0.1", engine.port, timeout=30) as client:
                request = {"input": str(take), "output_dir": str(root)}
                miss, first = timed(lambda: client.transcribe(request))
                hit, _ = timed(lambda: client.transcribe(request))
                words = [w["word"] for w in first.result["transcript"]["words"]]
                text = " ".join(words)
                # Delete every fifth word; mask every seventh.
                deleted = " ".join(w for i, w in enumerate(words) if i % 5 != 2)
                masked = " ".join(f"{{{w}}}" if i % 7 == 3 else w for i, w in enumerate(words))
                edits = {
                    "speed faster (baseline)": {"type": "speed", "option": "faster"},
                    "delete words": {"type": "text", "text": text, "target_text": deleted},
                    "mask words": {"type": "text", "text": text, "target_text": masked},
                    "remove fillers": {"type": "fillers"},
                }
                # The first run of an edit that names the client's text aligns that text
                # (then cached); later runs show the edit alone.
                runs = {
                    name: [
                        timed(lambda e=edit: client.edit({**request, "edit": e}))[0]
                        for _ in range(1 + args.rounds)
                    ]
                    for name, edit in edits.items()
                }
        finally:
            stop_engine(engine)
    print(f"take: {duration:.1f} s, {len(words)} words; warm engine on the embedded CPU backend")
    print(f"{'step':<28}{'first s':>9}{'RTF':>8}{'later s':>9}{'RTF':>8}")
    print(f"{'transcribe':<28}{miss:>9.2f}{miss / duration:>8.3f}{hit:>9.2f}{hit / duration:>8.3f}")
    later = {name: statistics.median(times[1:]) for name, times in runs.items()}
    for name, times in runs.items():
        first, rest = times[0], later[name]
        print(f"{name:<28}{first:>9.2f}{first / duration:>8.3f}{rest:>9.2f}{rest / duration:>8.3f}")
    ratio = later["delete words"] / later["speed faster (baseline)"]
    print(f"delete words / speed edit of the same take (later runs): {ratio:.2f}x")


if __name__ == "__main__":
    main()
