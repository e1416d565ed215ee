"""The Step1 text tokenizer: ``tokenizer.model`` run by SentencePiece itself.

transformers >= 5 converts this kind of unigram model with BPE semantics and gets different
ids (spec Appendix B), so the prompt ids come from SentencePiece directly.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

__all__ = ["TextTokenizer", "add_bos_token_setting"]

_LOG = logging.getLogger(__name__)


class TextTokenizer:
    """Encodes prompt text and ``<audio_N>`` strings to Step1 ids."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))

    @property
    def vocab_size(self) -> int:
        return int(self._sp.get_piece_size())

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` with SentencePiece's dummy prefix and no BOS."""
        return list(self._sp.encode(text, out_type=int))

    def piece_id(self, piece: str) -> int:
        """The id of one piece; raises ``KeyError`` when the vocabulary lacks it."""
        index = int(self._sp.piece_to_id(piece))
        if self._sp.id_to_piece(index) != piece:
            raise KeyError(piece)
        return index

    def piece(self, index: int) -> str:
        """The piece with this id."""
        return str(self._sp.id_to_piece(index))


def add_bos_token_setting(config_path: Path) -> bool:
    """What ``tokenizer_config.json`` says about BOS per ``encode`` call.

    Returns the ``add_bos_token`` value, or ``True`` (the Llama tokenizer's default) when
    the file or the key is absent.
    """
    if not config_path.is_file():
        return True
    value = json.loads(config_path.read_text(encoding="utf-8")).get("add_bos_token", True)
    _LOG.debug("tokenizer_config.json add_bos_token = %r", value)
    return bool(value)
