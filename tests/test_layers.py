"""Issue 25: the package is a house of layers. A module imports only from its own layer or the
layers below (function-level imports included), there are no import cycles, and the exercises
(imported by every notebook) do not pull in the web stack."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cgan_course"

# Lowest first. Foundation, then data/models/losses, then training/metrics/sampling, then the
# user-facing layer. A new module must be placed here (the test fails until it is).
LAYERS = [
    {"errors", "validate", "runtime", "runlock"},
    {"data", "models", "losses", "diffaugment", "checkpoints"},
    {"sampling", "config", "recipes", "train", "classifier", "pretrained", "metrics", "toy"},
    {"widgets", "serve", "release", "exercises", "build", "grade", "course", "figures", "diagrams", "site"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


# Imported inside a function on purpose, each with its reason; any other function-level import is a
# cycle or an upward import in hiding, and fails test_no_function_level_imports_but_the_known_ones.
KNOWN_FUNCTION_IMPORTS = {("exercises", "serve")}  # only check 07.3 needs the service: no FastAPI for the rest


def imports_of(source: str) -> tuple[set[str], set[str]]:
    """The package modules a module imports at its top level, and those it imports inside a
    function. Code under ``if __name__ == "__main__":`` runs only as a script and is left out."""
    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            return {node.module.split(".")[0]} if node.module else {a.name for a in node.names}
        if isinstance(node, ast.ImportFrom) and node.module == "cgan_course":  # from cgan_course import x
            return {a.name for a in node.names}
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        return {n.split(".")[1] for n in names if n.startswith("cgan_course.")}

    top, nested = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "__main__" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (nested if in_function else top).update(targets(child))
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return top, nested


def package_imports(path: Path) -> set[str]:
    """Every package module ``path`` imports, at the top or inside a function."""
    top, nested = imports_of(path.read_text())
    return top | nested


def test_no_function_level_imports_but_the_known_ones():
    nested = {(p.stem, t) for p in PACKAGE.glob("*.py") for t in imports_of(p.read_text())[1] if t != p.stem}
    assert nested == KNOWN_FUNCTION_IMPORTS


def graph() -> dict[str, set[str]]:
    return {p.stem: package_imports(p) - {p.stem} for p in PACKAGE.glob("*.py") if p.stem != "__init__"}


def test_every_module_has_a_layer():
    assert sorted(set(graph()) - set(LAYER_OF)) == [], "place the new module in LAYERS"


def test_no_module_imports_upwards():
    upward = [f"{m} (layer {LAYER_OF[m]}) imports {d} (layer {LAYER_OF[d]})"
              for m, deps in graph().items() for d in deps if LAYER_OF.get(d, -1) > LAYER_OF[m]]
    assert upward == []


def test_no_import_cycles():
    g, cycles = graph(), []

    def visit(node: str, path: list[str]) -> None:
        for dep in sorted(g.get(node, ())):
            if dep in path:
                cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
            elif len(path) < len(g):
                visit(dep, path + [dep])

    for start in sorted(g):
        visit(start, [start])
    assert cycles == []


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: on a made-up package with a cycle through a function-level import."""
    pkg = tmp_path / "cgan_course"
    pkg.mkdir()
    (pkg / "errors.py").write_text("def f():\n    from .data import x\n")
    (pkg / "data.py").write_text("from .errors import CourseError\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert graph() == {"errors": {"data"}, "data": {"errors"}}
    with pytest.raises(AssertionError, match=re.escape("errors (layer 0) imports data (layer 1)")):
        test_no_module_imports_upwards()
    with pytest.raises(AssertionError, match=re.escape("data -> errors -> data")):
        test_no_import_cycles()


def test_importing_the_exercises_does_not_load_the_web_stack():
    code = "import sys, cgan_course.exercises; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
