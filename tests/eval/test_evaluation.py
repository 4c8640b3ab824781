"""`python -m research.evaluate` end to end: outputs, a 2-process gloo run equal to 1 process, one-line errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from research.cli import CONF_DIR
from research.config import to_object
from research.errors import GraftError
from research.eval.datasets import load_benchmark
from research.eval.evaluation import run
from research.rejects import Rejects
from tests.conftest import assert_one_line_error
from tests.eval.conftest import FIXTURES, make_unreadable

ROOT = Path(__file__).resolve().parents[2]
HELDOUT = "The river flows to the sea and the sea is wide. " * 200  # several windows: sharded across ranks


def cli(*args, nproc=1, timeout=300):
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1", WANDB_SILENT="true")
    launcher = [sys.executable, "-m", "research.evaluate"]
    if nproc > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                    "-m", "research.evaluate"]
    return subprocess.run(launcher + list(args), cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def quick(tmp_path, model_dir, name, *extra):
    text = tmp_path / "en.txt"
    text.write_text(HELDOUT, encoding="utf-8")
    return (f"run_root={tmp_path}", "eval=mmlu_quick", f"eval.model_path={model_dir}", f"out_dir={tmp_path / name}",
            "eval.datasets.0.limit=2", f"+eval.heldout_texts.en={text}", *extra)


@pytest.fixture(scope="module")
def one_process(tmp_path_factory, model_dir):
    tmp = tmp_path_factory.mktemp("cli")
    r = cli(*quick(tmp, model_dir, "eval1", "logger=wandb_offline"))
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "eval1"


def test_outputs(one_process):
    out = one_process
    for name in ("results.json", "table.md", "mmlu.png", "summary.json", "config.yaml", "rejects.jsonl"):
        assert (out / name).is_file(), name
    assert (out / "mmlu.png").read_bytes()[:4] == b"\x89PNG"
    results = json.loads((out / "results.json").read_text())
    qs = results["datasets"]["mmlu"]["questions"]
    assert len(qs) == 8 and len({q["id"] for q in qs}) == 8
    assert set(qs[0]["methods"]) == {"first_token", "loglik", "loglik_norm", "loglik_byte", "generate", "combined"}
    assert all(len(q["prompt_sha256"]) == 16 and q["gold"] in "ABCD" for q in qs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["questions"] == 8 and summary["rejected"] == 2 and summary["processes"] == 1
    assert 0 < summary["heldout"]["en"]["bits_per_byte"] < 100
    assert set(summary["datasets"]["mmlu"]["first_token"]["categories"]) == {"STEM", "humanities", "other",
                                                                             "social sciences"}
    assert [json.loads(line)["line"] for line in (out / "rejects.jsonl").read_text().splitlines()] == [11777, 12794]
    assert "| first-token |" in (out / "table.md").read_text() and "## held-out text" in (out / "table.md").read_text()
    assert list((out / "wandb").glob("offline-run-*")), "W&B offline run missing"


@pytest.mark.slow
def test_two_processes_match_one(tmp_path, model_dir, one_process):
    r = cli(*quick(tmp_path, model_dir, "eval2", "logger=none"), nproc=2)
    assert r.returncode == 0, r.stderr[-3000:]
    one = json.loads((one_process / "results.json").read_text())
    two = json.loads((tmp_path / "eval2" / "results.json").read_text())
    q1, q2 = one["datasets"]["mmlu"]["questions"], two["datasets"]["mmlu"]["questions"]
    assert [q["id"] for q in q1] == [q["id"] for q in q2]
    for a, b in zip(q1, q2, strict=True):
        assert a["prompt_sha256"] == b["prompt_sha256"]
        for m, v in a["methods"].items():
            assert v["pred"] == b["methods"][m]["pred"]
            if "scores" in v:
                assert v["scores"] == pytest.approx(b["methods"][m]["scores"], rel=1e-6, abs=1e-5)  # sums of float32 terms
    assert json.loads((tmp_path / "eval2" / "summary.json").read_text())["processes"] == 2
    assert two["heldout"]["en"]["tokens"] == one["heldout"]["en"]["tokens"] > 2048
    assert two["heldout"]["en"]["bits_per_byte"] == pytest.approx(one["heldout"]["en"]["bits_per_byte"], rel=1e-5)


@pytest.mark.parametrize("args, message", [
    (("eval.model_path={tmp}/missing",), "error: eval.model_path='{tmp}/missing': not found"),
    (("eval.model_path={model}", "eval.datasets=[{{name: mmmlu}}]"),
     "error: eval.datasets[].name='mmmlu': unknown dataset; known: mmlu, cmmlu, ceval, agieval, gaokao, generic"),
    (("eval=cmmlu", "eval.model_path={model}"), "error: eval.datasets[cmmlu].path is required"),
    (("eval.model_path={model}", "eval.datasets=[{{name: generic, path: {tmp}/nope.jsonl}}]"),
     "error: eval.datasets[generic].path='{tmp}/nope.jsonl': not found"),
])
def test_bad_input_is_one_line_exit_2(tmp_path, model_dir, args, message):
    fmt = {"tmp": tmp_path, "model": model_dir}
    r = cli(f"run_root={tmp_path}", "logger=none", *[a.format(**fmt) for a in args])
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1].startswith(message.format(**fmt)), r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "eval").exists()


def test_malformed_questions_go_to_rejects_file(tmp_path, model_dir):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        raw = compose(config_name="evaluate", overrides=[
            f"run_root={tmp_path}", "logger=none", f"eval.model_path={model_dir}", "eval.methods=[first_token]",
            "eval.dev_shots_from_test=0", f"eval.datasets=[{{name: generic, path: {FIXTURES / 'bad' / 'generic'}}}]"])
    summary = run(to_object(raw), raw)
    assert summary["questions"] == 2 and summary["rejected"] == 5
    rows = [json.loads(line) for line in (tmp_path / "eval" / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"]) for r in rows][1:3] == [(3, "missing choices"),
                                                               (4, "answer 'C' is not among the choices AB")]
    assert all(r["file"].endswith("questions.jsonl") and r["dataset"] == "generic" for r in rows)


@pytest.mark.parametrize("name", sorted(p.stem for p in Path(CONF_DIR, "eval").glob("*.yaml")))
def test_every_eval_config_composes(name):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(config_name="evaluate", overrides=[f"eval={name}", "run_root=/r"])
        obj = to_object(cfg)
    assert obj.out_dir == "/r/eval" and obj.eval.model_path == "/r/model"
    if name in ("cmmlu", "ceval"):  # no packaged copy: the run stops before loading a model
        with pytest.raises(GraftError, match=rf"eval.datasets\[{name}\].path is required"):
            load_benchmark(obj.eval.datasets[0], Rejects("dataset"))


# ---- inputs that cannot work: one line, exit 2, nothing written, before any forward -----------------------------

def linked_copy(src: Path, dst: Path, *replace: str) -> Path:
    """dst/ with a symlink to each file of src/, except `replace` (left for the test to write)."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name not in replace:
            (dst / f.name).symlink_to(f)
    return dst


