"""Bad input fails before compute: one `error:` line on stderr and exit code 2 (Hydra's own message for a key
the config schema does not have). A resume checks that the checkpoint is this run's and repairs a metrics.jsonl
torn by a kill."""

import json
import shutil

from train_helpers import MAX_LEN, launch, tiny_model


def _one_line_error(r, text):
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and text in lines[0], r.stderr[-2000:]
    assert "Traceback" not in r.stderr


def test_missing_dataset(run_root, tmp_path):
    r = launch([f"run_root={run_root}", f"paths.data={tmp_path / 'nope'}", f"out_dir={tmp_path / 'o'}"])
    _one_line_error(r, "dataset folder not found")


def test_vocab_mismatch(run_root, tmp_path):
    tiny_model(tmp_path / "small", vocab=128)  # the data holds ids up to 255
    r = launch([f"run_root={run_root}", f"paths.model={tmp_path / 'small'}", f"out_dir={tmp_path / 'o'}"])
    _one_line_error(r, "embedding rows 128")


def test_plugin_option_not_taken(run_root, tmp_path):
    # Each plugin's schema holds only its options, so Hydra refuses the override while composing (as it does any
    # unknown key): its first line names the key, and nothing runs.
    r = launch([f"run_root={run_root}", "plugin=zero2", "plugin.tp_size=2", f"out_dir={tmp_path / 'o'}"])
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[0] == "Could not override 'plugin.tp_size'.", r.stderr[-2000:]
    assert not (tmp_path / "o").exists()


def test_incompatible_checkpoint(run_root, tmp_path):
    ck = tmp_path / "o" / "checkpoints" / "step_00000002"
    ck.mkdir(parents=True)
    state = {"step": 2, "fingerprint": {"model": {"vocab_size": 512}}}
    (ck / "state.json").write_text(json.dumps(state))
    r = launch([f"run_root={run_root}", f"out_dir={tmp_path / 'o'}"])
    _one_line_error(r, "model.vocab_size was 512, this run has 256")
    shutil.rmtree(tmp_path / "o")
    assert MAX_LEN == 32


def test_corrupt_weights(run_root, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(run_root / "model", model)
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])  # a copy cut short
    r = launch([f"run_root={run_root}", f"paths.model={model}", f"out_dir={tmp_path / 'o'}"])
    _one_line_error(r, "model.safetensors: truncated")
    assert not (tmp_path / "o").exists()


def test_resume_checks_the_config_and_survives_a_torn_metrics_line(run_root, tmp_path):
    """A resume under another train.lr or other data is refused (one line, every differing key); under moved data,
    more steps and a metrics.jsonl torn by a kill it goes on, dropping the torn line and the rows past the
    checkpoint."""
    from research.train.synthetic import write_synthetic_buckets

    out = tmp_path / "o"
    args = [f"run_root={run_root}", f"out_dir={out}", "schedule=embed_warmup_then_full", "train.checkpoint_every=1"]
    r = launch([*args, "train.max_steps=2"])
    assert r.returncode == 0, r.stderr[-3000:]
    first = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    r = launch([*args, "train.max_steps=2", "train.lr=1e-3", "train.grad_clip=0.5"])
    _one_line_error(r, "train.lr 0.0003 -> 0.001, train.grad_clip 1.0 -> 0.5 (")
    other = write_synthetic_buckets(tmp_path / "other", 256, MAX_LEN, num_buckets=4, packs_per_bucket=8, seed=1)
    r = launch([*args, "train.max_steps=2", f"paths.data={other}"])
    _one_line_error(r, "paths.data manifest ")
    assert [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()] == first

    moved = shutil.copytree(run_root / "data", tmp_path / "moved")
    shutil.rmtree(out / "checkpoints" / "step_00000002")  # the latest is step 1: row 2 will be run again
    with (out / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "loss": 5.')  # a kill in the middle of a write
    r = launch([*args, "train.max_steps=3", f"paths.data={moved}"])
    assert r.returncode == 0, r.stderr[-3000:]
    assert "dropped its torn last line" in r.stdout + r.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert (rows[0], rows[1]["loss"], rows[1]["grad_norm"]) == (first[0], first[1]["loss"], first[1]["grad_norm"])
