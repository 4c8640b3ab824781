"""The demo_inputs stage (`python -m research.demo_inputs`): the demo's inputs from installed packages.

Nothing is downloaded. Writes to out_dir (default `${paths.inputs}`):
  base_tokenizer/      the base tokenizer as an HF folder (`demo.base_tokenizer`): mistral-common's 32,000-piece
                       LLaMA-format SentencePiece model, or its Tekken (131,072-token byte-level BPE) converted
                       from tiktoken format
  zh_news_train.txt    People's Daily 1998 (tags stripped), all but the last `heldout_fraction` of paragraphs
  zh_news_heldout.txt  the last paragraphs: held out from tokenizer training, used for compression and eval
  zh_reviews.txt       Chinese product reviews
  en_heldout.txt       English Wikipedia passages (`demo.en_passages`), held out
  en_train.txt         the next `demo.pretrain_en_passages` passages: the base model's English pre-training text,
                       also the base-language text of the init strategies that read a corpus (conf/init/)
  jieba_dict.txt       jieba's word list (`word freq pos`)
  pieces.jsonl         a sample candidate list in the reference's {"piece": ...} format
  base_model/          the base model (built from the `model` group, pre-trained briefly on mostly English
                       text with a small Chinese share: see research/demo/pretrain_base.py) + base tokenizer
  corpus/              the training corpus for prepare_data (research/data/demo_corpus.py)
"""

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from research.atomic import atomic_dir
from research.config.root import GraftConfig
from research.data.demo_corpus import build_demo_corpus
from research.demo import package_data as pkg
from research.demo.pretrain_base import pretrain
from research.errors import GraftError
from research.model.build import build_model
from research.runinfo import write_run_files
from research.tokenizer.hf_export import save_hf_tokenizer
from research.tokenizer.spm_model import load_model

log = logging.getLogger("graft.demo_inputs")
JSONL_PIECES = 5000
"""Words of jieba's list written to pieces.jsonl."""


@dataclass
class DemoTexts:
    """The text the demo's inputs are cut from."""
    articles: int
    """People's Daily articles in all."""
    cut: int
    """Articles before the held-out tail."""
    news: list[str]
    """Paragraphs of the first `cut` articles (zh_news_train.txt)."""
    reviews: int
    english: list[str]
    """Held-out English passages (en_heldout.txt)."""
    pretrain_english: list[str]
    """The passages after them, for the base model's pre-training."""


def run(cfg: GraftConfig, raw: DictConfig) -> None:
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        base_tokenizer = write_base_tokenizer(tmp / "base_tokenizer", cfg.demo.base_tokenizer)
        if base_tokenizer["size"] != cfg.model.vocab_size:
            raise GraftError(f"model.vocab_size={cfg.model.vocab_size}: the base model must have one row per token of "
                             f"the base tokenizer (demo.base_tokenizer={cfg.demo.base_tokenizer}: "
                             f"{base_tokenizer['size']} tokens)")
        texts = write_texts(tmp, cfg)
        write_pieces(tmp)
        model, pretrain_report = write_base_model(tmp, cfg, texts)
        corpus = build_demo_corpus(tmp / "corpus", cfg.seed, exclude_last_fraction=cfg.demo.heldout_fraction,
                                   heldout_passages=frozenset(texts.english))
        corpus["files"] = {k: str(Path(v).relative_to(tmp)) for k, v in corpus["files"].items()}
        summary = {
            "app": "demo_inputs",
            "base_tokenizer": base_tokenizer,
            "sources": {name: {"package": p, "file": f, "what": w} for name, (p, f, w) in pkg.FILES.items()},
            "zh_news_articles": {"train": texts.cut, "heldout": texts.articles - texts.cut},
            "zh_reviews": texts.reviews,
            "en_passages": len(texts.english),
            "base_model_parameters": sum(p.numel() for p in model.parameters()),
            "base_model_pretraining": pretrain_report,
            "base_model_heldout": score_base(tmp, cfg.demo.heldout_eval_chars),
            "corpus": corpus,
        }
        write_run_files(tmp, raw, summary)
    log.info("wrote demo inputs to %s", cfg.out_dir)


