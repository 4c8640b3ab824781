"""Token distillation (AweDist, 2025): fit each new input row so that the model reads the new token as it reads the
token's base split.

Contexts come from init.domain_text cut by the expanded tokenizer: the most frequent new tokens first,
init.distill_contexts_per_token occurrences each, until init.distill_contexts; each context is up to
init.distill_context_tokens tokens on each side of the occurrence, with every other new token replaced by its base
split. The teacher is the base model on `prefix + split + suffix`; the student is the same frozen model on
`prefix + new token + suffix`, whose one trainable input row starts at the subword mean. The loss is the mean
squared error of the last hidden states, from the new token (aligned with the split's last piece) to the end of the
suffix. Adam runs init.distill_steps steps of init.distill_batch contexts. Tokens with no context keep their subword
mean.
"""

import logging
from collections import Counter

import torch

from research.init.probe import pad_right

log = logging.getLogger("graft.init")


def _contexts(corpus, cfg) -> list[tuple[list[int], int, list[int]]]:
    """(base-id prefix, new id, base-id suffix) per chosen occurrence."""
    base, T = corpus.base_size, cfg.distill_context_tokens
    freq = Counter(i for doc in corpus.domain for i in doc if i >= base)
    order = sorted(freq, key=lambda i: (-freq[i], i))
    budget = {}
    for i in order:
        if sum(budget.values()) >= cfg.distill_contexts:
            break
        budget[i] = min(cfg.distill_contexts_per_token, freq[i], cfg.distill_contexts - sum(budget.values()))
    out = []
    for doc in corpus.domain:
        for p, i in enumerate(doc):
            if budget.get(i, 0) > 0:
                budget[i] -= 1
                prefix = corpus.to_base(doc[max(0, p - T):p])[-T:]
                suffix = corpus.to_base(doc[p + 1:p + 1 + T])[:T]
                out.append((prefix, i, suffix))
    return out


def distill_rows(ctx) -> torch.Tensor:
    from research.init.strategies import subword_mean

    corpus, cfg = ctx.corpus, ctx.cfg
    start = subword_mean(ctx).float()
    contexts = _contexts(corpus, cfg)
    report = corpus.cache.setdefault("report", {})
    if not contexts:
        report["token_distill"] = {"tokens": 0, "contexts": 0}
        log.warning("token_distill: no new token occurs in init.domain_text; every row keeps its subword mean")
        return start.to(ctx.base_rows.dtype)
    model, bos, base = corpus.model, corpus.bos(), corpus.base_size
    decoder = model.get_decoder()
    emb = ctx.base_rows.float()
    tokens = sorted({i for _, i, _ in contexts})
    slot = {t: k for k, t in enumerate(tokens)}
    rows = torch.nn.Parameter(start[[t - base for t in tokens]].clone())

    teacher_seqs, student_seqs, spans = [], [], []
    for prefix, i, suffix in contexts:
        split = corpus.splits[i - base].ids
        teacher_seqs.append(bos + prefix + split + suffix)
        student_seqs.append(bos + prefix + [i] + suffix)
        spans.append((len(bos) + len(prefix), len(split), 1 + len(suffix)))  # new-token position, split length, aligned
    was_training, grads = model.training, [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        targets = []
        with torch.no_grad():
            for b in range(0, len(contexts), cfg.distill_batch):
                ids, mask = pad_right(teacher_seqs[b:b + cfg.distill_batch])
                h = decoder(input_ids=ids, attention_mask=mask).last_hidden_state.float()
                for r, (at, n, k) in enumerate(spans[b:b + cfg.distill_batch]):
                    targets.append(h[r, at + n - 1:at + n - 1 + k])
        opt = torch.optim.Adam([rows], lr=cfg.distill_lr * float(emb.std()))
        order = torch.randperm(len(contexts), generator=ctx.generator).tolist()
        losses = []
        with torch.enable_grad():
            for step in range(cfg.distill_steps):
                pick = [order[(step * cfg.distill_batch + j) % len(order)] for j in range(min(cfg.distill_batch,
                                                                                               len(order)))]
                ids, mask = pad_right([student_seqs[c] for c in pick])
                x = emb[ids.clamp(max=base - 1)]
                at = torch.tensor([spans[c][0] for c in pick])
                x = x.index_put((torch.arange(len(pick)), at), rows[[slot[contexts[c][1]] for c in pick]])
                h = decoder(inputs_embeds=x, attention_mask=mask).last_hidden_state.float()
                loss = torch.stack([((h[r, spans[c][0]:spans[c][0] + spans[c][2]] - targets[c]) ** 2).mean()
                                    for r, c in enumerate(pick)]).mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
    finally:
        for p, g in zip(model.parameters(), grads, strict=True):
            p.requires_grad_(g)
        model.train(was_training)
    out = start.clone()
    out[[t - base for t in tokens]] = rows.detach()
    report["token_distill"] = {"tokens": len(tokens), "contexts": len(contexts), "steps": cfg.distill_steps,
                               "loss_first": losses[0], "loss_last": losses[-1]}
    log.info("token_distill: %d tokens from %d contexts, loss %.4g -> %.4g", len(tokens), len(contexts), losses[0],
             losses[-1])
    return out.to(ctx.base_rows.dtype)
