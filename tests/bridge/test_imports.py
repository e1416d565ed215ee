"""Starting a client or the server imports no DSP or torch: the backend loads them itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY = ("pedalboard", "parselmouth", "pyworld", "torch", "onnxruntime", "df", "scipy")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(out.stdout.split())
    return {name for name in HEAVY if name in loaded}


@pytest.mark.parametrize(
    "code",
    [
        "import bridge.server",
        "import bridge.cli",
        "from engine.capabilities import describe",
        "from engine.backends import backend_class; backend_class('cpu'); backend_class('stepaudio')",
        "from bridge.cli import main\n"
        "try:\n    main(['ping', '--help'])\nexcept SystemExit:\n    pass",
    ],
)
def test_no_heavy_imports(code: str) -> None:
    assert _imported_after(code) == set()