@pytest.fixture(scope="module")
def big_tokenizer(model_dir, tmp_path_factory):
    """The model's tokenizer plus 500 added tokens: 32,500 ids for a model of 32,000 embedding rows."""
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("big_tok")
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.add_tokens([f"<extra_{i}>" for i in range(500)])
    assert len(tok) == 32500
    tok.save_pretrained(out)
    return out


@pytest.mark.parametrize("where", ["tokenizer_path", "model_folder"])
def test_tokenizer_larger_than_the_model_is_one_line(tmp_path, model_dir, big_tokenizer, where):
    text = tmp_path / "en.txt"
    text.write_text(HELDOUT, encoding="utf-8")
    if where == "tokenizer_path":  # first-token scoring: this used to exit 0 with results
        model, args = model_dir, ("eval.methods=[first_token]", f"eval.tokenizer_path={big_tokenizer}")
        tok_part = f"the tokenizer at eval.tokenizer_path={str(big_tokenizer)!r} has 32500 tokens"
    else:  # held-out text only: this used to fail with an IndexError after the first windows
        model = linked_copy(model_dir, tmp_path / "model", *(f.name for f in big_tokenizer.iterdir()))
        for f in big_tokenizer.iterdir():
            (model / f.name).symlink_to(f)
        args = ("eval.methods=[]", f"+eval.heldout_texts.en={text}")
        tok_part = f"the tokenizer at eval.model_path={str(model)!r} has 32500 tokens"
    r = cli(f"run_root={tmp_path}", "logger=none", "eval=mmlu_quick", f"eval.model_path={model}", *args)
    assert_one_line_error(r, tok_part, f"but the model at eval.model_path={str(model)!r} has 32000 embedding rows")
    assert not (tmp_path / "eval").exists()


