"""The decoder: mixed audio values -> flow mel -> HiFT waveform at 24 kHz."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from engine.backends.stepaudio.decoder.config import DecoderConfig, fit_flow_to_shapes
from engine.backends.stepaudio.decoder.files import FLOW_FILE, HIFT_FILE
from engine.backends.stepaudio.decoder.flow import FlowDecoder
from engine.backends.stepaudio.decoder.hift import HiftVocoder
from engine.backends.stepaudio.decoder.tokens import flow_frames
from engine.backends.stepaudio.decoder.weights import load_state, read_state
from engine.backends.stepaudio.options import DecoderOptions
from engine.backends.stepaudio.speaker import resize_prompt_mel

__all__ = ["Token2Wav"]


class Token2Wav:
    """Decodes generated audio values in the voice of a prompt (spec §5.6)."""

    def __init__(
        self, flow: FlowDecoder, hift: HiftVocoder, config: DecoderConfig, options: DecoderOptions
    ) -> None:
        self.flow = flow
        self.hift = hift
        self.config = config
        self.options = options

    @property
    def sample_rate(self) -> int:
        return self.config.hift.sampling_rate

    @classmethod
    def load(
        cls, folder: Path, config: DecoderConfig, device: str, options: DecoderOptions
    ) -> Token2Wav:
        """Builds the flow and HiFT modules and fills them from ``flow.pt``/``hift.pt``.

        The decoder always runs in float32, as the official one does.

        Raises:
            CheckpointError: when a state dict is unreadable or does not fit the YAML.
        """
        flow_path, hift_path = folder / FLOW_FILE, folder / HIFT_FILE
        flow_state = read_state(flow_path)
        shapes = {key: tuple(tensor.shape) for key, tensor in flow_state.items()}
        flow_config = fit_flow_to_shapes(config.flow, shapes)
        config = dataclasses.replace(config, flow=flow_config)
        flow = FlowDecoder(flow_config, noise_seed=options.noise_seed)
        load_state(flow, flow_state, flow_path)
        hift = HiftVocoder(config.hift)
        load_state(hift, read_state(hift_path), hift_path)
        flow.to(device).eval()
        hift.to(device).eval()
        return cls(flow, hift, config, options)

    def _device(self) -> torch.device:
        return next(self.flow.parameters()).device

    @torch.inference_mode()
    def __call__(
        self,
        values: Sequence[int],
        prompt_values: Sequence[int],
        prompt_mel: np.ndarray,
        speaker: np.ndarray,
        seed: int = 0,
    ) -> np.ndarray:
        """Synthesises the generated values.

        Args:
            values: Generated audio values (LLM id - 65536).
            prompt_values: The prompt's audio values (its ``vq0206`` ids - 65536).
            prompt_mel: ``(frames, 80)`` log-mel of the prompt (50 Hz, untrimmed); it is
                resized to two frames per prompt flow frame by nearest neighbour.
            speaker: ``(192,)`` speaker embedding of the prompt.

        The prompt mel and the embedding are used as given (``speaker`` rounds them to
        bf16 as the official pipeline does).
            seed: Seeds the vocoder's source noise.

        Returns:
            float32 mono audio, two mel frames (960 samples at 24 kHz) per generated flow frame.
        """
        device = self._device()
        frames = torch.from_numpy(flow_frames(values))[None].to(device)
        prompt_frames = torch.from_numpy(flow_frames(prompt_values))[None].to(device)
        aligned = resize_prompt_mel(prompt_mel, 2 * prompt_frames.shape[1])
        mel = torch.from_numpy(aligned)[None].to(device)
        spk = torch.as_tensor(np.asarray(speaker, dtype=np.float32), device=device)[None]
        generated_mel = self.flow(frames, prompt_frames, mel, spk, self.options.steps)
        generator = torch.Generator(device="cpu").manual_seed(seed)
        audio = self.hift(generated_mel, generator)
        return audio[0].float().cpu().numpy()
