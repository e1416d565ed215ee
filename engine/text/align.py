"""Word times for a known text: pocketsphinx forced alignment (English) and edit-distance
mapping of a known text onto recognised words (Mandarin, and English when alignment fails).

pocketsphinx (US-English acoustic model and CMU dictionary inside its wheel) aligns in 10 ms
frames. Its filler dictionary is extended with hesitation words (``++UH++`` = AH,
``++UM++`` = AH M, ``++HMM++`` = HH M, ``++ER++`` = ER, ``++MM++`` = M) that the aligner may
place between any two words, like silence; together with its generic ``[SPEECH]`` filler they
mark speech that the text does not hold (:mod:`engine.text.fillers` decides which are
hesitations). Measured on AMI meeting clips with Whisper's text: a filler probability of
1e-4 finds the skipped "uh"/"um"s and inserts nothing into clean read speech.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BackendError
from engine.text.transcript import is_cjk

if TYPE_CHECKING:
    from pocketsphinx import Decoder

__all__ = [
    "ALIGN_RATE",
    "Alignment",
    "FillerHit",
    "align_english",
    "fill_gaps",
    "map_tokens",
    "same_word",
    "split_tokens",
]

_LOG = logging.getLogger(__name__)

ALIGN_RATE = 16_000
FRAME_S = 0.01
# Beams: pocketsphinx's defaults (1e-48) lose the path on overlapping meeting speech; 1e-64
# aligned every AMI clip tried at RTF ~0.03, and 1e-100 is the retry when it does not.
_BEAMS = (1e-64, 1e-100)
_FILLER_PROB = 1e-4
_HESITATIONS = {"++UH++": "uh", "++UM++": "um", "++HMM++": "hmm", "++ER++": "er", "++MM++": "mm"}
_FILLER_DICT = """<s> SIL
</s> SIL
<sil> SIL
[NOISE] +NSN+
[SPEECH] +SPN+
++UH++ AH
++UM++ AH M
++HMM++ HH M
++ER++ ER
++MM++ M
"""
# Low-level noise after the slice: without it the last word can miss its final frames.
_TAIL_S = 0.3

_lock = threading.Lock()
_decoders: dict[float, Decoder] = {}


@dataclass(frozen=True)
class FillerHit:
    """Speech the aligner found between two words of the text.

    Attributes:
        start: Seconds in the slice.
        end: Seconds in the slice.
        label: ``uh``, ``um``, ``hmm``, ``er``, ``mm``, or ``None`` for generic speech.
    """

    start: float
    end: float
    label: str | None


@dataclass(frozen=True)
class Alignment:
    """Where each word of a text is.

    Attributes:
        spans: ``(start, end)`` seconds per input word; ``None`` for a word with nothing
            to say (punctuation only).
        fillers: Speech between words that the text does not hold.
    """

    spans: tuple[tuple[float, float] | None, ...]
    fillers: tuple[FillerHit, ...]


def _dictionary_form(word: str) -> str:
    text = unicodedata.normalize("NFKC", word).lower().replace("\u2019", "'")
    return re.sub(r"[^a-z0-9'\-]", "", text).strip("'-")


def _pronounceable(word: str) -> list[str]:
    """The dictionary words that say ``word``: itself, or its hyphen parts.

    A word the dictionary lacks (a name, "thereunder", a numeral) is added to every
    decoder with a guessed pronunciation (:func:`_guess_phones`), so it still takes its
    own stretch of audio instead of none. Only punctuation gives ``[]``.
    """
    form = _dictionary_form(word)
    if not form:
        return []
    decoder = _decoder(_BEAMS[0])
    if decoder.lookup_word(form):
        return [form]
    parts = [p for p in form.split("-") if p]
    if len(parts) > 1 and all(decoder.lookup_word(p) for p in parts):
        return parts
    phones = _guess_phones(form.replace("-", ""), decoder)
    for beam in _BEAMS:
        _decoder(beam).add_word(form, phones, True)
    return [form]


_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
# Letter groups to CMU phones, longest first; a rough guess that gives a name or a made-up
# word about the right length and sounds, which is all alignment needs.
_LETTERS = {
    "tch": "CH", "sch": "S K", "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "ng": "NG",
    "ck": "K", "qu": "K W", "wh": "W", "ee": "IY", "ea": "IY", "oo": "UW", "ou": "AW",
    "ow": "OW", "ai": "EY", "ay": "EY", "oi": "OY", "oy": "OY", "er": "ER", "ar": "AA R",
    "or": "AO R", "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G",
    "h": "HH", "i": "IH", "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA",
    "p": "P", "q": "K", "r": "R", "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W",
    "x": "K S", "y": "Y", "z": "Z",
}  # fmt: skip


def _number_words(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + (_number_words(n % 10) if n % 10 else [])
    scales = ((10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred"))
    for size, name in scales:
        if n >= size:
            rest = _number_words(n % size) if n % size else []
            return [*_number_words(n // size), name, *rest]
    return []


def _guess_phones(form: str, decoder: Decoder) -> str:
    """A pronunciation for a word the dictionary lacks: numerals spelled out in words,
    letters mapped group by group; ``+SPN+`` (generic speech) when nothing is left."""
    phones: list[str] = []
    for run in re.findall(r"\d+|[a-z]+", form):
        if run.isdigit():
            words = _number_words(int(run)) if len(run) < 13 else [_ONES[int(d)] for d in run]
            phones += " ".join(decoder.lookup_word(w) or "" for w in words).split()
            continue
        i = 0
        while i < len(run):
            for size in (3, 2, 1):
                group = _LETTERS.get(run[i : i + size])
                if group and not (phones and group.split()[0] == phones[-1]):
                    phones += group.split()
                if group:
                    i += size
                    break
            else:
                i += 1
    return " ".join(phones) or "+SPN+"


def _decoder(beam: float) -> Decoder:
    decoder = _decoders.get(beam)
    if decoder is None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise BackendError(
                "forced alignment needs pocketsphinx: pip install pocketsphinx==5.1.1"
            ) from e
        handle, path = tempfile.mkstemp(suffix=".dict", prefix="stepedit-fillers-")
        try:
            with os.fdopen(handle, "w") as f:
                f.write(_FILLER_DICT)
            decoder = Decoder(
                lm=None,
                samprate=ALIGN_RATE,
                loglevel="FATAL",
                fdict=path,
                fillprob=_FILLER_PROB,
                beam=beam,
                pbeam=beam,
                wbeam=beam * 1e20,
            )
        except (RuntimeError, ValueError) as e:
            raise BackendError(f"cannot load the pocketsphinx model: {e}") from e
        finally:
            os.unlink(path)
        _decoders[beam] = decoder
    return decoder


def _pcm(mono16k: np.ndarray) -> bytes:
    tail = np.random.default_rng(0).standard_normal(round(_TAIL_S * ALIGN_RATE)) * 1e-4
    samples = np.concatenate([np.asarray(mono16k, np.float64), tail])
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


def align_english(mono16k: np.ndarray, words: Sequence[str]) -> Alignment | None:
    """Forced alignment of English ``words`` to 16 kHz mono audio (pocketsphinx).

    Words the CMU dictionary lacks (names, numerals) are aligned as generic speech.

    Args:
        mono16k: The slice at ``ALIGN_RATE``.
        words: The text's words as written (punctuation is ignored).

    Returns:
        The alignment, or ``None`` when no word is pronounceable or the aligner finds no
        path through the text (the text does not match the audio).

    Raises:
        BackendError: if pocketsphinx cannot be loaded.
    """
    pcm = _pcm(mono16k)
    duration = len(mono16k) / ALIGN_RATE
    with _lock:
        plan = [_pronounceable(w) for w in words]
        flat = [(i, token) for i, tokens in enumerate(plan) for token in tokens]
        if not flat:
            return None
        segments: list[Any] | None = None
        for beam in _BEAMS:
            decoder = _decoder(beam)
            decoder.set_align_text(" ".join(token for _, token in flat))
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            segments = decoder.seg()
            if segments:
                break
            _LOG.debug("no alignment path at beam %g", beam)
        if not segments:
            return None
        found = [(s.word, s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S) for s in segments]
    return _read_segments(found, flat, len(words), duration)


def _read_segments(
    found: list[tuple[str, float, float]], flat: list[tuple[int, str]], count: int, duration: float
) -> Alignment:
    """Word spans and filler hits from the aligner's segments (``flat``: word index and
    dictionary word, in text order)."""
    starts: list[float | None] = [None] * count
    ends: list[float | None] = [None] * count
    hits: list[FillerHit] = []
    position = 0  # next entry of `flat`
    for word, start, end in found:
        start, end = min(start, duration), min(end, duration)
        if word in _HESITATIONS or word == "[SPEECH]":
            hits.append(FillerHit(start, end, _HESITATIONS.get(word)))
            continue
        if word.startswith(("<", "[")) or position >= len(flat):
            continue
        index = flat[position][0]
        starts[index] = start if starts[index] is None else starts[index]
        ends[index] = end
        position += 1
    spans = tuple(
        (s, e) if s is not None and e is not None else None
        for s, e in zip(starts, ends, strict=True)
    )
    return Alignment(spans, tuple(hits))


def fill_gaps(
    spans: Sequence[tuple[float, float] | None], duration: float
) -> list[tuple[float, float] | None]:
    """Gives each ``None`` span an even share of the stretch between its known neighbours
    (0.3 s per word past the first or last known one); all ``None`` stays all ``None``."""
    out = list(spans)
    i = 0
    while i < len(out):
        if out[i] is not None:
            i += 1
            continue
        j = i
        while j < len(out) and out[j] is None:
            j += 1
        left = out[i - 1][1] if i > 0 and out[i - 1] is not None else None  # type: ignore[index]
        right = out[j][0] if j < len(out) and out[j] is not None else None  # type: ignore[index]
        if left is None and right is None:
            return out
        a = left if left is not None else max(0.0, right - 0.3 * (j - i))  # type: ignore[operator]
        b = right if right is not None else min(duration, a + 0.3 * (j - i))
        step = (b - a) / (j - i)
        for k in range(i, j):
            out[k] = (a + step * (k - i), a + step * (k - i + 1))
        i = j
    return out


# --- mapping a known text onto recognised tokens --------------------------------------


def split_tokens(text: str) -> list[str]:
    """A known text's words: whitespace-separated, and every CJK character its own word.

    Punctuation stays with the word before it (``"world,"``; a character keeps its
    full-width comma); runs of Latin letters or digits inside Mandarin text stay whole.
    """
    tokens: list[str] = []
    for chunk in text.split():
        current = ""
        for ch in chunk:
            if is_cjk(ch):
                if current:
                    tokens.append(current)
                current = ch
            elif current and is_cjk(current[-1]) and (ch.isalnum()):
                tokens.append(current)
                current = ch
            else:
                current += ch
        if current:
            if tokens and not any(c.isalnum() for c in current):
                tokens[-1] += current  # lone punctuation joins the word before
            else:
                tokens.append(current)
    return tokens


def _key(token: str) -> str:
    return re.sub(r"[^\w]", "", unicodedata.normalize("NFKC", token).lower())


def same_word(a: str, b: str) -> bool:
    """Whether two tokens are the same word, ignoring case and punctuation."""
    return _key(a) == _key(b)


def map_tokens(known: Sequence[str], recognised: Sequence[str]) -> list[int | None]:
    """For each known token, the index of the recognised token it corresponds to.

    Levenshtein alignment on normalised tokens (case and punctuation ignored); a known
    token facing a substitution maps to the substituted token, one facing a gap maps to
    ``None``.
    """
    a = [_key(t) for t in known]
    b = [_key(t) for t in recognised]
    n, m = len(a), len(b)
    cost = np.zeros((n + 1, m + 1), dtype=np.int32)
    cost[:, 0] = np.arange(n + 1)
    cost[0, :] = np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i, j] = min(
                cost[i - 1, j] + 1, cost[i, j - 1] + 1, cost[i - 1, j - 1] + (a[i - 1] != b[j - 1])
            )
    out: list[int | None] = [None] * n
    i, j = n, m
    while i > 0 and j > 0:
        if cost[i, j] == cost[i - 1, j - 1] + (a[i - 1] != b[j - 1]):
            out[i - 1] = j - 1
            i, j = i - 1, j - 1
        elif cost[i, j] == cost[i - 1, j] + 1:
            i -= 1
        else:
            j -= 1
    return out
