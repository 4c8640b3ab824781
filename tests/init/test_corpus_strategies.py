"""The strategies that read text or run the model (focus, token_distill, guarded), the simple ones added beside
them (noisy_mean, eeve), and the step-0 diagnostics: each computes what it says, checked against an independent
computation."""

import math

import pytest
import torch
from transformers import AutoTokenizer

from research.config.init import InitConfig
from research.config.model import ModelConfig
from research.init.corpus import load_corpus
from research.init.diagnostics import diagnose
from research.init.focus import sparsemax
from research.init.probe import final_hidden, logsumexp_rows, windows_of
from research.init.resize import resize_and_init
from research.init.splits import base_splits
from research.init.strategies import STRATEGIES, mean_all, subword_mean
from research.model.build import build_model


@pytest.fixture(scope="module")
def splits(small_tokenizer):
    proto, base = small_tokenizer["proto"], small_tokenizer["base"]
    return base_splits(base.SerializeToString(), [p.piece for p in proto.pieces[32000:]])


@pytest.fixture(scope="module")
def tok(small_tokenizer):
    return AutoTokenizer.from_pretrained(str(small_tokenizer["dir"]))


def tiny(seed=0, tied=False):
    return build_model(ModelConfig(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_key_value_heads=2,
                                   seed=seed, tie_word_embeddings=tied))


def config(small_inputs, strategy, **kw):
    return InitConfig(strategy=strategy, domain_text=str(small_inputs / "zh_train.txt"),
                      base_text=str(small_inputs / "en.txt"), corpus_max_chars=60000, focus_epochs=2,
                      distill_steps=15, distill_contexts=96, distill_batch=32, guard_tokens=2048, **kw)


def init(strategy, small_inputs, splits, tok, **kw):
    cfg = config(small_inputs, strategy, **kw)
    model = tiny()
    base = (model.get_input_embeddings().weight.detach().clone(), model.get_output_embeddings().weight.detach().clone())
    corpus = load_corpus(cfg, tok, 32000, splits, model)
    stats = resize_and_init(model, 32000 + len(splits), splits, cfg, corpus=corpus)
    return model, base, corpus, stats, cfg


def test_noisy_mean_is_mean_plus_unit_over_h_noise(small_inputs, splits, tok):
    model, (emb, _), _, _, _ = init("noisy_mean", small_inputs, splits, tok)
    new = model.get_input_embeddings().weight.detach()[32000:].double()
    noise = new - emb.double().mean(0)
    assert abs(float(noise.std()) / (1 / math.sqrt(16)) - 1) < 0.05
    assert float(noise.mean().abs()) < 0.01


def test_eeve_output_rows_are_the_first_subwords(small_inputs, splits, tok):
    model, (emb, head), _, _, _ = init("eeve", small_inputs, splits, tok)
    new_head = model.get_output_embeddings().weight.detach()[32000:]
    assert torch.equal(new_head, head[[s.clean_ids[0] for s in splits]])
    for k in (0, 7, len(splits) - 1):
        torch.testing.assert_close(model.get_input_embeddings().weight[32000 + k].detach(),
                                   emb[splits[k].clean_ids].double().mean(0).float(), rtol=0, atol=1e-6)


def simplex_projection(z: torch.Tensor) -> torch.Tensor:
    """Euclidean projection onto the simplex by bisection on the threshold (independent of sparsemax's sort)."""
    lo, hi = float(z.min()) - 1, float(z.max())
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if float(torch.clamp(z - tau, min=0).sum()) > 1 else (lo, tau)
    return torch.clamp(z - (lo + hi) / 2, min=0)


def test_sparsemax_is_the_simplex_projection(seed):
    z = torch.randn(20, 12, dtype=torch.float64) * 3
    out = sparsemax(z)
    for row, ref in zip(out, z, strict=True):
        torch.testing.assert_close(row, simplex_projection(ref), rtol=0, atol=1e-9)
    assert torch.allclose(out.sum(1), torch.ones(20, dtype=torch.float64)) and (out == 0).any()


