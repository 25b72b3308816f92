"""Issue 25: the package is a house of layers. A module imports only from its own layer or the
layers below (function-level imports included), there are no import cycles, and the exercises
(imported by every notebook) do not pull in the web stack."""
import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "cgan_course"

# Lowest first. Foundation, then data/models/losses, then training/metrics/sampling, then the
# user-facing layer. A new module must be placed here (the test fails until it is).
LAYERS = [
    {"errors", "validate", "runtime", "runlock"},
    {"data", "models", "losses", "diffaugment", "checkpoints"},
    {"sampling", "config", "recipes", "train", "classifier", "pretrained", "metrics", "toy"},
    {"widgets", "serve", "release", "exercises", "build", "grade", "course", "figures", "diagrams"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def package_imports(path: Path) -> set[str]:
    """The package modules ``path`` imports anywhere in its body (top level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:  # from .x import y
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import x, y
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("cgan_course."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("cgan_course."))
    return found


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
    try:
        test_no_module_imports_upwards()
    except AssertionError as err:
        assert "errors (layer 0) imports data (layer 1)" in str(err)
    else:
        raise AssertionError("an upward import went unseen")
    try:
        test_no_import_cycles()
    except AssertionError as err:
        assert "data -> errors -> data" in str(err)
    else:
        raise AssertionError("a cycle went unseen")


def test_importing_the_exercises_does_not_load_the_web_stack():
    code = "import sys, cgan_course.exercises; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
