"""The guarantees of a byte-level expansion, checked on the written folder after every run.

Each check returns a row with `ok`; `check_all` puts them in `summary.json: guarantees` and raises a one-line
GraftError naming the first that failed (the output folder is then never published):

- `base_unchanged`: every base token keeps its id, the base merges are the first merges in their order, and the
  added tokens, normaliser, pre-tokenizer, post-processor, decoder and the model's options are those of the base;
- `unchanged_without_script`: every eval line without a character of the script (for han, a Han character)
  encodes to the same ids with the base and the expanded tokenizer;
- `round_trip`: decode(encode(x)) == x on every eval line (x after the base's normaliser, where it has one);
- `size`: exactly `tokenizer.final_size` tokens, the new ones at ids base size and up, as many as the sources
  added;
- `reachable`: every new token whose bytes are whole characters encodes, as text alone, to itself (tokens ending
  inside a character are counted as `partial`);
- `auto_tokenizer`: `AutoTokenizer.from_pretrained(folder)` loads, has the size, and gives the `tokenizers`
  library's ids on every eval line.

Encodings are without special tokens (no BOS/EOS), as data preparation encodes text.
"""

import json
from pathlib import Path

from research.config.tokenizer import TokenizerConfig
from research.errors import GraftError
from research.tokenizer.bytelevel import ByteLevelBase
from research.tokenizer.continued_bpe import Growth
from research.tokenizer.script import char_in_script

COMPONENTS = ("added_tokens", "normalizer", "pre_tokenizer", "post_processor", "decoder", "truncation", "padding")


def _encode(tok, lines: list[str]) -> list[list[int]]:
    return [e.ids for e in tok.encode_batch(lines, add_special_tokens=False)]


def base_unchanged(base: ByteLevelBase, data: dict, tok) -> dict:
    """Ids, merges, added tokens and pipeline components of the base, as found in the expanded folder."""
    problems = [f"{c} changed" for c in COMPONENTS if data.get(c) != base.data.get(c)]
    options = {k: v for k, v in base.data["model"].items() if k not in ("vocab", "merges")}
    problems += [f"model.{k} changed" for k, v in options.items() if data["model"].get(k) != v]
    vocab = data["model"]["vocab"]
    moved = [t for t, i in base.vocab.items() if vocab.get(t) != i]
    problems += [f"{len(moved)} base tokens changed id (e.g. {moved[0]!r})"] if moved else []
    merges = base.data["model"].get("merges", [])
    if data["model"]["merges"][: len(merges)] != merges:
        problems.append("the base merges are not the first merges, in order")
    wrong = [i for i in range(base.size) if tok.id_to_token(i) != base.tokenizer.id_to_token(i)]
    problems += [f"{len(wrong)} ids decode to another token (e.g. id {wrong[0]})"] if wrong else []
    return {"ok": not problems, "ids_checked": base.size, "merges_checked": len(merges),
            "added_tokens": len(base.data.get("added_tokens", [])), "components": list(COMPONENTS),
            "problems": problems}


def unchanged_without_script(texts, base_ids, new_ids, script: str) -> tuple[dict, dict]:
    """(the guarantee row, the per-language `unchanged_lines` report)."""
    per, bad = {}, []
    for lang, lines in texts.items():
        same = [a == b for a, b in zip(base_ids[lang], new_ids[lang], strict=True)]
        outside = [i for i, line in enumerate(lines) if not any(char_in_script(c, script) for c in line)]
        kept = sum(same[i] for i in outside)
        bad += [lines[i][:80] for i in outside if not same[i]][:3]
        per[lang] = {"lines": len(lines), "unchanged": sum(same), "lines_without_script": len(outside),
                     "unchanged_without_script": kept}
    if script == "any":
        return {"ok": True, "not_applicable": "tokenizer.script=any allows new merges in any text"}, per
    row = {"ok": not bad, "lines_without_script": sum(r["lines_without_script"] for r in per.values()),
           "identical": sum(r["unchanged_without_script"] for r in per.values()), "examples": bad}
    return row, per


