"""The up-front check of a Step-Audio model folder: one message naming each bad file."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from engine.backends.stepaudio.checkpoint import check_checkpoint
from engine.backends.stepaudio.tokenizer.files import PARAFORMER_SUBDIR
from engine.errors import CheckpointError
from tests.engine.backends.stepaudio.fixture_editx import SHARD_NAME, write_editx_dir
from tests.engine.backends.stepaudio.fixture_tokenizer import write_tokenizer_dir

EDITX = "Step-Audio-EditX"
DECODER = f"{EDITX}/CosyVoice-300M-25Hz"
PARAFORMER = f"Step-Audio-Tokenizer/{PARAFORMER_SUBDIR}"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("model")
    write_tokenizer_dir(root)
    write_editx_dir(root)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    """A private copy of the fixture made of symlinks, so files can be removed or replaced."""
    copy = tmp_path / "model"
    shutil.copytree(pristine, copy, copy_function=os.symlink)
    return copy


def replace(root: Path, relative: str, content: bytes | str) -> None:
    path = root / relative
    path.unlink()
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)


def problems(root: Path) -> str:
    with pytest.raises(CheckpointError) as error:
        check_checkpoint(root)
    return str(error.value)


def test_the_fixture_passes(root: Path) -> None:
    checkpoint = check_checkpoint(root)
    assert checkpoint.llm_shards == (root.resolve() / EDITX / SHARD_NAME,)
    assert checkpoint.llm_config.num_attention_heads == 48
    assert checkpoint.add_bos_token is True
    assert checkpoint.decoder.hift.samples_per_frame == 480


@pytest.mark.parametrize(
    "relative",
    [
        f"{EDITX}/config.json",
        f"{EDITX}/model.safetensors.index.json",
        f"{EDITX}/{SHARD_NAME}",
        f"{EDITX}/tokenizer.model",
        f"{DECODER}/cosyvoice.yaml",
        f"{DECODER}/flow.pt",
        f"{DECODER}/hift.pt",
        f"{DECODER}/campplus.onnx",
        "Step-Audio-Tokenizer/linguistic_tokenizer.npy",
        "Step-Audio-Tokenizer/speech_tokenizer_v1.onnx",
        f"{PARAFORMER}/configuration.json",
        f"{PARAFORMER}/config.yaml",
        f"{PARAFORMER}/model.pt",
        f"{PARAFORMER}/am.mvn",
    ],
)
def test_each_missing_file_is_named(root: Path, relative: str) -> None:
    (root / relative).unlink()
    message = problems(root)
    assert f"  - {relative}: is missing" in message
    assert message.count("\n  - ") == 1
    repo = "Step-Audio-Tokenizer" if relative.startswith("Step-Audio-Tokenizer") else EDITX
    assert f"huggingface-cli download stepfun-ai/{repo} --local-dir" in message


def _shard_without_a_tensor(root: Path) -> None:
    tensors = load_file(root / EDITX / SHARD_NAME)
    del tensors["model.layers.31.mlp.down_proj.weight"]
    (root / EDITX / SHARD_NAME).unlink()
    save_file(tensors, root / EDITX / SHARD_NAME)


def _truncated_shard(root: Path) -> None:
    data = (root / EDITX / SHARD_NAME).read_bytes()
    replace(root, f"{EDITX}/{SHARD_NAME}", data[: len(data) // 2])


def _codebook_of_the_wrong_shape(root: Path) -> None:
    codebook = root / "Step-Audio-Tokenizer/linguistic_tokenizer.npy"
    codebook.unlink()
    np.save(codebook, np.zeros((10, 4)))


def _config(root: Path, **changes: object) -> None:
    data = json.loads((root / EDITX / "config.json").read_text())
    replace(root, f"{EDITX}/config.json", json.dumps(data | changes))


MALFORMED: dict[str, tuple[Callable[[Path], None], str]] = {
    "config not json": (
        lambda r: replace(r, f"{EDITX}/config.json", "{"),
        f"{EDITX}/config.json: is not valid JSON",
    ),
    "tied embeddings": (
        lambda r: _config(r, tie_word_embeddings=True),
        "config.json: tie_word_embeddings is True; the checkpoint has its own lm_head",
    ),
    "config widths disagree with the weights": (
        lambda r: _config(r, intermediate_size=256),
        "LLM tensor(s) do not match config.json",
    ),
    "index without weight_map": (
        lambda r: replace(r, f"{EDITX}/model.safetensors.index.json", "{}"),
        "model.safetensors.index.json: has no weight_map",
    ),
    "truncated shard": (_truncated_shard, f"{SHARD_NAME}: is not a readable safetensors file"),
    "shard lacks a tensor": (
        _shard_without_a_tensor,
        "lack 1 tensor(s), e.g. model.layers.31.mlp.down_proj.weight",
    ),
    "tokenizer garbage": (
        lambda r: replace(r, f"{EDITX}/tokenizer.model", b"not a model"),
        "tokenizer.model: is not a SentencePiece model",
    ),
    "tokenizer_config not json": (
        lambda r: replace(r, f"{EDITX}/tokenizer_config.json", "add_bos_token"),
        "tokenizer_config.json: is not valid JSON",
    ),
    "yaml garbage": (
        lambda r: replace(r, f"{DECODER}/cosyvoice.yaml", "flow: [\n"),
        "cosyvoice.yaml: is not a usable decoder configuration (not valid YAML",
    ),
    "yaml without hift": (
        lambda r: replace(
            r,
            f"{DECODER}/cosyvoice.yaml",
            (r / DECODER / "cosyvoice.yaml").read_text().split("\nhift:")[0],
        ),
        "cosyvoice.yaml: is not a usable decoder configuration (hift is missing",
    ),
    "flow.pt garbage": (
        lambda r: replace(r, f"{DECODER}/flow.pt", b"garbage"),
        "flow.pt: is not a PyTorch checkpoint",
    ),
    "codebook shape": (
        _codebook_of_the_wrong_shape,
        "linguistic_tokenizer.npy: holds float64 (10, 4), expected float32 (1024, D)",
    ),
    "am.mvn without blocks": (
        lambda r: replace(r, f"{PARAFORMER}/am.mvn", "<Nnet>\n</Nnet>\n"),
        "am.mvn: lacks the <AddShift>/<Rescale> blocks",
    ),
    "paraformer config without encoder_conf": (
        lambda r: replace(r, f"{PARAFORMER}/config.yaml", "model: ParaformerStreaming\n"),
        "config.yaml: has no encoder_conf section",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_each_malformed_file_is_named(root: Path, case: str) -> None:
    damage, expected = MALFORMED[case]
    damage(root)
    message = problems(root)
    assert expected in message
    assert "Traceback" not in message


def test_wrong_vocabulary_is_named(root: Path, tmp_path: Path) -> None:
    _config(root, vocab_size=80000)
    message = problems(root)
    assert "tokenizer.model: has 74752 pieces but config.json says 80000" in message


def test_all_problems_arrive_in_one_message(root: Path) -> None:
    (root / EDITX / "tokenizer.model").unlink()
    (root / DECODER / "hift.pt").unlink()
    (root / PARAFORMER / "am.mvn").unlink()
    message = problems(root)
    assert message.startswith(f"the Step-Audio model folder {root.resolve()} cannot be used")
    assert "(3 problems)" in message
    assert "stepfun-ai/Step-Audio-EditX" in message and "stepfun-ai/Step-Audio-Tokenizer" in message
    assert "never downloads" in message


def test_missing_folders(root: Path, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist; pass --model-dir"):
        check_checkpoint(tmp_path / "nowhere")
    shutil.rmtree(root / EDITX)
    message = problems(root)
    assert f"  - {EDITX}: folder is missing" in message and "(1 problem)" in message


def test_a_single_model_safetensors_is_accepted(root: Path) -> None:
    (root / EDITX / "model.safetensors.index.json").unlink()
    (root / EDITX / SHARD_NAME).rename(root / EDITX / "model.safetensors")
    assert check_checkpoint(root).llm_shards[0].name == "model.safetensors"


def test_unknown_tensors_only_warn(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    tensors = load_file(root / EDITX / SHARD_NAME)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = tensors["model.norm.weight"].clone()
    (root / EDITX / SHARD_NAME).unlink()
    save_file(tensors, root / EDITX / SHARD_NAME)
    with caplog.at_level(logging.WARNING):
        check_checkpoint(root)
    assert "ignoring 1 unknown LLM tensor(s), e.g. ['model.layers.0.self_attn.rotary_emb" in (
        caplog.text
    )


def test_generation_config_sets_top_k_and_top_p(root: Path) -> None:
    assert (check_checkpoint(root).sampling.top_k, check_checkpoint(root).sampling.top_p) == (
        50,
        1.0,
    )
    (root / EDITX / "generation_config.json").write_text('{"top_k": null, "top_p": 0.9}')
    sampling = check_checkpoint(root).sampling
    assert (sampling.temperature, sampling.top_k, sampling.top_p) == (0.7, 0, 0.9)
    (root / EDITX / "generation_config.json").write_text("{")
    assert "generation_config.json: is not valid JSON" in problems(root)
