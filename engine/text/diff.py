"""The word diff: an edited text (or a filler list) against a take's words, as a plan of
kept, deleted, masked and moved words, tags at word boundaries and new words.

Pure: no audio. Words are compared normalised (NFKC, case-folded, letters and digits only),
so "So," matches "so". Mandarin is compared per character: a CJK word of the transcript is
split into characters with its time shared evenly, and the target text is split the same way.

``target_text`` syntax (docs/protocol.md, "Text edits"): words separated by whitespace;
``{words}`` masks them; ``[Tag]`` naming one of the ten paralinguistic tags inserts it there;
any other ``[...]`` (``[Japanese]``, ``[Cantonese]``, ...) and pinyin with a tone digit
(``guo4``) pass through as written: never a tag, never a word to find in the take (a pinyin
syllable written in place of a character keeps that character's audio).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from itertools import pairwise
from typing import Literal

from engine.edits import paralinguistic_tag
from engine.errors import EditError
from engine.text.fillers import is_filler
from engine.text.transcript import CJK_IDEOGRAPHS, Transcript, join_words

__all__ = [
    "Mismatch",
    "Step",
    "TextPlan",
    "Token",
    "Unit",
    "normalise",
    "parse_target",
    "plan_fillers",
    "plan_text",
    "units_of",
]

_CJK_SPLIT = re.compile(rf"([{CJK_IDEOGRAPHS}]|[A-Za-zÜü]+[1-5](?![0-9]))")
_PINYIN = re.compile(r"[A-Za-zÜü]+[1-5]")
_TARGET = re.compile(r"\{([^{}]*)\}|\[([^\[\]]*)\]|[^\s{}\[\]]+")


def normalise(word: str) -> str:
    """The form words are compared in: NFKC, case-folded, letters and digits only."""
    text = unicodedata.normalize("NFKC", word).casefold()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _has_cjk(text: str) -> bool:
    return re.search(f"[{CJK_IDEOGRAPHS}]", text) is not None


def _parts(text: str) -> list[str]:
    """A CJK text as characters, pinyin syllables and other runs; any other text whole."""
    return [p for p in _CJK_SPLIT.split(text) if p] if _has_cjk(text) else [text]


@dataclass(frozen=True)
class Unit:
    """One comparable piece of the take: a word, or one character of a CJK word.

    Attributes:
        text: As the transcript writes it.
        key: ``normalise(text)``.
        start: Seconds from the start of the slice.
        end: Seconds from the start of the slice.
        word: Index of its word in ``Transcript.words``.
        filler: The word is marked as a filler.
    """

    text: str
    key: str
    start: float
    end: float
    word: int
    filler: bool = False


def units_of(transcript: Transcript) -> tuple[Unit, ...]:
    """The transcript's words as units; CJK words split per character (time shared evenly).

    Words with no letters or digits (a lone dash) are left out.
    """
    units: list[Unit] = []
    for index, word in enumerate(transcript.words):
        parts = [p for p in _parts(word.text) if normalise(p)]
        step = (word.end - word.start) / max(len(parts), 1)
        for k, part in enumerate(parts):
            start = word.start + k * step
            units.append(Unit(part, normalise(part), start, start + step, index, word.filler))
    return tuple(units)


@dataclass(frozen=True)
class Token:
    """One token of a target text.

    Attributes:
        kind: ``word``; ``tag`` (a paralinguistic tag); ``pass`` (a language tag or other
            bracketed text, passed through as written).
        text: As written (a tag's canonical name for ``tag``).
        key: ``normalise(text)`` for words.
        masked: Written inside ``{}``.
        pinyin: A pinyin syllable with a tone digit, in a text that holds CJK characters.
    """

    kind: Literal["word", "tag", "pass"]
    text: str
    key: str = ""
    masked: bool = False
    pinyin: bool = False


def _words(chunk: str, masked: bool, cjk_text: bool) -> list[Token]:
    tokens = []
    for part in _parts(chunk):
        key = normalise(part)
        if key:
            pinyin = cjk_text and _PINYIN.fullmatch(part) is not None
            tokens.append(Token("word", part, key, masked, pinyin))
    return tokens


def _check_brackets(text: str) -> None:
    depth = {"{": 0, "[": 0}
    closing = {"}": "{", "]": "["}
    for ch in text:
        if ch in depth:
            if depth["{"] or depth["["]:
                raise EditError(f"nested brackets in target_text: {text!r}")
            depth[ch] += 1
        elif ch in closing:
            if not depth[closing[ch]]:
                raise EditError(f"{ch!r} without its opening bracket in target_text: {text!r}")
            depth[closing[ch]] -= 1
    if depth["{"] or depth["["]:
        raise EditError(f"unclosed bracket in target_text: {text!r}")


def parse_target(text: str) -> list[Token]:
    """Splits a target text into words, masked words, tags and passed-through text.

    Raises:
        EditError: for unbalanced or nested ``{}`` / ``[]``.
    """
    _check_brackets(text)
    cjk_text = _has_cjk(text)
    tokens: list[Token] = []
    for match in _TARGET.finditer(text):
        braced, bracketed = match.group(1), match.group(2)
        if braced is not None:
            for chunk in braced.split():
                tokens += _words(chunk, True, cjk_text)
        elif bracketed is not None:
            tag = paralinguistic_tag(bracketed)
            tokens.append(Token("tag", tag) if tag else Token("pass", match.group(0)))
        else:
            tokens += _words(match.group(0), False, cjk_text)
    return tokens


@dataclass(frozen=True)
class Step:
    """One item of the result, in output order.

    Attributes:
        action: ``kept`` (in place), ``masked`` (in place, masked), ``moved`` (cut from
            where the speaker said it), ``inserted`` (a tag), ``new`` (a word the take does
            not hold).
        text: The unit's text, the tag name, or the new word.
        unit: Index into ``TextPlan.units`` (``None`` for tags and new words).
        masked: A moved word that is also masked.
        written: The word as the target text writes it (pinyin, other spellings).
        replaces: For a new word: the deleted units of the same changed stretch.
    """

    action: Literal["kept", "masked", "moved", "inserted", "new"]
    text: str
    unit: int | None = None
    masked: bool = False
    written: str = ""
    replaces: tuple[int, ...] = ()


@dataclass(frozen=True)
class Mismatch:
    """A place where the transcript the client saw and the engine's words differ.

    Attributes:
        client: The client's words there (may be empty).
        engine: The engine's words there (may be empty).
        at: Slice time (s) of the place, from the engine's words.
    """

    client: str
    engine: str
    at: float


@dataclass(frozen=True)
class TextPlan:
    """What a text edit does to the take's words.

    Attributes:
        units: The take's units (see :func:`units_of`).
        steps: The result in order: kept, masked and moved units, tags and new words.
        deleted: Units that go (not kept, masked or moved anywhere), in time order.
        passthrough: Bracketed text and pinyin that are passed to a model as written.
        mismatch: Where ``EditSpec.text`` disagrees with the engine's words.
    """

    units: tuple[Unit, ...]
    steps: tuple[Step, ...]
    deleted: tuple[int, ...] = ()
    passthrough: tuple[str, ...] = ()
    mismatch: tuple[Mismatch, ...] = ()

    @property
    def new_words(self) -> tuple[str, ...]:
        """The words a backend would have to say anew."""
        return tuple(s.text for s in self.steps if s.action == "new")


def _reference(
    units: Sequence[Unit], text: str
) -> tuple[list[str], list[int | None], list[bool], list[Mismatch]]:
    """The sequence the target is diffed against, with its link to the units.

    Without ``text`` that is the units themselves. With it, the client's words, each linked
    to the unit it stands for (``None`` where the engine has no such word); ``seen`` marks
    the units the client's text holds.
    """
    if not text:
        return [u.key for u in units], list(range(len(units))), [True] * len(units), []
    client = [t for t in parse_target(text) if t.kind == "word"]
    keys = [t.key for t in client]
    link: list[int | None] = [None] * len(client)
    seen = [False] * len(units)
    mismatch = []
    matcher = SequenceMatcher(None, keys, [u.key for u in units], autojunk=False)
    for op, c0, c1, u0, u1 in matcher.get_opcodes():
        if op != "equal":
            at = units[u0].start if u0 < len(units) else (units[-1].end if units else 0.0)
            mismatch.append(
                Mismatch(
                    join_words(t.text for t in client[c0:c1]),
                    join_words(u.text for u in units[u0:u1]),
                    at,
                )
            )
        if op == "equal" or (op == "replace" and c1 - c0 == u1 - u0):
            for c, u in zip(range(c0, c1), range(u0, u1), strict=True):
                link[c] = u
                seen[u] = True
    return keys, link, seen, mismatch


def _occurrences(keys: Sequence[str], phrase: Sequence[str]) -> list[int]:
    n = len(phrase)
    return [i for i in range(len(keys) - n + 1) if list(keys[i : i + n]) == list(phrase)]


def _find_moves(
    run: list[int], words: list[Token], unit_keys: list[str], in_place: set[int]
) -> list[tuple[int, int | None]]:
    """For target words ``run`` not found in place: (target index, source unit) pairs,
    taking the longest phrases the take holds; ``None`` for words it does not hold."""
    found: list[tuple[int, int | None]] = []
    i = 0
    while i < len(run):
        best: tuple[int, int] | None = None  # (length, first unit)
        for n in range(len(run) - i, 0, -1):
            places = _occurrences(unit_keys, [words[run[k]].key for k in range(i, i + n)])
            if places:
                free = [p for p in places if not in_place & set(range(p, p + n))]
                best = (n, (free or places)[0])
                break
        if best is None:
            found.append((run[i], None))
            i += 1
            continue
        n, first = best
        found += [(run[i + k], first + k) for k in range(n)]
        i += n
    return found


def plan_text(transcript: Transcript, target_text: str, text: str = "") -> TextPlan:
    """Diffs ``target_text`` against the take's words.

    Args:
        transcript: The slice's words with times.
        target_text: The transcript as it should be (syntax in the module docstring).
        text: The transcript the client showed the user; when it differs from the engine's
            words, the user's changes are read against it, each difference is reported in
            ``TextPlan.mismatch``, and words only the engine heard stay where their
            neighbours stay.

    Raises:
        EditError: for bad brackets, or a masked word the take does not hold.
    """
    units = units_of(transcript)
    unit_keys = [u.key for u in units]
    tokens = parse_target(target_text)
    words = [t for t in tokens if t.kind == "word"]
    ref_keys, link, seen, mismatch = _reference(units, text)

    # 1. Words in place: the longest common subsequence of the target and the reference.
    source: list[int | None] = [None] * len(words)  # target word -> unit
    moved = [False] * len(words)
    skipped = [False] * len(words)  # client words the engine does not hold: left alone
    unmatched: list[int] = []
    matcher = SequenceMatcher(None, ref_keys, [w.key for w in words], autojunk=False)
    for op, r0, r1, t0, t1 in matcher.get_opcodes():
        pairs = list(zip(range(r0, r1), range(t0, t1), strict=False))
        if op == "equal":
            for r, t in pairs:
                source[t] = link[r]
                skipped[t] = link[r] is None
            continue
        if op == "replace" and r1 - r0 == t1 - t0:
            for r, t in pairs:
                unit = link[r]
                if words[t].pinyin and unit is not None and _has_cjk(units[unit].text):
                    source[t] = unit  # a pinyin spelling of the character said there
        unmatched += [t for t in range(t0, t1) if source[t] is None]
    in_place = {u for u in source if u is not None}

    # 2. Words said elsewhere in the take are moved from there; the rest are new.
    runs: list[list[int]] = []
    for t in sorted(unmatched):
        if runs and runs[-1][-1] == t - 1:
            runs[-1].append(t)
        else:
            runs.append([t])
    for run in runs:
        for t, unit in _find_moves(run, words, unit_keys, in_place):
            source[t], moved[t] = unit, unit is not None
            if unit is None and words[t].masked:
                raise EditError(
                    f"{{{words[t].text}}} masks a word the take does not hold; "
                    "write {} around words of the transcript"
                )

    # 3. Words only the engine heard stay where both in-place neighbours stay.
    unseen_kept: dict[int, list[int]] = {}  # after target word t (-1: before all)
    used = {u for u in source if u is not None}
    if text:
        anchors = [(t, u) for t, u in enumerate(source) if u is not None and not moved[t]]
        bounds = [(-1, -1), *anchors, (len(words), len(units))]
        for (t1, u1), (t2, u2) in pairwise(bounds):
            gap = list(range(u1 + 1, u2))
            if gap and (t1 >= 0 or t2 < len(words)) and not any(seen[g] for g in gap):
                unseen_kept[t1] = gap
                used.update(gap)

    # 4. The steps in output order.
    steps: list[Step] = [Step("kept", units[g].text, g) for g in unseen_kept.get(-1, [])]
    passthrough = []
    w = -1
    pending_new: list[int] = []
    for token in tokens:
        if token.kind == "tag":
            steps.append(Step("inserted", token.text))
            continue
        if token.kind == "pass":
            passthrough.append(token.text)
            continue
        w += 1
        if token.pinyin:
            passthrough.append(token.text)
        unit = source[w]
        if skipped[w]:
            pass
        elif unit is None:
            pending_new.append(len(steps))
            steps.append(Step("new", token.text, written=token.text))
        elif moved[w]:
            steps.append(Step("moved", units[unit].text, unit, token.masked, token.text))
        else:
            action: Literal["kept", "masked"] = "masked" if token.masked else "kept"
            steps.append(Step(action, units[unit].text, unit, written=token.text))
        steps += [Step("kept", units[g].text, g) for g in unseen_kept.get(w, [])]
    deleted = tuple(i for i in range(len(units)) if i not in used)
    steps = _attach_replaced(_back_in_place(steps), pending_new, deleted)
    return TextPlan(units, tuple(steps), deleted, tuple(passthrough), tuple(mismatch))


def _back_in_place(steps: list[Step]) -> list[Step]:
    """Relabels as kept the moved words that land where they were said: next to their own
    neighbour in place (a word whose spelling the client changed back, say)."""
    out = list(steps)
    in_place = {s.unit for s in steps if s.action in ("kept", "masked")}
    said = [i for i, s in enumerate(out) if s.unit is not None]
    for order in (said, said[::-1]):
        for i in order:
            step = out[i]
            if step.action != "moved" or step.unit in in_place:
                continue
            assert step.unit is not None
            k = said.index(i)
            prev = out[said[k - 1]] if k > 0 else None
            nxt = out[said[k + 1]] if k + 1 < len(said) else None
            if (prev and prev.unit in in_place and prev.unit == step.unit - 1) or (
                nxt and nxt.unit in in_place and nxt.unit == step.unit + 1
            ):
                action: Literal["kept", "masked"] = "masked" if step.masked else "kept"
                out[i] = Step(action, step.text, step.unit, written=step.written)
                in_place.add(step.unit)
    return out


def _attach_replaced(steps: list[Step], new_at: list[int], deleted: tuple[int, ...]) -> list[Step]:
    """Gives each run of new words the deleted units between its in-place neighbours."""
    gone = set(deleted)
    out = list(steps)
    for index in new_at:
        in_place = [s.unit for s in steps if s.action in ("kept", "masked")]
        before = [s.unit for s in steps[:index] if s.action in ("kept", "masked")]
        start = before[-1] + 1 if before and before[-1] is not None else 0
        after = in_place[len(before)] if len(before) < len(in_place) else None
        end = after if after is not None else max(gone, default=-1) + 1
        replaced = tuple(u for u in range(start, end) if u in gone)
        out[index] = Step("new", steps[index].text, written=steps[index].written, replaces=replaced)
    return out


def plan_fillers(
    transcript: Transcript, language: str = "", fillers: Collection[str] = ()
) -> TextPlan:
    """Deletes the fillers; every other word is kept in place.

    A filler is a word the transcript marks as one, or a word of ``fillers`` (the client's
    list), or, without that list, of the language's list (:data:`engine.text.fillers.FILLERS`),
    compared as :func:`engine.text.fillers.is_filler` does ("Umm," is "um").

    Args:
        transcript: The slice's words.
        language: ``en``, ``zh``, ...; empty or ``auto`` means the transcript's language.
        fillers: Replaces the language's list when not empty.
    """
    if language in ("", "auto"):
        language = transcript.language
    units = units_of(transcript)
    listed = fillers or None
    steps, deleted = [], []
    for i, unit in enumerate(units):
        word = transcript.words[unit.word]
        if word.filler or is_filler(word.text, language, listed):
            deleted.append(i)
        else:
            steps.append(Step("kept", unit.text, i))
    return TextPlan(units, tuple(steps), tuple(deleted))
