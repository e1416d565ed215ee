"""Sampling rules (§4.5), the length bound and the stop reasons of generation."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from engine.backends.stepaudio.llm.config import Step1Config
from engine.backends.stepaudio.llm.generate import expected_clone_tokens, generate
from engine.backends.stepaudio.llm.model import KVCache
from engine.backends.stepaudio.llm.sampling import ban_repetition, sample_next
from engine.backends.stepaudio.options import GenerationLimits, SamplingConfig

VOCAB = 74752


@pytest.mark.parametrize(
    ("history", "banned"),
    [
        ([5, 6, 7, 8, 9, 10, 11, 12, 7], False),  # only 9 ids: the rule needs a full window
        ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], False),  # last id once in the window
        ([1, 10, 3, 4, 5, 6, 7, 8, 9, 10], True),  # twice: more than 10 % of the window
        ([10, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10], False),  # the earlier 10 is outside the window
        ([4, 4, 4, 4, 1, 2, 3, 5, 6, 9], False),  # repeats of another id are never banned
    ],
)
def test_repetition_rule(history: list[int], banned: bool) -> None:
    logits = torch.zeros(20)
    assert ban_repetition(logits, history) is banned
    assert bool(logits[history[-1]] == float("-inf")) is banned
    assert torch.isfinite(logits).sum() == 20 - banned


def test_ban_comes_before_top_k() -> None:
    logits = torch.zeros(VOCAB)
    logits[66000], logits[66001] = 10.0, 9.0
    history = [1, 66000, 2, 3, 4, 5, 6, 7, 8, 66000]  # 66000 twice: banned
    greedy = SamplingConfig(top_k=1)
    gen = torch.Generator().manual_seed(0)
    assert sample_next(logits, history, greedy, gen) == 66001
    assert sample_next(logits, [*history[1:], 9], greedy, gen) == 66000
    assert logits[66000] == 10.0  # the caller's logits are untouched


def test_top_k_and_temperature_limit_the_draws() -> None:
    logits = torch.linspace(0, 1, VOCAB)
    gen = torch.Generator().manual_seed(0)
    config = SamplingConfig(top_k=50)
    draws = {sample_next(logits, [1], config, gen) for _ in range(300)}
    assert draws <= set(range(VOCAB - 50, VOCAB)) and len(draws) > 20


def test_top_p_keeps_the_smallest_nucleus() -> None:
    logits = torch.full((10,), -30.0)
    logits[:3] = torch.tensor([2.0, 1.9, 0.0])
    gen = torch.Generator().manual_seed(0)
    config = SamplingConfig(temperature=1.0, top_k=0, top_p=0.6)
    assert {sample_next(logits, [1], config, gen) for _ in range(200)} == {0, 1}


class ScriptedModel(nn.Module):
    """Stands in for Step1: its logits make ``script[i]`` the only choice at step ``i``."""

    def __init__(self, script: list[int]) -> None:
        super().__init__()
        self.config = Step1Config(8, 8, 2, 1, 1, VOCAB)
        self.weight = nn.Parameter(torch.zeros(1))
        self.script = script
        self.calls: list[int] = []

    def forward(self, ids: torch.Tensor, cache: KVCache) -> torch.Tensor:
        self.calls.append(ids.shape[1])
        cache.advance(ids.shape[1])
        step = sum(self.calls[1:]) if len(self.calls) > 1 else 0
        logits = torch.zeros(1, 1, VOCAB)
        logits[0, 0, self.script[min(step, len(self.script) - 1)]] = 100.0
        return logits


def run(script: list[int], bound: int, prompt: int = 20, **limits: int) -> tuple:
    model = ScriptedModel(script)
    counts: list[int] = []
    result = generate(
        model,  # type: ignore[arg-type]
        list(range(10, 10 + prompt)),
        bound,
        sampling=SamplingConfig(),
        limits=GenerationLimits(**limits),
        seed=1,
        on_token=counts.append,
    )
    return result, counts, model


def test_stops_on_end_of_turn_and_keeps_only_audio() -> None:
    result, counts, _ = run([65536, 66000, 500, 70655, 70656, 3, 65540], bound=50)
    assert result.stop_reason == "eos"
    assert result.values == [0, 464, 5119]  # 500 (text) and 70656 (past vq06) are dropped
    assert result.dropped == 2 and result.drawn == 6 and counts == [1, 2, 3, 4, 5, 6]
    assert result.max_new_tokens == 50 and result.prompt_length == 20 and result.seed == 1


def test_stops_at_the_token_bound() -> None:
    result, _, model = run([65536 + n for n in range(1000)], bound=7)
    assert (result.stop_reason, result.drawn, len(result.values)) == ("token_bound", 7, 7)
    assert model.calls == [20, 1, 1, 1, 1, 1, 1]  # no forward pass after the last draw


def test_stops_at_the_context_limit_and_prefills_in_chunks() -> None:
    result, _, model = run([65536 + n for n in range(1000)], 50, prompt=30, max_length=40,
                           prefill_chunk=8)  # fmt: skip
    assert (result.stop_reason, result.max_new_tokens, result.drawn) == ("context_limit", 10, 10)
    assert model.calls[:4] == [8, 8, 8, 6]
    with pytest.raises(ValueError, match="context limit"):
        run([3], 5, prompt=40, max_length=40)


def test_bound_and_clone_estimate() -> None:
    limits = GenerationLimits(length_multiple=3.0, min_tokens=75)
    assert limits.bound(10) == 75 and limits.bound(100) == 300
    # 10 Latin characters ~ 0.8 s; 4 CJK characters ~ 1.2 s; at 41.67 tokens/s.
    assert expected_clone_tokens("Hello world") == 34
    assert expected_clone_tokens("你好世界") == 50


def test_seeded_sampling_is_reproducible() -> None:
    logits = torch.randn(VOCAB, generator=torch.Generator().manual_seed(3))

    def draws(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        return [sample_next(logits, [1], SamplingConfig(), gen) for _ in range(20)]

    assert draws(5) == draws(5) != draws(6)


def test_sampling_config_validation() -> None:
    bad: list[Callable[[], object]] = [
        lambda: SamplingConfig(temperature=0),
        lambda: SamplingConfig(top_p=0),
        lambda: GenerationLimits(min_tokens=0),
    ]
    for make in bad:
        with pytest.raises(ValueError):
            make()
