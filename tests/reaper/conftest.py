"""Fixtures of the REAPER-script tests (the real engine is the session fixture `engine`)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.reaper.harness import CLIP, Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project folder whose media folder holds a copy of a real speech clip."""
    media = tmp_path / "Media"
    media.mkdir()
    clip = media / "voice.wav"
    shutil.copyfile(CLIP, clip)
    return Project(tmp_path, media, clip)
