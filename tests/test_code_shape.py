"""The shape of the code base: functions fit on a screen or two, and module names are unambiguous.

- No function or method in research/, kernels/, benchmarks/ or scripts/ is over MAX_FUNCTION_LINES lines, except
  the Triton kernels (`@triton.jit` functions) of kernels/ops/*_triton.py, whose bodies are one GPU program.
- No two modules of research/ and kernels/ share a basename (__init__.py and __main__.py aside), so a name in a
  log, a traceback or a grep means one file. Modules of research/config/ are named after their Hydra config group
  and may share a name with a non-config module (research/config/data.py vs research/data/), never with each other.
"""

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
LENGTH_DIRS = ("research", "kernels", "benchmarks", "scripts")
NAME_DIRS = ("research", "kernels")
CONFIG_DIR = ROOT / "research" / "config"
TRITON_DECORATORS = {"jit", "autotune", "heuristics"}


def _python_files(dirs) -> list[Path]:
    return sorted(p for d in dirs if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")
                  if "__pycache__" not in p.parts)


def _decorator_names(fn: ast.AST) -> set[str]:
    names = set()
    for d in fn.decorator_list:
        d = d.func if isinstance(d, ast.Call) else d
        if isinstance(d, ast.Attribute):
            names.add(d.attr)
        elif isinstance(d, ast.Name):
            names.add(d.id)
    return names


def _is_triton_kernel(path: Path, fn: ast.AST) -> bool:
    rel = path.relative_to(ROOT)
    return (rel.parts[:2] == ("kernels", "ops") and path.name.endswith("_triton.py")
            and bool(_decorator_names(fn) & TRITON_DECORATORS))


def _functions(tree: ast.AST, prefix: str = ""):
    """(qualified name, node) of every function and method, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            yield name, node
            yield from _functions(node, f"{name}.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def long_functions(max_lines: int = MAX_FUNCTION_LINES) -> list[str]:
    """`file:function:lines` of every function over `max_lines` lines (def line to last line)."""
    out = []
    for path in _python_files(LENGTH_DIRS):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for name, fn in _functions(tree):
            lines = fn.end_lineno - fn.lineno + 1
            if lines > max_lines and not _is_triton_kernel(path, fn):
                out.append(f"{path.relative_to(ROOT)}:{name}:{lines}")
    return out


def basename_clashes() -> list[str]:
    """One line per basename that more than one module of research/ and kernels/ uses (config rule above)."""
    by_name: dict[str, list[Path]] = defaultdict(list)
    for path in _python_files(NAME_DIRS):
        if path.name not in ("__init__.py", "__main__.py"):
            by_name[path.name].append(path)
    out = []
    for name, paths in sorted(by_name.items()):
        config = [p for p in paths if p.parent == CONFIG_DIR]
        other = [p for p in paths if p.parent != CONFIG_DIR]
        for group in (config, other):
            if len(group) > 1:
                out.append(f"{name}: " + ", ".join(str(p.relative_to(ROOT)) for p in group))
    return out


def test_no_function_is_over_the_limit():
    long = long_functions()
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines (file:function:lines):\n" + "\n".join(long)


def test_module_basenames_are_unique():
    clashes = basename_clashes()
    assert not clashes, "modules sharing a basename:\n" + "\n".join(clashes)


def test_the_checks_see_what_they_check(tmp_path):
    # The scans find the code (an empty scan would pass vacuously) and the exemptions are as narrow as stated.
    files = {p.relative_to(ROOT).as_posix() for p in _python_files(LENGTH_DIRS)}
    assert {"research/cli.py", "kernels/ops/ce_rows_triton.py"} <= files
    tree = ast.parse("import triton\n@triton.jit\ndef k():\n    pass\ndef f():\n    pass\n"
                     "class C:\n    def m(self):\n        def inner():\n            pass\n")
    fns = dict(_functions(tree))
    assert set(fns) == {"k", "f", "C.m", "C.m.inner"}
    triton_file = ROOT / "kernels" / "ops" / "x_triton.py"
    assert _is_triton_kernel(triton_file, fns["k"]) and not _is_triton_kernel(triton_file, fns["f"])
    assert not _is_triton_kernel(ROOT / "kernels" / "ops" / "x_torch.py", fns["k"])
