"""Small packed bucket datasets in the data -> train format (research/contracts.py), for tests and benchmark mode."""

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from research import contracts
from research.contracts import IGNORE_INDEX


def write_synthetic_buckets(out_dir, vocab_size: int, max_length: int, num_buckets: int, packs_per_bucket: int,
                            categories: Sequence[str] = ("zh", "en"), seed: int = 0, pad_token_id: int = 0,
                            fill: float = 0.9) -> Path:
    """Write `buckets/bucket_{k:03d}/` Arrow datasets and a minimal manifest.json under `out_dir`; return it.

    Each pack holds random documents (ids in [1, vocab_size) except the pad id) of random categories, filling
    about `fill` of `max_length`; the rest is padding with label IGNORE_INDEX. Documents are a repeated short
    motif plus noise, so a model can learn them and the loss falls.
    """
    out = Path(out_dir)
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(num_buckets):
        input_ids = np.full((packs_per_bucket, max_length), pad_token_id, dtype=np.int32)
        labels = np.full((packs_per_bucket, max_length), IGNORE_INDEX, dtype=np.int32)
        doc_lens, doc_cats, num_tokens, per_cat = [], [], [], {}
        for row in range(packs_per_bucket):
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
            input_ids[row, :len(ids)] = ids
            labels[row, :len(ids)] = ids
            doc_lens.append(lens), doc_cats.append(cats), num_tokens.append(len(ids))
        name = contracts.bucket_name(k)
        table = contracts.pack_table(input_ids, labels, doc_lens, doc_cats, num_tokens)
        contracts.save_bucket(table, out / contracts.BUCKETS_DIR / name)
        rows.append({"name": name, "path": f"{contracts.BUCKETS_DIR}/{name}", "num_packs": packs_per_bucket,
                     "tokens": int(sum(num_tokens)), "tokens_per_category": dict(sorted(per_cat.items()))})
    contracts.write_manifest(out, {
        "max_length": max_length, "pad_token_id": pad_token_id, "vocab_size": vocab_size,
        "num_buckets": num_buckets, "buckets": rows, "categories": sorted(set(categories)),
        "synthetic": {"seed": seed, "packs_per_bucket": packs_per_bucket}})
    return out
