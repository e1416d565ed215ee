"""Step1's fixed ids: the prompt's special tokens and the audio token scheme (spec §3.5, §4.2).

Plain constants, shared by the tokenizer, the prompts, generation and the checkpoint check.
"""

from __future__ import annotations

__all__ = [
    "AUDIO_ID_OFFSET",
    "AUDIO_VALUES",
    "BOS_ID",
    "BOT_ID",
    "EOT_ID",
    "VQ02_CODES",
    "VQ06_CODES",
    "VQ06_OFFSET",
]

# Literal ids the prompt layout uses: begin of sequence, end of turn, begin of turn.
BOS_ID = 1
EOT_ID = 3
BOT_ID = 4

# Codebook sizes of the linguistic (vq02) and semantic (vq06) streams.
VQ02_CODES = 1024
VQ06_CODES = 4096
# An audio value N is a vq02 code c (N = c) or a vq06 code c (N = VQ06_OFFSET + c).
VQ06_OFFSET = VQ02_CODES
AUDIO_VALUES = VQ02_CODES + VQ06_CODES
# <audio_N> is the single piece with id AUDIO_ID_OFFSET + N.
AUDIO_ID_OFFSET = 65536
