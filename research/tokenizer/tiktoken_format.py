"""Convert a tiktoken-format tokenizer file (mistral-common's Tekken JSON) into an HF tokenizer folder.

Tekken (`tekken_240718.json`): `config.pattern` is the split regex, `vocab` a list of `{rank, token_bytes (base64),
token_str}`, `config.default_vocab_size` the total size and `config.default_num_special_tokens` the number of
special tokens, which take ids 0..n-1; rank r is id r + n, and only the ranks that fit in the total size are kept.
The special tokens are the file's `special_tokens` list when it has one (recent versions), else the names
mistral-common uses for files without one (`LEGACY_SPECIAL_TOKENS`), filled up to n with `<SPECIAL_{id}>`.

The folder: `tokenizer.json` (a BPE model over the byte-to-unicode alphabet, `ignore_merges` as tiktoken looks a
whole pre-token up first, merges derived from the ranks, Split(pattern, isolated) + ByteLevel(use_regex=false),
ByteLevel decoder, the special tokens as special added tokens that are also model entries at their ids, and a
post-processor that adds BOS like Tekken's `encode(bos=True)`), `tokenizer_config.json` and
`special_tokens_map.json` (bos `<s>`, eos `</s>`, unk `<unk>`, pad `<pad>` when the file has it).

Merges: tiktoken merges, inside a pre-token, the adjacent pair whose concatenation has the lowest rank. Every
split of a token into two tokens is therefore a merge at that token's priority (ties broken by the parts' ranks),
the same derivation as transformers' TikTokenConverter; 269,443 merges for Tekken's 130,072 ranks.
"""

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

from research.errors import GraftError

LEGACY_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]",
                         "[TOOL_RESULTS]", "[/TOOL_RESULTS]", "[TOOL_CALLS]", "[IMG]", "<pad>", "[IMG_BREAK]",
                         "[IMG_END]", "[PREFIX]", "[MIDDLE]", "[SUFFIX]", "[SYSTEM_PROMPT]", "[/SYSTEM_PROMPT]",
                         "[TOOL_CONTENT]")
"""Ranks 0-19 of the special tokens of a Tekken file without a `special_tokens` list (mistral-common's names)."""
FILLER = "<SPECIAL_{id}>"
ROLES = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}


@dataclass
class TiktokenFile:
    """What a tiktoken-format file holds, ranks cut to the total size."""
    pattern: str
    ranks: dict[bytes, int]
    """token bytes -> rank (its id is rank + len(specials))."""
    specials: list[str]
    """Special tokens by id."""


def is_tiktoken_json(data) -> bool:
    """A tiktoken-format (Tekken) JSON object: a `vocab` list and a `config` with the split `pattern`."""
    return (isinstance(data, dict) and isinstance(data.get("vocab"), list)
            and isinstance(data.get("config"), dict) and "pattern" in data["config"])


def read_tiktoken(path: str | Path, key: str = "tokenizer.base_path") -> TiktokenFile:
    """Read and check a Tekken-style file; a one-line GraftError naming the file and what is wrong."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise GraftError(f"{key}={str(p)!r}: not a readable JSON file ({e.__class__.__name__})") from None
    if not is_tiktoken_json(data):
        raise GraftError(f"{key}={str(p)!r}: not a tiktoken-format file (needs a `vocab` list and `config.pattern`)")
    config = data["config"]
    n_special = int(config.get("default_num_special_tokens", 0))
    size = int(config.get("default_vocab_size", n_special + len(data["vocab"])))
    if not 0 <= n_special < size <= n_special + len(data["vocab"]):
        raise GraftError(f"{key}={str(p)!r}: default_vocab_size {size} does not fit {n_special} special tokens and "
                         f"{len(data['vocab'])} ranks")
    ranks: dict[bytes, int] = {}
    for i, entry in enumerate(data["vocab"][: size - n_special]):
        if entry.get("rank") != i:
            raise GraftError(f"{key}={str(p)!r}: vocab[{i}] has rank {entry.get('rank')!r}, expected {i}")
        ranks[base64.b64decode(entry["token_bytes"])] = i
    if len(ranks) != size - n_special:
        raise GraftError(f"{key}={str(p)!r}: the vocab repeats token bytes")
    return TiktokenFile(config["pattern"], ranks, special_tokens(data, n_special, p, key))


def special_tokens(data: dict, n: int, path: Path, key: str) -> list[str]:
    """The n special tokens by id: the file's list (by rank), else the legacy names, then fillers."""
    listed = data.get("special_tokens")
    if listed is None:
        names = list(LEGACY_SPECIAL_TOKENS[:n])
    else:
        by_rank = sorted(listed, key=lambda t: t["rank"])
        if [t["rank"] for t in by_rank] != list(range(len(by_rank))) or len(by_rank) > n:
            raise GraftError(f"{key}={str(path)!r}: special_tokens ranks are not 0..{len(by_rank) - 1} within {n}")
        names = [str(t["token_str"]) for t in by_rank]
    names += [FILLER.format(id=i) for i in range(len(names), n)]
    if len(set(names)) != n:
        raise GraftError(f"{key}={str(path)!r}: special tokens repeat")
    return names


