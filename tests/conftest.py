"""Shared test set-up: offline, deterministic, CPU-friendly. GPU tests are marked `gpu` and skipped without one."""

import os
import subprocess
import sys

# Triton reads TRITON_INTERPRET when a kernel is defined, so it must be set before any kernel module is
# imported; without a GPU the kernels run under the interpreter.
if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "" or not os.path.exists("/dev/nvidia0"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu:
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# ---- foundation fixtures: small real inputs cut from the packaged data -------------------------------------------

@pytest.fixture(scope="session")
def small_inputs(tmp_path_factory):
    """A few thousand lines of the real demo inputs (People's Daily, reviews, Wikipedia, jieba)."""
    from research.demo import package_data as pkg

    d = tmp_path_factory.mktemp("inputs")
    news = [p for a in pkg.peoples_daily_articles() for p in a.split("\n")]
    (d / "zh_train.txt").write_text("\n".join(news[:4000]) + "\n", encoding="utf-8")
    (d / "zh_heldout.txt").write_text("\n".join(news[-300:]) + "\n", encoding="utf-8")
    (d / "en.txt").write_text("\n".join(pkg.english_passages(limit=200)) + "\n", encoding="utf-8")
    words = pkg.package_file("jieba_dict").read_text(encoding="utf-8").splitlines()
    (d / "words.txt").write_text("\n".join(words[:20000]) + "\n", encoding="utf-8")
    (d / "base.model").write_bytes(pkg.package_file("base_tokenizer").read_bytes())
    return d


def tokenizer_overrides(inputs, out_dir, *extra):
    """Hydra overrides for a small expansion over `small_inputs`."""
    return [
        f"run_root={out_dir}", f"out_dir={out_dir}/tokenizer", f"tokenizer.base_path={inputs}/base.model",
        f"tokenizer.eval_texts={{zh:{inputs}/zh_heldout.txt,en:{inputs}/en.txt}}",
        "tokenizer.target_size=33500", "tokenizer.consistency_lines=300", *extra,
    ]


def compose(config_name, overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from research.cli import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides))


@pytest.fixture(scope="session")
def small_tokenizer(small_inputs, tmp_path_factory):
    """An expansion of the real base model: a trained candidate model (1,000 of its pieces) topped up from jieba."""
    from research.config import to_object
    from research.expand_vocab import main  # noqa: F401  (the app module must import cleanly)
    from research.tokenizer.expand import expand
    from research.tokenizer.hf_export import save_hf_tokenizer
    from research.tokenizer.spm_model import load_model

    out = tmp_path_factory.mktemp("tok")
    raw = compose("expand_vocab", tokenizer_overrides(small_inputs, out) + [
        f"tokenizer.sources=[{{kind:train_sp,paths:[{small_inputs}/zh_train.txt],vocab_size:5000,max_pieces:1000}},"
        f"{{kind:wordlist,paths:[{small_inputs}/words.txt]}}]",
    ])
    cfg = to_object(raw)
    base = load_model(cfg.tokenizer.base_path)
    proto, report = expand(base, cfg.tokenizer, out)
    save_hf_tokenizer(proto, out / "hf")
    return {"dir": out / "hf", "proto": proto, "base": base, "report": report, "cfg": cfg}


@pytest.fixture
def seed():
    """A fresh seed per test; printed so a failure can be replayed (pytest shows it with the failure)."""
    import torch

    value = int.from_bytes(os.urandom(4), "little")
    torch.manual_seed(value)
    print(f"seed={value}")
    return value


# ---- the apps as a user runs them ------------------------------------------------------------------------


def run_app(app, *overrides):
    return subprocess.run([sys.executable, "-m", f"research.{app}", *overrides], capture_output=True, text=True,
                          timeout=600)


def assert_one_line_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture(scope="module")
def wordlist_run(small_inputs, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    proc = run_app("expand_vocab", *tokenizer_overrides(small_inputs, root), "tokenizer=wordlist",
                   f"tokenizer.sources.0.paths=[{small_inputs}/words.txt]", "tokenizer.pad_to_multiple_of=64")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def wait_for(cond, timeout: float) -> bool:
    """Poll `cond` every 50 ms until it holds or `timeout` seconds pass; its last value."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()