def test_special_ids_must_index_the_embedding():
    from types import SimpleNamespace

    from research.eval.evaluation import check_tokenizer_fits

    class Tok:  # fits by length, but its EOS id lies past the embedding
        bos_token_id, eos_token_id, pad_token_id, unk_token_id = 1, 12, None, 0

        def __len__(self):
            return 10

    ecfg = SimpleNamespace(model_path="m", tokenizer_path="t")
    check_tokenizer_fits(Tok(), 13, ecfg)
    with pytest.raises(GraftError, match=r"^the tokenizer at eval.tokenizer_path='t' has eos_token_id=12 but the "
                                         r"model at eval.model_path='m' has 10 embedding rows"):
        check_tokenizer_fits(Tok(), 10, ecfg)


@pytest.mark.parametrize("damage, message", [
    ("truncate", "model.safetensors: truncated (its header lists"),
    ("garbage", "model.safetensors: not a safetensors file"),
    ("folder", "model.safetensors: cannot read (Is a directory)"),
])
def test_damaged_weights_are_one_line(tmp_path, model_dir, damage, message):
    model = linked_copy(model_dir, tmp_path / "model", "model.safetensors")
    data = (model_dir / "model.safetensors").read_bytes()
    if damage == "truncate":
        (model / "model.safetensors").write_bytes(data[: len(data) * 2 // 3])
    elif damage == "garbage":
        (model / "model.safetensors").write_bytes(os.urandom(len(data) // 100))
    else:
        (model / "model.safetensors").mkdir()
    r = cli(f"run_root={tmp_path}", "logger=none", "eval=mmlu_quick", f"eval.model_path={model}")
    assert_one_line_error(r, f"eval.model_path={str(model)!r}: {message}")
    assert "SafetensorError" not in r.stderr and not (tmp_path / "eval").exists()


@pytest.mark.parametrize("what", ["heldout", "dataset", "model_file", "tokenizer_file"])
def test_unreadable_input_is_one_line_naming_the_file(tmp_path, model_dir, what):
    model, args = model_dir, []
    if what == "heldout":
        bad = make_unreadable(tmp_path / "en.txt")
        args = [f"+eval.heldout_texts.en={bad}"]
        expected = f"eval.heldout_texts.en={str(bad)!r}: cannot read (Permission denied)"
    elif what == "dataset":
        bad = make_unreadable(tmp_path / "questions.jsonl")
        args = [f"eval.datasets=[{{name: generic, path: {bad}}}]"]
        expected = f"eval.datasets[generic]: cannot read {str(bad)!r} (Permission denied)"
    elif what == "model_file":
        model = linked_copy(model_dir, tmp_path / "model", "tokenizer_config.json")
        make_unreadable(model / "tokenizer_config.json")
        expected = f"eval.model_path={str(model)!r}: tokenizer_config.json: cannot read (Permission denied)"
    else:  # a folder where a file should be: unreadable for root too
        model = linked_copy(model_dir, tmp_path / "model", "tokenizer.json")
        (model / "tokenizer.json").mkdir()
        expected = f"eval.model_path={str(model)!r}: tokenizer.json: not a regular file"
    r = cli(f"run_root={tmp_path}", "logger=none", "eval=mmlu_quick", f"eval.model_path={model}", *args)
    assert_one_line_error(r, expected)
    assert not (tmp_path / "eval").exists()
