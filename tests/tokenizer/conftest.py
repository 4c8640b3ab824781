"""Byte-level BPE bases for the tokenizer tests, all real `tokenizers` objects, built once per session:

- `tiny_bytelevel`: a GPT-2-style ByteLevel BPE (ByteLevel pre-tokenizer alone) trained with `tokenizers`' own
  trainer on a few KB of English Wikipedia;
- `tekken_dir`: mistral-common's real Tekken, converted from its tiktoken file;
- `llama3_dir`, `qwen2_dir`: folders in the Llama-3 and Qwen2 formats synthesised from Tekken's real vocabulary
  and merges (the real Llama-3 / Qwen2 files cannot be had offline): Llama-3's `ignore_merges`, split regex,
  special tokens after the vocabulary and a TemplateProcessing that adds `<|begin_of_text|>`; Qwen2's NFC
  normaliser, split regex, special tokens after the vocabulary and no BOS.
"""

import json
from pathlib import Path

import pytest

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                  r"\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                 r"\s*[\r\n]+|\s+(?!\S)|\s+")


def write_config(folder: Path, **config) -> None:
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


def train_tiny_bytelevel(d: Path) -> Path:
    """A 600-token GPT-2-style byte-level BPE folder, `<|endoftext|>` its one special token, trained by
    `tokenizers`' own trainer on 20 English Wikipedia passages."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from research.demo import package_data as pkg

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(pkg.english_passages(limit=20), trainer=trainer)
    d.mkdir(parents=True, exist_ok=True)
    tok.save(str(d / "tokenizer.json"))
    write_config(d, tokenizer_class="PreTrainedTokenizerFast", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    return d


@pytest.fixture(scope="session")
def tiny_bytelevel(tmp_path_factory):
    return train_tiny_bytelevel(tmp_path_factory.mktemp("tiny_bytelevel"))


@pytest.fixture(scope="session")
def tekken_dir(tmp_path_factory):
    from research.demo.package_data import package_path
    from research.tokenizer.tiktoken_format import convert_tiktoken

    d = tmp_path_factory.mktemp("tekken") / "tekken"
    convert_tiktoken(package_path("mistral_common", "data/tekken_240718.json"), d)
    return d


def _parts(pre_tokenizer, post_processor, normalizer=None) -> dict:
    """The JSON of pipeline parts, as `tokenizers` serialises them."""
    from tokenizers import Tokenizer
    from tokenizers.models import BPE

    t = Tokenizer(BPE())
    t.pre_tokenizer, t.post_processor = pre_tokenizer, post_processor
    if normalizer is not None:
        t.normalizer = normalizer
    data = json.loads(t.to_str())
    return {k: data[k] for k in ("normalizer", "pre_tokenizer", "post_processor")}


def from_tekken(tekken: Path, out: Path, specials: list[str], parts: dict, ignore_merges: bool) -> Path:
    """Tekken's ranks as ids 0.., its merges, the given specials as added tokens after the vocabulary only."""
    data = json.loads((tekken / "tokenizer.json").read_text(encoding="utf-8"))
    n = len(data["added_tokens"])
    vocab = {t: i - n for t, i in data["model"]["vocab"].items() if i >= n}
    data["model"].update(vocab=vocab, ignore_merges=ignore_merges)
    data["added_tokens"] = [{"id": len(vocab) + k, "content": s, "single_word": False, "lstrip": False,
                             "rstrip": False, "normalized": False, "special": True} for k, s in enumerate(specials)]
    data.update(parts)
    out.mkdir(parents=True)
    (out / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def llama3_dir(tekken_dir, tmp_path_factory):
    from tokenizers import Regex, pre_tokenizers, processors

    specials = ["<|begin_of_text|>", "<|end_of_text|>"] + [f"<|reserved_special_token_{i}|>" for i in range(6)]
    bos_id = 130072
    parts = _parts(
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        processors.Sequence([processors.ByteLevel(trim_offsets=False), processors.TemplateProcessing(
            single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
            special_tokens=[("<|begin_of_text|>", bos_id)])]))
    d = from_tekken(tekken_dir, tmp_path_factory.mktemp("llama3") / "llama3", specials, parts, ignore_merges=True)
    write_config(d, tokenizer_class="PreTrainedTokenizerFast", bos_token="<|begin_of_text|>",
                 eos_token="<|end_of_text|>", clean_up_tokenization_spaces=True, model_max_length=131072)
    return d


@pytest.fixture(scope="session")
def qwen2_dir(tekken_dir, tmp_path_factory):
    from tokenizers import Regex, normalizers, pre_tokenizers, processors

    parts = _parts(
        pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]),
        processors.ByteLevel(trim_offsets=False), normalizers.NFC())
    d = from_tekken(tekken_dir, tmp_path_factory.mktemp("qwen2") / "qwen2",
                    ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], parts, ignore_merges=False)
    write_config(d, tokenizer_class="Qwen2Tokenizer", bos_token=None, eos_token="<|endoftext|>",
                 pad_token="<|endoftext|>", unk_token=None, model_max_length=32768)
    return d


def bytelevel_cfg(base, inputs, out, *extra):
    """(typed config, raw) of an expansion of `base` on the small inputs: train_bpe on the news, jieba's words after."""
    from research.config import to_object
    from tests.conftest import compose

    raw = compose("expand_vocab", [
        f"run_root={out}", f"out_dir={out}/tokenizer", "tokenizer=bytelevel_bpe", f"tokenizer.base_path={base}",
        f"tokenizer.sources=[{{kind:train_bpe,paths:[{inputs}/zh_train.txt],vocab_size:300}},"
        f"{{kind:wordlist,paths:[{inputs}/words.txt]}}]",
        f"tokenizer.eval_texts={{zh:{inputs}/zh_heldout.txt,en:{inputs}/en.txt}}", "tokenizer.eval_max_chars=60000",
        *extra])
    return to_object(raw), raw


def run_bytelevel(base, inputs, out, *extra) -> Path:
    """Run the byte-level stage in this process; return the output folder."""
    from research.tokenizer.bytelevel_stage import run

    cfg, raw = bytelevel_cfg(base, inputs, out, *extra)
    run(cfg, raw)
    return Path(cfg.out_dir)
