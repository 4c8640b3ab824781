"""The fault suite's table (fault_cases.py) points at real tests, and docs/faults.md shows exactly that table."""

import ast
import re
from pathlib import Path

import pytest
from fault_cases import FAULTS

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "faults.md"


def _functions(path: Path) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}


def _marks(fn: ast.FunctionDef) -> list[str]:
    return [ast.unparse(d) for d in fn.decorator_list]


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f"{f.app}: {f.fault}")
def test_every_case_names_a_test_that_runs(fault):
    path, name = fault.test.split("::")
    assert (ROOT / path).is_file(), fault.test
    fns = _functions(ROOT / path)
    assert name in fns, f"{fault.test}: no such test"
    assert not [m for m in _marks(fns[name]) if "skip" in m or "xfail" in m], f"{fault.test} is skipped by design"


def test_cases_are_unique():
    keys = [(f.app, f.fault) for f in FAULTS]
    assert len(keys) == len(set(keys))


def doc_rows() -> list[str]:
    return [f"| {f.app} | {f.kind} | {f.fault} | {f.promise} | `{f.test}` |" for f in FAULTS]


def test_the_docs_show_the_table_and_its_count():
    text = DOC.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| app ")]
    assert rows == doc_rows(), "docs/faults.md is out of date: regenerate its table from tests/faults/fault_cases.py"
    bad = sum(f.kind == "bad input" for f in FAULTS)
    m = re.search(r"(\d+) cases: (\d+) bad inputs and (\d+) kill points", text)
    assert m and tuple(map(int, m.groups())) == (len(FAULTS), bad, len(FAULTS) - bad)
