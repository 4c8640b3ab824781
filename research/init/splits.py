"""How the base tokenizer splits each new piece: the base rows a new row is built from.

`base_splits` for a SentencePiece expansion (the base model encodes each new piece), `bytelevel_splits` for a
byte-level BPE one (each new token decomposed through the new merges).
"""

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


def bytelevel_splits(tokenizer_json: dict, base_size: int) -> list[Split]:
    """The base ids of each new token of a byte-level BPE expansion (ids `base_size` and up): its recursive
    decomposition through the merges that made the new tokens, down to ids below `base_size`.

    Continued BPE makes each new token by one merge of two earlier tokens (research/tokenizer/continued_bpe.py),
    so the decomposition is exactly the base tokens the new token is built from; there is no dummy prefix or byte
    fallback to leave out, so `ids` and `clean_ids` are the same."""
    model = tokenizer_json["model"]
    vocab = model["vocab"]
    size = max([*vocab.values(), *(t["id"] for t in tokenizer_json.get("added_tokens", []))]) + 1
    made: dict[int, tuple[int, int]] = {}
    for m in model.get("merges", []):
        left, right = m.split(" ", 1) if isinstance(m, str) else m
        out = vocab.get(left + right)
        if out is not None and out >= base_size and out not in made:
            made[out] = (vocab[left], vocab[right])
    token = {i: t for t, i in vocab.items()}
    missing = [i for i in range(base_size, size) if i not in made]
    if missing:
        raise ValueError(f"new token {token.get(missing[0])!r} (id {missing[0]}) is made by no merge")
    cache: dict[int, list[int]] = {}

    def parts(i: int) -> list[int]:
        if i < base_size:
            return [i]
        if i not in cache:
            left, right = made[i]
            cache[i] = parts(left) + parts(right)  # the merge's parts have lower ids: recursion stays shallow
        return cache[i]

    out = []
    for i in range(base_size, size):
        ids = parts(i)
        out.append(Split(token[i], ids, list(ids)))
    return out
