"""python -m research.demo_inputs: build the demo's inputs from installed packages (nothing is downloaded).

Writes to out_dir (default `${paths.inputs}`):
  base_tokenizer/      mistral-common's 32,000-piece LLaMA-format SentencePiece model as an HF folder
  zh_news_train.txt    People's Daily 1998 (tags stripped), all but the last `heldout_fraction` of paragraphs
  zh_news_heldout.txt  the last paragraphs: held out from tokenizer training, used for compression and eval
  zh_reviews.txt       Chinese product reviews
  en_heldout.txt       English Wikipedia passages
  jieba_dict.txt       jieba's word list (`word freq pos`)
  pieces.jsonl         a sample candidate list in the reference's {"piece": ...} format
  base_model/          the base model (built from the `model` group, pre-trained briefly on mostly English
                       text with a small Chinese share: see research/demo/pretrain_base.py) + base tokenizer
  corpus/              the training corpus for prepare_data (when the data stage is installed)
"""

import json
import logging
import shutil
from pathlib import Path

from research.atomic import atomic_dir
from research.cli import app
from research.demo import package_data as pkg
from research.demo.pretrain_base import pretrain
from research.model.build import build_model
from research.runinfo import write_run_files
from research.tokenizer.hf_export import save_hf_tokenizer
from research.tokenizer.spm_model import load_model

log = logging.getLogger("graft.demo_inputs")


@app("demo_inputs")
def main(cfg, raw):
    frac = cfg.demo.heldout_fraction
    with atomic_dir(cfg.out_dir, cfg.overwrite) as tmp:
        base = load_model(pkg.package_file("base_tokenizer"), "base tokenizer")
        save_hf_tokenizer(base, tmp / "base_tokenizer")

        # Cut at an article boundary, the same one the training corpus uses (its news leaves out this tail).
        articles = pkg.peoples_daily_articles()
        cut = int(len(articles) * (1.0 - frac))
        news = [p for a in articles[:cut] for p in a.split("\n")]
        (tmp / "zh_news_train.txt").write_text("\n".join(news) + "\n", encoding="utf-8")
        (tmp / "zh_news_heldout.txt").write_text("\n".join(articles[cut:]) + "\n", encoding="utf-8")
        reviews = pkg.reviews()
        (tmp / "zh_reviews.txt").write_text("\n".join(reviews) + "\n", encoding="utf-8")
        passages = pkg.english_passages(limit=cfg.demo.en_passages + cfg.demo.pretrain_en_passages)
        english, pretrain_english = passages[: cfg.demo.en_passages], passages[cfg.demo.en_passages:]
        (tmp / "en_heldout.txt").write_text("\n".join(english) + "\n", encoding="utf-8")
        shutil.copyfile(pkg.package_file("jieba_dict"), tmp / "jieba_dict.txt")
        words = [line.split()[0] for line in (tmp / "jieba_dict.txt").read_text(encoding="utf-8").splitlines()[:5000]
                 if line.strip()]
        (tmp / "pieces.jsonl").write_text("".join(json.dumps({"piece": w}, ensure_ascii=False) + "\n" for w in words),
                                          encoding="utf-8")

        model = build_model(cfg.model)
        pretrain_report = None
        if cfg.demo.pretrain_steps:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(tmp / "base_tokenizer"))
            pretrain_report = pretrain(model, tok, pretrain_english, news, steps=cfg.demo.pretrain_steps,
                                       zh_share=cfg.demo.pretrain_zh_share, seed=cfg.seed)
        model.save_pretrained(str(tmp / "base_model"), safe_serialization=True)
        for f in (tmp / "base_tokenizer").iterdir():
            shutil.copyfile(f, tmp / "base_model" / f.name)

        corpus = None
        try:
            from research.data.demo_corpus import build_demo_corpus
        except ImportError:
            build_demo_corpus = None
        if build_demo_corpus is not None:
            corpus = build_demo_corpus(tmp / "corpus", cfg.seed, exclude_last_fraction=frac)
            corpus["files"] = {k: str(Path(v).relative_to(tmp)) for k, v in corpus["files"].items()}

        summary = {
            "app": "demo_inputs",
            "sources": {name: {"package": p, "file": f, "what": w} for name, (p, f, w) in pkg.FILES.items()},
            "zh_news_articles": {"train": cut, "heldout": len(articles) - cut},
            "zh_reviews": len(reviews),
            "en_passages": len(english),
            "base_model_parameters": sum(p.numel() for p in model.parameters()),
            "base_model_pretraining": pretrain_report,
            "corpus": corpus,
        }
        write_run_files(tmp, raw, summary)
    log.info("wrote demo inputs to %s", cfg.out_dir)


if __name__ == "__main__":
    main()
