"""The stepaudio backend: Step-Audio-EditX checkpoints run by our own code.

Importing this package loads no torch; ``StepAudioBackend.load`` imports the model code.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from engine.audio import integrated_loudness, resample, to_mono
from engine.backends.base import Progress, Rendered
from engine.backends.stepaudio.options import (
    DTYPE_NAMES,
    QUANTIZE_NAMES,
    SamplingConfig,
    StepAudioOptions,
)
from engine.edits import EDIT_TYPES, MASK_SOUNDS, MODEL_EDIT_TYPES, EditSpec
from engine.errors import BackendError, EditError, InputError

if TYPE_CHECKING:
    from engine.backends.stepaudio.checkpoint import StepAudioCheckpoint
    from engine.backends.stepaudio.decoder import Token2Wav
    from engine.backends.stepaudio.llm.generate import Generation
    from engine.backends.stepaudio.llm.model import Step1ForCausalLM
    from engine.backends.stepaudio.prompts import PromptBuilder
    from engine.backends.stepaudio.speaker import MelConfig, SpeakerEncoder
    from engine.backends.stepaudio.tokenizer import AudioTokenizer, DualCodes
    from engine.backends.stepaudio.tokenizer_cache import PromptFeatures, TokenizerCache
    from engine.guard import Guard

__all__ = ["StepAudioBackend", "StepAudioOptions", "StepAudioPrompt"]

_LOG = logging.getLogger(__name__)

# Share of one pass's progress bar per stage.
_TOKENIZE_END, _GENERATE_END = 0.1, 0.8
# Largest loudness change (dB) passed on from the model's output to the engine.
_MAX_LOUDNESS_CHANGE = 20.0
# Seconds of audio per group of five mixed tokens.
_GROUP_SECONDS = 0.12


@dataclass(frozen=True)
class StepAudioPrompt:
    """One pass's prompt: the tokens the LLM edits and the voice the decoder speaks in.

    ``tokenize`` makes both from one input; ``next_prompt`` puts a pass's generated tokens in
    ``codes`` and keeps the rest.

    Attributes:
        codes: The tokens the LLM edits: the dual-codebook tokens of the trimmed 16 kHz
            input, or the previous pass's output.
        voice_codes: The decoder's prompt tokens, those of the audio ``mel`` and ``speaker``
            come from.
        mel: ``(frames, 80)`` 24 kHz log-mel of the untrimmed input.
        speaker: ``(192,)`` CAM++ embedding.
        raw: The input as passed in, ``(channels, samples)`` (the clone speaker name hashes
            its first and last samples), or for a recalled prompt just those samples.
        duration: Length in seconds of the audio ``codes`` stand for.
        loudness: Integrated loudness (LUFS) of the mono input the model saw; decoded
            output reports its loudness change against it.
        cache: ``"hit"`` when the edit's input was found in the tokenizer cache,
            ``"tokens"`` when the edit continues on a remembered pass, else ``"miss"``.
        tokenizer_calls: Tokenizer runs the edit has needed so far.
    """

    codes: DualCodes
    voice_codes: DualCodes
    mel: np.ndarray
    speaker: np.ndarray
    raw: np.ndarray
    duration: float
    loudness: float
    cache: str
    tokenizer_calls: int


class StepAudioBackend:
    """Step-Audio-EditX: LLM-grade edits and voice cloning from the official checkpoints.

    Args:
        model_dir: The folder holding ``Step-Audio-Tokenizer/`` and ``Step-Audio-EditX/``.
        device: Torch device: ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        dtype: LLM compute dtype, ``fp32``, ``bf16`` or ``fp16`` (the decoder runs fp32).
        quantize: ``none``, or ``int8``: the LLM's decoder-layer Linear weights are held in
            int8 (weight-only, per output channel; about a quarter of their fp32 memory),
            activations stay in ``dtype``.
        options: Sampling, length bounds, decoder steps, seeds, iterations, the tokenizer
            cache's bound and the open-question switches.
        length_multiple: Overrides ``options.limits.length_multiple``: generation stops at
            this multiple of the expected output length.
        retokenize: Overrides ``options.retokenize`` (iterations decode and re-tokenize
            every pass, as the official pipeline does).
        cache_dir: Folder of the tokenizer cache (the engine's cache folder); ``None``
            keeps no cache, so every input is tokenized.
    """

    name: ClassVar[str] = "stepaudio"
    tagged_text: ClassVar[bool] = True  # paralinguistic tags inline in target_text
    # Every prompt of these carries the slice's transcript (the clone prompt: its speaker's).
    reads_text: ClassVar[frozenset[str]] = frozenset(
        {"emotion", "style", "speed", "paralinguistic", "clone"}
    )
    description: ClassVar[str] = (
        "Step-Audio-EditX from the official checkpoints (--model-dir), run by StepEdit's own "
        "PyTorch code: every emotion, style, speed, paralinguistic, denoise and vad edit, and "
        "voice cloning; text edits that also say new words in the speaker's voice. CPU, "
        "CUDA or MPS; downloads nothing."
    )
    edits: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **{name: EDIT_TYPES[name].options for name in MODEL_EDIT_TYPES},
        # Cuts, moves, masks and tags as on the cpu backend; new words are cloned.
        "text": MASK_SOUNDS,
        "fillers": (),
    }

    def __init__(
        self,
        model_dir: Path | str,
        device: str = "cpu",
        dtype: str = "fp32",
        options: StepAudioOptions | None = None,
        length_multiple: float | None = None,
        retokenize: bool | None = None,
        cache_dir: Path | str | None = None,
        quantize: str = "none",
    ) -> None:
        if dtype not in DTYPE_NAMES:
            raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPE_NAMES)}")
        if quantize not in QUANTIZE_NAMES:
            raise ValueError(
                f"unknown quantize {quantize!r}; choose one of {', '.join(QUANTIZE_NAMES)}"
            )
        self.quantize = quantize
        self.model_dir = Path(model_dir)
        self._device = device
        self.dtype = dtype
        self.options = options or StepAudioOptions()
        if length_multiple is not None:
            limits = dataclasses.replace(self.options.limits, length_multiple=length_multiple)
            self.options = dataclasses.replace(self.options, limits=limits)
        if retokenize is not None:
            self.options = dataclasses.replace(self.options, retokenize=retokenize)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._cache: TokenizerCache | None = None
        self._tokenizer: AudioTokenizer | None = None
        self._speaker: SpeakerEncoder | None = None
        self._mel_config: MelConfig | None = None
        self._prompts: PromptBuilder | None = None
        self._llm: Step1ForCausalLM | None = None
        self._decoder: Token2Wav | None = None
        self._sampling = self.options.sampling or SamplingConfig()

    @property
    def device(self) -> str:
        return self._device

    @property
    def segment_seconds(self) -> float:
        """Longest slice edited in one piece (``options.segment_seconds``)."""
        return self.options.segment_seconds

    @property
    def retokenize(self) -> bool:
        """Whether iterations decode and re-tokenize every pass (``options.retokenize``)."""
        return self.options.retokenize

    def _check_device(self) -> None:
        import torch

        try:
            device = torch.device(self._device)
        except RuntimeError as e:
            raise BackendError(
                f"unknown device {self._device!r} ({e}); use cpu, cuda or mps"
            ) from e
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(f"device {self._device!r}: this torch build sees no CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise BackendError(f"device {self._device!r}: MPS is not available on this machine")

    def load(self) -> None:
        """Checks the model folder, then loads the tokenizer, speaker encoder, LLM and decoder,
        and opens the tokenizer cache when there is a ``cache_dir``.

        Raises:
            CheckpointError: listing every missing or malformed file.
            BackendError: for an unusable device.
        """
        from engine.backends.stepaudio.checkpoint import check_checkpoint
        from engine.backends.stepaudio.decoder import Token2Wav
        from engine.backends.stepaudio.decoder.files import SPEAKER_ONNX_FILE
        from engine.backends.stepaudio.llm.text_tokenizer import TextTokenizer
        from engine.backends.stepaudio.llm.weights import DTYPES, load_step1
        from engine.backends.stepaudio.prompts import PromptBuilder, PromptSwitches
        from engine.backends.stepaudio.speaker import MelConfig, SpeakerEncoder
        from engine.backends.stepaudio.tokenizer import AudioTokenizer

        self._check_device()
        checkpoint = check_checkpoint(self.model_dir)
        options = self.options
        self._tokenizer = AudioTokenizer.load(
            checkpoint.tokenizer_dir, self._device, dither=options.dither
        )
        self._speaker = SpeakerEncoder.load(
            checkpoint.decoder_dir / SPEAKER_ONNX_FILE, self._device
        )
        self._mel_config = MelConfig.from_mapping(checkpoint.decoder.mel_conf)
        if self.cache_dir is not None:
            self._cache = self._open_cache(self.cache_dir, checkpoint, self._mel_config)
        switches = options.prompt or PromptSwitches(bos_per_segment=checkpoint.add_bos_token)
        text = TextTokenizer(checkpoint.editx_dir / "tokenizer.model")
        self._prompts = PromptBuilder(text, switches)
        self._sampling = options.sampling or checkpoint.sampling
        llm_config = dataclasses.replace(
            checkpoint.llm_config,
            kv_group_layout=options.kv_group_layout,
            attention_scale=options.attention_scale,
        )
        self._llm = load_step1(
            checkpoint.llm_shards,
            llm_config,
            self._device,
            DTYPES[self.dtype],
            quantize=self.quantize,
        )
        self._decoder = Token2Wav.load(
            checkpoint.decoder_dir, checkpoint.decoder, self._device, options.decoder
        )
        _LOG.info(
            "stepaudio loaded from %s on %s (LLM %s, quantize %s, BOS per segment %s, %s)",
            checkpoint.root,
            self._device,
            self.dtype,
            self.quantize,
            switches.bos_per_segment,
            self._sampling,
        )

    def _open_cache(
        self, folder: Path, checkpoint: StepAudioCheckpoint, mel_config: MelConfig
    ) -> TokenizerCache | None:
        """The tokenizer cache in ``folder`` for the tokenizer and speaker models of
        ``checkpoint`` and the settings that change their output, its stored passes also
        for the LLM (``_llm_settings``); ``None`` (logged) when the folder or its database
        cannot be used: the backend then works without a cache."""
        import sqlite3

        from engine.backends.stepaudio.decoder.files import SPEAKER_ONNX_FILE
        from engine.backends.stepaudio.tokenizer import TOKENIZER_FILES
        from engine.backends.stepaudio.tokenizer_cache import (
            TokenizerCache,
            file_hashes,
            llm_identity,
            model_identity,
        )

        files = [checkpoint.tokenizer_dir / name for name in TOKENIZER_FILES]
        files.append(checkpoint.decoder_dir / SPEAKER_ONNX_FILE)
        settings = {"mel": dataclasses.asdict(mel_config), "dither": self.options.dither}
        config = checkpoint.editx_dir / "config.json"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            identity = model_identity(files, settings, file_hashes(folder))
            llm = llm_identity(config, checkpoint.llm_shards, self._llm_settings())
            cache = TokenizerCache(folder, identity, self.options.cache_bytes, llm=llm)
        except (OSError, sqlite3.Error) as e:
            _LOG.warning("no tokenizer cache: %s cannot be used (%s)", folder, e)
            return None
        _LOG.info(
            "tokenizer cache: %s (bound %d MiB)", cache.store.path, cache.store.max_bytes >> 20
        )
        return cache

    def _llm_settings(self) -> dict[str, object]:
        """What changes the LLM's generations besides its files: the one place the stored
        passes' key takes the LLM's settings from."""
        options = self.options
        return {
            "dtype": self.dtype,
            "quantize": self.quantize,
            "kv_group_layout": options.kv_group_layout,
            "attention_scale": options.attention_scale,
        }

    def _loaded(self) -> tuple[AudioTokenizer, SpeakerEncoder, PromptBuilder, Step1ForCausalLM]:
        if (
            self._tokenizer is None
            or self._speaker is None
            or self._prompts is None
            or self._llm is None
        ):
            raise BackendError("the stepaudio backend is used before load()")
        return self._tokenizer, self._speaker, self._prompts, self._llm

    def tokenize(self, audio: np.ndarray, sample_rate: int, progress: Progress) -> StepAudioPrompt:
        """Tokenizes the input and computes the decoder's prompt mel and speaker embedding,
        or finds all three in the tokenizer cache.

        Args:
            audio: ``(channels, samples)`` float32.
            sample_rate: Its rate in Hz.
            progress: Progress callback.

        Raises:
            InputError: for an input too short to give one token group.
        """
        from engine.backends.stepaudio.audio_prep import prepare_prompt

        progress(0.0, "tokenize")
        mono = prepare_prompt(audio)
        cache = self._cache
        key = cache.key(mono, sample_rate) if cache is not None else ""
        features = cache.get(key) if cache is not None else None
        hit = features is not None
        if features is None:
            features = self._features(mono, sample_rate)
            if cache is not None:
                cache.put(key, features)
        progress(_TOKENIZE_END, "tokenize")
        return StepAudioPrompt(
            codes=features.codes,
            voice_codes=features.codes,
            mel=features.mel,
            speaker=features.speaker,
            raw=np.asarray(audio),
            duration=mono.shape[0] / sample_rate,
            loudness=integrated_loudness(mono[np.newaxis], sample_rate),
            cache="hit" if hit else "miss",
            tokenizer_calls=0 if hit else 1,
        )

    def _features(self, mono: np.ndarray, sample_rate: int) -> PromptFeatures:
        """Runs the tokenizer, the prompt mel and the speaker encoder on a prepared prompt."""
        from engine.backends.stepaudio.speaker import prompt_mel
        from engine.backends.stepaudio.tokenizer_cache import PromptFeatures

        tokenizer, speaker, _, _ = self._loaded()
        codes = tokenizer.tokenize(mono, sample_rate)
        if codes.groups == 0:
            raise InputError(
                f"the input ({mono.shape[0] / sample_rate:.3f} s) is too short to tokenize; "
                "Step-Audio needs at least 120 ms of sound"
            )
        mel = prompt_mel(mono, sample_rate, self._mel_config)
        return PromptFeatures(codes, mel, speaker.embed(mono, sample_rate))

    def next_prompt(
        self,
        generated: Generation,
        prompt: StepAudioPrompt,
        progress: Progress,
        decoded: Rendered | None = None,
    ) -> StepAudioPrompt:
        """The prompt of the pass after the one that generated ``generated`` from ``prompt``.

        Without ``decoded``, the generated tokens (whole groups) become the tokens the LLM
        edits next, with no tokenizer call; the decoder keeps ``prompt``'s voice (its
        tokens, mel and speaker embedding) and loudness reference. With ``decoded`` (the
        ``retokenize`` option), that audio is tokenized as the official pipeline does and
        becomes the whole prompt, voice included; the tokenizer counts carry on.

        Args:
            generated: This pass's output.
            prompt: This pass's prompt.
            progress: Progress callback.
            decoded: This pass decoded, to re-tokenize.

        Raises:
            BackendError: when the pass generated less than one token group.
        """
        from engine.backends.stepaudio.tokenizer import DualCodes

        if decoded is not None:
            fresh = self.tokenize(decoded.audio, decoded.sample_rate, progress)
            calls = prompt.tokenizer_calls + fresh.tokenizer_calls
            return dataclasses.replace(fresh, cache=prompt.cache, tokenizer_calls=calls)
        progress(0.0, "tokenize")
        codes = DualCodes.from_values(generated.values)
        if codes.groups == 0:
            raise BackendError(
                f"the pass generated {len(generated.values)} audio tokens, less than one "
                "group of 5, to edit further; try again or with another seed"
            )
        progress(_TOKENIZE_END, "tokenize")
        return dataclasses.replace(prompt, codes=codes, duration=codes.groups * _GROUP_SECONDS)

    def remember(
        self, key: str, generated: Generation, prompt: StepAudioPrompt, decoded: Rendered
    ) -> None:
        """Keeps the pass under ``key`` in the tokenizer cache's folder (nothing without a
        cache, or for a pass with less than one token group to continue from).

        The next pass's loudness reference is the prompt's plus ``decoded``'s loudness
        change: the level the engine gave the result, so that a pass continuing from it
        reports its own change only.
        """
        from engine.backends.stepaudio.prompts import speaker_sample
        from engine.backends.stepaudio.tokenizer import DualCodes
        from engine.backends.stepaudio.tokenizer_cache import PromptFeatures, StoredPass

        if self._cache is None or DualCodes.from_values(generated.values).groups == 0:
            return
        stored = StoredPass(
            generation=generated,
            codes=prompt.codes,
            voice=PromptFeatures(prompt.voice_codes, prompt.mel, prompt.speaker),
            speaker_sample=speaker_sample(prompt.raw),
            duration=prompt.duration,
            loudness=prompt.loudness + decoded.loudness_offset_db,
        )
        self._cache.put_pass(key, stored)

    def recall(self, key: str) -> tuple[Generation, StepAudioPrompt] | None:
        """The pass remembered under ``key`` and its prompt (``cache`` ``"tokens"``, no
        tokenizer calls), or ``None``."""
        stored = self._cache.get_pass(key) if self._cache is not None else None
        if stored is None:
            return None
        prompt = StepAudioPrompt(
            codes=stored.codes,
            voice_codes=stored.voice.codes,
            mel=stored.voice.mel,
            speaker=stored.voice.speaker,
            raw=stored.speaker_sample,
            duration=stored.duration,
            loudness=stored.loudness,
            cache="tokens",
            tokenizer_calls=0,
        )
        return stored.generation, prompt

    def _prompt_ids(self, prompt: StepAudioPrompt, edit: EditSpec) -> tuple[list[int], int]:
        """The LLM prompt of ``edit`` and the expected output length in tokens."""
        from engine.backends.stepaudio.llm.generate import expected_clone_tokens
        from engine.backends.stepaudio.prompts import edit_instruction, insert_tag, speaker_name

        _, _, prompts, _ = self._loaded()
        if edit.type == "clone":
            if not edit.text:
                _LOG.warning("clone without the clip's transcript; the prompt text is empty")
            ids = prompts.clone(
                edit.target_text,
                edit.text,
                speaker_name(edit.text, prompt.raw),
                prompt.codes.token_string,
            )
            return ids, expected_clone_tokens(edit.target_text)
        new_text = ""
        if edit.type == "paralinguistic":
            new_text = edit.target_text
            if not new_text and not edit.text:
                raise EditError(
                    "paralinguistic edits need the slice's transcript ('text') or the text "
                    "with inline tags ('target_text')"
                )
            new_text = new_text or insert_tag(
                edit.text, edit.option, edit.positions, prompt.duration
            )
        elif not edit.text and edit.type not in ("denoise", "vad"):
            _LOG.warning("no transcript given for a %s edit; the prompt's text is empty", edit.type)
        instruction = edit_instruction(edit.type, edit.option, edit.text, new_text)
        return prompts.edit(instruction, prompt.codes.token_string), len(prompt.codes.llm_ids)

    def generate(self, prompt: StepAudioPrompt, edit: EditSpec, progress: Progress) -> Generation:
        """Samples the audio tokens of one pass of ``edit``.

        Args:
            prompt: From ``tokenize``.
            edit: The edit (or ``clone``); its ``seed``, when set, overrides
                ``options.seed``.
            progress: Progress callback; raises ``JobCancelled`` to stop.

        Raises:
            BackendError: when the model produced no audio tokens.
        """
        from engine.backends.stepaudio.llm.generate import generate

        _, _, _, llm = self._loaded()
        options = self.options
        ids, expected = self._prompt_ids(prompt, edit)
        bound = options.limits.bound(expected)
        seed = edit.seed if edit.seed is not None else options.seed
        if seed is None:
            seed = secrets.randbits(31)
        span = _GENERATE_END - _TOKENIZE_END

        def on_token(count: int) -> None:
            progress(_TOKENIZE_END + span * count / bound, "generate")

        try:
            result = generate(
                llm,
                ids,
                bound,
                sampling=self._sampling,
                limits=options.limits,
                seed=seed,
                on_token=on_token,
            )
        except ValueError as e:
            raise InputError(str(e)) from e
        _LOG.info(
            "generated %d audio tokens in %d draws (bound %d, stop: %s)",
            len(result.values),
            result.drawn,
            result.max_new_tokens,
            result.stop_reason,
        )
        if not result.values:
            raise BackendError(
                f"the model produced no audio tokens (stop reason: {result.stop_reason}); "
                "try again or with another seed"
            )
        return result

    def decode(
        self, generated: Generation, prompt: StepAudioPrompt, progress: Progress
    ) -> Rendered:
        """Synthesises the generated tokens in the prompt's voice at 24 kHz.

        The result's ``info`` carries ``generation``: the stop reason, the token bound, the
        counts, the seed, and the LLM's ``llm_dtype`` and ``quantize``; and ``tokenizer``:
        ``cache`` (``"hit"``, ``"miss"`` or ``"tokens"``) and ``calls`` (tokenizer runs of
        the edit). Its ``loudness_offset_db`` is the model's own loudness change against the
        prompt (a whisper stays quieter, denoised speech loses the noise's level).
        """
        if self._decoder is None:
            raise BackendError("the stepaudio backend is used before load()")
        progress(_GENERATE_END, "decode")
        try:
            audio = self._decoder(
                generated.values,
                prompt.voice_codes.values,
                prompt.mel,
                prompt.speaker,
                generated.seed,
            )
        except ValueError as e:  # longer than the decoder's 600 s of fixed noise
            raise InputError(f"cannot decode: {e}") from e
        progress(1.0, "decode")
        info: dict[str, Any] = {
            "generation": {
                "stop_reason": generated.stop_reason,
                "max_new_tokens": generated.max_new_tokens,
                "drawn_tokens": generated.drawn,
                "audio_tokens": len(generated.values),
                "dropped_tokens": generated.dropped,
                "prompt_tokens": generated.prompt_length,
                "seed": generated.seed,
                "llm_dtype": self.dtype,
                "quantize": self.quantize,
            },
            "tokenizer": {"cache": prompt.cache, "calls": prompt.tokenizer_calls},
        }
        out = audio[np.newaxis, :]
        change = integrated_loudness(out, self._decoder.sample_rate) - prompt.loudness
        offset = (
            float(np.clip(change, -_MAX_LOUDNESS_CHANGE, _MAX_LOUDNESS_CHANGE))
            if math.isfinite(change)
            else 0.0
        )
        return Rendered(out, self._decoder.sample_rate, loudness_offset_db=offset, info=info)

    def render_words(
        self,
        audio: np.ndarray,
        sample_rate: int,
        edit: EditSpec,
        progress: Progress,
        guard: Guard | None = None,
    ) -> Rendered:
        """Renders a ``text`` or ``fillers`` edit: the take's words cut, moved, masked and
        tagged as on the cpu backend, new words said by the model in the take's voice.

        Each re-said span is a clone of its words, checked by ``guard`` (``None``:
        ``Guard()``; off with ``edit.guard``) as a clone is: the span's generation, heard
        alone, is scored against the words it should say and generated again with a new
        seed while they differ too much; the best try is spliced in.

        The result's ``info`` carries ``words`` and, when words were said, ``generations``
        (one ``generation`` object per re-said span, with its ``wer``, ``tries`` and
        ``seed`` when checked) and ``tokenizer`` (``cache`` is ``"hit"`` when every voice
        prompt was cached; ``calls`` adds up).
        """
        # The DSP half of word edits is shared with the cpu backend (imported here: it loads
        # Praat and WORLD); the model only adds the new words.
        from engine.backends.cpu.text_edit import render_words
        from engine.guard import Guard, guarded

        generations: list[dict[str, Any]] = []
        tokenizer: list[dict[str, Any]] = []

        def say(
            text: str, prompt: np.ndarray, sample_rate: int, prompt_text: str, progress: Progress
        ) -> np.ndarray:
            voice: list[Any] = []  # tokenized by the first try, for every try

            def clone(attempt: EditSpec, step: Progress) -> Rendered:
                if not voice:
                    voice.append(self.tokenize(prompt[np.newaxis, :], sample_rate, step))
                return self.decode(self.generate(voice[0], attempt, step), voice[0], step)

            # Checked on the span's generation alone, before it is spliced: in the whole
            # take, a word dropped from a short span would hardly move the error.
            spec = EditSpec(
                "clone",
                text=prompt_text,
                target_text=text,
                language=edit.language,
                guard=edit.guard,
            )
            rendered, _ = guarded(clone, spec, guard or Guard(), progress)
            generations.append(rendered.info["generation"])
            tokenizer.append(rendered.info["tokenizer"])
            return resample(to_mono(rendered.audio), rendered.sample_rate, sample_rate)

        rendered = render_words(audio, sample_rate, edit, progress, say=say)
        if generations:
            rendered.info["generations"] = generations
            rendered.info["tokenizer"] = {
                "cache": "hit" if all(t["cache"] == "hit" for t in tokenizer) else "miss",
                "calls": sum(t["calls"] for t in tokenizer),
            }
        return rendered
