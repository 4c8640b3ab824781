"""The training loss: per-token cross-entropy (plain), or the fused linear cross-entropy from kernels/."""

import logging

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100
log = logging.getLogger("graft")


def enable_fused_ce(model: torch.nn.Module, impl: str) -> bool:
    """Route `model(labels=...)` through research.model.fused_ce; False (plain loss) when it is not importable."""
    try:
        from research.model.fused_ce import apply_fused_ce
    except ImportError as e:
        log.warning("model.fused_ce=true but research.model.fused_ce is unavailable (%s): using the plain loss", e)
        return False
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
