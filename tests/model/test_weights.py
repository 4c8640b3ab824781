"""research.model.weights on real files: models saved with save_pretrained (whole and sharded), then truncated,
overwritten with garbage, given stray bytes, a broken index, a folder or an unreadable file in their place. The
check must fail exactly where safetensors would, with one line naming the file, without loading a tensor; and
`python -m research.init_model` on such a base model is one line, exit 2, nothing written."""

import json
import os
import struct

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizerFast

from research.errors import GraftError
from research.model.weights import INDEX, check_readable, check_weights
from tests.conftest import assert_one_line_error, run_app
from tests.eval.conftest import make_unreadable, package_file


def tiny_model(folder, **save_kwargs):
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True, **save_kwargs)
    return folder


def safetensors_loads(path) -> bool:
    try:
        with safe_open(str(path), "pt") as f:
            for name in f.keys():
                f.get_tensor(name)
    except Exception:  # SafetensorError, or OSError for an unreadable file
        return False
    return True


def problem(folder, key="model.path") -> str:
    with pytest.raises(GraftError) as e:
        check_weights(folder, key)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{key}={str(folder)!r}: "), message
    return message


def test_a_saved_model_passes(tmp_path):
    folder = tiny_model(tmp_path / "m")
    assert check_weights(folder) == [folder / "model.safetensors"]
    assert check_weights(tmp_path) == []  # no weights: nothing to check (callers that need them say so)


def test_every_truncation_fails_where_safetensors_fails(tmp_path):
    save_file({"a": torch.zeros(3, 4), "b": torch.ones(5, dtype=torch.bfloat16), "c": torch.arange(2)},
              tmp_path / "whole.safetensors")
    data = (tmp_path / "whole.safetensors").read_bytes()
    folder = tmp_path / "m"
    folder.mkdir()
    for n in range(len(data)):
        (folder / "model.safetensors").write_bytes(data[:n])
        assert not safetensors_loads(folder / "model.safetensors")
        message = problem(folder)
        assert "model.safetensors: truncated" in message, (n, message)
    (folder / "model.safetensors").write_bytes(data)
    assert safetensors_loads(folder / "model.safetensors") and check_weights(folder)


def test_truncated_model_names_the_file_and_both_sizes(tmp_path):
    folder = tiny_model(tmp_path / "m")
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    with open(weights, "r+b") as f:
        f.truncate(size // 2)
    message = problem(folder)
    (n,) = struct.unpack("<Q", weights.read_bytes()[:8])
    assert f"model.safetensors: truncated (its header lists {size - 8 - n} bytes of tensor data, the file holds " \
           f"{size // 2 - 8 - n}; {size // 2} bytes, expected {size})" in message, message


@pytest.mark.parametrize("content, expected", [
    (os.urandom(4096), "not a safetensors file (its first 8 bytes give a header length of"),
    (b"<html><body>404 Not Found</body></html>\n" * 20, "not a safetensors file"),
    (struct.pack("<Q", 12) + b"not json!!!!" + b"\0" * 8, "not a safetensors file (its header is not a JSON object)"),
    (struct.pack("<Q", 2) + b"[]", "not a safetensors file (its header is not a JSON object)"),
])
def test_garbage_is_not_a_safetensors_file(tmp_path, content, expected):
    (tmp_path / "model.safetensors").write_bytes(content)
    assert not safetensors_loads(tmp_path / "model.safetensors")
    assert expected in problem(tmp_path)


def raw_file(path, header: dict, data: bytes):
    text = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)


@pytest.mark.parametrize("header, data, expected", [
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 12,
     "corrupt (4 stray bytes after the last tensor's data)"),
    ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12,
     "corrupt header (tensor 'b' starts at byte 4 of the data, expected 8)"),
    ({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8,
     "corrupt header (tensor 'a', F32 [3], is given 8 bytes)"),
    ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, b"\0" * 8,
     "not a safetensors file (bad header entry for 'a')"),
])
def test_header_that_does_not_match_the_data(tmp_path, header, data, expected):
    raw_file(tmp_path / "model.safetensors", header, data)
    assert not safetensors_loads(tmp_path / "model.safetensors")
    assert expected in problem(tmp_path)


