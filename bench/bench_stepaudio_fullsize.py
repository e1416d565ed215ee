"""Step-Audio-EditX at the official sizes: time and peak memory of every stage of a 10 s edit.

Builds random-weight checkpoints in the official layout at the official widths (the tests'
fixture writers, which keep the official depths, heads and vocabularies and shrink only
widths, run here with the widths of ``shared/spec/step-audio-editx.md``), then times each
stage of one edit of a ``--seconds`` clip with the backend's own modules:

- tokenizer: vq02 (Paraformer-streaming encoder, 50 x 512, + k-means) and vq06 (S3 tokenizer
  in onnxruntime; the fixture's stand-in is a single Conv, so this script exports an ONNX
  graph of the published structure: 2 convs, 6 blocks of 1280 with 20 heads, 1280 x 4096
  codebook, ~130 M parameters like the published 522 MB file);
- speaker embedding (CAM++ through onnxruntime: the fixture's stand-in graph; the real
  CAM++ has ~7 M parameters) and the prompt mel;
- LLM (Step1, 3.5 B): prefill of the real edit prompt of the clip, and ``--decode-tokens``
  decode steps (sampling included); the generate time of the expected answer (as many
  tokens as the clip's, 41.67 per second) is EXTRAPOLATED as prefill + tokens x per-token;
- flow (conformer encoder + 16-block DiT, 10 Euler steps with CFG) and HiFT on an answer as
  long as the clip.

Each stage group runs in its own child process (so one model at a time lives in memory and
is freed by the process's exit), under a timeout; the LLM is built only when MemAvailable
exceeds its size + 2 GiB. Precisions: the LLM in fp32 and bf16, and with ``--quantize
int8`` also loaded with the backend's weight-only int8 (``llm/int8.py``: decoder-layer
Linear weights in int8, activations in each ``--dtypes`` dtype) in a child of its own, so
its load peak is the quantized model's; tokenizer and decoder run fp32 in the backend, so
their bf16 column is the same fp32 code except the flow, also timed under bf16 autocast as
a probe (and with int8 Linear weights under ``--quantize int8``). Peak memory is the
process's RSS high-water mark during each stage (``VmHWM``, reset before the stage), which
includes the models resident at the time.

    python bench/bench_stepaudio_fullsize.py [--scale 0.125] [--device cuda] [--json OUT]
        [--quantize int8] [--stages llm]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# 5 mixed tokens per 120 ms of audio.
TOKENS_PER_AUDIO_SECOND = 5 / 0.12
TRANSCRIPT = "unless a system is established"
GIB = 2**30
# Official widths (spec §1.5) in units of the LLM head dim (64): LLM 48 heads x 64, MLP 8192;
# flow and DiT 512 (8 heads x 64), FF 2048; HiFT base 512; vq02 512, FF 2048; vq06 1280
# (20 heads x 64), MLP 5120.
OFFICIAL_UNIT = 64


# ---------------------------------------------------------------------------------- memory


def mem_available() -> int:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (0 where unknown)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def reset_peak_rss() -> None:
    """Resets this process's RSS high-water mark (Linux: ``5`` to ``/proc/self/clear_refs``)."""
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")


def peak_rss() -> int:
    """RSS high-water mark since the last reset, in bytes (``VmHWM``)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Recorder:
    """Collects stage results and writes them to ``path`` after each stage, so a child that
    runs out of time still leaves what it measured."""

    def __init__(self, path: Path, device: str) -> None:
        self.path = path
        self.device = device
        self.data: dict[str, Any] = {}
        self.flush()

    def flush(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1))

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.flush()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Times the block; records seconds and peak RSS (and GPU peak on CUDA)."""
        import torch

        gc.collect()
        reset_peak_rss()
        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        extra: dict[str, Any] = {}
        started = time.perf_counter()
        yield extra
        if cuda:
            torch.cuda.synchronize()
        entry = {"seconds": time.perf_counter() - started, "peak_rss": peak_rss(), **extra}
        if cuda:
            entry["peak_gpu"] = torch.cuda.max_memory_allocated()
        self.put(name, entry)


def as_array(values: Any) -> np.ndarray:
    """A float64 array of an array or a tensor on any device."""
    if hasattr(values, "detach"):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64)


def error_stats(reference: Any, other: Any) -> dict[str, float]:
    """Max abs error, and that over the reference's max abs (relative)."""
    reference, other = as_array(reference), as_array(other)
    n = min(reference.size, other.size)
    a, b = reference.reshape(-1)[:n], other.reshape(-1)[:n]
    err = float(np.max(np.abs(a - b))) if n else 0.0
    scale = float(np.max(np.abs(a))) if n else 0.0
    return {"max_abs": err, "rel": err / scale if scale else 0.0}


# ------------------------------------------------------------------------- checkpoints


