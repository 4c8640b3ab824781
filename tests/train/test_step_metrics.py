"""research.train.step_metrics: metrics.jsonl after a kill (a torn last line) and after a resume (cut back)."""

import json
import logging

import pytest

from research.errors import GraftError
from research.train.step_metrics import MetricsLog, read_metrics


def _write(path, steps, tail=""):
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps) + tail)


def test_torn_last_line_is_dropped_with_a_warning_and_later_steps_cut(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    _write(path, [1, 2, 3, 4], tail='{"step": 5, "lo')  # killed in the middle of writing step 5
    rows, torn = read_metrics(path)
    assert torn and [r["step"] for _, r in rows] == [1, 2, 3, 4]
    with caplog.at_level(logging.WARNING, logger="graft"):
        log = MetricsLog(path, resume_step=3, enabled=True)  # resumed from the checkpoint of step 3
    assert "torn last line" in caplog.text
    log.log({"step": 4, "loss": 0.5})
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2, 3, 4]
    assert read_metrics(path) == (read_metrics(path)[0], False) and not list(tmp_path.glob(".*.tmp"))


def test_whole_file_is_kept_as_is_and_a_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    _write(path, [1, 2])
    before = path.read_text()
    MetricsLog(path, resume_step=2, enabled=True)
    assert path.read_text() == before
    assert read_metrics(tmp_path / "none.jsonl") == ([], False)
    path.write_text(before.replace('{"step": 1', '{"step": 1,,', 1))
    with pytest.raises(GraftError, match=r"metrics.jsonl: line 1 is not a JSON record"):
        read_metrics(path)
