"""``stepedit batch`` against the real engine: mixed formats, interruptions, resuming; and
against an engine that cannot read the files (their audio travels)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile
from pedalboard.io import AudioFile

from bridge.batch import MANIFEST_NAME, _file_key, _Manifest, find_audio_files, run_batch
from bridge.cli import main
from bridge.client import StepEditClient
from bridge.edit_flags import edit_from_flags
from bridge.launcher import EngineProcess
from bridge.protocol import ADDRESS

pytestmark = pytest.mark.slow

CLIPS = (
    "en_vctk_p287_006_noisy.wav",
    "zh_aishell1_BAC009S0724W0121.wav",
    "en_vctk_p287_003_noisy.wav",
    "en_ljspeech_LJ050-0131.wav",
)
FORMATS = ("wav", "flac", "ogg", "mp3")


def make_folder(data_dir: Path, root: Path) -> list[Path]:
    """Each clip in each format, in two subfolders, plus a corrupt FLAC; returns the good ones."""
    made = []
    for n, clip in enumerate(CLIPS):
        with AudioFile(str(data_dir / clip)) as f:
            audio, rate = f.read(f.frames), f.samplerate
        for fmt in FORMATS:
            path = root / ("a" if n % 2 else "b") / f"{Path(clip).stem}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            with AudioFile(str(path), "w", rate, 1) as out:
                out.write(audio)
            made.append(path)
    good_flac = made[1].read_bytes()
    (root / "a" / "broken.flac").write_bytes(good_flac[: len(good_flac) // 3])
    (root / "notes.txt").write_text("not audio: never queued")
    return made


# ``python -m bridge`` with Ctrl-C turned back on: a shell starts a background job (``make
# test &``) with SIGINT ignored, its children inherit that, and Python then never raises
# KeyboardInterrupt, so the batch ran to its end and exited 1 instead of 130.
_CLI_WITH_CTRL_C = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from bridge.cli import main; sys.exit(main())"
)


def batch(engine: EngineProcess, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _CLI_WITH_CTRL_C, "batch", *args, "--engine", engine.address],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def manifest_counts(out: Path) -> tuple[int, int]:
    """(files done, jobs in flight) as the manifest says."""
    try:
        entries = json.loads((out / MANIFEST_NAME).read_text())["entries"].values()
    except (OSError, ValueError):
        return 0, 0
    done = sum("output" in e for e in entries)
    return done, len(entries) - done


def interrupt_mid_way(process: subprocess.Popen[str], out: Path, sig: int) -> tuple[str, str]:
    """Sends ``sig`` once the batch has finished a file and has another in flight.

    Returns:
        The batch's stdout and stderr.
    """
    before, _ = manifest_counts(out)
    deadline = time.monotonic() + 60
    while process.poll() is None:
        done, in_flight = manifest_counts(out)
        if done > before and in_flight:
            break
        assert time.monotonic() < deadline, "no output within 60 s"
        time.sleep(0.005)
    process.send_signal(sig)
    return process.communicate(timeout=60)


def summary_rows(stdout: str) -> dict[str, str]:
    """file name -> state, from the summary table."""
    rows = {}
    for line in stdout.splitlines():
        state, _, rest = line.partition(" ")
        if state in {"ok", "skipped", "failed", "pending"}:
            rows[Path(rest.strip().split("  ")[0]).name] = state
    return rows


def test_mixed_formats_interrupted_twice_then_finished(
    engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    sources = make_folder(data_dir, tmp_path / "takes")
    out = tmp_path / "edited"
    args = (str(tmp_path / "takes"), "--emotion", "happy", "-o", str(out), "--jobs", "2")

    # Ctrl-C: the jobs in flight are cancelled; what was not finished is listed as pending.
    first = batch(engine, *args)
    stdout, stderr = interrupt_mid_way(first, out, signal.SIGINT)
    assert first.returncode == 130, f"{stdout}\n{stderr[-2000:]}"
    rows = summary_rows(stdout)
    assert "ok" in rows.values() and "pending" in rows.values()
    assert "pending" in stdout.splitlines()[-1]

    # A kill: no chance to cancel; the engine finishes what it had, the rerun takes it up.
    second = batch(engine, *args)
    interrupt_mid_way(second, out, signal.SIGKILL)
    assert manifest_counts(out)[1] >= 1  # a job the rerun asks for again by its id

    third = batch(engine, *args)
    stdout, stderr = third.communicate(timeout=120)
    assert third.returncode == 1, stderr  # the corrupt file
    rows = summary_rows(stdout)
    assert rows.pop("broken.flac") == "failed"
    assert "[input_corrupt]" in next(line for line in stdout.splitlines() if "broken.flac" in line)
    assert sorted(rows) == sorted(p.name for p in sources)
    assert set(rows.values()) <= {"ok", "skipped"} and "skipped" in rows.values()
    assert stdout.splitlines()[-1].endswith(f"{len(sources) + 1} files: " + _counts(rows))

    # One complete result per source, in the source's subfolder; nothing else.
    made = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert Path(MANIFEST_NAME) in made
    made.remove(Path(MANIFEST_NAME))
    assert len(made) == len(sources)
    entries = json.loads((out / MANIFEST_NAME).read_text())["entries"].values()
    results = {
        Path(e["source"]): Path(e["source"]).parent.name + "/" + e["output"] for e in entries
    }
    assert sorted(results) == sorted(sources)
    assert sorted(results.values()) == sorted(m.as_posix() for m in made)
    for source, result in results.items():
        assert Path(result).name.startswith(f"{source.stem}.stepedit.happy.")
        with AudioFile(str(out / result)) as f:
            assert f.frames > 0.5 * f.samplerate
    assert not any(p.name.endswith(".tmp") for p in tmp_path.rglob("*"))

    # Everything done: a fourth run renders nothing.
    fourth = batch(engine, *args)
    stdout, _ = fourth.communicate(timeout=60)
    assert set(summary_rows(stdout).values()) == {"skipped", "failed"}


def _counts(rows: dict[str, str]) -> str:
    values = list(rows.values())
    return f"{values.count('ok')} ok, {values.count('skipped')} skipped, 1 failed"


def test_the_same_edit_is_recognised(engine: EngineProcess, data_dir: Path, tmp_path: Path) -> None:
    source = tmp_path / "in" / "take.wav"
    source.parent.mkdir()
    source.write_bytes((data_dir / CLIPS[0]).read_bytes())
    out = tmp_path / "out"

    def run(edit: dict[str, object]) -> tuple[str, str]:
        progress, summary = io.StringIO(), io.StringIO()
        report = run_batch(
            [source.parent],
            edit,
            out,
            jobs=1,
            connect=lambda: StepEditClient(port=engine.port, timeout=5.0),
            progress_stream=progress,
            summary_stream=summary,
        )
        assert not report.failed and not report.pending
        (result,) = report.results
        return result.state, progress.getvalue()

    faster = {"type": "speed", "option": "faster", "iterations": 1}
    state, progress = run(faster)
    assert state == "ok"
    assert "\x1b[" not in progress and "[1/1] ok" in progress and "writing" in progress
    assert run(faster)[0] == "skipped"
    assert run({**faster, "iterations": 2})[0] == "ok"  # another edit
    os.utime(source, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert run(faster)[0] == "ok"  # the source changed
    assert len(list(out.glob("take.stepedit.*.wav"))) == 3


def remote_takes(data_dir: Path, folder: Path) -> tuple[list[Path], Path, tuple[str, ...]]:
    """Three clips in a folder of the client's, its output folder, and the arguments of a
    ``stepedit batch`` that edits them on ``remote_engine`` (``--remote``: it is on
    loopback, though it cannot read them) once given ``--engine`` and ``--secret-file``."""
    takes = folder / "takes"
    takes.mkdir(parents=True)
    sources = [takes / clip for clip in CLIPS[:3]]
    for source in sources:
        source.write_bytes((data_dir / source.name).read_bytes())
    out = folder / "edited"
    return sources, out, (str(takes), "--speed", "faster", "-o", str(out), "--remote")


def secret_args(engine: EngineProcess, tmp_path: Path) -> tuple[str, ...]:
    secret = tmp_path / "secret"
    secret.write_text(engine.secret or "")
    return ("--secret-file", str(secret))


def test_a_remote_engine_gets_each_files_audio(
    remote_engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    sources, out, args = remote_takes(data_dir, tmp_path)
    args += secret_args(remote_engine, tmp_path)
    first = batch(remote_engine, *args)
    stdout, stderr = first.communicate(timeout=60)
    assert first.returncode == 0, stderr
    assert summary_rows(stdout) == {s.name: "ok" for s in sources}
    made = sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME)
    assert len(made) == 3
    for source in sources:
        (result,) = (name for name in made if name.startswith(f"{source.stem}.stepedit.faster."))
        assert soundfile.info(out / result).duration < soundfile.info(source).duration
    assert "upload" in stderr  # progress of the transfers

    again = batch(remote_engine, *args)
    stdout, stderr = again.communicate(timeout=30)
    assert again.returncode == 0, stderr
    assert summary_rows(stdout) == {s.name: "skipped" for s in sources}
    assert sorted(p.name for p in out.iterdir() if p.name != MANIFEST_NAME) == made


def test_a_path_mapping_sends_paths_not_audio(
    remote_engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    # Shared storage, seen by the engine through a link in its own folder.
    storage = remote_engine.log.parent / "storage" / tmp_path.name
    mount = remote_engine.log.parent / "files" / f"mnt-{tmp_path.name}"
    sources, out, args = remote_takes(data_dir, storage)
    mount.symlink_to(storage)
    mapped = batch(
        remote_engine,
        *args,
        "--map-path",
        f"{storage}={mount}",
        *secret_args(remote_engine, tmp_path),
    )
    stdout, stderr = mapped.communicate(timeout=60)
    assert mapped.returncode == 0, stderr
    assert summary_rows(stdout) == {s.name: "ok" for s in sources}
    assert "upload" not in stderr  # no transfer
    for entry in json.loads((out / MANIFEST_NAME).read_text())["entries"].values():
        assert (out / entry["output"]).is_file()
    assert f"{storage.resolve()}/edited/" in remote_engine.log_text()  # written there by it


def test_a_remote_job_in_flight_when_the_batch_died_is_downloaded(
    remote_engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    # The dead batch had uploaded the first take and the engine finished its job, which
    # the manifest names; the rerun asks for that job by its id and downloads its result.
    sources, out, args = remote_takes(data_dir, tmp_path)
    edit = edit_from_flags(speed="faster")
    dead_job = "deadbeef" + "0" * 24
    with StepEditClient(
        port=remote_engine.port, secret=remote_engine.secret, transport="tcp", timeout=5.0
    ) as client:
        upload_id = client.upload(sources[0].read_bytes())
        client.run(ADDRESS["edit"], {"input_upload": upload_id, "edit": edit}, job_id=dead_job)
    out.mkdir()
    entry = {"source": str(sources[0]), "job_id": dead_job}
    manifest = {"version": 1, "entries": {_file_key(sources[0], edit): entry}}
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))

    rerun = batch(remote_engine, *args, *secret_args(remote_engine, tmp_path))
    stdout, stderr = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, stderr
    assert summary_rows(stdout) == {s.name: "ok" for s in sources}
    entries = json.loads((out / MANIFEST_NAME).read_text())["entries"]
    resumed = entries[_file_key(sources[0], edit)]
    assert resumed["job_id"] == dead_job
    assert ".deadbeef" in resumed["output"] and (out / resumed["output"]).is_file()


def test_find_audio_files(tmp_path: Path) -> None:
    for name in (
        "x/1.WAV",
        "x/y/2.flac",
        "x/.hidden.wav",
        "x/.cache/3.wav",
        "x/4.txt",
        "x/out/5.wav",
    ):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "named.dat").write_bytes(b"")
    found = find_audio_files(
        [tmp_path / "x", tmp_path / "named.dat", tmp_path / "x" / "1.WAV", tmp_path / "gone.wav"],
        exclude=tmp_path / "x" / "out",
    )
    assert [(s.relative_to(tmp_path).as_posix(), str(sub)) for s, sub in found] == [
        ("x/1.WAV", "."),
        ("x/y/2.flac", "y"),
        ("named.dat", "."),
        ("gone.wav", "."),
    ]


def test_batch_needs_one_valid_edit(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="give exactly one of --emotion/"):
        main(["batch", str(tmp_path), "-o", str(tmp_path / "out")])
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "o"), "--emotion", "gleeful"]) == 2
    assert "unknown option 'gleeful'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_terminal_display_redraws_one_block(
    engine: EngineProcess, data_dir: Path, tmp_path: Path
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    source = tmp_path / "take.wav"
    source.write_bytes((data_dir / CLIPS[2]).read_bytes())
    run_batch(
        [source],
        {"type": "denoise"},
        tmp_path / "out",
        connect=lambda: StepEditClient(port=engine.port, timeout=5.0),
        progress_stream=screen,
        summary_stream=io.StringIO(),
    )
    text = screen.getvalue()
    assert "\x1b[" in text and "take.wav" in text and "1/1 files (1 ok 0 skipped 0 failed)" in text


def test_a_manifest_copy_left_by_a_killed_run_is_removed(tmp_path: Path) -> None:
    """A kill while the manifest is rewritten leaves its temporary copy in OUT_DIR."""
    leftover = tmp_path / f".{MANIFEST_NAME}.k2j4_x9q.tmp"
    leftover.write_text("{")
    manifest = _Manifest(tmp_path)
    manifest.put("key", {"source": "/a.wav", "job_id": "j1"})
    assert not leftover.exists()
    assert [p.name for p in tmp_path.iterdir()] == [MANIFEST_NAME]