def widths(unit: int) -> dict[str, int]:
    """Every width of the model family for a head dim of ``unit`` (official: 64)."""
    return {
        "llm_hidden": 48 * unit,
        "llm_ff": 128 * unit,
        "flow": 8 * unit,
        "flow_ff": 32 * unit,
        "dit_head_dim": unit,
        "dit": 8 * unit,
        "hift": 8 * unit,
        "vq02": 8 * unit,
        "vq02_ff": 32 * unit,
        "vq06": 20 * unit,
    }


@contextlib.contextmanager
def fixture_widths(unit: int) -> Iterator[None]:
    """Sets the fixture writers' width constants to ``widths(unit)`` and restores them.

    The writers read these module constants when called (the ``cosyvoice.yaml`` text is
    formatted at import, so its width lines are rewritten from the fixture values).
    """
    from tests.engine.backends.stepaudio import fixture_editx as editx
    from tests.engine.backends.stepaudio import fixture_tokenizer as tok

    w = widths(unit)
    saved = [
        (editx, name, getattr(editx, name))
        for name in (
            "FIXTURE_LLM",
            "FIXTURE_HIFT",
            "_FLOW_WIDTH",
            "_FLOW_FF",
            "_DIT_WIDTH",
            "_DIT_HEAD_DIM",
            "_COSYVOICE_YAML",
        )
    ]
    saved += [
        (tok, name, getattr(tok, name))
        for name in ("ENCODER_WIDTH", "_FEED_FORWARD", "FIXTURE_CONFIG")
    ]
    yaml_text = editx._COSYVOICE_YAML
    for key, old, new, count in (
        ("input_size", editx._FLOW_WIDTH, w["flow"], 3),
        ("output_size", editx._FLOW_WIDTH, w["flow"], 1),
        ("linear_units", editx._FLOW_FF, w["flow_ff"], 1),
        ("head_dim", editx._DIT_HEAD_DIM, w["dit_head_dim"], 1),
        ("hidden_size", editx._DIT_WIDTH, w["dit"], 1),
        ("base_channels", editx.FIXTURE_HIFT["base_channels"], w["hift"], 1),
        ("cond_channels", editx.FIXTURE_HIFT["f0_cond_channels"], w["hift"], 1),
    ):
        yaml_text, found = re.subn(rf"(?m)^(\s+{key}): {old}$", rf"\1: {new}", yaml_text)
        if found != count:
            raise RuntimeError(f"fixture cosyvoice.yaml: {found} '{key}: {old}' lines, not {count}")
    config = json.loads(json.dumps(tok.FIXTURE_CONFIG))
    config["encoder_conf"] |= {"output_size": w["vq02"], "linear_units": w["vq02_ff"]}
    config["decoder_conf"]["linear_units"] = w["vq02_ff"]
    config["predictor_conf"]["idim"] = w["vq02"]
    try:
        editx.FIXTURE_LLM = editx.FIXTURE_LLM | {
            "hidden_size": w["llm_hidden"],
            "intermediate_size": w["llm_ff"],
        }
        editx.FIXTURE_HIFT = editx.FIXTURE_HIFT | {
            "base_channels": w["hift"],
            "f0_cond_channels": w["hift"],
        }
        editx._FLOW_WIDTH, editx._FLOW_FF = w["flow"], w["flow_ff"]
        editx._DIT_WIDTH, editx._DIT_HEAD_DIM = w["dit"], w["dit_head_dim"]
        editx._COSYVOICE_YAML = yaml_text
        tok.ENCODER_WIDTH, tok._FEED_FORWARD, tok.FIXTURE_CONFIG = (
            w["vq02"],
            w["vq02_ff"],
            config,
        )
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def write_s3_tokenizer(path: Path, width: int, seed: int = 4) -> None:
    """An S3 tokenizer v1 graph of the published structure (spec §3.2) with random weights:
    conv 128→W (k3, s2) + GELU, conv W→W (k3, s2) + GELU, positional table, 6 pre-LN blocks
    (20 heads, MLP 4W, GELU), LayerNorm, nearest code of a W x 4096 codebook. Inputs
    ``feats`` (1, 128, T) f32 and ``feats_length`` (1,) i32; output ``indices`` (1, T/4)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    heads = 20

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn_ln = nn.LayerNorm(width)
            self.query = nn.Linear(width, width)
            self.key = nn.Linear(width, width, bias=False)
            self.value = nn.Linear(width, width)
            self.out = nn.Linear(width, width)
            self.mlp_ln = nn.LayerNorm(width)
            self.mlp = nn.Sequential(
                nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.attn_ln(x)
            q, k, v = (
                f(h).unflatten(-1, (heads, -1)).transpose(1, 2)
                for f in (self.query, self.key, self.value)
            )
            scores = (q @ k.transpose(-1, -2)) * (width // heads) ** -0.5
            attended = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
            x = x + self.out(attended)
            return x + self.mlp(self.mlp_ln(x))

    class S3(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv1d(128, width, 3, stride=2, padding=1)
            self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1)
            self.positional_embedding = nn.Parameter(0.02 * torch.randn(1500, width))
            self.blocks = nn.ModuleList(Block() for _ in range(6))
            self.ln_post = nn.LayerNorm(width)
            self.codebook = nn.Parameter(torch.randn(width, 4096))

        def forward(self, feats: torch.Tensor, feats_length: torch.Tensor) -> torch.Tensor:
            x = nn.functional.gelu(self.conv1(feats))
            x = nn.functional.gelu(self.conv2(x)).transpose(1, 2)
            x = x + self.positional_embedding[: x.shape[1]]
            for block in self.blocks:
                x = block(x)
            valid = torch.arange(x.shape[1]) < (feats_length + 3) // 4
            x = self.ln_post(x) * valid[..., None]
            distance = (self.codebook * self.codebook).sum(0) - 2 * (x @ self.codebook)
            return distance.argmin(-1)

    model = S3().eval()
    feats = torch.zeros(1, 128, 400)
    length = torch.tensor([400], dtype=torch.int32)
    with torch.no_grad():
        torch.onnx.export(
            model,
            (feats, length),
            str(path),
            input_names=["feats", "feats_length"],
            output_names=["indices"],
            dynamic_axes={"feats": {2: "T"}, "indices": {1: "T_tok"}},
            opset_version=17,
            dynamo=False,
        )


def build(root: Path, unit: int) -> None:
    """Writes both checkpoint directories at ``widths(unit)`` into ``root``."""
    sys.path.insert(0, str(REPO))
    from engine.backends.stepaudio.tokenizer.files import SEMANTIC_ONNX_FILE
    from tests.engine.backends.stepaudio.fixture_editx import write_editx_dir
    from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

    with fixture_widths(unit):
        tokenizer_dir = write_tokenizer_dir(root)
        write_s3_tokenizer(tokenizer_dir / SEMANTIC_ONNX_FILE, widths(unit)["vq06"])
        write_editx_dir(root)
    (root / "UNIT").write_text(str(unit))


# ----------------------------------------------------------------------------- workers


def load_clip(path: Path, seconds: float) -> tuple[np.ndarray, int]:
    """``seconds`` of the clip, repeated when it is shorter, as prepared mono."""
    import soundfile

    from engine.backends.stepaudio.audio_prep import prepare_prompt

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    audio = np.ascontiguousarray(samples.T)
    length = int(seconds * rate)
    reps = -(-length // audio.shape[1])
    audio = np.tile(audio, (1, reps))[:, :length]
    return prepare_prompt(audio), rate


def work_tokenizer(args: argparse.Namespace, rec: Recorder) -> None:
    """vq02, vq06, speaker embedding, prompt mel; saves what the later stages need."""
    from engine.backends.stepaudio.checkpoint import check_checkpoint
    from engine.backends.stepaudio.decoder.files import SPEAKER_ONNX_FILE
    from engine.backends.stepaudio.speaker import MelConfig, SpeakerEncoder, prompt_mel
    from engine.backends.stepaudio.tokenizer import AudioTokenizer, DualCodes
    from engine.backends.stepaudio.tokenizer.audio_tokenizer import tokenizer_input

    ck = check_checkpoint(args.root)
    mono, rate = load_clip(args.clip, args.seconds)
    with rec.stage("load tokenizer + speaker"):
        tokenizer = AudioTokenizer.load(ck.tokenizer_dir, args.device, dither=0.0)
        speaker = SpeakerEncoder.load(ck.decoder_dir / SPEAKER_ONNX_FILE, args.device)
    audio16 = tokenizer_input(mono, rate)
    with rec.stage("vq02"):
        vq02 = tokenizer.linguistic.tokenize(audio16)
    with rec.stage("vq06"):
        vq06 = tokenizer.semantic.tokenize(audio16)
    with rec.stage("speaker embedding"):
        embedding = speaker.embed(mono, rate)
    with rec.stage("prompt mel"):
        mel = prompt_mel(mono, rate, MelConfig.from_mapping(ck.decoder.mel_conf))
    codes = DualCodes.from_codes(vq02, vq06)
    np.save(args.work / "mel.npy", mel)
    np.save(args.work / "speaker.npy", embedding)
    rec.put("codes", {"values": codes.values, "vq02": len(vq02), "vq06": len(vq06)})


def llm_tag(dtype: str, quantize: str) -> str:
    """Name of an LLM precision in stage names and files: ``fp32``, ``bf16+int8``,
    ``fp32+int8+head`` (the output head in int8 too), ..."""
    return dtype if quantize == "none" else f"{dtype}+{quantize}"


def _quantize_int8(model: Any) -> Any:
    """Weight-only int8 (per output channel) of every Linear of ``model``, in place, with the
    backend's ``Int8Linear`` (activations stay float)."""
    from engine.backends.stepaudio.llm.int8 import quantize_linears

    quantize_linears(model, skip=())
    return model