def round_trip(tok, texts, new_ids) -> dict:
    norm = tok.normalizer
    lines = failed = 0
    examples = []
    for lang, ls in texts.items():
        for line, out in zip(ls, tok.decode_batch(new_ids[lang], skip_special_tokens=False), strict=True):
            ref = norm.normalize_str(line) if norm is not None else line
            lines += 1
            if out != ref:
                failed += 1
                examples += [line[:80]] if len(examples) < 3 else []
    return {"ok": failed == 0, "lines": lines, "exact": lines - failed,
            "against": "normalised text" if norm is not None else "the text itself", "examples": examples}


def reachable(tok, growth: Growth) -> dict:
    texts, ids, partial = [], [], 0
    for i in growth.new_ids:
        try:
            texts.append(growth.token_bytes[i].decode("utf-8"))
            ids.append(i)
        except UnicodeDecodeError:
            partial += 1
    got = _encode(tok, texts)
    missed = [(t, g) for t, i, g in zip(texts, ids, got, strict=True) if g != [i]]
    return {"ok": not missed, "new_tokens": len(growth.merges), "whole_characters": len(texts),
            "partial": partial, "reachable": len(texts) - len(missed),
            "examples": [f"{t!r} -> {g}" for t, g in missed[:3]]}


def size(tok, auto_len: int, base: ByteLevelBase, growth: Growth, cfg: TokenizerConfig) -> dict:
    n = tok.get_vocab_size(with_added_tokens=True)
    new = sorted(i for t, i in tok.get_vocab(with_added_tokens=True).items() if i >= base.size)
    ok = n == auto_len == cfg.final_size and new == list(growth.new_ids)
    return {"ok": ok, "tokens": n, "final_size": cfg.final_size, "target_size": cfg.target_size,
            "pad_to_multiple_of": cfg.pad_to_multiple_of, "base_size": base.size, "new_tokens": len(new)}


def auto_tokenizer(folder: Path, texts, new_ids) -> tuple[dict, int]:
    """(the row, AutoTokenizer's length)."""
    from transformers import AutoTokenizer

    try:
        auto = AutoTokenizer.from_pretrained(str(folder))
    except Exception as e:  # noqa: BLE001 - reported as the failed guarantee
        return {"ok": False, "error": str(e).splitlines()[0]}, -1
    lines = differ = 0
    for lang, ls in texts.items():
        got = auto(ls, add_special_tokens=False)["input_ids"]
        lines += len(ls)
        differ += sum(a != b for a, b in zip(got, new_ids[lang], strict=True))
    return {"ok": differ == 0, "class": type(auto).__name__, "lines": lines, "identical": lines - differ}, len(auto)


def compression(texts, base_ids, new_ids) -> dict:
    """Tokens per character, base vs expanded, per language (the keys of the SentencePiece path's report)."""
    out = {}
    for lang, lines in texts.items():
        chars = sum(len(line) for line in lines)
        b = sum(map(len, base_ids[lang]))
        e = sum(map(len, new_ids[lang]))
        out[lang] = {"lines": len(lines), "chars": chars, "base_tokens": b, "expanded_tokens": e,
                     "base_tokens_per_char": round(b / chars, 4), "expanded_tokens_per_char": round(e / chars, 4),
                     "ratio": round(e / b, 4)}
    return out


def check_all(base: ByteLevelBase, growth: Growth, folder: Path, texts: dict[str, list[str]],
              cfg: TokenizerConfig) -> dict:
    """Run every check on `folder`; return {guarantees, compression, unchanged_lines}, or raise the first failure."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    data = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    base_ids = {lang: _encode(base.tokenizer, lines) for lang, lines in texts.items()}
    new_ids = {lang: _encode(tok, lines) for lang, lines in texts.items()}
    g = {"base_unchanged": base_unchanged(base, data, tok)}
    g["unchanged_without_script"], unchanged = unchanged_without_script(texts, base_ids, new_ids, cfg.script)
    g["round_trip"] = round_trip(tok, texts, new_ids)
    g["auto_tokenizer"], auto_len = auto_tokenizer(folder, texts, new_ids)
    g["size"] = size(tok, auto_len, base, growth, cfg)
    g["reachable"] = reachable(tok, growth)
    for name, row in g.items():
        if not row["ok"]:
            detail = {k: v for k, v in row.items() if k != "ok"}
            raise GraftError(f"guarantee {name} failed on the expanded tokenizer: {json.dumps(detail, ensure_ascii=False)}")
    return {"guarantees": g, "compression": compression(texts, base_ids, new_ids), "unchanged_lines": unchanged}
