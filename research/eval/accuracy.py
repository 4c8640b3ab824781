"""Accuracy per subject and per category, with micro (per question) and macro (mean over subjects) averages."""



def method_names(results: list[dict]) -> list[str]:
    names: list[str] = []
    for r in results:
        for m in r["methods"]:
            if m not in names:
                names.append(m)
    return names


def accuracy(results: list[dict]) -> dict[str, dict]:
    """method -> {micro, macro, n, subjects: {s: {acc, n}}, categories: {c: {acc, n}}}. A question a method
    could not score (log-likelihood without choice texts) does not count for that method."""
    out: dict[str, dict] = {}
    for m in method_names(results):
        scored = [r for r in results if m in r["methods"]]
        by_subject: dict[str, list[bool]] = {}
        by_category: dict[str, list[bool]] = {}
        for r in scored:
            ok = r["methods"][m]["pred"] == r["gold"]
            by_subject.setdefault(r["subject"], []).append(ok)
            if r.get("category"):
                by_category.setdefault(r["category"], []).append(ok)
        subjects = {s: {"acc": sum(v) / len(v), "n": len(v)} for s, v in sorted(by_subject.items())}
        out[m] = {
            "micro": sum(sum(v) for v in by_subject.values()) / max(1, len(scored)),
            "macro": sum(s["acc"] for s in subjects.values()) / max(1, len(subjects)),
            "n": len(scored),
            "subjects": subjects,
            "categories": {c: {"acc": sum(v) / len(v), "n": len(v)} for c, v in sorted(by_category.items())},
        }
    return out