def test_focus_rows_are_sparse_convex_combinations_of_shared_rows(small_inputs, splits, tok):
    model, (emb, head), corpus, stats, _ = init("focus", small_inputs, splits, tok)
    shared, idx, w = corpus.cache["focus"]
    report = stats["strategy_report"]["focus"]
    assert report["shared_tokens"] == len(shared) > 100
    known = w.sum(1) > 0
    assert torch.allclose(w[known].sum(1), torch.ones(int(known.sum()), dtype=torch.float64))
    assert (w >= 0).all() and 1 <= report["support_mean"] < w.shape[1]
    for name, base in (("embed_tokens", emb), ("lm_head", head)):
        weight = (model.get_input_embeddings() if name == "embed_tokens" else model.get_output_embeddings()).weight
        for k in torch.nonzero(known).flatten()[:5].tolist():
            ref = (base.double()[shared[idx[k]]] * w[k].unsqueeze(1)).sum(0)
            torch.testing.assert_close(weight[32000 + k].detach().double(), ref, rtol=0, atol=1e-6)
    # the auxiliary model is trained deterministically: the same text gives the same rows
    again, *_ = init("focus", small_inputs, splits, tok)
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_token_distill_fits_the_frequent_tokens(small_inputs, splits, tok):
    model, (emb, head), corpus, stats, cfg = init("token_distill", small_inputs, splits, tok)
    rep = stats["strategy_report"]["token_distill"]
    assert rep["contexts"] == cfg.distill_contexts and rep["tokens"] >= cfg.distill_contexts // 2
    assert rep["loss_last"] < rep["loss_first"]
    new = model.get_input_embeddings().weight.detach()[32000:]
    from research.init.strategies import InitContext

    start = subword_mean(InitContext(emb, splits, cfg, torch.Generator()))
    changed = (new != start).any(1)
    assert int(changed.sum()) == rep["tokens"]
    # the fitted tokens are the most frequent new tokens of the domain text
    counts = torch.bincount(torch.tensor([i for d in corpus.domain for i in d if i >= 32000]) - 32000,
                            minlength=len(splits))
    assert counts[changed].min() >= counts[~changed].max()
    assert torch.equal(model.get_output_embeddings().weight.detach()[32000:],
                       mean_all(InitContext(head, splits, cfg, torch.Generator())))


def test_guarded_caps_new_token_mass_in_base_contexts(small_inputs, splits, tok):
    model, (emb, head), corpus, stats, cfg = init("guarded", small_inputs, splits, tok)
    rep = stats["strategy_report"]["guarded"]
    assert rep["base_mass_before"] > rep["base_mass_after"]
    assert rep["reached"] == (rep["base_mass_after"] <= cfg.guard_mass)
    from research.init.strategies import InitContext

    shift = model.get_output_embeddings().weight.detach()[32000:].double() - \
        subword_mean(InitContext(head, splits, cfg, torch.Generator())).double()
    assert torch.allclose(shift, shift[:1].expand_as(shift), atol=1e-6)  # one vector moves every row
    # measured again, independently of the calibration's closed form: the new tokens' share of the softmax
    wins = windows_of([corpus.to_base(d) for d in corpus.base], corpus.bos(), 128, cfg.guard_tokens)
    h = final_hidden(model, wins)
    lse_all = logsumexp_rows(h, model.get_output_embeddings().weight.detach())
    lse_new = logsumexp_rows(h, model.get_output_embeddings().weight.detach()[32000:])
    assert float((lse_new - lse_all).exp().mean()) == pytest.approx(rep["base_mass_after"], rel=1e-3)
    if rep["reached"]:
        assert rep["base_mass_after"] == pytest.approx(cfg.guard_mass, rel=1e-3)


def test_corpus_strategy_without_corpus_is_an_error(splits):
    from research.errors import GraftError

    with pytest.raises(GraftError, match="init.domain_text"):
        resize_and_init(tiny(), 32000 + len(splits), splits, InitConfig(strategy="focus"))


