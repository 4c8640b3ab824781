"""Shardformer policies Graft hands HybridParallelPlugin (`custom_policy`) where colossalai 0.5.0's own get a family
wrong; every other family gets colossalai's auto policy (None here).

Qwen2 under tensor parallelism: colossalai's Qwen2ForCausalLMPolicy makes lm_head a plain column-parallel Linear1D_Col
(no output gather, whatever `parallel_output` says) and replaces the forward with one that expects a loss inside,
so a forward without labels returns each rank's slice of the vocabulary's logits (the trainer's per-token loss then
fails with "Target ... is out of bounds"). The policy below shards lm_head as the Llama and Mistral policies do
(VocabParallelLMHead1D, gathered unless parallel_output) and keeps transformers' forward, so tied embeddings stay one
tensor (VocabParallelEmbedding1D shards it in place; the head reuses the shard) and the logits are whole.
"""


def custom_policy(config, tp_size: int):
    """The policy for `config`'s model under tensor parallel size `tp_size`, or None for colossalai's own."""
    if tp_size == 1 or getattr(config, "model_type", None) != "qwen2":
        return None
    from colossalai.shardformer.layer import VocabParallelLMHead1D
    from colossalai.shardformer.modeling.qwen2 import get_lm_forward_with_dist_cross_entropy
    from colossalai.shardformer.policies.base_policy import SubModuleReplacementDescription
    from colossalai.shardformer.policies.qwen2 import Qwen2ForCausalLMPolicy
    from transformers.models.qwen2.modeling_qwen2 import Qwen2ForCausalLM

    dist_ce_code = get_lm_forward_with_dist_cross_entropy(None).__code__

    class GatheredQwen2ForCausalLMPolicy(Qwen2ForCausalLMPolicy):
        """colossalai's Qwen2 causal-LM policy with Llama's lm_head: vocabulary-parallel, gathered logits."""

        def module_policy(self):
            policy = super().module_policy()
            # colossalai keys this policy by class name: its import of Qwen2's attention classes fails on
            # transformers 4.51.3 (they were merged), so it falls back to the names.
            own = policy.get(Qwen2ForCausalLM, policy.get(Qwen2ForCausalLM.__name__))
            if not self.shard_config.enable_tensor_parallelism or own is None:
                return policy
            sc = self.shard_config
            own.sub_module_replacement = [
                SubModuleReplacementDescription(
                    suffix="lm_head", target_module=VocabParallelLMHead1D,
                    kwargs={"gather_output": not sc.parallel_output,
                            "make_vocab_size_divisible_by": sc.make_vocab_size_divisible_by,
                            "fp8_communication": sc.fp8_communication})
                if d.suffix == "lm_head" else d for d in own.sub_module_replacement]
            forward = (own.method_replacement or {}).get("forward")
            if getattr(forward, "__code__", None) is dist_ce_code:  # not the pipeline's forward: transformers' own
                del own.method_replacement["forward"]
            return policy

    return GatheredQwen2ForCausalLMPolicy()
