"""Base models of the known families (llama, mistral, qwen2): build one from config, or load one from an HF folder."""
