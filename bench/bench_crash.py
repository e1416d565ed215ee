"""Crash run: SIGKILL the real engine at many moments of its work, restart it each time.

Each round starts the engine on the same state folder, sends a few edits of a clip (one
rendering, the others queued), kills it with SIGKILL after a delay that sweeps the life of
a job (accept, read, render, write, done), and restarts it. At the end every job must be
finished — ``done``, or ``error`` with a reason — and the run counts: jobs done, failed,
re-run after a kill, temporary files left, sources changed, and outputs that no job reports
(a kill between publishing a file and journaling it leaves one; the job is rendered again).

    python bench/bench_crash.py [--rounds N] [--seconds S]
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile

from bridge.client import ClientError, StepEditClient
from bridge.launcher import EngineProcess, start_engine, stop_engine
from bridge.protocol import ADDRESS

CLIP = Path(__file__).resolve().parent.parent / "tests" / "data" / "en_ljspeech_LJ050-0131.wav"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def final_state(engine: EngineProcess, job_ids: list[str], timeout: float) -> dict[str, tuple]:
    """Waits until every job is finished; returns (address, args) per job."""
    finished: dict[str, tuple] = {}
    deadline = time.monotonic() + timeout
    with StepEditClient("127.0.0.1", engine.port, timeout=5) as client:
        while len(finished) < len(job_ids) and time.monotonic() < deadline:
            for job_id in job_ids:
                if job_id in finished:
                    continue
                reply = client.query(ADDRESS["status"], job_id)
                if reply.address in (ADDRESS["done"], ADDRESS["error"]):
                    finished[job_id] = (reply.address, reply.args)
            time.sleep(0.2)
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the long clip")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        media, out = root / "media", root / "out"
        media.mkdir()
        out.mkdir()
        audio, rate = soundfile.read(CLIP, dtype="float32")
        long = media / "long.wav"
        soundfile.write(long, np.tile(audio, int(np.ceil(args.seconds * rate / len(audio)))), rate)
        short = media / "short.wav"
        soundfile.write(short, audio, rate)
        sources = {p: digest(p) for p in (long, short)}

        # One undisturbed round measures how long the work takes, to sweep kills across it.
        engine = start_engine(root)
        started = time.monotonic()
        with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
            request = {"input": str(long), "output_dir": str(out), "edit": {"type": "denoise"}}
            baseline = Path(client.edit(request).output_path).name
        span = time.monotonic() - started
        stop_engine(engine)

        job_ids: list[str] = []
        kills = 0
        for round_ in range(args.rounds):
            engine = start_engine(root)
            with StepEditClient("127.0.0.1", engine.port, timeout=10) as client:
                for n, source in enumerate((long, short, short)):
                    job_id = f"r{round_:02d}-{n}"
                    client.submit(
                        job_id,
                        {"input": str(source), "output_dir": str(out), "edit": {"type": "denoise"}},
                    )
                    job_ids.append(job_id)
            time.sleep(span * (round_ + rng.random()) / args.rounds)
            engine.process.kill()
            engine.process.wait()
            kills += 1

        engine = start_engine(root)
        try:
            finished = final_state(engine, job_ids, timeout=60 + 3 * span * len(job_ids))
        except ClientError as e:
            raise SystemExit(f"the restarted engine did not answer: {e}") from e
        finally:
            stop_engine(engine)
        logs = "".join(p.read_text(errors="replace") for p in root.glob("engine-*.log"))
        temporaries = len(list(out.glob(".*.tmp")))
        unchanged = all(digest(p) == h for p, h in sources.items())
        outputs = {p.name for p in out.iterdir() if p.suffix == ".wav"} - {baseline}

    done = [j for j, (address, _) in finished.items() if address == ADDRESS["done"]]
    failed = {j: a[1:] for j, (address, a) in finished.items() if address != ADDRESS["done"]}
    reported = {Path(finished[j][1][1]).name for j in done}
    print(f"{kills} SIGKILLs over {span:.1f} s of work each, {len(job_ids)} jobs accepted")
    print(f"finished: {len(finished)}/{len(job_ids)}; done {len(done)}, failed {len(failed)}")
    for job_id, reason in sorted(failed.items()):
        print(f"  {job_id}: {reason}")
    print(f"re-run after a kill: {logs.count('resumed after a restart')}")
    print(f"temporary files left: {temporaries}")
    print(f"sources unchanged: {unchanged}")
    print(f"outputs no job reports (published, then killed before journaled): "
          f"{len(outputs - reported)}")  # fmt: skip


if __name__ == "__main__":
    main()