def _llm_bytes(config: Any, dtype: Any, quantize: str) -> int:
    """Resident bytes of the LLM's weights in ``dtype``, decoder-layer Linears (and the head
    for ``int8+head``) in int8 when ``quantize`` is ``int8...`` (their scales included)."""
    import torch

    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    for key, shape in config.tensor_shapes().items():
        count = int(np.prod(shape))
        layer = key.startswith("model.layers.") and "_proj." in key
        head = key == "lm_head.weight" and quantize.endswith("+head")
        linear = quantize.startswith("int8") and (layer or head)
        total += count + 4 * shape[0] if linear else count * size
    return total


def work_llm(args: argparse.Namespace, rec: Recorder) -> None:
    """Prefill of the real edit prompt and ``--decode-tokens`` steps, for ``args.dtype``
    (weight-only int8 with ``--llm-quantize int8``); logits saved for the cross-precision
    comparison."""
    import torch

    from engine.backends.stepaudio.checkpoint import check_checkpoint
    from engine.backends.stepaudio.llm.model import KVCache
    from engine.backends.stepaudio.llm.sampling import sample_next
    from engine.backends.stepaudio.llm.text_tokenizer import TextTokenizer
    from engine.backends.stepaudio.llm.weights import DTYPES, load_step1
    from engine.backends.stepaudio.options import GenerationLimits
    from engine.backends.stepaudio.prompts import PromptBuilder, PromptSwitches, edit_instruction
    from engine.backends.stepaudio.tokenizer import DualCodes

    ck = check_checkpoint(args.root)
    codes = DualCodes.from_values(
        json.loads((args.work / "tokenizer.json").read_text())["codes"]["values"]
    )
    prompts = PromptBuilder(
        TextTokenizer(ck.editx_dir / "tokenizer.model"),
        PromptSwitches(bos_per_segment=ck.add_bos_token),
    )
    ids = prompts.edit(edit_instruction("emotion", "happy", TRANSCRIPT), codes.token_string)
    expected = len(codes.llm_ids)
    forced = codes.llm_ids[: args.decode_tokens]
    params = sum(int(np.prod(s)) for s in ck.llm_config.tensor_shapes().values())
    size = _llm_bytes(ck.llm_config, DTYPES[args.dtype], args.llm_quantize)
    rec.put(
        "llm",
        {
            "prompt_tokens": len(ids),
            "expected_tokens": expected,
            "params": params,
            "weight_bytes": size,
        },
    )
    cuda = args.device.startswith("cuda")
    available = torch.cuda.mem_get_info(args.device)[0] if cuda else mem_available()
    if available < size + 2 * GIB:
        rec.put(
            "skipped",
            f"{args.dtype} {args.llm_quantize}: {'free GPU memory' if cuda else 'MemAvailable'} "
            f"{available / GIB:.1f} GiB < model {size / GIB:.1f} GiB + 2 GiB",
        )
        return
    chunk = GenerationLimits().prefill_chunk
    generator = torch.Generator().manual_seed(0)

    def run(tag: str, model: Any) -> None:
        device = next(model.parameters()).device
        tensor = torch.tensor([ids], dtype=torch.long, device=device)
        cache = KVCache(ck.llm_config.num_hidden_layers)
        with torch.inference_mode(), rec.stage(f"prefill {tag}") as extra:
            for start in range(0, tensor.shape[1], chunk):
                logits = model(tensor[:, start : start + chunk], cache)
            extra["tokens"] = len(ids)
        rows = [logits[0, -1].float().cpu().numpy()]
        history = list(ids)
        steps: list[float] = []
        deadline = time.monotonic() + args.decode_budget
        reset_peak_rss()
        with torch.inference_mode():
            for token in forced:
                started = time.perf_counter()
                sample_next(logits[0, -1].cpu(), history, ck.sampling, generator)
                history.append(token)
                logits = model(torch.tensor([[token]], dtype=torch.long, device=device), cache)
                rows.append(logits[0, -1].float().cpu().numpy())
                if device.type == "cuda":
                    torch.cuda.synchronize()
                steps.append(time.perf_counter() - started)
                if time.monotonic() > deadline and len(steps) >= 2:
                    break
        per_token = float(np.median(steps))
        rec.put(
            f"decode {tag}",
            {
                "seconds": float(np.sum(steps)),
                "tokens": len(steps),
                "per_token": per_token,
                "peak_rss": peak_rss(),
                "extrapolated_generate": rec.data[f"prefill {tag}"]["seconds"]
                + expected * per_token,
            },
        )
        np.save(args.work / f"logits-{tag}.npy", np.stack(rows))

    tag = llm_tag(args.dtype, args.llm_quantize)
    with rec.stage(f"load llm {tag}"):
        model = load_step1(
            ck.llm_shards,
            ck.llm_config,
            args.device,
            DTYPES[args.dtype],
            quantize=args.llm_quantize.removesuffix("+head"),
        )
        if args.llm_quantize.endswith("+head"):
            _quantize_int8(model)  # the output head, the one float Linear left
    run(tag, model)
    del model
    gc.collect()


