"""Bad input fails before compute: one `error:` line on stderr and exit code 2 (Hydra's own message for a key
the config schema does not have)."""

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
