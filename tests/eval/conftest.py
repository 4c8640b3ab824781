"""A real (tiny, random) LlamaForCausalLM with the mistral-common LLaMA-format tokenizer, saved as an HF folder."""

import importlib.util
import os
from pathlib import Path

import pytest
import torch
import transformers

FIXTURES = Path(__file__).parent / "fixtures"


def package_file(package: str, *parts: str) -> Path:
    spec = importlib.util.find_spec(package)  # locates the data package without importing it
    assert spec is not None and spec.submodule_search_locations, f"{package} is not installed"
    return Path(list(spec.submodule_search_locations)[0], *parts)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny_llama")
    tok = transformers.LlamaTokenizerFast(
        vocab_file=str(package_file("mistral_common", "data", "tokenizer.model.v1")), from_slow=True,
        legacy=False, add_prefix_space=True, pad_token="<unk>")
    tok.save_pretrained(out)
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=2048, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = transformers.LlamaForCausalLM(config)
    # Larger output weights spread the logits, so near-ties (which float noise could flip) are rare.
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def loaded(model_dir):
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    return model, tok


WRITE_ONLY = Path("/proc/sys/vm/drop_caches")
"""A Linux kernel file of mode 0200: even root cannot open it for reading."""


def make_unreadable(path: Path) -> Path:
    """Turn `path` into a file that exists but cannot be read (PermissionError on open): chmod 000, or as root,
    who reads any file, a symlink to a write-only kernel file. Skips the test where neither is possible."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    if os.geteuid() != 0:
        path.write_text("unreadable\n", encoding="utf-8")
        path.chmod(0)
    elif WRITE_ONLY.exists():
        path.symlink_to(WRITE_ONLY)
    try:
        with open(path, "rb") as f:
            f.read(1)
    except PermissionError:
        return path
    except OSError:
        pass
    pytest.skip("cannot make an unreadable file here")