def test_diagnostics(small_inputs, splits, tok, small_tokenizer, tmp_path):
    from research.config import to_object
    from research.eval import heldout
    from research.eval.inference import Scorer
    from research.tokenizer.hf_export import save_hf_tokenizer
    from tests.conftest import compose

    model, *_ = init("subword_mean", small_inputs, splits, tok)
    save_hf_tokenizer(small_tokenizer["base"], tmp_path / "base")
    base_tok = AutoTokenizer.from_pretrained(str(tmp_path / "base"))
    raw = compose("init_model", ["init=subword_mean", "init.diagnostics_chars=3000"])
    cfg = to_object(raw)
    texts = {"en": str(small_inputs / "en.txt"), "zh": str(small_inputs / "zh_heldout.txt")}
    corpus = load_corpus(config(small_inputs, "subword_mean"), tok, 32000, splits, model)
    diag = diagnose(model, tok, base_tok, corpus.to_base, cfg, texts, 32000, 32000 + len(splits))
    shift = diag["base_language_shift"]
    assert shift["kl_minus_formula_max"] < 1e-5 and shift["kl_mean"] > 0
    assert 0 < shift["new_token_mass"]["mean"] < 1
    assert diag["row_norms"]["lm_head"]["new"]["mean"] > 0 and len(diag["nearest"]) == 8
    assert all(len(n["nearest"]) == 5 for n in diag["nearest"])
    # the initialised model's held-out English equals a direct scoring of it
    text = heldout.read_text(texts["en"], 3000, "en")
    nll, n = heldout.score(Scorer(model, tok, 8, progress=False), heldout.windows(tok, text, 256))
    assert diag["heldout"]["en"]["init"] == pytest.approx(heldout.summarize(nll, n, text)["bits_per_byte"], rel=1e-9)
    # and the base numbers are the untouched base model's, read with the base tokenizer
    for lang in ("en", "zh"):
        text = heldout.read_text(texts[lang], 3000, lang)
        nll, n = heldout.score(Scorer(tiny().eval(), base_tok, 8, progress=False), heldout.windows(base_tok, text, 256))
        assert diag["heldout"][lang]["base"] == pytest.approx(heldout.summarize(nll, n, text)["bits_per_byte"],
                                                              rel=1e-5)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_every_strategy_initialises_with_a_corpus_and_gets_diagnostics(strategy, small_inputs, splits, tok):
    from research.config import to_object
    from tests.conftest import compose

    model, (emb, head), corpus, _, _ = init(strategy, small_inputs, splits, tok)
    assert torch.equal(model.get_input_embeddings().weight[:32000], emb)
    assert torch.equal(model.get_output_embeddings().weight[:32000], head)
    assert torch.isfinite(model.get_input_embeddings().weight).all()
    cfg = to_object(compose("init_model", [f"init={strategy}", "init.diagnostics_chars=600"]))
    diag = diagnose(model, tok, None, corpus.to_base, cfg, {"en": str(small_inputs / "en.txt")}, 32000,
                    32000 + len(splits))
    assert diag["heldout"]["en"]["init"] > 0 and diag["base_language_shift"]["kl_minus_formula_max"] < 1e-5
    assert set(diag["row_norms"]) == {"embed_tokens", "lm_head"} and len(diag["nearest"]) == 8


def test_jsonl_text_lines_without_text_are_counted_rejects(tmp_path, splits, tok):
    from research.init.corpus import read_lines
    from research.rejects import Rejects

    path = tmp_path / "domain.jsonl"
    path.write_text('{"text": "中国经济"}\n'
                    '{"source": "问：", "target": "人民日报"}\n'
                    "not json\n"
                    "[1, 2]\n"
                    '{"text": 5}\n'
                    '{"text": "  "}\n'
                    "\n"
                    '{"source": "", "target": "新闻"}\n', encoding="utf-8")
    rejects = Rejects(key="input")
    lines = read_lines(str(path), "init.domain_text", 1000, rejects)
    assert lines == ["中国经济", "问：人民日报", "新闻"]
    assert [(r["line"], r["reason"]) for r in rejects.rows] == [
        (3, "not JSON"), (4, "not a JSON object"), (5, "text field is not a string"), (6, "no text")]
    assert {r["input"] for r in rejects.rows} == {"init.domain_text"} and rejects.rows[0]["text"] == "not json"
    # load_corpus keeps them on the corpus, which init_model writes to rejects.jsonl and counts in summary.json
    cfg = InitConfig(strategy="focus", domain_text=str(path))
    assert load_corpus(cfg, tok, 32000, splits, tiny()).rejects.count("init.domain_text") == 4
