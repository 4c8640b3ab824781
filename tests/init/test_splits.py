"""research.init.splits for byte-level expansions: each new token's base ids are its decomposition through the
new merges, whose bytes spell the token; research.init_model picks that path from the folder."""

import json

from tokenizers import Tokenizer

from research.init.splits import bytelevel_splits
from research.init_model import bytelevel_new_splits, special_token_ids, tokenizer_files
from research.tokenizer.bytelevel import load_bytelevel_base
from research.tokenizer.bytelevel_export import save_bytelevel
from research.tokenizer.continued_bpe import Growth, base_words, learn


def test_bytelevel_splits_decompose_to_base_ids(tmp_path, small_inputs):
    from tests.tokenizer.conftest import train_tiny_bytelevel

    base = load_bytelevel_base(train_tiny_bytelevel(tmp_path / "base"))
    lines = (small_inputs / "zh_train.txt").read_text(encoding="utf-8").splitlines()[:800]
    g = Growth.start(base.token_bytes, "han", 16)
    learn(g, base_words(base.tokenizer, lines, base.added), 150, 2)
    out = tmp_path / "tok"
    save_bytelevel(base, g, out)
    splits = bytelevel_splits(json.loads((out / "tokenizer.json").read_text(encoding="utf-8")), base.size)
    assert len(splits) == 150
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    for i, s in enumerate(splits, start=base.size):
        assert s.ids == s.clean_ids and all(j < base.size for j in s.ids) and len(s.ids) >= 2
        assert b"".join(base.token_bytes[j] for j in s.ids) == g.token_bytes[i]
        assert s.piece == tok.id_to_token(i)
    # what init_model sees in the folder
    assert tokenizer_files(out) == ("bytelevel", ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"])
    size, base_size, again = bytelevel_new_splits(out, base.size)
    assert size == base.size + 150 and base_size == base.size and [s.ids for s in again] == [s.ids for s in splits]
    assert special_token_ids(out) == (None, 0, 0)  # no pad; <|endoftext|> is both BOS and EOS


def test_sentencepiece_folder_keeps_its_files(small_tokenizer):
    kind, files = tokenizer_files(small_tokenizer["dir"])
    assert kind == "sentencepiece" and files[0] == "tokenizer.model"
