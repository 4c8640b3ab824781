"""How the base tokenizer splits each new piece: the base rows a new row is built from."""

from dataclasses import dataclass

import sentencepiece as spm
from sentencepiece import sentencepiece_model_pb2 as pb

BYTE = pb.ModelProto.SentencePiece.BYTE


@dataclass
class Split:
    piece: str
    ids: list[int]
    """All base ids SentencePiece gives for the piece's text (dummy prefix and byte fallback included)."""
    clean_ids: list[int]
    """`ids` without byte-fallback pieces and the lone dummy-prefix "▁", unless nothing else is left."""


def base_splits(base_model: bytes, new_pieces: list[str]) -> list[Split]:
    """Split every new piece with the base tokenizer.

    Why the clean split leaves two kinds of piece out: the lone "▁" is the dummy prefix SentencePiece
    adds before any text, so its row means "start of a word", not anything about the new piece; byte
    pieces (<0xE4> ...) are shared by thousands of characters, so their rows carry almost nothing about
    one character. Averaging them in (the reference's choice, `subword_mean_ref`) pulls every new row
    toward the same few rows. When a piece splits into nothing else, all its pieces are kept.
    """
    sp = spm.SentencePieceProcessor(model_proto=base_model)
    proto = pb.ModelProto()
    proto.ParseFromString(base_model)
    is_byte = [p.type == BYTE for p in proto.pieces]
    prefix_id = sp.piece_to_id("▁")
    out = []
    for piece in new_pieces:
        ids = sp.encode(piece.replace("▁", " "))
        clean = [i for i in ids if not is_byte[i] and i != prefix_id]
        out.append(Split(piece, ids, clean or list(ids)))
    return out