def work_decoder(args: argparse.Namespace, rec: Recorder) -> None:
    """Flow and HiFT on an answer as long as the clip (its own tokens), fp32 as the
    backend runs them; with ``--probes``, the flow under bf16 autocast and with int8 Linear
    layers, against the saved fp32 outputs."""
    import torch

    from engine.backends.stepaudio.checkpoint import check_checkpoint
    from engine.backends.stepaudio.decoder import Token2Wav
    from engine.backends.stepaudio.decoder.tokens import flow_frames
    from engine.backends.stepaudio.options import DecoderOptions
    from engine.backends.stepaudio.speaker import resize_prompt_mel

    ck = check_checkpoint(args.root)
    values = json.loads((args.work / "tokenizer.json").read_text())["codes"]["values"]
    with rec.stage("load decoder"):
        dec = Token2Wav.load(ck.decoder_dir, ck.decoder, args.device, DecoderOptions())
    device = dec._device()
    frames = torch.from_numpy(flow_frames(values))[None].to(device)
    aligned = resize_prompt_mel(np.load(args.work / "mel.npy"), 2 * frames.shape[1])
    mel = torch.from_numpy(aligned)[None].to(device)
    spk = torch.from_numpy(np.load(args.work / "speaker.npy").astype(np.float32))[None].to(device)
    steps = dec.options.steps

    def flow() -> torch.Tensor:
        return dec.flow(frames, frames, mel, spk, steps)

    def hift(generated: torch.Tensor) -> np.ndarray:
        audio = dec.hift(generated, torch.Generator().manual_seed(0))
        return audio[0].float().cpu().numpy()

    with torch.inference_mode():
        if not args.probes:
            with rec.stage("flow fp32"):
                reference = flow()
            with rec.stage("hift fp32"):
                wave = hift(reference)
            rec.put("decoder output", {"mel_frames": reference.shape[-1], "samples": wave.size})
            torch.save(reference.cpu(), args.work / "mel-fp32.pt")
            np.save(args.work / "wave-fp32.npy", wave)
            return
        reference = torch.load(args.work / "mel-fp32.pt").to(device)
        wave = np.load(args.work / "wave-fp32.npy")
        with rec.stage("flow bf16"), torch.autocast(device.type, dtype=torch.bfloat16):
            other = flow().float()
        rec.put(
            "flow bf16 error",
            {"mel": error_stats(reference, other), "waveform": error_stats(wave, hift(other))},
        )
        if args.quantize != "none":
            _quantize_int8(dec.flow)
            with rec.stage("flow int8"):
                other = flow()
            rec.put(
                "flow int8 error",
                {"mel": error_stats(reference, other), "waveform": error_stats(wave, hift(other))},
            )


