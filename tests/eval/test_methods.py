"""Scores equal an independent computation (one full forward per sequence, no batching or padding), and do not
depend on the batch size."""

import math

import pytest
import torch

from research.config.eval import DatasetSpec
from research.eval import heldout
from research.eval.accuracy import accuracy
from research.eval.datasets import load_benchmark
from research.eval.inference import Scorer
from research.eval.methods import METHODS, letter_ids, parse_letter, score_questions
from research.eval.prompts import build_prompt
from research.rejects import Rejects
from tests.eval.conftest import FIXTURES


@pytest.fixture(scope="module")
def questions_and_prompts(loaded):
    _, tok = loaded
    out = []
    for name in ("mmlu", "cmmlu", "agieval"):
        path = FIXTURES / ("mmlu_native" if name == "mmlu" else name)
        b = load_benchmark(DatasetSpec(name=name, path=str(path), limit=2 if name == "mmlu" else 0), Rejects("dataset"),
                           dev_shots_from_test=1)
        for q in b.questions:
            p = build_prompt(q, b.dev.get(q.subject, [])[:2], lambda t: len(tok(t).input_ids), 2048, 40)
            out.append((q, p))
    return [q for q, _ in out], [p for _, p in out]


def run(loaded, qs, ps, batch_size):
    return run_methods(loaded, qs, ps, list(METHODS), batch_size)


def run_methods(loaded, qs, ps, methods, batch_size=16):
    model, tok = loaded
    return score_questions(qs, ps, Scorer(model, tok, batch_size, progress=False), methods, 2048, 6)


@pytest.fixture(scope="module")
def results_bs16(loaded, questions_and_prompts):
    return run(loaded, *questions_and_prompts, 16)


def full_logprobs(model, ids):
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)


def test_letter_ids_cover_both_forms(loaded):
    _, tok = loaded
    ids = letter_ids(tok, "A")
    assert tok.convert_tokens_to_ids("▁A") in ids and tok.convert_tokens_to_ids("A") in ids


def test_first_token_matches_independent_forward(loaded, questions_and_prompts, results_bs16):
    model, tok = loaded
    forms = {L: {tok.convert_tokens_to_ids("▁" + L), tok.convert_tokens_to_ids(L)} for L in "ABCDE"}
    for q, p in zip(*questions_and_prompts, strict=True):
        logp = full_logprobs(model, tok(p.text).input_ids)[-1]
        expect = [max(float(logp[i]) for i in forms[L]) for L in q.labels]
        got = results_bs16[q.id]["methods"]["first_token"]
        assert got["scores"] == pytest.approx(expect, abs=1e-5)
        assert got["pred"] == q.labels[max(range(len(expect)), key=expect.__getitem__)]


def test_loglik_matches_independent_forward(loaded, questions_and_prompts, results_bs16):
    model, tok = loaded
    for q, p in zip(*questions_and_prompts, strict=True):
        ctx = tok(p.text).input_ids
        sep = " " if q.language == "en" else ""
        expect = []
        for choice in q.choices:
            full = tok(p.text + sep + choice).input_ids
            assert full[: len(ctx)] == ctx  # prompts end in a cue, so the choice never merges into it
            logp = full_logprobs(model, full)
            expect.append(sum(float(logp[t - 1, full[t]]) for t in range(len(ctx), len(full))))
        m = results_bs16[q.id]["methods"]
        assert m["loglik"]["scores"] == pytest.approx(expect, abs=1e-4)
        assert m["loglik_norm"]["scores"] == pytest.approx([s / len(c) for s, c in zip(expect, q.choices, strict=True)], abs=1e-4)
        assert m["loglik_byte"]["scores"] == pytest.approx(
            [s / len(c.encode()) for s, c in zip(expect, q.choices, strict=True)], abs=1e-4)


def test_batch_size_does_not_change_results(loaded, questions_and_prompts, results_bs16):
    one = run(loaded, *questions_and_prompts, 1)
    assert one.keys() == results_bs16.keys()
    for qid, r in one.items():
        for m, v in r["methods"].items():
            w = results_bs16[qid]["methods"][m]
            assert v["pred"] == w["pred"], (qid, m)
            if "scores" in v:
                assert v["scores"] == pytest.approx(w["scores"], abs=1e-5)
            if "text" in v:
                assert v["text"] == w["text"]


def test_methods_run_in_registry_order(loaded, questions_and_prompts, results_bs16):
    # The order `eval.methods` lists them in does not change what is computed or the order results are written.
    qs, ps = questions_and_prompts
    rev = run_methods(loaded, qs[:2], ps[:2], list(reversed(METHODS)))
    for q in qs[:2]:
        assert list(rev[q.id]["methods"]) == list(results_bs16[q.id]["methods"])
    keys = list(next(r for r in results_bs16.values() if "loglik" in r["methods"])["methods"])
    assert [k for k in keys if k in METHODS] == list(METHODS) and keys[-1] == "combined"


