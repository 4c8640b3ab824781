"""Training forward of a transformers LlamaForCausalLM with the loss from kernels' fused linear cross-entropy.

With `model.fused_ce=true`, `apply_fused_ce(model, impl)` replaces the model's forward (this instance only):
calls that pass `labels` run the decoder, then compute the loss straight from the last hidden states and
`lm_head.weight`, so the [batch, seq, vocab] logits are never built and `logits` comes back as None. Calls
without labels (evaluation, generation) run the original forward unchanged.

Labels follow the transformers convention: position t predicts labels[t + 1] (the shift happens here), -100 is
ignored, and `num_items_in_batch` (passed by gradient-accumulating trainers) turns the mean into sum / count.
A batch whose labels are all ignored gives loss 0 and zero gradients.
"""

from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import CausalLMOutputWithPast

from kernels import linear_cross_entropy
from research.contracts import IGNORE_INDEX


def _fused_forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                   inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
                   output_hidden_states=None, cache_position=None, logits_to_keep=0, **kwargs):
    if labels is None:
        return self._forward_without_fused_ce(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            cache_position=cache_position, logits_to_keep=logits_to_keep, **kwargs,
        )
    num_items_in_batch = kwargs.pop("num_items_in_batch", None)
    shift_labels = kwargs.pop("shift_labels", None)
    outputs = self.model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
        past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache,
        output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        cache_position=cache_position, **kwargs,
    )
    hidden = outputs.last_hidden_state
    if shift_labels is None:
        # Same shift as transformers' ForCausalLMLoss: the last position has nothing to predict.
        shift_labels = F.pad(labels[..., 1:], (0, 1), value=IGNORE_INDEX)
    shift_labels = shift_labels.to(hidden.device)
    head = self.lm_head
    reduction = "mean" if num_items_in_batch is None else "sum"
    loss = linear_cross_entropy(
        hidden, head.weight, shift_labels, head.bias, ignore_index=IGNORE_INDEX, reduction=reduction,
        impl=self._fused_ce_impl,
    ).loss
    if num_items_in_batch is not None:
        count = torch.as_tensor(num_items_in_batch, device=loss.device)
        loss = loss / count.clamp(min=1)
    return CausalLMOutputWithPast(
        loss=loss, logits=None, past_key_values=outputs.past_key_values,
        hidden_states=outputs.hidden_states, attentions=outputs.attentions,
    )


def apply_fused_ce(model: torch.nn.Module, impl: str = "auto") -> torch.nn.Module:
    """Make `model`'s forward compute the training loss with the fused op (in place; returns the model).

    impl: "auto" (Triton on CUDA, chunked PyTorch elsewhere) | "triton" | "chunked". Idempotent.
    """
    if impl not in ("auto", "triton", "chunked"):
        raise ValueError(f"model.fused_ce_impl={impl!r}: must be one of ('auto', 'triton', 'chunked')")
    if not (hasattr(model, "model") and hasattr(model, "lm_head")):
        raise ValueError(f"fused cross-entropy needs a causal LM with .model and .lm_head, "
                         f"got {type(model).__name__}")
    if not hasattr(model, "_forward_without_fused_ce"):
        model._forward_without_fused_ce = model.forward
        model.forward = types.MethodType(_fused_forward, model)
    model._fused_ce_impl = impl
    return model
