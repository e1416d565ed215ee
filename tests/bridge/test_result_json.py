"""The result JSON of ``/stepedit/done``: protocol keys first, a backend's own fields beside."""

from __future__ import annotations

from bridge.protocol import RESULT_KEYS, build_result


def test_protocol_keys_come_first_and_cannot_be_replaced() -> None:
    result = build_result(
        duration=2.4000004,
        sample_rate=48000,
        channels=2,
        backend="stepaudio",
        edit={"type": "emotion", "option": "sad", "iterations": 2},
        input="/takes/a.wav",
        start=1.0,
        length=2.5,
        timings={"read": 0.1, "total": 1.23456},
        extra={"generation": {"audio_tokens": 40}, "duration": -1, "timings": {}},
    )
    assert tuple(result) == (*RESULT_KEYS, "generation")
    assert result["duration"] == 2.4 and result["timings"] == {"read": 0.1, "total": 1.2346}
    assert result["generation"] == {"audio_tokens": 40}
    assert (result["input"], result["start"], result["length"]) == ("/takes/a.wav", 1.0, 2.5)