def derive_merges(ranks: dict[bytes, int]) -> list[tuple[bytes, bytes]]:
    """Every split of each token into two tokens, ordered by the token's rank, then the parts' ranks."""
    merges = []
    for token, _ in sorted(ranks.items(), key=lambda kv: kv[1]):
        splits = []
        for i in range(1, len(token)):
            left, right = ranks.get(token[:i]), ranks.get(token[i:])
            if left is not None and right is not None:
                splits.append((left, right, i))
        splits.sort()
        merges += [(token[:i], token[i:]) for _, _, i in splits]
    return merges


def byte_text_table() -> dict[int, str]:
    """For `bytes.decode("latin-1").translate(table)`: each byte as its character of the byte-level alphabet."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    return bytes_to_unicode()


def build_tokenizer_json(tk: TiktokenFile) -> tuple[dict, int]:
    """(the tokenizer.json object for a tiktoken file (see the module docstring), its number of merges).

    The pipeline parts are built and serialised by `tokenizers` itself on an empty model; the vocabulary and the
    merges, 400,000 entries, are put into that object directly (building them through the Python API took longer
    than the whole conversion does now)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    table = byte_text_table()
    n = len(tk.specials)
    vocab = {s: i for i, s in enumerate(tk.specials)}
    for token, rank in tk.ranks.items():
        text = token.decode("latin-1").translate(table)
        if text in vocab:
            raise GraftError(f"special token {text!r} is also an ordinary token (rank {rank})")
        vocab[text] = rank + n
    merges = [[a.decode("latin-1").translate(table), b.decode("latin-1").translate(table)]
              for a, b in derive_merges(tk.ranks)]
    tok = Tokenizer(BPE(fuse_unk=False, ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(tk.pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in tk.specials])
    bos = ROLES["bos_token"]
    if bos in vocab:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, vocab[bos])])
    data = json.loads(tok.to_str())
    if [t["id"] for t in data["added_tokens"]] != list(range(n)):
        raise AssertionError("special tokens did not get ids 0..n-1")
    data["model"]["vocab"], data["model"]["merges"] = vocab, merges
    return data, len(merges)


def convert_tiktoken(json_path: str | Path, out_dir: str | Path, model_max_length: int = 131072) -> dict:
    """Write the HF folder for a tiktoken-format file into `out_dir` (created); return what it holds."""
    t0 = time.monotonic()
    tk = read_tiktoken(json_path)
    data, n_merges = build_tokenizer_json(tk)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    roles = {role: name for role, name in ROLES.items() if name in tk.specials}
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False, "add_prefix_space": False, **roles,
        "added_tokens_decoder": {str(i): {"content": s, "special": True, "normalized": False, "lstrip": False,
                                          "rstrip": False, "single_word": False} for i, s in enumerate(tk.specials)},
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "special_tokens_map.json").write_text(json.dumps(roles, indent=2) + "\n", encoding="utf-8")
    return {"size": len(tk.specials) + len(tk.ranks), "special_tokens": len(tk.specials),
            "ranks": len(tk.ranks), "merges": n_merges, **roles,
            "seconds": round(time.monotonic() - t0, 2)}
