"""The training loss: per-token cross-entropy (plain), or the fused linear cross-entropy from kernels/."""

import types

import torch
import torch.nn.functional as F

from research.contracts import IGNORE_INDEX


def enable_fused_ce(model: torch.nn.Module, impl: str) -> bool:
    """Route `model(labels=...)` through research.model.fused_ce; True: the forward now returns the fused loss.

    Imported here, not at the top: the plain loss needs neither kernels/ nor Triton. An import failure is an error
    (model.fused_ce=true asked for the fused loss), never a silent fall-back to the plain one.
    """
    from research.model.fused_ce import apply_fused_ce

    apply_fused_ce(model, impl)
    return True


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[B, L] loss of predicting labels[t + 1] from position t (0 where ignored, and at the last position)."""
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
    loss = F.cross_entropy(logits.float().flatten(0, 1), shifted.flatten(), ignore_index=IGNORE_INDEX,
                           reduction="none")
    return loss.view_as(labels)


def forward_loss(model, batch: dict, fused: bool):
    """(mean loss over this micro-batch's predicted tokens, per-token losses or None, predicted-token count).

    The mean divides by max(count, 1): a micro-batch whose labels are all ignored gives loss 0 and zero
    gradients instead of 0/0 = NaN.
    """
    kw = {k: batch[k] for k in ("position_ids", "attention_mask") if k in batch}
    labels = batch["labels"]
    count = int((labels[:, 1:] != IGNORE_INDEX).sum())
    if fused:
        out = model(input_ids=batch["input_ids"], labels=labels, use_cache=False, **kw)
        return out.loss, None, count
    logits = model(input_ids=batch["input_ids"], use_cache=False, **kw).logits
    per_token = token_losses(logits, labels)
    return per_token.sum() / max(count, 1), per_token.detach(), count


def accumulate(sums: torch.Tensor, loss: torch.Tensor, per_token, count: int, batch: dict, pad_token_id: int,
               ncat: int) -> None:
    """Add one micro-batch to a step's statistics.

    `sums` holds [loss x count, count, per-category loss sums, per-category counts, real (non-pad) tokens].
    """
    sums[0] += float(loss.detach()) * count
    sums[1] += count
    sums[-1] += int((batch["input_ids"] != pad_token_id).sum())
    if per_token is None:
        return
    cat = F.pad(batch["category"][:, 1:], (0, 1), value=-1)
    valid = F.pad(batch["labels"][:, 1:], (0, 1), value=IGNORE_INDEX) != IGNORE_INDEX
    for c in range(ncat):
        sel = (cat == c) & valid
        sums[2 + c] += float(per_token[sel].sum())
        sums[2 + ncat + c] += int(sel.sum())


def defer_lm_head(model: torch.nn.Module) -> torch.nn.Module:
    """Make the (pipeline-sharded) model's lm_head return its input, so the last stage's "logits" are the final
    hidden states and the criterion computes the loss with the fused op; returns the head, whose weight (and
    bias) stay the model's parameters. colossalai's PaddingLMHead keeps `old_num_embeddings` real rows."""
    head = model.lm_head
    head.forward = types.MethodType(lambda self, hidden: hidden, head)
    return head


class PipelineLoss:
    """Criterion for `booster.execute_pipeline`, called on the last pipeline stage once per micro-batch, in order.

    The pipeline hands the model only its inputs; labels and categories of micro-batch i are rows
    [i * size, (i + 1) * size) of the step's batch, checked against the input ids the pipeline actually used.
    Each call returns that micro-batch's mean loss (the schedule divides it by the number of micro-batches,
    as gradient accumulation does) and adds it to the step's statistics. With `head` (see defer_lm_head) the
    model returned hidden states and the loss is kernels' fused linear cross-entropy over the head's real rows
    (no per-category losses then, as with the fused loss elsewhere).
    """

    def __init__(self, batch: dict, size: int, sums: torch.Tensor, pad_token_id: int, ncat: int,
                 head: torch.nn.Module | None = None, impl: str = "auto"):
        self.batch, self.size, self.sums, self.pad, self.ncat = batch, size, sums, pad_token_id, ncat
        self.head, self.impl = head, impl
        self.calls = 0

    def __call__(self, outputs, micro_batch: dict) -> torch.Tensor:
        rows = slice(self.calls * self.size, (self.calls + 1) * self.size)
        self.calls += 1
        part = {k: self.batch[k][rows] for k in ("input_ids", "labels", "category")}
        if not torch.equal(micro_batch["input_ids"], part["input_ids"]):
            raise RuntimeError(f"pipeline micro-batch {self.calls - 1} is not rows {rows.start}:{rows.stop} of the "
                               "step's batch (the schedule changed its order)")
        labels = part["labels"]
        count = int((labels[:, 1:] != IGNORE_INDEX).sum())
        if self.head is not None:
            from kernels import linear_cross_entropy

            rows = getattr(self.head, "old_num_embeddings", self.head.weight.shape[0])
            bias = self.head.bias[:rows] if self.head.bias is not None else None
            shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)
            loss = linear_cross_entropy(outputs.logits, self.head.weight[:rows], shifted, bias,
                                        ignore_index=IGNORE_INDEX, impl=self.impl).loss
            accumulate(self.sums, loss, None, count, part, self.pad, self.ncat)
            return loss
        per_token = token_losses(outputs.logits, labels)
        loss = per_token.sum() / max(count, 1)
        accumulate(self.sums, loss, per_token.detach(), count, part, self.pad, self.ncat)
        return loss
