"""Shared fixtures: a real 32,000-piece LLaMA-format tokenizer folder (mistral-common's SentencePiece model)."""

import importlib.util
from pathlib import Path

import pytest


def _package_file(package: str, relative: str) -> Path:
    return Path(list(importlib.util.find_spec(package).submodule_search_locations)[0]) / relative


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    from transformers import LlamaTokenizerFast

    out = tmp_path_factory.mktemp("tokenizer")
    tok = LlamaTokenizerFast(vocab_file=str(_package_file("mistral_common", "data/tokenizer.model.v1")),
                             from_slow=True, legacy=False, add_prefix_space=True, pad_token="<unk>")
    tok.save_pretrained(str(out))
    return out
