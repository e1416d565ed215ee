"""Load run on loopback: 1,000 edit requests from 10 concurrent clients against one engine.

Clients retry on ``queue_full`` (backoff with jitter). Checks that every request gets exactly
one final result and one output file (no double render), and reports the accept latency
(request sent -> ``accepted``) p50/p99, the wall time and the engine's memory before and
after. Bounded in count and time.

    python bench/bench_load.py [--requests N] [--clients N] [--max-queue N]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile

from bridge.client import ClientError, StepEditClient, new_job_id
from bridge.launcher import start_engine, stop_engine


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--max-queue", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        take = root / "take.wav"
        t = np.arange(16000) / 16000
        soundfile.write(take, 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(6 * t)), 16000)
        out = root / "out"
        out.mkdir()
        engine = start_engine(root, "--max-queue", str(args.max_queue))
        before = rss_mb(engine.process.pid)
        request = {"input": str(take), "output_dir": str(out), "edit": {"type": "speed",
                   "option": "faster"}}  # fmt: skip
        accepts: list[float] = []
        outcomes: list[str] = []
        lock = threading.Lock()

        def client(count: int) -> None:
            with StepEditClient("127.0.0.1", engine.port, timeout=10, queue_retries=50) as c:
                for _ in range(count):
                    job_id = new_job_id()
                    sent = time.perf_counter()
                    first = c.submit(job_id, request)
                    accepted = time.perf_counter() - sent
                    try:
                        if first.address.endswith("/error"):
                            outcome = c.edit(request, job_id=job_id).output_path  # retried
                        else:
                            outcome = next(
                                str(m.args[1])
                                for m in c.events(job_id, first)
                                if m.address.endswith(("/done", "/error"))
                            )
                    except ClientError as e:
                        outcome = f"error {e.code}"
                    with lock:
                        accepts.append(accepted)
                        outcomes.append(outcome)

        share = args.requests // args.clients
        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(share,)) for _ in range(args.clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(600)
        wall = time.perf_counter() - started
        after = rss_mb(engine.process.pid)
        stop_engine(engine)
        log = engine.log_text()  # after the stop: the last "done" line is written by then
        files = sorted(p.name for p in out.iterdir() if p.suffix == ".wav")
    done = [o for o in outcomes if not o.startswith(("error", "queue_full", "no_engine"))]
    errors = [o for o in outcomes if o not in done]
    print(f"{len(outcomes)} requests from {args.clients} clients in {wall:.1f} s "
          f"({len(outcomes) / wall:.1f}/s), max queue {args.max_queue}")  # fmt: skip
    print(f"final results: {len(done)} done, {len(errors)} errors {sorted(set(errors))[:5]}")
    print(f"output files: {len(files)}; 'done' log lines: {log.count(' done: ')}")
    print(f"accept latency p50 {1e3 * np.percentile(accepts, 50):.1f} ms, "
          f"p99 {1e3 * np.percentile(accepts, 99):.1f} ms")  # fmt: skip
    print(f"engine RSS {before:.0f} MB before, {after:.0f} MB after")


if __name__ == "__main__":
    main()