def test_combined_is_exact_match_or_first_token(results_bs16):
    for r in results_bs16.values():
        m = r["methods"]
        ok = m["generate"]["pred"] == r["gold"] or m["first_token"]["pred"] == r["gold"]
        assert (m["combined"]["pred"] == r["gold"]) == ok


def test_parse_letter():
    assert parse_letter(" B. because", "ABCD") == "B"
    assert parse_letter("答案是C。", "ABCD") == "C"
    assert parse_letter("I think (D)", "ABCD") == "D"
    assert parse_letter("A", "BC") is None
    assert parse_letter("Answer unknown", "ABCD") is None


def test_metrics_micro_macro_and_categories():
    def r(subject, cat, pred):
        return {"subject": subject, "category": cat, "gold": "A", "methods": {"first_token": {"pred": pred}}}
    results = [r("s1", "STEM", "A"), r("s1", "STEM", "B"), r("s1", "STEM", "A"), r("s1", "STEM", "A"),
               r("s2", "other", "B")]
    m = accuracy(results)["first_token"]
    assert m["micro"] == pytest.approx(3 / 5) and m["macro"] == pytest.approx((0.75 + 0) / 2)
    assert m["categories"] == {"STEM": {"acc": 0.75, "n": 4}, "other": {"acc": 0.0, "n": 1}}


def test_heldout_bits_per_byte_matches_independent(loaded, tmp_path):
    model, tok = loaded
    text = "The river flows to the sea. 长江流入东海。" * 20
    wins = heldout.windows(tok, text, 64)
    assert all(len(w) <= 64 and w[0] == tok.bos_token_id for w in wins)
    assert sum(len(w) - 1 for w in wins) == len(tok(text, add_special_tokens=False).input_ids)
    nll, tokens = heldout.score(Scorer(model, tok, 3, progress=False), wins)
    expect = 0.0
    for w in wins:
        logp = full_logprobs(model, w)
        expect -= sum(float(logp[t - 1, w[t]]) for t in range(1, len(w)))
    assert nll == pytest.approx(expect, rel=1e-5)
    s = heldout.summarize(nll, tokens, text)
    assert s["bits_per_byte"] == pytest.approx(expect / math.log(2) / len(text.encode()), rel=1e-5)


def test_padding_token_never_reaches_a_score(loaded):
    model, tok = loaded
    seqs = [tok(t).input_ids for t in ("short", "a somewhat longer prompt here", "the longest prompt of the three, by far")]
    a = Scorer(model, tok, 3, progress=False)
    b = Scorer(model, tok, 3, progress=False)
    b.pad_id = tok.eos_token_id
    for x, y in zip(a.next_token_logprobs(seqs), b.next_token_logprobs(seqs), strict=True):
        assert torch.equal(x, y)
    alone = [Scorer(model, tok, 1, progress=False).next_token_logprobs([s])[0] for s in seqs]
    for x, y in zip(a.next_token_logprobs(seqs), alone, strict=True):
        assert torch.allclose(x, y, atol=1e-5)


def test_pad_falls_back_to_unk_then_eos():
    from types import SimpleNamespace

    from research.eval.inference import pad_id_of
    assert pad_id_of(SimpleNamespace(pad_token_id=None, unk_token_id=0, eos_token_id=2)) == 0
    assert pad_id_of(SimpleNamespace(pad_token_id=None, unk_token_id=None, eos_token_id=2)) == 2


def test_heldout_summary_of_a_huge_loss_is_infinite_perplexity_not_an_overflow():
    import math

    from research.eval import heldout

    s = heldout.summarize(1e6, 10, "abc")  # 1e5 nats per token: a model that puts ~0 on every target
    assert s["perplexity"] == math.inf and s["bits_per_byte"] == 1e6 / math.log(2) / 3


@pytest.mark.parametrize("elements", [1, 7 * 50, 1 << 22])
def test_target_logprob_sum_in_chunks_equals_one_log_softmax(monkeypatch, elements):
    """Scoring walks the logits a few positions at a time (one position, several, all at once): the same sum."""
    from research.eval import inference

    monkeypatch.setattr(inference, "SOFTMAX_ELEMENTS", elements)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(23, 50, generator=g).to(torch.bfloat16)
    target = torch.randint(0, 50, (23,), generator=g)
    expect = torch.log_softmax(logits.float(), dim=-1).double()[torch.arange(23), target].sum()
    assert inference.target_logprob_sum(logits, target) == pytest.approx(float(expect), rel=1e-6)
    assert inference.target_logprob_sum(logits[:0], target[:0]) == 0.0