def work_build(args: argparse.Namespace, rec: Recorder) -> None:
    """Writes the checkpoints (in a child, so that the 7 GB of LLM tensors and the
    serialised copy that safetensors makes are returned to the system at its exit)."""
    needed = 16 * GIB if args.unit == OFFICIAL_UNIT else 0
    if mem_available() < needed:
        raise SystemExit(
            f"building the official-size LLM needs ~16 GiB free (tensors + their serialised "
            f"copy); MemAvailable is {mem_available() / GIB:.1f} GiB"
        )
    import warnings

    with rec.stage("build"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy ONNX exporter's deprecation notice
        build(args.root, args.unit)


# Stages --stages may name (the tokenizer runs whatever it says).
STAGES = ("tokenizer", "decoder", "llm", "probes")
WORKERS: dict[str, Callable[[argparse.Namespace, Recorder], None]] = {
    "build": work_build,
    "tokenizer": work_tokenizer,
    "llm": work_llm,
    "decoder": work_decoder,
}


# -------------------------------------------------------------------------- orchestration


def child(args: argparse.Namespace, worker: str, out: Path, timeout: float, *extra: str) -> dict:
    """Runs one worker in a child process; returns what it recorded (partial on timeout).

    The child gets at most ``timeout`` seconds and no more than what is left of the run's
    ``--budget``."""
    timeout = min(timeout, args.deadline - time.monotonic())
    if timeout < 10:
        print(f"[{worker} {' '.join(extra)}] skipped: the run's --budget is spent", flush=True)
        return {"status": "skipped (the run's --budget is spent)"}
    command = [
        sys.executable,
        __file__,
        "--worker",
        "decoder" if worker == "probes" else worker,
        "--root",
        str(args.root),
        "--work",
        str(args.work),
        "--result",
        str(out),
        "--device",
        args.device,
        "--scale",
        str(args.scale),
        "--clip",
        str(args.clip),
        "--seconds",
        str(args.seconds),
        "--decode-tokens",
        str(args.decode_tokens),
        "--decode-budget",
        str(args.decode_budget),
        "--threads",
        str(args.threads),
        "--quantize",
        args.quantize,
        *(["--probes"] if worker == "probes" else []),
        *extra,
    ]
    started = time.perf_counter()
    status = "ok"
    try:
        done = subprocess.run(command, timeout=timeout, check=False, cwd=REPO)
        if done.returncode:
            status = f"failed (exit {done.returncode})"
    except subprocess.TimeoutExpired:
        status = f"timed out after {timeout:.0f} s"
    data: dict = json.loads(out.read_text()) if out.is_file() else {}
    data["status"] = status
    print(
        f"[{worker} {' '.join(extra)}] {status} in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return data


def fmt_s(entry: Any) -> str:
    return f"{entry['seconds']:.2f}" if isinstance(entry, dict) and "seconds" in entry else "—"


def report(args: argparse.Namespace, results: dict[str, dict]) -> dict[str, Any]:
    """The stage table (stdout) and the whole result as a dict."""
    tok, dec = results.get("tokenizer", {}), results.get("decoder", {})
    fp32, bf16 = results.get("llm fp32", {}), results.get("llm bf16", {})
    expected = fp32.get("llm", bf16.get("llm", {})).get("expected_tokens", 0)
    prompt = fp32.get("llm", bf16.get("llm", {})).get("prompt_tokens", 0)

    def per_token(data: dict, tag: str) -> str:
        entry = data.get(f"decode {tag}")
        return f"{entry['per_token']:.3f}" if entry else "—"

    def gen(data: dict, tag: str) -> float | None:
        entry = data.get(f"decode {tag}")
        return entry["extrapolated_generate"] if entry else None

    def mb(*entries: Any) -> str:
        peaks = [e["peak_rss"] for e in entries if isinstance(e, dict) and "peak_rss" in e]
        return f"{max(peaks) / 2**20:,.0f}" if peaks else "—"

    # Wall time of one first edit per precision: every stage, generate extrapolated.
    shared = {
        "vq02": tok.get("vq02"),
        "vq06": tok.get("vq06"),
        "speaker embedding": tok.get("speaker embedding"),
        "prompt mel": tok.get("prompt mel"),
        "flow": dec.get("flow fp32"),
        "hift": dec.get("hift fp32"),
    }
    base = {k: v["seconds"] for k, v in shared.items() if isinstance(v, dict)}
    walls = {}
    llm_runs = {
        name.removeprefix("llm "): data
        for name, data in results.items()
        if name.startswith("llm ") and isinstance(data, dict)
    }
    for tag, data in llm_runs.items():
        generate = gen(data, tag)
        if generate is not None:
            walls[tag] = sum(base.values()) + generate
    tokenize = sum(base.get(k, 0.0) for k in ("vq02", "vq06", "speaker embedding", "prompt mel"))

    def share(seconds: float | None, tag: str = "fp32") -> str:
        wall = walls.get(tag)
        return f"{seconds / wall:.1%}" if seconds is not None and wall else "—"

    rows: list[tuple[str, str, str, str, str]] = []
    for name in ("vq02", "vq06", "speaker embedding", "prompt mel"):
        entry = shared[name]
        s = entry["seconds"] if isinstance(entry, dict) else None
        rows.append((name, fmt_s(entry), fmt_s(entry) + " (fp32 code)", share(s), mb(entry)))
    rows.append(
        (
            f"LLM prefill ({prompt} tokens)",
            fmt_s(fp32.get("prefill fp32")),
            fmt_s(bf16.get("prefill bf16")),
            share(fp32.get("prefill fp32", {}).get("seconds")),
            mb(fp32.get("prefill fp32"), bf16.get("prefill bf16")),
        )
    )
    rows.append(
        (
            "LLM per token (measured)",
            per_token(fp32, "fp32"),
            per_token(bf16, "bf16"),
            "",
            mb(fp32.get("decode fp32"), bf16.get("decode bf16")),
        )
    )
    g32, g16 = gen(fp32, "fp32"), gen(bf16, "bf16")
    gen32 = (g32 or 0.0) - fp32.get("prefill fp32", {}).get("seconds", 0.0)
    rows.append(
        (
            f"LLM generate {expected} tokens (EXTRAPOLATED)",
            f"{gen32:.1f}" if g32 else "—",
            f"{g16 - bf16['prefill bf16']['seconds']:.1f}" if g16 else "—",
            share(gen32 if g32 else None),
            "",
        )
    )
    flow16 = dec.get("flow bf16")
    rows.append(
        (
            "flow",
            fmt_s(shared["flow"]),
            fmt_s(flow16) + " (autocast probe)",
            share(shared["flow"]["seconds"] if isinstance(shared["flow"], dict) else None),
            mb(shared["flow"]),
        )
    )
    rows.append(
        (
            "HiFT",
            fmt_s(shared["hift"]),
            fmt_s(shared["hift"]) + " (fp32 code)",
            share(shared["hift"]["seconds"] if isinstance(shared["hift"], dict) else None),
            mb(shared["hift"]),
        )
    )
    rows.append(
        (
            "edit wall (tokenize + generate + decode)",
            f"{walls['fp32']:.1f}" if "fp32" in walls else "—",
            f"{walls['bf16']:.1f}" if "bf16" in walls else "—",
            "",
            "",
        )
    )
    header = ("stage", "fp32 s", "bf16 s", "share (fp32)", "peak RSS MB")
    table = [header, *rows]
    cols = [max(len(r[i]) for r in table) for i in range(5)]
    print()
    print(
        f"Step-Audio-EditX full-size random-weight bench ({args.device}, head unit {args.unit} "
        f"= {'official' if args.unit == OFFICIAL_UNIT else 'scaled'} widths, "
        f"{args.threads} thread(s), {args.seconds:.0f} s clip)"
    )
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(cols[k]) for k, cell in enumerate(row)))
        if i == 0:
            print("  ".join("-" * c for c in cols))
    lines = [
        f"tokenizer share of a first edit: fp32 {share(tokenize)}, bf16 "
        f"{share(tokenize, 'bf16')}; on a re-edit (tokenizer cache hit) 0 %",
        f"generate is EXTRAPOLATED: prefill + {expected} tokens x the median of "
        f"{fp32.get('decode fp32', {}).get('tokens', 0)} measured decode steps (the KV cache "
        "grows, so later tokens cost a little more)",
    ]
    reference = args.work / "logits-fp32.npy"
    llm_header = ("LLM", "load s", "load MB", "prefill s", "prefill MB", "s/token", "decode MB")
    llm_rows: list[tuple[str, ...]] = [
        (*llm_header, "weights MB", "logits vs fp32: max abs", "rel", "top-1")
    ]
    for tag, data in llm_runs.items():
        path = args.work / f"logits-{tag}.npy"
        change = ("—", "—", "—")
        if tag != "fp32" and path.is_file() and reference.is_file():
            ref_logits, logits = np.load(reference), np.load(path)
            stats = error_stats(ref_logits, logits)
            agree = float(np.mean(ref_logits.argmax(-1) == logits.argmax(-1)))
            results[f"logits {tag} vs fp32"] = stats | {"argmax_agree": agree}
            change = (f"{stats['max_abs']:.3g}", f"{stats['rel']:.3g}", f"{agree:.0%}")
        weights = data.get("llm", {}).get("weight_bytes")
        llm_rows.append(
            (
                tag,
                fmt_s(data.get(f"load llm {tag}")),
                mb(data.get(f"load llm {tag}")),
                fmt_s(data.get(f"prefill {tag}")),
                mb(data.get(f"prefill {tag}")),
                per_token(data, tag),
                mb(data.get(f"decode {tag}")),
                f"{weights / 2**20:,.0f}" if weights else "—",
                *change,
            )
        )
    if len(llm_rows) > 1:
        widths_ = [max(len(r[i]) for r in llm_rows) for i in range(len(llm_rows[0]))]
        lines.append("")
        for i, llm_row in enumerate(llm_rows):
            lines.append("  ".join(c.ljust(widths_[k]) for k, c in enumerate(llm_row)))
            if i == 0:
                lines.append("  ".join("-" * w for w in widths_))
        lines.append(
            f"(LLM: {prompt}-token prefill, the median of the measured decode steps; MB = peak "
            "RSS during the stage; int8 = weight-only, decoder-layer Linears)"
        )
    for key in ("flow bf16 error", "flow int8 error"):
        if key in dec:
            parts = ", ".join(
                f"{what} max abs {s['max_abs']:.3g} (rel {s['rel']:.3g})"
                for what, s in dec[key].items()
            )
            lines.append(f"{key.replace(' error', '')} vs fp32: {parts}")
    if "flow int8" in dec:
        lines.append(f"flow int8: {fmt_s(dec['flow int8'])} s vs fp32 {fmt_s(shared['flow'])} s")
    for name, data in results.items():
        if isinstance(data, dict):
            if data.get("status", "ok") != "ok":
                lines.append(f"{name}: {data['status']}")
            if "skipped" in data:
                lines.append(f"{name}: skipped, {data['skipped']}")
    print("\n".join(lines))
    return {"unit": args.unit, "device": args.device, "walls": walls, "results": results}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="width scale (1 = official)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    parser.add_argument("--clip", type=Path, default=REPO / "tests/data/en_ljspeech_LJ050-0131.wav")
    parser.add_argument("--seconds", type=float, default=10.0, help="edit length (repeats clip)")
    parser.add_argument("--decode-tokens", type=int, default=16, help="measured decode steps")
    parser.add_argument("--decode-budget", type=float, default=90.0, help="max s of decoding")
    parser.add_argument(
        "--dtypes", default="bf16,fp32", help="LLM precisions to time (fp32 first for logits)"
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8", "int8+head"),
        default="none",
        help="int8: also time the LLM with weight-only int8 weights for each of --dtypes (in "
        "its own child), and the flow with int8 Linear weights; int8+head: also with the "
        "output head in int8 (default: %(default)s)",
    )
    parser.add_argument(
        "--stages",
        default=",".join(STAGES),
        help="stages to run, of %(default)s (the tokenizer always runs: the others need its codes)",
    )
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--stage-timeout", type=float, default=330.0, help="s per child")
    parser.add_argument(
        "--budget", type=float, default=660.0, help="s for all stages (after the build)"
    )
    parser.add_argument("--build-timeout", type=float, default=300.0, help="s to write them")
    parser.add_argument("--model-root", type=Path, help="build/reuse checkpoints here")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    parser.add_argument("--probes", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--llm-quantize", default="none", help=argparse.SUPPRESS)
    args = parser.parse_args()
    stages = {name for name in args.stages.split(",") if name}
    if stages - set(STAGES):
        parser.error(f"--stages: unknown {sorted(stages - set(STAGES))}; choose from {STAGES}")
    sys.path.insert(0, str(REPO))

    import torch

    torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"--device {args.device}: this torch build ({torch.__version__}) sees no CUDA GPU; "
            "run on a machine with CUDA or use --device cpu"
        )
    args.unit = max(1, round(OFFICIAL_UNIT * args.scale))
    if args.worker:
        WORKERS[args.worker](args, Recorder(args.result, args.device))
        return

    with contextlib.ExitStack() as stack:
        root = args.model_root or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="stepedit-fullsize-"))
        )
        root.mkdir(parents=True, exist_ok=True)
        args.root = root
        args.work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="stepedit-fs-")))
        unit_file = root / "UNIT"
        args.deadline = time.monotonic() + args.budget + args.build_timeout
        if not (unit_file.is_file() and unit_file.read_text() == str(args.unit)):
            for name in ("Step-Audio-Tokenizer", "Step-Audio-EditX"):
                shutil.rmtree(root / name, ignore_errors=True)
            print(f"[build] widths {widths(args.unit)}", flush=True)
            built = child(args, "build", args.work / "build.json", args.build_timeout)
            if built["status"] != "ok":
                raise SystemExit(f"building the checkpoints {built['status']}")
        args.deadline = time.monotonic() + args.budget
        load_before = os.getloadavg()
        results: dict[str, dict] = {}
        results["tokenizer"] = child(
            args, "tokenizer", args.work / "tokenizer.json", args.stage_timeout
        )
        if "codes" not in results["tokenizer"]:
            raise SystemExit("the tokenizer stage failed; nothing more to time")
        if "decoder" in stages:
            results["decoder"] = child(
                args, "decoder", args.work / "decoder.json", args.stage_timeout
            )
        for dtype in [d for d in args.dtypes.split(",") if d and "llm" in stages]:
            modes = {"none": ("none",), "int8": ("none", "int8")}.get(
                args.quantize, ("none", "int8", "int8+head")
            )
            for quantize in modes:
                tag = llm_tag(dtype, quantize)
                results[f"llm {tag}"] = child(
                    args,
                    "llm",
                    args.work / f"llm-{tag}.json",
                    args.stage_timeout,
                    "--dtype",
                    dtype,
                    "--llm-quantize",
                    quantize,
                )
        if "probes" in stages and (args.work / "mel-fp32.pt").is_file():
            probes = child(args, "probes", args.work / "probes.json", args.stage_timeout)
            results["decoder probes"] = {"status": probes.pop("status")}
            results["decoder"] |= probes
        results["tokenizer"].pop("codes", None)
        summary = report(args, results)
        load = (load_before, os.getloadavg())
        print(
            f"load average (1 min) before/after the stages: {load[0][0]:.1f} / {load[1][0]:.1f} "
            f"on {os.cpu_count()} cores (other processes share this machine)"
        )
        summary["loadavg"] = load
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
