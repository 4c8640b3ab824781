"""Pre-train the demo's tiny base model briefly, so it stands in for LLaMA-2 rather than for noise.

A base that never saw Chinese has random rows for the Chinese characters and bytes its tokenizer has, which
makes any comparison of init strategies meaningless. LLaMA-2 saw about 0.13 % Chinese; the stand-in sees
`zh_share` (default 2 %) People's Daily text beside English Wikipedia passages, so its character and byte
rows carry some meaning for subword-mean initialisation to transfer.

This is the demo's input builder, not the recipe's training stage (`research.train`): one process, plain
AdamW, fixed-length packed sequences from the base tokenizer. The loss comes from the project's fused linear
cross-entropy (`kernels.linear_cross_entropy`, chunked on CPU), which never builds the [batch, seq, vocab] logits:
over a 32,000-row head that is most of a step's time (docs/results.md, "Fused cross-entropy on a CPU").
"""

import logging
import math
import random
import time

import torch
from tqdm import tqdm

from kernels import linear_cross_entropy

log = logging.getLogger(__name__)


def pack_stream(docs: list[list[int]], seq_len: int, eos: int) -> torch.Tensor:
    flat: list[int] = []
    for ids in docs:
        flat += ids + [eos]
    n = len(flat) // (seq_len + 1)
    return torch.tensor(flat[: n * (seq_len + 1)], dtype=torch.long).view(n, seq_len + 1)


def step_loss(model, batch: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of packed rows [B, seq_len + 1]: inputs batch[:, :-1], targets batch[:, 1:]."""
    hidden = model.model(input_ids=batch[:, :-1]).last_hidden_state
    return linear_cross_entropy(hidden, model.lm_head.weight, batch[:, 1:], model.lm_head.bias, impl="chunked").loss


def pretrain(model, tokenizer, english: list[str], chinese: list[str], *, steps: int, zh_share: float,
             seq_len: int = 128, batch_size: int = 8, lr: float = 3e-3, seed: int = 0) -> dict:
    """Train `model` in place; return the loss curve's key figures."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    en_ids = [tokenizer.encode(t, add_special_tokens=True) for t in english]
    en_tokens = sum(map(len, en_ids))
    # Take Chinese paragraphs until they make `zh_share` of all tokens.
    zh_ids, zh_tokens = [], 0
    target_zh = en_tokens * zh_share / max(1e-9, 1.0 - zh_share)
    for t in chinese:
        if zh_tokens >= target_zh:
            break
        ids = tokenizer.encode(t, add_special_tokens=True)
        zh_ids.append(ids)
        zh_tokens += len(ids)
    docs = en_ids + zh_ids
    rng.shuffle(docs)
    data = pack_stream(docs, seq_len, tokenizer.eos_token_id)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    warmup = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))))
    model.train()
    losses = []
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    bar = tqdm(range(steps), desc="pre-train base", disable=None, mininterval=5)
    t0 = time.perf_counter()
    for step in bar:
        idx = order[(torch.arange(batch_size) + step * batch_size) % len(data)]
        batch = data[idx]
        loss = step_loss(model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return {"steps": steps, "sequences": len(data), "seq_len": seq_len, "batch_size": batch_size,
            "en_tokens": en_tokens, "zh_tokens": zh_tokens, "zh_share": round(zh_tokens / (en_tokens + zh_tokens), 4),
            "loss_first": losses[0] if losses else None, "loss_last": sum(losses[-10:]) / max(1, len(losses[-10:])),
            "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
