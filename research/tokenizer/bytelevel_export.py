"""Write a byte-level expansion as an HF tokenizer folder: the base's files with the new tokens and merges appended.

`tokenizer.json` is the base's, unchanged but for the model's vocabulary (new entries at ids base size and up; added
tokens that were not model entries put in at their own ids, see research/tokenizer/bytelevel.py) and merges (the new
ones appended after the base's, in the base file's own notation: "a b" strings or [a, b] pairs). The pre-tokenizer,
normaliser, post-processor, decoder and added tokens are copied as they are. `tokenizer_config.json` and
`special_tokens_map.json` are copied from the base (a base folder without a tokenizer_config.json gets one naming
`PreTrainedTokenizerFast`, one without special_tokens_map.json one made of its config's roles), and `vocab.json` / `merges.txt` are rewritten when the base folder has them.
"""

import copy
import functools
import json
import shutil
from pathlib import Path

from research.tokenizer.bytelevel import ByteLevelBase, model_vocab
from research.tokenizer.continued_bpe import Growth

COPIED = ("tokenizer_config.json", "special_tokens_map.json")
ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


@functools.lru_cache(maxsize=1)
def _table() -> dict[int, str]:
    from research.tokenizer.tiktoken_format import byte_text_table

    return byte_text_table()


def byte_text(b: bytes) -> str:
    """Bytes as a string of the byte-level alphabet (GPT-2's bytes_to_unicode), as vocabulary entries are written."""
    return b.decode("latin-1").translate(_table())


def expanded_json(base: ByteLevelBase, growth: Growth) -> dict:
    """The expanded tokenizer.json object."""
    data = copy.copy(base.data)
    data["model"] = model = dict(base.data["model"])
    vocab = model_vocab(base)
    for i in growth.new_ids:
        vocab[byte_text(growth.token_bytes[i])] = i
    if len(vocab) != base.size + len(growth.merges):
        raise AssertionError(f"vocabulary has {len(vocab)} entries, expected {base.size + len(growth.merges)}")
    base_merges = base.data["model"].get("merges", [])
    as_strings = bool(base_merges) and isinstance(base_merges[0], str)
    new = [(byte_text(growth.token_bytes[a]), byte_text(growth.token_bytes[b])) for a, b in growth.merges]
    model["vocab"] = vocab
    model["merges"] = list(base_merges) + [f"{x} {y}" if as_strings else [x, y] for x, y in new]
    return data


def save_bytelevel(base: ByteLevelBase, growth: Growth, out_dir: Path) -> None:
    """Write the folder (module docstring) into `out_dir`."""
    from tokenizers import Tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    data = expanded_json(base, growth)
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    for name in COPIED:
        if (base.folder / name).is_file():
            shutil.copyfile(base.folder / name, out_dir / name)
    if not (out_dir / "tokenizer_config.json").is_file():
        (out_dir / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "PreTrainedTokenizerFast"}, indent=2) + "\n", encoding="utf-8")
    if not (out_dir / "special_tokens_map.json").is_file():  # from the config's roles: every folder has one
        config = json.loads((out_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        roles = {k: config[k] for k in ROLES if config.get(k) is not None}
        (out_dir / "special_tokens_map.json").write_text(json.dumps(roles, indent=2) + "\n", encoding="utf-8")
    if (base.folder / "vocab.json").is_file() or (base.folder / "merges.txt").is_file():
        Tokenizer.from_file(str(out_dir / "tokenizer.json")).model.save(str(out_dir))
