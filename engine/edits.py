"""The edit vocabulary (Step-Audio-EditX's types and options, and text edits); validation."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.errors import EditError
from engine.text.transcript import LANGUAGES, Transcript

__all__ = [
    "EDIT_TYPES",
    "LANGUAGE_TAGS",
    "MASK_SOUNDS",
    "MAX_ITERATIONS",
    "MODEL_EDIT_TYPES",
    "PARALINGUISTIC_TAGS",
    "EditSpec",
    "EditType",
    "edit_label",
    "paralinguistic_tag",
    "parse_edit",
]

MAX_ITERATIONS = 5

# The ten nonverbal tags Step-Audio-EditX understands, spelled as in its prompts.
PARALINGUISTIC_TAGS = (
    "Breathing",
    "Laughter",
    "Uhm",
    "Sigh",
    "Surprise-oh",
    "Surprise-ah",
    "Surprise-wa",
    "Confirmation-en",
    "Question-ei",
    "Dissatisfaction-hnn",
)


# Prefixes that choose the language or dialect a model speaks (Step-Audio-EditX clone and
# target texts); passed on as written, never taken for paralinguistic tags.
LANGUAGE_TAGS = ("Sichuanese", "Cantonese", "Japanese", "Korean")

# What masked words become in a ``text`` edit (its option); the first is the default.
MASK_SOUNDS = ("room_tone", "silence", "bleep")


@dataclass(frozen=True)
class EditType:
    """One edit type of the vocabulary.

    Attributes:
        name: Wire name, e.g. ``"emotion"``.
        options: Allowed options; empty when the type takes none.
        uses: Request fields the type reads besides ``option`` and ``iterations``.
        requires: Fields that must be present.
        summary: One line for capability listings and help texts.
        default_option: The option an edit without one gets (``""``: none).
        needs_words: The edit works on the slice's words with their times, so the engine
            transcribes (or aligns ``text``) before the backend renders it.
    """

    name: str
    options: tuple[str, ...]
    uses: frozenset[str] = frozenset()
    requires: frozenset[str] = frozenset()
    summary: str = ""
    default_option: str = ""
    needs_words: bool = False


# ``guard``: what a model generates is checked against the text it should say.
_TEXT = frozenset({"text", "guard"})
# Request fields every edit type reads: ``keep_length`` fits any result to the slice.
_EVERY_TYPE = frozenset({"keep_length"})
# The types Step-Audio-EditX itself was trained on; ``text`` and ``fillers`` are StepEdit's.
MODEL_EDIT_TYPES = ("emotion", "style", "paralinguistic", "speed", "denoise", "vad", "clone")
# Request fields of the types a model renders in passes (``iterations``): ``decode_passes``.
_PASSES = frozenset({"decode_passes"})

EDIT_TYPES: Mapping[str, EditType] = {
    t.name: replace(
        t, uses=t.uses | _EVERY_TYPE | (_PASSES if t.name in MODEL_EDIT_TYPES else frozenset())
    )
    for t in (
        EditType(
            "emotion",
            (
                "happy",
                "angry",
                "sad",
                "humour",
                "confusion",
                "disgusted",
                "empathy",
                "embarrass",
                "fear",
                "surprised",
                "excited",
                "depressed",
                "coldness",
                "admiration",
                "remove",
            ),
            _TEXT,
            summary="Make the delivery more <emotion>; 'remove' goes back toward neutral.",
        ),
        EditType(
            "style",
            (
                "serious",
                "arrogant",
                "child",
                "older",
                "girl",
                "pure",
                "sister",
                "sweet",
                "ethereal",
                "whisper",
                "gentle",
                "recite",
                "generous",
                "act_coy",
                "warm",
                "shy",
                "comfort",
                "authority",
                "chat",
                "radio",
                "soulful",
                "story",
                "vivid",
                "program",
                "news",
                "advertising",
                "roar",
                "murmur",
                "shout",
                "deeply",
                "loudly",
                "remove",
                "exaggerated",
            ),
            _TEXT,
            summary="Change the speaking style; 'remove' goes back toward plain speech.",
        ),
        EditType(
            "paralinguistic",
            PARALINGUISTIC_TAGS,
            frozenset({"text", "target_text", "positions", "guard"}),
            summary="Insert a nonverbal sound: option + positions (seconds into the slice), "
            "or target_text with inline [Tag]s.",
        ),
        EditType(
            "speed",
            ("faster", "slower", "more faster", "more slower"),
            _TEXT,
            summary="Change the speaking rate, keeping pitch and timbre.",
        ),
        EditType("denoise", (), summary="Remove background noise; the length is unchanged."),
        EditType("vad", (), summary="Remove silences, keeping natural short pauses."),
        EditType(
            "clone",
            (),
            frozenset({"text", "target_text", "guard"}),
            frozenset({"target_text"}),
            summary="Say target_text in the voice of the clip (text = the clip's transcript).",
        ),
        EditType(
            "text",
            MASK_SOUNDS,
            frozenset({"text", "target_text", "language", "guard"}),
            frozenset({"target_text"}),
            summary="Edit the take as text: target_text is the transcript as it should be "
            "(words deleted, moved, replaced, {masked}, [Tag]s between words); the option is "
            "what masked words become.",
            default_option=MASK_SOUNDS[0],
            needs_words=True,
        ),
        EditType(
            "fillers",
            (),
            frozenset({"text", "fillers", "language"}),
            summary="Remove hesitation sounds (um, uh, 嗯, ...) and their pauses; every other "
            "word stays.",
            needs_words=True,
        ),
    )
}


@dataclass(frozen=True)
class EditSpec:
    """A validated edit, as backends receive it.

    Attributes:
        type: Key of ``EDIT_TYPES``.
        option: One of the type's options, or ``""`` for types without options (and for
            paralinguistic edits that carry their tags inline in ``target_text``).
        iterations: How many passes (1 to ``MAX_ITERATIONS``); each strengthens the edit.
        text: Transcript of the input slice, when the client knows it.
        target_text: New text (clone), text with inline tags (paralinguistic), or the
            transcript as it should be (text).
        positions: Insertion times in seconds from the start of the slice.
        fillers: Words that count as fillers (``fillers``); empty means the language's
            defaults.
        language: ``auto``, ``en`` or ``zh``: the language of the slice's words.
        transcript: The slice's words with times; set by the engine for edits that need
            them, never by a client.
        keep_length: Fit the result to the input slice's duration (pauses next to
            insertions shortened first, then a pitch-preserving time-scale).
        guard: Check what a model generates against the text it should say (for a
            ``text`` edit: each span of words it re-says) and generate again when it
            differs too much (``engine.guard``); off: one generation.
        seed: The model's sampling seed; ``None`` leaves it to the backend. Set by the
            engine when it generates again, never by a client.
        decode_passes: Also decode every pass before the last (token backends, which
            otherwise decode only the last) and return them beside the result; a backend
            that renders once at the strength of all passes has none.
    """

    type: str
    option: str = ""
    iterations: int = 1
    text: str = ""
    target_text: str = ""
    positions: tuple[float, ...] = field(default_factory=tuple)
    fillers: tuple[str, ...] = field(default_factory=tuple)
    language: str = "auto"
    transcript: Transcript | None = None
    keep_length: bool = False
    guard: bool = True
    seed: int | None = None
    decode_passes: bool = False

    def __post_init__(self) -> None:
        kind = EDIT_TYPES.get(self.type)
        if kind is None:
            raise EditError(f"unknown edit type {self.type!r}; allowed: {', '.join(EDIT_TYPES)}")
        tagged_text = self.type == "paralinguistic" and not self.option and self.target_text
        if kind.options and self.option not in kind.options and not tagged_text:
            raise EditError(
                f"unknown option {self.option!r} for edit type {self.type!r}; "
                f"allowed: {', '.join(kind.options)}"
            )
        if not kind.options and self.option:
            raise EditError(f"edit type {self.type!r} takes no option, got {self.option!r}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise EditError(f"iterations must be 1 to {MAX_ITERATIONS}, got {self.iterations}")
        for name in kind.requires:
            if not getattr(self, name):
                raise EditError(f"edit type {self.type!r} needs a non-empty {name!r}")
        if self.type == "paralinguistic" and self.option and not self.positions:
            raise EditError(
                f"inserting [{self.option}] needs 'position' (seconds into the slice); "
                "or send 'target_text' with inline tags instead"
            )
        if any(not math.isfinite(p) or p < 0 for p in self.positions):
            raise EditError(f"positions must be finite seconds >= 0, got {list(self.positions)}")
        if self.language not in LANGUAGES:
            raise EditError(f"unknown language {self.language!r}; allowed: {', '.join(LANGUAGES)}")


def paralinguistic_tag(name: str) -> str | None:
    """The tag of ``PARALINGUISTIC_TAGS`` that ``name`` spells, ignoring case, surrounding
    spaces and ``[]`` brackets; ``None`` when it names none of them."""
    bare = name.strip().strip("[]").lower()
    return next((tag for tag in PARALINGUISTIC_TAGS if tag.lower() == bare), None)


def _normalise_option(edit_type: str, option: str) -> str:
    """Accepts the spellings users type: case, '_' or '-' for spaces, [Tag] brackets."""
    text = option.strip()
    if edit_type == "paralinguistic":
        return paralinguistic_tag(text) or text
    lowered = text.lower()
    if edit_type == "speed":
        return lowered.replace("_", " ").replace("-", " ")
    underscored = edit_type in ("style", "text")
    return lowered.replace("-", "_").replace(" ", "_") if underscored else lowered


def _number_list(value: Any, name: str) -> tuple[float, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in items):
        raise EditError(f"{name} must be a number of seconds or a list of them, got {value!r}")
    return tuple(float(v) for v in items)


def parse_edit(data: Mapping[str, Any]) -> EditSpec:
    """Builds an ``EditSpec`` from the request's ``edit`` object.

    Args:
        data: The decoded JSON object: ``type``, ``option``, ``iterations``, ``text``,
            ``target_text``, ``position`` (a number or a list of numbers), ``fillers``,
            ``language``, ``keep_length``, ``guard`` and ``decode_passes`` (booleans).

    Raises:
        EditError: naming the bad field and the allowed values.
    """
    if not isinstance(data, Mapping):
        raise EditError(f"'edit' must be a JSON object, got {type(data).__name__}")
    unknown = set(data) - {
        "type",
        "option",
        "iterations",
        "text",
        "target_text",
        "position",
        "fillers",
        "language",
        "keep_length",
        "guard",
        "decode_passes",
    }
    if unknown:
        raise EditError(f"unknown field(s) in 'edit': {', '.join(sorted(unknown))}")
    edit_type = data.get("type")
    if not isinstance(edit_type, str):
        raise EditError(f"'edit.type' must be a string, one of: {', '.join(EDIT_TYPES)}")
    edit_type = edit_type.strip().lower()
    for name in ("option", "text", "target_text", "language"):
        if not isinstance(data.get(name, ""), str):
            raise EditError(f"'edit.{name}' must be a string, got {data[name]!r}")
    flags = {"keep_length": False, "guard": True, "decode_passes": False}
    for name, default in flags.items():
        flags[name] = data.get(name, default)
        if not isinstance(flags[name], bool):
            raise EditError(f"'edit.{name}' must be true or false, got {flags[name]!r}")
    iterations = data.get("iterations", 1)
    if not isinstance(iterations, int) or isinstance(iterations, bool):
        raise EditError(f"'edit.iterations' must be a whole number, got {iterations!r}")
    fillers = data.get("fillers", [])
    if not isinstance(fillers, list) or not all(isinstance(f, str) and f.strip() for f in fillers):
        raise EditError(f"'edit.fillers' must be a list of words, got {fillers!r}")
    kind = EDIT_TYPES.get(edit_type)
    option = _normalise_option(edit_type, data.get("option", ""))
    return EditSpec(
        type=edit_type,
        option=option or (kind.default_option if kind else ""),
        iterations=iterations,
        text=data.get("text", "").strip(),
        target_text=data.get("target_text", "").strip(),
        positions=_number_list(data.get("position"), "'edit.position'"),
        fillers=tuple(f.strip().lower() for f in fillers),
        language=data.get("language", "").strip().lower() or "auto",
        keep_length=flags["keep_length"],
        guard=flags["guard"],
        decode_passes=flags["decode_passes"],
    )


def edit_label(edit: EditSpec) -> str:
    """Short human label, e.g. ``"happy x2"`` or ``"denoise"``; used in names and logs."""
    # A text edit's option says what masked words become, not what the edit is.
    named_by_option = edit.option and edit.type != "text"
    base = edit.option.replace(" ", "-") if named_by_option else edit.type
    if edit.option == "remove":  # emotion and style both have it: say which was removed
        base = f"{edit.type}-remove"
    return f"{base} x{edit.iterations}" if edit.iterations > 1 else base
