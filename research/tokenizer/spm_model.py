"""Read and write SentencePiece ModelProto files (the LLaMA / Mistral tokenizer format)."""

from pathlib import Path

from google.protobuf.message import DecodeError
from sentencepiece import sentencepiece_model_pb2 as pb

from research.errors import GraftError

NORMAL = pb.ModelProto.SentencePiece.NORMAL
USER_DEFINED = pb.ModelProto.SentencePiece.USER_DEFINED
BYTE = pb.ModelProto.SentencePiece.BYTE
MERGEABLE = (NORMAL, USER_DEFINED)

# LLaMA-2 and Mistral park whitespace-run pieces at -1e9 so they merge last; they are outliers, not the
# bottom of the ordinary score range that new pieces are placed under.
OUTLIER_SCORE = -1.0e8


def resolve_model_file(path: str | Path, key: str = "tokenizer.base_path") -> Path:
    """Accept a `.model` file or an HF tokenizer folder holding `tokenizer.model`."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.model"
        if not p.is_file():
            raise GraftError(f"{key}={str(path)!r}: folder has no tokenizer.model (SentencePiece) "
                             "or tokenizer.json (byte-level BPE)")
    elif not p.is_file():
        raise GraftError(f"{key}={str(path)!r}: no such file or folder")
    return p


def load_model(path: str | Path, key: str = "tokenizer.base_path") -> pb.ModelProto:
    p = resolve_model_file(path, key)
    proto = pb.ModelProto()
    try:
        proto.ParseFromString(p.read_bytes())
    except (DecodeError, OSError) as e:
        raise GraftError(f"{key}={str(p)!r}: not a readable SentencePiece model ({e.__class__.__name__})") from None
    if not proto.pieces:
        raise GraftError(f"{key}={str(p)!r}: not a SentencePiece model (no pieces)")
    if proto.trainer_spec.model_type != pb.TrainerSpec.BPE:
        raise GraftError(f"{key}={str(p)!r}: model_type is {pb.TrainerSpec.ModelType.Name(proto.trainer_spec.model_type)};"
                         " only BPE models (LLaMA / Mistral format) can be expanded")
    return proto


def lowest_ordinary_score(proto: pb.ModelProto) -> float:
    scores = [p.score for p in proto.pieces if p.type == NORMAL and p.score > OUTLIER_SCORE]
    return min(scores) if scores else 0.0


def merge_scores(proto: pb.ModelProto) -> dict[str, float]:
    """piece -> score for the pieces BPE may produce by merging (normal and user-defined)."""
    return {p.piece: p.score for p in proto.pieces if p.type in MERGEABLE}
