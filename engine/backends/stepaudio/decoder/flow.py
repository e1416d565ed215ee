"""The flow-matching decoder: dual-codebook frames + prompt mel + speaker -> 50 Hz mel."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from engine.backends.stepaudio.decoder.config import FlowConfig
from engine.backends.stepaudio.decoder.dit import DiT
from engine.backends.stepaudio.decoder.encoder import UpsampleConformerEncoder

__all__ = ["MAX_NOISE_FRAMES", "FlowDecoder", "cosine_times"]

# The fixed noise covers 600 s of 50 Hz mel, as the official buffer does.
MAX_NOISE_FRAMES = 50 * 600


def cosine_times(steps: int) -> torch.Tensor:
    """The Euler time grid ``t_k = 1 - cos(k / steps * pi / 2)``, k = 0..steps (float32)."""
    return 1 - torch.cos(torch.linspace(0, 1, steps + 1, dtype=torch.float32) * 0.5 * math.pi)


class DualCodebookEmbedding(nn.Module):
    """One table shared by both columns; the two halves are concatenated."""

    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, width // 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.embedding(frames[..., 0]), self.embedding(frames[..., 1])], -1)


class CfmSampler(nn.Module):
    """Holds the estimator and integrates the flow with classifier-free guidance."""

    def __init__(self, config: FlowConfig) -> None:
        super().__init__()
        self.estimator = DiT(config.dit)
        self.cfg_rate = config.cfg_rate

    def forward(
        self,
        noise: torch.Tensor,
        mu: torch.Tensor,
        spk: torch.Tensor,
        cond: torch.Tensor,
        steps: int,
    ) -> torch.Tensor:
        """Euler steps on the cosine grid; each step runs the conditioned and the
        unconditioned (all zeros) inputs as one batch of two."""
        x = noise
        times = cosine_times(steps).to(noise.device)
        mu2 = torch.cat([mu, torch.zeros_like(mu)])
        spk2 = torch.cat([spk, torch.zeros_like(spk)])
        cond2 = torch.cat([cond, torch.zeros_like(cond)])
        for k in range(1, steps + 1):
            t = times[k - 1].expand(2).to(x.dtype)
            velocity = self.estimator(torch.cat([x, x]), mu2, t, spk2, cond2)
            guided, free = velocity.chunk(2)
            velocity = (1 + self.cfg_rate) * guided - self.cfg_rate * free
            x = x + (times[k] - times[k - 1]).to(x.dtype) * velocity
        return x


class FlowDecoder(nn.Module):
    """Tokens -> mel, conditioned on the prompt's tokens, mel and speaker embedding.

    The starting noise is one fixed buffer per decoder, drawn from ``noise_seed`` on first
    use (not at construction) and reused by every call, like the official module's
    ``rand_noise``; ``set_noise`` installs a captured one.
    """

    def __init__(self, config: FlowConfig, noise_seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.input_embedding = DualCodebookEmbedding(config.vocab_size, config.input_size)
        self.spk_embed_affine_layer = nn.Linear(config.spk_embed_dim, config.output_size)
        self.encoder = UpsampleConformerEncoder(config.encoder)
        self.encoder_proj = nn.Linear(config.encoder.output_size, config.output_size)
        self.decoder = CfmSampler(config)
        self.noise_seed = noise_seed
        self._noise: torch.Tensor | None = None

    def set_noise(self, noise: torch.Tensor) -> None:
        """Uses ``(1, output_size, frames)`` as the fixed starting noise."""
        self._noise = noise

    def noise(self, frames: int, device: torch.device) -> torch.Tensor:
        """The first ``frames`` columns of the fixed noise buffer."""
        if frames > MAX_NOISE_FRAMES:
            raise ValueError(f"{frames} mel frames exceed the {MAX_NOISE_FRAMES}-frame limit")
        if self._noise is None:
            generator = torch.Generator(device="cpu").manual_seed(self.noise_seed)
            self._noise = torch.randn(
                (1, self.config.output_size, MAX_NOISE_FRAMES), generator=generator
            )
        return self._noise[:, :, :frames].to(device)

    @torch.inference_mode()
    def forward(
        self,
        frames: torch.Tensor,
        prompt_frames: torch.Tensor,
        prompt_mel: torch.Tensor,
        speaker: torch.Tensor,
        steps: int = 10,
    ) -> torch.Tensor:
        """Decodes generated frames after the prompt's.

        Args:
            frames: ``(1, Tg, 2)`` generated flow frames.
            prompt_frames: ``(1, Tp, 2)`` the prompt's flow frames.
            prompt_mel: ``(1, 2 * Tp, 80)`` the prompt's mel, aligned to its frames.
            speaker: ``(1, spk_embed_dim)`` speaker embedding.
            steps: Euler steps.

        Returns:
            ``(1, 80, 2 * Tg)`` mel of the generated part (natural log).
        """
        spk = self.spk_embed_affine_layer(functional.normalize(speaker, dim=1))
        tokens = torch.cat([prompt_frames, frames], dim=1).clamp(min=0)
        h = self.encoder_proj(self.encoder(self.input_embedding(tokens)))
        mu = h.transpose(1, 2)
        cond = torch.zeros_like(mu)
        prompt_len = prompt_mel.shape[1]
        cond[:, :, :prompt_len] = prompt_mel.transpose(1, 2)
        noise = self.noise(mu.shape[2], mu.device).to(mu.dtype)
        mel = self.decoder(noise, mu, spk, cond, steps)
        return mel[:, :, prompt_len:]
