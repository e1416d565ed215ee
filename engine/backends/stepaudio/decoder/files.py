"""File layout of the decoder folder ``Step-Audio-EditX/CosyVoice-300M-25Hz`` (spec §1.3)."""

from __future__ import annotations

__all__ = [
    "DECODER_CONFIG_FILE",
    "DECODER_DIR",
    "FLOW_FILE",
    "HIFT_FILE",
    "SPEAKER_ONNX_FILE",
]

# The decoder folder inside ``Step-Audio-EditX``.
DECODER_DIR = "CosyVoice-300M-25Hz"
# HyperPyYAML configuration of the flow, HiFT and the prompt mel.
DECODER_CONFIG_FILE = "cosyvoice.yaml"
# torch.save state dicts of the flow-matching decoder and the HiFT vocoder.
FLOW_FILE = "flow.pt"
HIFT_FILE = "hift.pt"
# CAM++ speaker encoder.
SPEAKER_ONNX_FILE = "campplus.onnx"
