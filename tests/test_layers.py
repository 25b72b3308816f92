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
# user-facing layer. A module or subpackage is placed by its top-level name; a new one must be
# placed here (the test fails until it is). Inside a subpackage, files import each other freely
# but without cycles.
LAYERS = [
    {"errors", "validate", "runtime", "runlock", "paths", "files"},
    {"data", "models", "losses", "diffaugment", "checkpoints"},
    {"sampling", "training", "train", "classifier", "pretrained", "metrics", "toy"},
    {"widgets", "serve", "release", "exercises", "build", "grade", "run_notebook", "course", "figures", "diagrams", "site"},
]
LAYER_OF = {name: i for i, layer in enumerate(LAYERS) for name in layer}


# Imported inside a function on purpose, each with its reason; any other function-level import is a
# cycle or an upward import in hiding, and fails test_no_function_level_imports_but_the_known_ones.
KNOWN_FUNCTION_IMPORTS = {("exercises.nb08", "serve")}  # only check 08.3 needs the service: no FastAPI for the rest


def module_name(path: Path) -> str:
    """``data/cache.py`` -> ``data.cache``; a subpackage's ``__init__.py`` is the subpackage."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")
            if "__pycache__" not in p.parts and p.name != "__main__.py" and module_name(p)}


def imports_of(source: str, name: str = "m", is_package: bool = False) -> tuple[set[str], set[str]]:
    """The package modules a module imports at its top level, and those it imports inside a
    function, as dotted names below ``cgan_course``. Code under ``if __name__ == "__main__":`` runs
    only as a script and code under ``if TYPE_CHECKING:`` never runs; both are left out."""
    known = set(modules())
    here = name.split(".") if is_package else name.split(".")[:-1]  # the package a relative import starts in

    def resolve(base: list[str], names: list[str]) -> set[str]:
        found = set()
        for n in names:
            dotted = ".".join(base + [n])
            found.add(dotted if dotted in known else ".".join(base))
        return found

    def targets(node: ast.Import | ast.ImportFrom) -> set[str]:
        if isinstance(node, ast.ImportFrom) and node.level:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
            if node.module:
                return {".".join(base + node.module.split("."))}
            return resolve(base, [a.name for a in node.names])
        if isinstance(node, ast.ImportFrom) and node.module == "cgan_course":  # from cgan_course import x
            return resolve([], [a.name for a in node.names])
        names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
        return {n.split(".", 1)[1] for n in names if n.startswith("cgan_course.")}

    top, nested = set(), set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ("__main__" in ast.unparse(child.test)
                                              or "TYPE_CHECKING" in ast.unparse(child.test)):
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                (nested if in_function else top).update(t for t in targets(child) if t)
            visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    visit(ast.parse(source), False)
    return top, nested


def package_imports(path: Path) -> set[str]:
    """Every package module ``path`` imports, at the top or inside a function."""
    top, nested = imports_of(path.read_text(), module_name(path), path.name == "__init__.py")
    return top | nested


def top_level(name: str) -> str:
    return name.split(".")[0]


def test_no_function_level_imports_but_the_known_ones():
    nested = {(m, top_level(t)) for m, p in modules().items()
              for t in imports_of(p.read_text(), m, p.name == "__init__.py")[1] if top_level(t) != top_level(m)}
    assert nested == KNOWN_FUNCTION_IMPORTS


def graph() -> dict[str, set[str]]:
    return {m: package_imports(p) - {m} for m, p in modules().items()}


def test_every_module_has_a_layer():
    assert sorted({top_level(m) for m in graph()} - set(LAYER_OF)) == [], "place the new module in LAYERS"


def test_no_module_imports_upwards():
    layer = {m: LAYER_OF.get(top_level(m), -1) for m in graph()}
    upward = [f"{m} (layer {layer[m]}) imports {d} (layer {LAYER_OF.get(top_level(d), -1)})"
              for m, deps in graph().items() for d in sorted(deps)
              if LAYER_OF.get(top_level(d), -1) > layer[m]]
    assert not upward, "upward imports: " + "; ".join(upward)


def test_no_import_cycles():
    """No cycle between modules, nor between top-level units (a subpackage counts as one unit
    seen from outside: data.cache -> metrics -> data would be a cycle)."""
    g, cycles = graph(), []
    units = {}
    for m, deps in g.items():
        units.setdefault(top_level(m), set()).update(top_level(d) for d in deps if top_level(d) != top_level(m))

    def find(g: dict[str, set[str]]) -> None:
        def visit(node: str, path: list[str]) -> None:
            for dep in sorted(g.get(node, ())):
                if dep in path:
                    cycles.append(" -> ".join(path[path.index(dep):] + [dep]))
                elif len(path) < len(g):
                    visit(dep, path + [dep])
        for start in sorted(g):
            visit(start, [start])

    find(g)
    find(units)
    assert not cycles, "import cycles: " + "; ".join(sorted(set(cycles)))


def test_the_checker_sees_a_cycle_and_an_upward_import(tmp_path, monkeypatch):
    """The checks above can fail: on a made-up package with a cycle through a function-level import,
    and a subpackage whose file imports a sibling that imports it back."""
    pkg = tmp_path / "cgan_course"
    (pkg / "data").mkdir(parents=True)
    (pkg / "errors.py").write_text("def f():\n    from .data import x\n")
    (pkg / "data" / "__init__.py").write_text("from .cache import y\n")
    (pkg / "data" / "cache.py").write_text("from ..errors import CourseError\nfrom .decode import z\n")
    (pkg / "data" / "decode.py").write_text("from . import cache\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", pkg)
    assert graph() == {"errors": {"data"}, "data": {"data.cache"}, "data.cache": {"errors", "data.decode"},
                       "data.decode": {"data.cache"}}
    with pytest.raises(AssertionError, match=re.escape("errors (layer 0) imports data (layer 1)")):
        test_no_module_imports_upwards()
    with pytest.raises(AssertionError, match=re.escape("data.cache -> data.decode -> data.cache")):
        test_no_import_cycles()
    with pytest.raises(AssertionError, match=re.escape("data -> errors -> data")):
        test_no_import_cycles()


def test_importing_the_exercises_does_not_load_the_web_stack():
    code = "import sys, cgan_course.exercises; print(sorted(m for m in ('fastapi', 'uvicorn', 'starlette') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
