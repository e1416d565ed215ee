"""Fixtures shared by the stepaudio backend tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir


@pytest.fixture(scope="module", autouse=True)
def single_torch_thread() -> Iterator[None]:
    """Runs each module with one intra-op thread, then restores the previous count.

    The fixture models are tiny: every op is cheaper than waking a second OpenMP thread, and
    on a busy 2-core machine two threads make each op wait milliseconds for the other core.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both tiny official-layout checkpoint directories under one model root."""
    root = tmp_path_factory.mktemp("model")
    write_tokenizer_dir(root)
    write_editx_dir(root)
    return root
