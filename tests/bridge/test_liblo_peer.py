"""liblo's oscsend/oscdump as an independent OSC implementation talking to the real engine."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import soundfile

from bridge.launcher import EngineProcess, free_udp_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not shutil.which("oscsend"), reason="liblo-tools (oscsend/oscdump) missing"),
]


class Dump:
    """An ``oscdump`` process collecting replies on a port."""

    def __init__(self, port: int, out: Path) -> None:
        self.port, self.out = port, out
        self.process = subprocess.Popen(
            ["oscdump", "-L", str(port)], stdout=out.open("w"), text=True
        )
        time.sleep(0.3)  # let it bind

    def lines(self) -> list[str]:
        """Messages as ``address types args...`` (oscdump's timestamp column dropped)."""
        return [line.split(" ", 1)[1] for line in self.out.read_text().splitlines() if " " in line]

    def wait_for(self, text: str, timeout: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines()):
                return self.lines()
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not seen; got {self.lines()}")


@pytest.fixture()
def dump(tmp_path: Path) -> Iterator[Dump]:
    d = Dump(free_udp_port(), tmp_path / "dump.txt")
    yield d
    d.process.terminate()
    d.process.wait()


def oscsend(engine: EngineProcess, address: str, types: str, *args: object) -> None:
    subprocess.run(
        ["oscsend", "localhost", str(engine.port), address, types, *map(str, args)], check=True
    )


def test_ping_from_oscsend(engine: EngineProcess, dump: Dump) -> None:
    oscsend(engine, "/stepedit/ping", "i", dump.port)
    [line] = [x for x in dump.wait_for("/stepedit/pong") if "/stepedit/pong" in x]
    assert ' isss 1 "' in line and '"cpu" "cpu"' in line


def test_capabilities_from_oscsend(engine: EngineProcess, dump: Dump) -> None:
    oscsend(engine, "/stepedit/capabilities", "i", dump.port)
    line = next(x for x in dump.wait_for("/stepedit/capabilities") if "/stepedit/capabilities" in x)
    listing = json.loads(line.split(" s ", 1)[1].strip()[1:-1])  # oscdump quotes, never escapes
    assert listing["backend"] == "cpu" and "speed" in listing["backends"]["cpu"]["edits"]


def test_edit_from_oscsend(
    engine: EngineProcess, dump: Dump, data_dir: Path, tmp_path: Path
) -> None:
    clip = tmp_path / "clip.wav"
    shutil.copy(data_dir / "en_ljspeech_LJ050-0131.wav", clip)
    request = {
        "input": str(clip),
        "edit": {"type": "speed", "option": "faster"},
        "reply_port": dump.port,
    }
    oscsend(engine, "/stepedit/edit", "ss", "liblo-1", json.dumps(request))
    lines = dump.wait_for("/stepedit/done")
    kinds = [line.split()[0] for line in lines if "liblo-1" in line]
    assert kinds[0] == "/stepedit/accepted" and kinds[-1] == "/stepedit/done"
    assert "/stepedit/progress" in kinds
    progress = [line for line in lines if line.startswith("/stepedit/progress")]
    assert all(" ssfs " not in p and " sfs " in p for p in progress)  # job_id:s fraction:f stage:s
    done = next(line for line in lines if line.startswith("/stepedit/done"))
    output = done.split('"')[3]
    assert soundfile.info(output).frames == pytest.approx(soundfile.info(clip).frames / 1.25, abs=2)
    # the status query repeats the latest message, to the port given in the query
    oscsend(engine, "/stepedit/status", "si", "liblo-1", dump.port)
    deadline = time.monotonic() + 10
    while sum(line.startswith("/stepedit/done") for line in dump.lines()) < 2:
        assert time.monotonic() < deadline, dump.lines()
        time.sleep(0.05)


def test_error_reply_to_oscsend(engine: EngineProcess, dump: Dump) -> None:
    request = {"input": "/nonexistent/take.wav", "edit": {"type": "vad"}, "reply_port": dump.port}
    oscsend(engine, "/stepedit/edit", "ss", "liblo-2", json.dumps(request))
    line = next(x for x in dump.wait_for("/stepedit/error") if "liblo-2" in x)
    assert '"input_not_found"' in line