def test_sharded_model_checks_every_shard_and_the_index(tmp_path):
    folder = tiny_model(tmp_path / "m", max_shard_size="8KB")
    index = json.loads((folder / INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 3
    assert sorted(p.name for p in check_weights(folder)) == shards
    with open(folder / shards[1], "r+b") as f:
        f.truncate(f.seek(0, 2) - 1)
    assert f"{shards[1]}: truncated" in problem(folder)


def test_broken_index(tmp_path):
    folder = tiny_model(tmp_path / "m", max_shard_size="8KB")
    index = json.loads((folder / INDEX).read_text())
    shards = sorted(set(index["weight_map"].values()))
    (folder / shards[-1]).rename(tmp_path / "aside.safetensors")
    assert f"{INDEX} names shard {shards[-1]!r}, which is missing" in problem(folder)
    (tmp_path / "aside.safetensors").rename(folder / shards[-1])

    tensor = next(t for t, s in index["weight_map"].items() if s == shards[0])
    moved = dict(index, weight_map=dict(index["weight_map"], **{tensor: shards[1]}))
    (folder / INDEX).write_text(json.dumps(moved))
    assert f"{INDEX} maps tensor {tensor!r} to {shards[1]}, which does not hold it" in problem(folder)

    (folder / INDEX).write_text('{"weight_map": {"a": "model-00001')
    assert f"{INDEX}: not JSON" in problem(folder)


def test_unreadable_weight_file(tmp_path):
    folder = tmp_path / "m"
    (folder / "model.safetensors").mkdir(parents=True)  # a folder where the weights should be
    assert "model.safetensors: cannot read (Is a directory)" in problem(folder, "eval.model_path")
    (folder / "model.safetensors").rmdir()
    make_unreadable(folder / "model.safetensors")
    assert "model.safetensors: cannot read (Permission denied)" in problem(folder, "eval.model_path")


def test_check_readable_names_the_file(tmp_path):
    folder = tiny_model(tmp_path / "m")
    check_readable(folder, "eval.model_path")
    (folder / "tokenizer.json").mkdir()
    with pytest.raises(GraftError, match=r"^eval.model_path='.*': tokenizer.json: not a regular file$"):
        check_readable(folder, "eval.model_path")
    (folder / "tokenizer.json").rmdir()
    make_unreadable(folder / "config.json")
    with pytest.raises(GraftError, match=r"^eval.model_path='.*': config.json: cannot read \(Permission denied\)$"):
        check_readable(folder, "eval.model_path")
    check_readable(folder, "paths.tokenizer", ("tokenizer.model", "generation_config.json"))  # only these


# ---- python -m research.init_model on a bad base model ---------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    """An HF tokenizer folder with the files init_model copies (a real 32,000-piece LLaMA-format BPE model)."""
    out = tmp_path_factory.mktemp("tok")
    tok = LlamaTokenizerFast(vocab_file=str(package_file("mistral_common", "data", "tokenizer.model.v1")),
                             from_slow=True, legacy=False)
    tok.save_pretrained(out)
    return out


def test_init_model_on_a_truncated_base_model_is_one_line(tmp_path, tokenizer_dir):
    base = tiny_model(tmp_path / "base")
    with open(base / "model.safetensors", "r+b") as f:
        f.truncate(1000)
    proc = run_app("init_model", f"run_root={tmp_path}", f"paths.tokenizer={tokenizer_dir}", f"model.path={base}")
    assert_one_line_error(proc, f"model.path={str(base)!r}", "model.safetensors: truncated")
    assert "SafetensorError" not in proc.stderr
    assert not (tmp_path / "model").exists()


def test_init_model_with_an_unreadable_tokenizer_file_is_one_line(tmp_path, tokenizer_dir):
    tok = tmp_path / "tok"
    tok.mkdir()
    for f in tokenizer_dir.iterdir():
        (tok / f.name).symlink_to(f)
    make_unreadable(tok / "special_tokens_map.json")
    proc = run_app("init_model", f"run_root={tmp_path}", f"paths.tokenizer={tok}",
                   f"model.path={tiny_model(tmp_path / 'base')}")
    assert_one_line_error(proc, f"paths.tokenizer={str(tok)!r}: special_tokens_map.json: cannot read")
    assert not (tmp_path / "model").exists()
