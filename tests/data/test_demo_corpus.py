import json

from research.data.demo_corpus import build_demo_corpus, peoples_daily_articles, strip_pos_tags


def test_strip_pos_tags():
    assert strip_pos_tags("迈向/v  充满/v  [中国/ns  共产党/nt]nt  ，/w") == "迈向充满中国共产党，"


def test_articles_split_and_held_out_tail(tmp_path):
    arts = peoples_daily_articles()
    assert 2000 < len(arts) < 5000
    assert arts[0].startswith("迈向充满希望的新世纪")
    assert all("/" not in a[:50] or "http" in a for a in arts[:200])
    info = build_demo_corpus(tmp_path, seed=3, num_reviews=200, num_wiki=50)
    assert info["news_articles_used"] == len(arts) - round(0.1 * len(arts))
    news = []
    for raw in (tmp_path / "zh_news.jsonl").read_bytes().splitlines():
        try:
            news.append(json.loads(raw.decode("utf-8"))["target"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            pass
    held_out = set(arts[info["news_articles_used"]:])
    assert not held_out & set(news)  # nothing of the tokenizer's eval tail leaks into training text
    assert set(arts[:info["news_articles_used"]]) <= set(news)
    for kind in ("exact_duplicate", "near_duplicate", "invalid_utf8", "malformed_json", "mojibake", "menu_line",
                 "control_chars", "short_line", "symbol_spam", "mixed_language", "wrong_language"):
        assert info["noise"][kind] > 0, kind


def test_same_seed_same_bytes(tmp_path):
    a = build_demo_corpus(tmp_path / "a", seed=9, num_reviews=100, num_wiki=30, num_news=50)
    b = build_demo_corpus(tmp_path / "b", seed=9, num_reviews=100, num_wiki=30, num_news=50)
    for cat in a["files"]:
        assert (tmp_path / "a" / f"{cat}.jsonl").read_bytes() == (tmp_path / "b" / f"{cat}.jsonl").read_bytes()
    assert a["lines"] == b["lines"]
