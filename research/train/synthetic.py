"""Small packed bucket datasets in the data -> train format (docs/conventions.md), for tests and benchmark mode."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

IGNORE_INDEX = -100


def write_synthetic_buckets(out_dir, vocab_size: int, max_length: int, num_buckets: int, packs_per_bucket: int,
                            categories: Sequence[str] = ("zh", "en"), seed: int = 0, pad_token_id: int = 0,
                            fill: float = 0.9) -> Path:
    """Write `buckets/bucket_{k:03d}/` Arrow datasets and a minimal manifest.json under `out_dir`; return it.

    Each pack holds random documents (ids in [1, vocab_size) except the pad id) of random categories, filling
    about `fill` of `max_length`; the rest is padding with label -100. Documents are a repeated short motif plus
    noise, so a model can learn them and the loss falls.
    """
    from datasets import Dataset, Features, Value
    from datasets import Sequence as Seq
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    features = Features({"input_ids": Seq(Value("int32")), "labels": Seq(Value("int32")),
                         "doc_lens": Seq(Value("int32")), "doc_categories": Seq(Value("string")),
                         "num_tokens": Value("int32")})
    rows = []
    for k in range(num_buckets):
        cols = {name: [] for name in features}
        per_cat: dict = {}
        for _ in range(packs_per_bucket):
            budget = max(1, int(max_length * fill * rng.uniform(0.8, 1.0)))
            lens, cats, ids = [], [], []
            while sum(lens) < budget:
                n = int(min(budget - sum(lens), rng.integers(4, max(5, max_length // 2))))
                cat = str(categories[int(rng.integers(len(categories)))])
                motif = rng.integers(1, vocab_size, size=int(rng.integers(2, 6)))
                doc = np.resize(motif, n)
                noise = rng.random(n) < 0.1
                doc[noise] = rng.integers(1, vocab_size, size=int(noise.sum()))
                doc[doc == pad_token_id] = (pad_token_id + 1) % vocab_size
                lens.append(n), cats.append(cat), ids.extend(doc.tolist())
                per_cat[cat] = per_cat.get(cat, 0) + n
            real = len(ids)
            cols["input_ids"].append(ids + [pad_token_id] * (max_length - real))
            cols["labels"].append(ids + [IGNORE_INDEX] * (max_length - real))
            cols["doc_lens"].append(lens)
            cols["doc_categories"].append(cats)
            cols["num_tokens"].append(real)
        name = f"bucket_{k:03d}"
        Dataset.from_dict(cols, features=features).save_to_disk(str(out / "buckets" / name))
        rows.append({"name": name, "path": f"buckets/{name}", "num_packs": packs_per_bucket,
                     "tokens": int(sum(cols["num_tokens"])), "tokens_per_category": dict(sorted(per_cat.items()))})
    manifest = {"max_length": max_length, "pad_token_id": pad_token_id, "vocab_size": vocab_size,
                "num_buckets": num_buckets, "buckets": rows, "categories": sorted(set(categories)),
                "synthetic": {"seed": seed, "packs_per_bucket": packs_per_bucket}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out
