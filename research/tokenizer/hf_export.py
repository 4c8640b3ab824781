"""Write an expanded SentencePiece model as an HF tokenizer folder (slow tokenizer.model + fast tokenizer.json).

The fast tokenizer is converted from the SentencePiece model with `legacy=False, add_prefix_space=True`,
the options under which it reproduces SentencePiece's own encoding (dummy prefix included). The pad token is
`<unk>`: a real id that byte fallback means never occurs in data, so padding can never be confused with EOS.
"""

from pathlib import Path

from sentencepiece import sentencepiece_model_pb2 as pb

PAD_TOKEN = "<unk>"


def save_hf_tokenizer(proto: pb.ModelProto, out_dir: Path, model_max_length: int = 4096) -> None:
    from transformers import LlamaTokenizerFast

    out_dir.mkdir(parents=True, exist_ok=True)
    model_file = out_dir / "tokenizer.model"
    model_file.write_bytes(proto.SerializeToString())
    fast = LlamaTokenizerFast(
        vocab_file=str(model_file), from_slow=True, legacy=False, add_prefix_space=True,
        pad_token=PAD_TOKEN, model_max_length=model_max_length,
    )
    fast.save_pretrained(str(out_dir))


def load_hf_tokenizers(folder: Path):
    """(slow, fast) tokenizers from a folder, through the Auto classes users will call."""
    from transformers import AutoTokenizer

    slow = AutoTokenizer.from_pretrained(str(folder), use_fast=False)
    fast = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
    return slow, fast
