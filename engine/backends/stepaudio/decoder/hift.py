"""The HiFT vocoder: F0 predictor, harmonic-plus-noise source, HiFi-GAN body, iSTFT head.

Weights arrive with weight norm already folded (see ``decoder.weights``), so every
convolution here is a plain one.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

from engine.backends.stepaudio.decoder.config import HiftConfig

__all__ = ["HiftVocoder"]


def _same_padding(kernel: int, dilation: int) -> int:
    return (kernel * dilation - dilation) // 2


class Snake(nn.Module):
    """``x + sin^2(alpha x) / alpha`` per channel (alpha stored linearly)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha[None, :, None]
        return x + (1.0 / (alpha + 1e-9)) * torch.sin(alpha * x).pow(2)


class ResBlock(nn.Module):
    """For each dilation: x += conv2(snake(conv1_dilated(snake(x))))."""

    def __init__(self, channels: int, kernel: int, dilations: tuple[int, ...]) -> None:
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, dilation=d, padding=_same_padding(kernel, d))
            for d in dilations
        )
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel, padding=_same_padding(kernel, 1))
            for _ in dilations
        )
        self.activations1 = nn.ModuleList(Snake(channels) for _ in dilations)
        self.activations2 = nn.ModuleList(Snake(channels) for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv1, conv2, act1, act2 in zip(
            self.convs1, self.convs2, self.activations1, self.activations2, strict=True
        ):
            x = x + conv2(act2(conv1(act1(x))))
        return x


class F0Predictor(nn.Module):
    """Five conv + ELU layers, then a linear read-out of |F0| per mel frame."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(in_channels if i == 0 else channels, channels, 3, padding=1) for i in range(5)
        )
        self.classifier = nn.Linear(channels, 1)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = mel
        for conv in self.convs:
            x = functional.elu(conv(x))
        return self.classifier(x.transpose(1, 2)).squeeze(-1).abs()


class HarmonicSource(nn.Module):
    """Sine harmonics of F0 plus noise, merged to one excitation channel.

    The official generator adds a random initial phase to the first sample of each upper
    harmonic; the linear downsampling by the frame size never reads that sample, so the
    phase has no effect and is left out. Only the additive noise is random.
    """

    def __init__(self, config: HiftConfig) -> None:
        super().__init__()
        self.harmonics = config.nb_harmonics + 1
        self.rate = config.sampling_rate
        self.upsample = config.samples_per_frame
        self.alpha, self.sigma = config.nsf_alpha, config.nsf_sigma
        self.threshold = config.nsf_voiced_threshold
        self.l_linear = nn.Linear(self.harmonics, 1)

    def forward(self, f0: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Turns ``(1, frames)`` F0 in Hz into a ``(1, 1, frames * upsample)`` source."""
        f0_up = f0.repeat_interleave(self.upsample, dim=1).unsqueeze(1)
        multiples = torch.arange(1, self.harmonics + 1, dtype=f0.dtype, device=f0.device)
        step = (f0_up * multiples[None, :, None] / self.rate) % 1
        # Integrate the per-sample phase increment at frame rate, then interpolate back.
        step = functional.interpolate(step, scale_factor=1 / self.upsample, mode="linear")
        phase = torch.cumsum(step, dim=-1) * 2 * math.pi
        phase = functional.interpolate(
            phase * self.upsample, scale_factor=self.upsample, mode="linear"
        )
        voiced = (f0_up > self.threshold).to(f0.dtype)
        noise_amp = voiced * self.sigma + (1 - voiced) * self.alpha / 3
        noise = torch.randn(phase.shape, generator=generator, device="cpu").to(phase.device)
        sines = torch.sin(phase) * self.alpha * voiced + noise_amp * noise
        return torch.tanh(self.l_linear(sines.transpose(1, 2))).transpose(1, 2)


class HiftVocoder(nn.Module):
    """80-bin mel at 50 Hz -> waveform, ``samples_per_frame`` samples per mel frame."""

    window: torch.Tensor

    def __init__(self, config: HiftConfig) -> None:
        super().__init__()
        self.config = config
        base, n_fft = config.base_channels, config.istft_n_fft
        self.f0_predictor = F0Predictor(config.in_channels, config.f0_cond_channels)
        self.m_source = HarmonicSource(config)
        self.conv_pre = nn.Conv1d(config.in_channels, base, 7, padding=3)
        self.ups = nn.ModuleList(
            nn.ConvTranspose1d(base >> i, base >> (i + 1), k, u, padding=(k - u) // 2)
            for i, (u, k) in enumerate(
                zip(config.upsample_rates, config.upsample_kernel_sizes, strict=True)
            )
        )
        # The source enters each stage after being brought down to that stage's rate.
        cumulative = [1]
        for rate in reversed(config.upsample_rates[1:]):
            cumulative.append(cumulative[-1] * rate)
        self.source_downs = nn.ModuleList()
        self.source_resblocks = nn.ModuleList()
        for i, (down, kernel, dilations) in enumerate(
            zip(
                reversed(cumulative),
                config.source_resblock_kernel_sizes,
                config.source_resblock_dilation_sizes,
                strict=False,
            )
        ):
            channels = base >> (i + 1)
            self.source_downs.append(
                nn.Conv1d(n_fft + 2, channels, 1)
                if down == 1
                else nn.Conv1d(n_fft + 2, channels, 2 * down, down, padding=down // 2)
            )
            self.source_resblocks.append(ResBlock(channels, kernel, dilations))
        self.resblocks = nn.ModuleList(
            ResBlock(base >> (i + 1), k, d)
            for i in range(len(self.ups))
            for k, d in zip(
                config.resblock_kernel_sizes, config.resblock_dilation_sizes, strict=True
            )
        )
        self.conv_post = nn.Conv1d(base >> len(self.ups), n_fft + 2, 7, padding=3)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        n_fft, hop = self.config.istft_n_fft, self.config.istft_hop
        spec = torch.stft(x, n_fft, hop, n_fft, window=self.window, return_complex=True)
        return torch.cat([spec.real, spec.imag], dim=1)

    def _body(self, mel: torch.Tensor, source_spec: torch.Tensor) -> torch.Tensor:
        kernels = len(self.config.resblock_kernel_sizes)
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(functional.leaky_relu(x, self.config.lrelu_slope))
            if i == len(self.ups) - 1:
                x = functional.pad(x, (1, 0), mode="reflect")
            x = x + self.source_resblocks[i](self.source_downs[i](source_spec))
            blocks = self.resblocks[i * kernels : (i + 1) * kernels]
            x = sum(block(x) for block in blocks) / kernels
        return self.conv_post(functional.leaky_relu(x))

    @torch.inference_mode()
    def forward(self, mel: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Vocodes ``(1, 80, frames)`` mel into ``(1, frames * samples_per_frame)`` audio.

        Args:
            mel: Natural-log mel.
            generator: CPU random source of the source noise; seed it for repeatable output.
        """
        f0 = self.f0_predictor(mel)
        source = self.m_source(f0, generator)
        x = self._body(mel, self._stft(source.squeeze(1)))
        half = self.config.istft_n_fft // 2 + 1
        magnitude = torch.exp(x[:, :half]).clamp(max=1e2)
        phase = torch.sin(x[:, half:])
        spec = torch.polar(magnitude.float(), phase.float())
        n_fft, hop = self.config.istft_n_fft, self.config.istft_hop
        audio = torch.istft(spec, n_fft, hop, n_fft, window=self.window.float())
        return audio.clamp(-self.config.audio_limit, self.config.audio_limit)
