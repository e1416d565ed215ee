"""A transcript with word times: what transcription returns and text edits work from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CJK_IDEOGRAPHS", "LANGUAGES", "Transcript", "Word", "is_cjk", "join_words"]

# Languages a client may ask for; "auto" lets the recogniser decide.
LANGUAGES = ("auto", "en", "zh")


@dataclass(frozen=True)
class Word:
    """One spoken word (or filler) of a slice.

    Attributes:
        text: The word as written, without surrounding spaces (punctuation kept).
        start: Start in seconds from the start of the slice.
        end: End in seconds from the start of the slice.
        confidence: 0..1, the recogniser's (or aligner's) confidence.
        filler: A hesitation sound (um, uh, 嗯, ...) rather than a word of the sentence.
    """

    text: str
    start: float
    end: float
    confidence: float = 1.0
    filler: bool = False

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise ValueError("a word needs some text")
        if not 0 <= self.start <= self.end:
            raise ValueError(
                f"word {self.text!r}: need 0 <= start <= end, got {self.start}, {self.end}"
            )


@dataclass(frozen=True)
class Transcript:
    """The words of one slice, in time order.

    Attributes:
        words: The words and fillers.
        language: ``en``, ``zh``, ... as detected or given.
        model: What produced the words, e.g. ``whisper-tiny.en`` or
            ``whisper-tiny.en+pocketsphinx``.
        duration: Length of the slice in seconds.
        aligned: The words are a known text placed on the audio (forced alignment for
            English, ``+pocketsphinx`` in ``model``; mapped onto the recognised characters
            for Mandarin, ``+text``), rather than the recognised words.
    """

    words: tuple[Word, ...]
    language: str
    model: str
    duration: float
    aligned: bool = False

    @property
    def text(self) -> str:
        """The words joined as a reader sees them (no space between CJK characters)."""
        return join_words(w.text for w in self.words)

    def to_json(self, source_offset: float = 0.0) -> dict[str, Any]:
        """The transcript object of the protocol; ``source_offset`` is the slice's start in
        its file, so each word also carries its time in the source."""
        return {
            "language": self.language,
            "model": self.model,
            "aligned": self.aligned,
            "duration": round(self.duration, 3),
            "text": self.text,
            "words": [
                {
                    "word": w.text,
                    "start": round(w.start, 3),
                    "end": round(w.end, 3),
                    "source_start": round(w.start + source_offset, 3),
                    "source_end": round(w.end + source_offset, 3),
                    "confidence": round(w.confidence, 3),
                    "filler": w.filler,
                }
                for w in self.words
            ],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transcript:
        """Reads ``to_json``'s form back (slice times; source times are ignored)."""
        words = tuple(
            Word(
                w["word"],
                float(w["start"]),
                float(w["end"]),
                float(w.get("confidence", 1.0)),
                bool(w.get("filler", False)),
            )
            for w in data["words"]
        )
        return cls(
            words,
            str(data["language"]),
            str(data["model"]),
            float(data["duration"]),
            bool(data.get("aligned", False)),
        )


# CJK ideographs (unified and compatibility), as a regex character-class body.
CJK_IDEOGRAPHS = "\u3400-\u9fff\uf900-\ufaff"


def is_cjk(ch: str) -> bool:
    """Whether ``ch`` is a CJK ideograph (a word of its own in Mandarin)."""
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff"


def _joins_tightly(ch: str) -> bool:
    """CJK ideographs, and CJK or full-width punctuation (no space after a full stop)."""
    return is_cjk(ch) or "\u3000" <= ch <= "\u303f" or "\uff00" <= ch <= "\uffef"


def join_words(words: Iterable[str]) -> str:
    """Joins words with spaces, except between two CJK words (Mandarin has none)."""
    out = ""
    previous = ""
    for word in words:
        if out and not (_joins_tightly(previous[-1:]) and _joins_tightly(word[:1])):
            out += " "
        out += word
        previous = word
    return out
