"""Base models: build a LlamaForCausalLM from config, or load one from an HF folder."""
