"""The Step1 text tokenizer: ``tokenizer.model`` run by SentencePiece itself.

transformers >= 5 converts this kind of unigram model with BPE semantics and gets different
ids (spec Appendix B), so the prompt ids come from SentencePiece directly.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["TextTokenizer"]


class TextTokenizer:
    """Encodes prompt text and ``<audio_N>`` strings to Step1 ids."""

    def __init__(self, model_path: Path) -> None:
        import sentencepiece

        self._sp = sentencepiece.SentencePieceProcessor(model_file=str(model_path))

    def encode(self, text: str) -> list[int]:
        """Ids of ``text`` with SentencePiece's dummy prefix and no BOS."""
        return list(self._sp.encode(text, out_type=int))

    def piece_id(self, piece: str) -> int:
        """The id of one piece; raises ``KeyError`` when the vocabulary lacks it."""
        index = int(self._sp.piece_to_id(piece))
        if self._sp.id_to_piece(index) != piece:
            raise KeyError(piece)
        return index