def write_base_tokenizer(folder: Path, kind: str) -> dict:
    """base_tokenizer/ as an HF folder; returns what it is (kind, source file, size)."""
    if kind == "tekken":
        from research.tokenizer.tiktoken_format import convert_tiktoken

        source = pkg.package_file("tekken")
        report = convert_tiktoken(source, folder)
        return {"kind": kind, "file": pkg.FILES["tekken"][1], **report}
    base = load_model(pkg.package_file("base_tokenizer"), "base tokenizer")
    save_hf_tokenizer(base, folder)
    return {"kind": kind, "file": pkg.FILES["base_tokenizer"][1], "size": len(base.pieces)}


def write_texts(tmp: Path, cfg: GraftConfig) -> DemoTexts:
    """zh_news_train.txt, zh_news_heldout.txt, zh_reviews.txt and en_heldout.txt."""
    # Cut at an article boundary, the same one the training corpus uses (its news leaves out this tail).
    articles = pkg.peoples_daily_articles()
    cut = int(len(articles) * (1.0 - cfg.demo.heldout_fraction))
    news = [p for a in articles[:cut] for p in a.split("\n")]
    (tmp / "zh_news_train.txt").write_text("\n".join(news) + "\n", encoding="utf-8")
    (tmp / "zh_news_heldout.txt").write_text("\n".join(articles[cut:]) + "\n", encoding="utf-8")
    reviews = pkg.reviews()
    (tmp / "zh_reviews.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")
    passages = pkg.english_passages(limit=cfg.demo.en_passages + cfg.demo.pretrain_en_passages)
    english, pretrain_english = passages[: cfg.demo.en_passages], passages[cfg.demo.en_passages:]
    (tmp / "en_heldout.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp / "en_train.txt").write_text("\n".join(pretrain_english) + "\n", encoding="utf-8")
    return DemoTexts(len(articles), cut, news, len(reviews), english, pretrain_english)


def write_pieces(tmp: Path) -> None:
    """jieba_dict.txt, and its first words as pieces.jsonl."""
    shutil.copyfile(pkg.package_file("jieba_dict"), tmp / "jieba_dict.txt")
    lines = (tmp / "jieba_dict.txt").read_text(encoding="utf-8").splitlines()[:JSONL_PIECES]
    words = [line.split()[0] for line in lines if line.strip()]
    (tmp / "pieces.jsonl").write_text("".join(json.dumps({"piece": w}, ensure_ascii=False) + "\n" for w in words),
                                      encoding="utf-8")


def score_base(tmp: Path, chars: int) -> dict | None:
    """Bits per byte of the written base model on the first `chars` characters of the held-out English and Chinese
    text (windows of 512 tokens), None when `chars` is 0."""
    if not chars:
        return None
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from research.eval import heldout
    from research.eval.inference import Scorer

    model = AutoModelForCausalLM.from_pretrained(str(tmp / "base_model"), use_safetensors=True,
                                                 torch_dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(str(tmp / "base_model"))
    out = {"chars": chars}
    for lang, name in (("en", "en_heldout.txt"), ("zh", "zh_news_heldout.txt")):
        text = heldout.read_text(str(tmp / name), chars, lang)
        nll, n = heldout.score(Scorer(model, tok, batch_size=8, progress=False), heldout.windows(tok, text, 512))
        out[lang] = heldout.summarize(nll, n, text)["bits_per_byte"]
    log.info("base model held-out bits per byte: en %.3f, zh %.3f", out["en"], out["zh"])
    return out


def write_base_model(tmp: Path, cfg: GraftConfig, texts: DemoTexts):
    """base_model/: the `model` group's model, pre-trained when demo.pretrain_steps > 0, with the base tokenizer.
    Return the model and the pre-training report (None without pre-training)."""
    model = build_model(cfg.model)
    pretrain_report = None
    if cfg.demo.pretrain_steps:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tmp / "base_tokenizer"))
        d = cfg.demo
        pretrain_report = pretrain(model, tok, texts.pretrain_english, texts.news, steps=d.pretrain_steps,
                                   zh_share=d.pretrain_zh_share, seq_len=d.pretrain_seq_len,
                                   batch_size=d.pretrain_batch_size, lr=d.pretrain_lr,
                                   final_lr=d.pretrain_final_lr, long_share=d.pretrain_long_share, seed=cfg.seed)
    model.save_pretrained(str(tmp / "base_model"), safe_serialization=True)
    for f in (tmp / "base_tokenizer").iterdir():
        shutil.copyfile(f, tmp / "base_model" / f.name)
    return model, pretrain_report
