"""The documentation stays true to the repository.

For README.md and every docs/**/*.md:
- every relative markdown link resolves to an existing file or folder, and a `#anchor` to a heading of the target;
- every repository path quoted in backticks (inline or in a fenced block) exists;
- every module run with `python -m` (or `torchrun ... -m`) exists, in the repository or installed, found without
  importing anything;
- README.md is at most README_MAX_LINES lines.

A quoted path is a whitespace-separated token that starts with one of PATH_PREFIXES, or is one of TOP_LEVEL_FILES.
A token that contains any of PLACEHOLDER_CHARS, or `...`, is a pattern (`conf/<group>/`, `bucket_{k:03d}`,
`benchmarks/results/*.csv`), not a path, and is skipped.
"""

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README_MAX_LINES = 200
PATH_PREFIXES = ("research/", "kernels/", "conf/", "tests/", "benchmarks/", "sweeps/", "notebooks/", "scripts/",
                 "docs/", "requirements/")
TOP_LEVEL_FILES = ("Makefile", "pyproject.toml", "README.md", "LICENSE", "setup.py", "setup.cfg", "requirements.txt")
PLACEHOLDER_CHARS = set("<>{}[]*$|")
# Modules run with `python -m` that are not part of the repository: they must be installed.
EXTERNAL_MODULES = {"torch.distributed.run", "pytest", "pip", "venv", "colossalai", "jupyter", "ruff"}
# Modules that launch another module given by a second `-m`.
RELAUNCHERS = {"torch.distributed.run"}
REPO_PACKAGES = ("research", "kernels", "benchmarks", "tests")

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"(?<!!)\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
LAUNCHER = re.compile(r"(^|/)(python3?|torchrun)$")
STRIP = "'\"`,;:()."


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def split_fences(text: str) -> tuple[str, list[str]]:
    """(the text outside fenced code blocks, the fenced blocks' contents)."""
    blocks = [m.group(0) for m in FENCE.finditer(text)]
    return FENCE.sub("", text), blocks


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens kept), spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors by its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(prose):
        s = slug(m.group(1))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def link_problems(path: Path) -> list[str]:
    prose, _ = split_fences(path.read_text(encoding="utf-8"))
    prose = INLINE_CODE.sub("", prose)
    problems = []
    for m in LINK.finditer(prose):
        target = m.group(1)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} not found")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(ROOT)}")
    return problems


def is_placeholder(token: str) -> bool:
    return bool(PLACEHOLDER_CHARS & set(token)) or "..." in token


def quoted_paths(text: str) -> list[str]:
    """Repository paths quoted in inline code spans and fenced blocks."""
    prose, blocks = split_fences(text)
    chunks = [m.group(1) for m in INLINE_CODE.finditer(prose)] + blocks
    out = []
    for chunk in chunks:
        for raw in chunk.split():
            if is_placeholder(raw):
                continue
            token = raw.strip(STRIP)
            if token.startswith(PATH_PREFIXES) or token in TOP_LEVEL_FILES:
                out.append(token)
    return out


def path_problems(path: Path) -> list[str]:
    """Quoted paths that do not exist; a pytest node id (`tests/x.py::test_y`) must name a function in the file."""
    out = []
    for p in quoted_paths(path.read_text(encoding="utf-8")):
        file, _, name = p.partition("::")
        if not (ROOT / file).exists():
            out.append(f"`{p}` does not exist")
        elif name and f"def {name}(" not in (ROOT / file).read_text(encoding="utf-8"):
            out.append(f"`{p}`: no function {name} in {file}")
    return out


def code_lines(text: str) -> list[str]:
    """Each inline code span, and each line of each fenced block."""
    prose, blocks = split_fences(text)
    return [m.group(1) for m in INLINE_CODE.finditer(prose)] + [ln for b in blocks for ln in b.splitlines()]


def modules_run(text: str) -> list[str]:
    """Modules named in code by `python -m M`, `torchrun ... -m M`, `colossalai run ... -m M` (and by the `-m` of
    a relauncher such as torch.distributed.run)."""
    out = []
    for line in code_lines(text):
        tokens = line.split()
        launcher = False
        for i, tok in enumerate(tokens):
            if LAUNCHER.search(tok) or (tok == "run" and i > 0 and tokens[i - 1] == "colossalai"):
                launcher = True
            elif tok == "-m" and launcher and i + 1 < len(tokens):
                module = tokens[i + 1].strip(STRIP)
                if module and not is_placeholder(module) and not module.endswith("."):
                    out.append(module)
                launcher = module in RELAUNCHERS
    return out


