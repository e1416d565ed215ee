"""The dual-codebook token scheme (spec §3.5): interleaving, LLM ids and token strings.

Codes are interleaved in groups of 2 vq02 + 3 vq06 codes (120 ms each). Within the mixed
stream a vq02 code c is written as N = c and a vq06 code c as N = 1024 + c; the LLM id is
65536 + N and the text form is ``<audio_N>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.backends.stepaudio.vocab import AUDIO_ID_OFFSET, VQ02_CODES, VQ06_CODES, VQ06_OFFSET

__all__ = [
    "AUDIO_ID_OFFSET",
    "VQ02_CODES",
    "VQ06_CODES",
    "VQ06_OFFSET",
    "DualCodes",
    "interleave",
    "parse_token_string",
    "to_llm_ids",
    "token_string",
]

# Codes of each stream per group.
_GROUP = (2, 3)
_PIECE = re.compile(r"<audio_(\d+)>")


def interleave(vq02: Sequence[int], vq06: Sequence[int]) -> list[int]:
    """Mixes the streams into N values, group by group: ``a a b b b``.

    Only whole groups are kept: ``G = min(len(vq02) // 2, len(vq06) // 3)``; extra codes at the
    end of either stream are dropped.

    Args:
        vq02: Linguistic codes, 0 … 1023.
        vq06: Semantic codes, 0 … 4095.

    Returns:
        ``5 * G`` N values: vq02 codes as they are, vq06 codes plus 1024.
    """
    groups = min(len(vq02) // _GROUP[0], len(vq06) // _GROUP[1])
    values: list[int] = []
    for g in range(groups):
        values.extend(int(c) for c in vq02[2 * g : 2 * g + 2])
        values.extend(VQ06_OFFSET + int(c) for c in vq06[3 * g : 3 * g + 3])
    return values


def to_llm_ids(values: Sequence[int]) -> list[int]:
    """LLM token ids (65536 + N) of N values."""
    return [AUDIO_ID_OFFSET + int(v) for v in values]


def token_string(values: Sequence[int]) -> str:
    """``<audio_N>`` pieces of N values, concatenated without separators."""
    return "".join(f"<audio_{int(v)}>" for v in values)


def parse_token_string(text: str) -> list[int]:
    """N values of a string of ``<audio_N>`` pieces (surrounding whitespace ignored).

    Raises:
        ValueError: when anything but ``<audio_N>`` pieces is in the string, naming where.
    """
    text = text.strip()
    values: list[int] = []
    position = 0
    for match in _PIECE.finditer(text):
        if match.start() != position:
            break
        values.append(int(match.group(1)))
        position = match.end()
    if position != len(text):
        bad = text[position : position + 20]
        raise ValueError(f"not an <audio_N> piece at offset {position}: {bad!r}")
    return values


@dataclass(frozen=True)
class DualCodes:
    """Both code streams of one prompt and their mixed forms.

    Attributes:
        vq02: Linguistic codes (0 … 1023), 16.67 per second.
        vq06: Semantic codes (0 … 4095), 25 per second.
        llm_ids: The mixed stream as LLM ids (65536 + N), 5 per group; minus 65536 this is
            the decoder's prompt token list.
        token_string: The same items as ``<audio_N>`` text for the prompt template.
    """

    vq02: list[int]
    vq06: list[int]
    llm_ids: list[int]
    token_string: str

    @classmethod
    def from_codes(cls, vq02: Sequence[int], vq06: Sequence[int]) -> DualCodes:
        """Interleaves two code lists (see ``interleave``)."""
        values = interleave(vq02, vq06)
        return cls(list(vq02), list(vq06), to_llm_ids(values), token_string(values))

    @classmethod
    def from_values(cls, values: Sequence[int]) -> DualCodes:
        """Codes of a mixed stream of N values, such as a pass's generated output.

        Whole groups only (a short last group is dropped, as tokenizing would); the streams
        are split by position within each group (``a a b b b``), so a value the model put in
        the other stream's slot is kept as it is in ``llm_ids``.
        """
        kept = [int(v) for v in values[: len(values) - len(values) % sum(_GROUP)]]
        vq02 = [v for i, v in enumerate(kept) if i % 5 < _GROUP[0]]
        vq06 = [v - VQ06_OFFSET for i, v in enumerate(kept) if i % 5 >= _GROUP[0]]
        return cls(vq02, vq06, to_llm_ids(kept), token_string(kept))

    @property
    def groups(self) -> int:
        """Whole 120 ms groups in the mixed stream (``len(llm_ids) // 5``)."""
        return len(self.llm_ids) // 5

    @property
    def values(self) -> list[int]:
        """The mixed stream as N values (LLM id - 65536)."""
        return [i - AUDIO_ID_OFFSET for i in self.llm_ids]
