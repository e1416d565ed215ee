"""Step-Audio-EditX prompts: system templates, edit instructions and the prompt id layouts.

The strings are byte-exact copies of the official templates (spec §4.3-4.4); the id layouts
follow the official encoder, which concatenates separately encoded segments with the literal
ids BOS (1), EOT (3) and BOT (4) rather than using a chat template.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.backends.stepaudio.vocab import AUDIO_ID_OFFSET, BOS_ID, BOT_ID, EOT_ID
from engine.errors import EditError

__all__ = [
    "AUDIO_ID_OFFSET",
    "BOS_ID",
    "BOT_ID",
    "EOT_ID",
    "SYS_CLONE",
    "SYS_EDIT",
    "PromptBuilder",
    "PromptSwitches",
    "TextEncoder",
    "edit_instruction",
    "insert_tag",
    "speaker_name",
    "speaker_sample",
]

SYS_CLONE = (
    "Generate audio with the following timbre, prosody and speaking style\n"
    "\n"
    "[speaker_start]\n"
    "speaker name: {speaker}\n"
    "speaker prompt text: \n"
    "{prompt_text}\n"
    "speaker audio tokens: \n"
    "{prompt_wav_tokens}\n"
    "[speaker_end]\n"
)

SYS_EDIT = (
    "As a highly skilled audio editing and tuning specialist, you excel in interpreting user "
    "instructions and applying precise adjustments to meet their needs. Your expertise spans "
    "a wide range of enhancement capabilities, including but not limited to:\n"
    "# Emotional Enhancement\n"
    "# Speaking Style Transfer\n"
    "# Non-linguistic Adjustments\n"
    "# Audio Tuning & Editing\n"
    "Note: You will receive instructions in natural language and are expected to accurately "
    "interpret and execute the most suitable audio edits and enhancements.\n"
)

_EMOTION_REMOVE = "Remove any emotion in the following audio and the reference text is: {t}\n"
_EMOTION = "Make the following audio more {x}. The text corresponding to the audio is: {t}\n"
_STYLE_REMOVE = "Remove any speaking styles in the following audio and the reference text is: {t}\n"
_STYLE = "Make the following audio more {x} style. The text corresponding to the audio is: {t}\n"
_DENOISE = (
    "Remove any noise from the given audio while preserving the voice content clearly. "
    "Ensure that the speech quality remains intact with minimal distortion, and eliminate all "
    "noise from the audio.\n"
)
_VAD = (
    "Remove any silent portions from the given audio while preserving the voice content "
    "clearly. Ensure that the speech quality remains intact with minimal distortion, and "
    "eliminate all silence from the audio.\n"
)
# The space before the colon and the two spaces after the inner newline are official.
_PARALINGUISTIC = (
    "Add some non-verbal sounds to make the audio more natural, the new text is : {new}\n"
    "  The text corresponding to the audio is: {t}\n"
)


def edit_instruction(edit_type: str, option: str, audio_text: str, new_text: str = "") -> str:
    """The instruction line (INSTR) of an edit prompt, byte-exact.

    Speed uses the emotion sentence, so ``"more faster"`` reads "more more faster", as in
    the official code.

    Args:
        edit_type: ``emotion``, ``style``, ``speed``, ``denoise``, ``vad`` or
            ``paralinguistic``.
        option: The edit's option (``edit_info``); ``"remove"`` selects the remove sentence.
        audio_text: Transcript of the input audio; stripped here.
        new_text: Paralinguistic only: the target text with inline ``[Tag]`` marks.

    Raises:
        EditError: for ``clone`` or an unknown type (clone has no instruction).
    """
    t = audio_text.strip()
    if edit_type in ("emotion", "speed"):
        template = _EMOTION_REMOVE if option == "remove" else _EMOTION
    elif edit_type == "style":
        template = _STYLE_REMOVE if option == "remove" else _STYLE
    elif edit_type == "denoise":
        return _DENOISE
    elif edit_type == "vad":
        return _VAD
    elif edit_type == "paralinguistic":
        return _PARALINGUISTIC.format(new=new_text, t=t)
    else:
        raise EditError(f"edit type {edit_type!r} has no Step-Audio-EditX instruction")
    return template.format(x=option, t=t)


def insert_tag(text: str, tag: str, positions: Sequence[float], duration: float) -> str:
    """Places ``[tag]`` into a transcript at times given in seconds.

    Without word timings each time maps to the word boundary nearest to the same fraction of
    the text; with no positions the tag goes at the end.

    Args:
        text: The transcript of the slice.
        tag: A paralinguistic tag without brackets, e.g. ``"Laughter"``.
        positions: Insertion times in seconds from the start of the slice.
        duration: The slice's length in seconds.

    Returns:
        The text with one ``[tag]`` per position.
    """
    words = text.split()
    mark = f"[{tag}]"
    if not positions or duration <= 0:
        return " ".join([*words, mark])
    slots = sorted(min(round(p / duration * len(words)), len(words)) for p in positions)
    out: list[str] = []
    for index in range(len(words) + 1):
        out.extend(mark for slot in slots if slot == index)
        if index < len(words):
            out.append(words[index])
    return " ".join(out)


def speaker_name(prompt_text: str, raw_audio: np.ndarray) -> str:
    """The clone prompt's speaker name: ``"clone_"`` + 16 hex digits of SHA-256.

    Hashes the UTF-8 transcript, then the float32 bytes of the first and last 1000 samples of
    the raw loaded audio (channel-major, before mono mixing and peak scaling), or of all
    samples when there are at most 2000.

    Args:
        prompt_text: Transcript of the prompt clip.
        raw_audio: The clip as loaded, ``(channels, samples)``.
    """
    digest = hashlib.sha256()
    digest.update(prompt_text.encode("utf-8"))
    digest.update(speaker_sample(raw_audio).tobytes())
    return f"clone_{digest.hexdigest()[:16]}"


def speaker_sample(raw_audio: np.ndarray) -> np.ndarray:
    """The samples of ``raw_audio`` that ``speaker_name`` hashes, as ``float32 (1, n)``:
    ``speaker_name`` gives the same name for them as for the whole clip."""
    flat = np.ascontiguousarray(raw_audio, dtype=np.float32).reshape(-1)
    sample = flat if flat.size <= 2000 else np.concatenate([flat[:1000], flat[-1000:]])
    return sample[np.newaxis, :]


class TextEncoder(Protocol):
    """What the prompt builder needs from a text tokenizer."""

    def encode(self, text: str) -> list[int]:
        """SentencePiece ids of ``text`` (with the dummy prefix, without BOS)."""

    def piece_id(self, piece: str) -> int:
        """The id of one vocabulary piece."""


@dataclass(frozen=True)
class PromptSwitches:
    """Behaviours the spec leaves open (§10.1, Appendix B.1); defaults are the official ones
    as far as the spec supports them.

    Attributes:
        bos_per_segment: Whether each separately encoded segment starts with BOS, as the
            official ``tokenizer.encode`` does when ``tokenizer_config.json`` has
            ``add_bos_token: true`` (the Llama default when the key is absent). Settled by
            running the official tokenizer once on ``"human\\n"``.
        fast_tokenizer_space: Whether to add the ``"▁"`` id (324) that the official code's
            fast Llama tokenizer, in legacy mode, puts at the start of the text following
            the last ``<audio_N>`` of a segment: the clone prompt's system text (before
            ``"\n[speaker_end]"``) and every edit's human turn. On, as the official pipeline
            (and so the trained model) sees it; off gives plain SentencePiece ids.
    """

    bos_per_segment: bool = True
    fast_tokenizer_space: bool = True


class PromptBuilder:
    """Builds the clone and edit prompt id sequences (spec §4.3)."""

    def __init__(self, tokenizer: TextEncoder, switches: PromptSwitches) -> None:
        self._tokenizer = tokenizer
        self.switches = switches

    def _encode(self, text: str) -> list[int]:
        ids = self._tokenizer.encode(text)
        if self.switches.fast_tokenizer_space:
            ids = self._space_after_audio(ids)
        return [BOS_ID, *ids] if self.switches.bos_per_segment else ids

    def _space_after_audio(self, ids: list[int]) -> list[int]:
        """Inserts ``"▁"`` before the text that follows the segment's last audio id."""
        audio = [i for i, t in enumerate(ids) if t >= AUDIO_ID_OFFSET]
        if not audio or audio[-1] == len(ids) - 1:
            return ids
        last = audio[-1]
        return [*ids[: last + 1], self._tokenizer.piece_id("▁"), *ids[last + 1 :]]

    def _turn(self, role: str, body: list[int]) -> list[int]:
        return [BOT_ID, *self._encode(f"{role}\n"), *body, EOT_ID]

    def _assistant_start(self) -> list[int]:
        return [BOT_ID, *self._encode("assistant\n")]

    def clone(
        self, target_text: str, prompt_text: str, speaker: str, prompt_audio_tokens: str
    ) -> list[int]:
        """Prompt ids for zero-shot cloning: say ``target_text`` in the prompt's voice.

        Args:
            target_text: The new text.
            prompt_text: Transcript of the prompt clip.
            speaker: The speaker name (see ``speaker_name``).
            prompt_audio_tokens: The prompt's ``<audio_N>`` string.
        """
        system = SYS_CLONE.format(
            speaker=speaker, prompt_text=prompt_text, prompt_wav_tokens=prompt_audio_tokens
        )
        # The target is encoded after a newline, whose ids are then cut off, so the text
        # carries no dummy-prefix piece.
        newline = self._encode("\n")
        target = self._encode("\n" + target_text)[len(newline) :]
        return [
            BOS_ID,
            BOT_ID,
            *self._encode("system\n" + system),
            EOT_ID,
            *self._turn("human", target),
            *self._assistant_start(),
        ]

    def edit(self, instruction: str, audio_tokens: str) -> list[int]:
        """Prompt ids for an edit of the audio given as its ``<audio_N>`` string.

        Args:
            instruction: The INSTR line (see ``edit_instruction``).
            audio_tokens: The input's ``<audio_N>`` string.
        """
        human = self._encode(f"{instruction}\n{audio_tokens.strip()}\n")
        return [
            BOS_ID,
            BOT_ID,
            *self._encode("system\n" + SYS_EDIT),
            EOT_ID,
            *self._turn("human", human),
            *self._assistant_start(),
        ]
