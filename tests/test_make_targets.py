"""The two commands the README promises: `make demo` runs the whole pipeline on the demo experiment, `make test`
runs pytest; the Makefile's recipes and the README's description must say the same thing."""

import re
from pathlib import Path

from hydra import compose, initialize_config_dir

from research.config import to_object
from research.orchestrate.stage_specs import STAGE_ORDER

ROOT = Path(__file__).resolve().parents[1]


def _recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(rf"^{target}:", line))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_make_demo_is_the_whole_pipeline_as_documented():
    recipe = _recipe("demo")
    assert recipe == ["$(PY) -m research.pipeline experiment=demo run_root=$(OUT)"]
    readme = (ROOT / "README.md").read_text()
    assert "`make demo` runs `python -m research.pipeline experiment=demo run_root=outputs/demo`" in readme
    assert re.search(r"^OUT \?= outputs/demo$", (ROOT / "Makefile").read_text(), re.M)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = to_object(compose("pipeline", overrides=["experiment=demo", "run_root=outputs/demo"]))
    assert list(cfg.pipeline.stages) == list(STAGE_ORDER)  # every stage, demo inputs first
    assert STAGE_ORDER[0] == "demo_inputs" and "train" in STAGE_ORDER and "evaluate" in STAGE_ORDER


def test_make_test_runs_pytest_and_ci_calls_it():
    assert any("-m pytest" in line for line in _recipe("test"))
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()
