"""Fixtures shared by the stepaudio backend tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


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