def find_module(name: str) -> bool:
    """Whether module `name` exists and runs with -m, without importing it or its parents.

    Repository modules are looked up as files under ROOT (a package needs __main__.py); others are located from
    their top-level package's spec (importlib.util.find_spec of a top-level name imports nothing).
    """
    parts = name.split(".")
    if parts[0] in REPO_PACKAGES:
        base = ROOT.joinpath(*parts)
        return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return False
    if spec is None:
        return False
    if len(parts) == 1:
        return True
    locations = list(spec.submodule_search_locations or [])
    for k, part in enumerate(parts[1:], start=2):
        last = k == len(parts)
        found = None
        for loc in locations:
            d = Path(loc)
            if last and ((d / f"{part}.py").is_file() or (d / part / "__main__.py").is_file()):
                return True
            if (d / part / "__init__.py").is_file() or (d / part).is_dir():
                found = d / part
                break
        if found is None:
            return False
        locations = [str(found)]
    return False


def module_problems(path: Path) -> list[str]:
    problems = []
    for module in modules_run(path.read_text(encoding="utf-8")):
        top = module.split(".")[0]
        if top not in REPO_PACKAGES and module not in EXTERNAL_MODULES:
            problems.append(f"python -m {module}: neither a repository module nor a known external one")
        elif not find_module(module):
            problems.append(f"python -m {module}: module not found")
    return problems


DOCS = doc_files()
IDS = [str(p.relative_to(ROOT)) for p in DOCS]


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_links_resolve(path):
    assert link_problems(path) == []


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_quoted_repository_paths_exist(path):
    assert path_problems(path) == []


@pytest.mark.parametrize("path", DOCS, ids=IDS)
def test_python_m_modules_exist(path):
    assert module_problems(path) == []


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines (at most {README_MAX_LINES})"


def test_docs_cover_every_app():
    """Each `research/<app>.py` that is an app (and the `research.train` package) has its page in docs/apps/."""
    apps = {p.stem for p in (ROOT / "research").glob("*.py") if "@app(" in p.read_text(encoding="utf-8")}
    apps |= {"train", "collect_sweep"}
    missing = sorted(a for a in apps if not (ROOT / "docs" / "apps" / f"{a}.md").is_file())
    assert missing == [], f"no docs/apps/<app>.md for {missing}"


def test_the_checks_catch_what_they_should(tmp_path, monkeypatch):
    """Each check fails on a broken document, so a passing run means something."""
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    (tmp_path / "research").mkdir()
    (tmp_path / "research" / "real.py").write_text("", encoding="utf-8")
    (tmp_path / "other.md").write_text("# Real heading\n", encoding="utf-8")
    doc = tmp_path / "doc.md"
    doc.write_text(
        "# Title\n\n"
        "[ok](other.md) [ok anchor](other.md#real-heading) [self](#title) [web](https://example.org/x)\n"
        "[broken](missing.md) [bad anchor](other.md#no-such-heading)\n\n"
        "`research/real.py` `research/gone.py` `conf/<group>/` `bucket_{k:03d}` `LICENSE`\n\n"
        "```bash\npython -m research.real --x\npython -m research.gone\ntorchrun --nproc_per_node 2 -m research.nope\n"
        "python -m torch.distributed.run --standalone -m research.real\npython -m pytest -m gpu\n"
        "python -m research.<app>\npython -m somethingelse\n```\n",
        encoding="utf-8")
    assert link_problems(doc) == ["missing.md: missing.md not found",
                                  "other.md#no-such-heading: no heading with anchor #no-such-heading in other.md"]
    assert path_problems(doc) == ["`research/gone.py` does not exist", "`LICENSE` does not exist"]
    assert modules_run(doc.read_text(encoding="utf-8")) == [
        "research.real", "research.gone", "research.nope", "torch.distributed.run", "research.real", "pytest",
        "somethingelse"]
    assert module_problems(doc) == ["python -m research.gone: module not found",
                                    "python -m research.nope: module not found",
                                    "python -m somethingelse: neither a repository module nor a known external one"]
