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


def lr_factor(step: int, steps: int, final_lr: float) -> float:
    """5 % linear warm-up, then cosine from 1 down to `final_lr` (a fraction of the peak) at the last step."""
    warmup = max(1, steps // 20)
    return min(1.0, (step + 1) / warmup) * (final_lr + (1.0 - final_lr) * 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps)))


def permutation(n: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))


def batch_rows(data: torch.Tensor, order: torch.Tensor, long_data: torch.Tensor | None,
               long_order: torch.Tensor | None, *, step: int, steps: int, long_steps: int,
               batch_size: int) -> torch.Tensor:
    """Step `step`'s rows: `batch_size` rows of `data`, or in the last `long_steps` steps half as many rows of
    `long_data` (rows twice as long: the same tokens per step). Each stream walks its own permutation (`order`,
    `long_order`) and wraps around at its end."""
    if long_data is not None and step >= steps - long_steps:
        rows, perm, n, k = long_data, long_order, batch_size // 2, step - (steps - long_steps)
    else:
        rows, perm, n, k = data, order, batch_size, step
    return rows[perm[(torch.arange(n) + k * n) % len(rows)]]


def pretrain(model, tokenizer, english: list[str], chinese: list[str], *, steps: int, zh_share: float,
             seq_len: int = 128, batch_size: int = 8, lr: float = 3e-3, final_lr: float = 0.1,
             long_share: float = 0.0, seed: int = 0) -> dict:
    """Train `model` in place; return the loss curve's key figures. The last `long_share` of the steps train on
    rows of 2 x `seq_len` tokens (half as many), so the base also learns the longer distances it is scored at."""
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
    long_steps = round(steps * long_share)
    long_data = pack_stream(docs, 2 * seq_len, tokenizer.eos_token_id) if long_steps else None
    order = permutation(len(data), seed)
    long_order = permutation(len(long_data), seed) if long_steps else None
    # fused: one kernel per step over every parameter, not a loop of small element-wise ops per tensor.
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, steps, final_lr))
    model.train()
    losses = []
    bar = tqdm(range(steps), desc="pre-train base", disable=None, mininterval=5)
    t0 = time.perf_counter()
    for step in bar:
        batch = batch_rows(data, order, long_data, long_order, step=step, steps=steps, long_steps=long_steps,
                           batch_size=batch_size)
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
            "long_steps": long_steps, "final_lr": final_lr,
            "en_tokens": en_tokens, "zh_tokens": zh_tokens, "zh_share": round(zh_tokens / (en_tokens + zh_tokens), 4),
            "loss_first": losses[0] if losses else None, "loss_last": sum(losses[-10:]) / max(1, len(losses[-10:])),
            "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads()}
