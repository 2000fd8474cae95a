"""The architecture's rules, checked on the source: the layers import downward only, no module
imports itself back through others, a method's name is branched on only in its own module, and
importing the library does no heavy work."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The orchestration layers: top-level folders of the repository, installed as w2s.<name>.
LAYERS = ("tasks", "flows", "cli")
PACKAGES = ("w2s", *LAYERS)
# Shared foundations every layer may use.
BASE = {"w2s", "w2s.errors", "w2s.io", "w2s.project"}


def _module(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] in LAYERS:  # cli/main.py is w2s.cli.main
        parts = ["w2s", *parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _files() -> list[Path]:
    """Every module's real file once (w2s/cli, w2s/flows and w2s/tasks link to the folders)."""
    return [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py") if not _in_link(p)]


def _in_link(path: Path) -> bool:
    return any(parent.is_symlink() for parent in path.relative_to(REPO).parents if str(parent) != ".")


def _graph() -> dict[str, set[str]]:
    """Every import of every module of the project (module level, in functions, and under
    TYPE_CHECKING alike), as absolute module names."""
    modules = {_module(p): p for p in _files()}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules}
        graph[name] = {m for m in found if m != name}
    return graph


GRAPH = _graph()


def _imports_of(prefix: str) -> set[tuple[str, str]]:
    return {(m, d) for m, deps in GRAPH.items() if m == prefix or m.startswith(prefix + ".") for d in deps}


def _outside(pairs: set[tuple[str, str]], allowed: tuple[str, ...]) -> set[tuple[str, str]]:
    """Imports of project modules that fall outside the allowed packages."""

    def ok(dep: str) -> bool:
        return dep in BASE or any(dep == a or dep.startswith(a + ".") for a in allowed)

    return {(m, d) for m, d in pairs if d.split(".")[0] in PACKAGES and not ok(d)}


ORCHESTRATION = tuple(f"w2s.{layer}" for layer in LAYERS)


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_library_never_imports_prefect_or_the_layers_above_it():
    library = {(m, d) for m, d in _imports_of("w2s") if not _under(m, ORCHESTRATION)}
    assert library, "the graph holds the library's imports"
    bad = {(m, d) for m, d in library if d.split(".")[0] == "prefect" or _under(d, ORCHESTRATION)}
    assert not bad


def test_core_ml_imports_only_core_and_methods_only_core():
    assert not _outside(_imports_of("w2s.core"), ("w2s.core",))
    assert not _outside(_imports_of("w2s.methods"), ("w2s.core", "w2s.methods"))


def test_operations_never_import_the_pipeline_and_tasks_never_import_flows():
    assert not _outside(_imports_of("w2s.ops"), ("w2s.core", "w2s.config", "w2s.ops"))
    # Stored sweeps are DVC-tracked, so analysis may use the DVC helpers (which import only core).
    analysis_may = ("w2s.core", "w2s.methods", "w2s.config", "w2s.analysis", "w2s.ops.versioning")
    assert not _outside(_imports_of("w2s.analysis"), analysis_may)
    assert not {(m, d) for m, d in _imports_of("w2s.tasks") if _under(d, ("w2s.flows", "w2s.cli"))}
    assert not {(m, d) for m, d in _imports_of("w2s.flows") if _under(d, ("w2s.cli",))}
    assert _imports_of("w2s.tasks") and _imports_of("w2s.flows")


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_anywhere():
    assert _cycles(GRAPH) == []


def test_the_cycle_check_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _method_name_uses(path: Path, names: set[str]) -> list[str]:
    """Where a module outside w2s/methods names a method: a string constant that is exactly a
    registered method's name (compared, looked up or passed anywhere in code; docstrings are
    not code), or an import of one method's module."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in names and id(node) not in docstrings:
            hits.append(f"{path.relative_to(REPO)}:{node.lineno}: '{node.value}'")
        if isinstance(node, ast.ImportFrom) and node.module:
            mods = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            hits += [f"{path.relative_to(REPO)}:{node.lineno}: imports {m}" for m in mods if m in _METHOD_MODULES]
        if isinstance(node, ast.Import):
            hits += [f"{path.relative_to(REPO)}:{node.lineno}: imports {a.name}" for a in node.names
                     if a.name in _METHOD_MODULES]  # fmt: skip
    return hits


def _method_names() -> set[str]:
    from w2s.methods import all_methods

    return set(all_methods())


_METHOD_MODULES = {
    f"w2s.methods.{p.stem}" for p in (REPO / "w2s" / "methods").glob("*.py") if p.stem not in ("__init__", "base")
}


def test_no_method_name_is_branched_on_outside_its_own_module():
    names = _method_names()
    hits = [hit for p in _files() if "w2s/methods" not in p.as_posix() for hit in _method_name_uses(p, names)]
    assert hits == []
    pattern = re.compile(r"method ==|method in |\.method\b.*==")
    lines = [
        f"{p.relative_to(REPO)}:{i}"
        for p in _files()
        if "w2s/methods" not in p.as_posix()
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert lines == []


def test_the_method_name_guard_finds_a_branch_a_lookup_and_an_import(tmp_path, monkeypatch):
    """The guard catches what the old regex let through: a baseline picked by its literal name,
    and one method's module imported for every student."""
    module = REPO / "tests" / "unit" / "_guard_probe.py"
    try:
        module.write_text(
            "from w2s.methods.perturb import Perturb\n"
            "def baseline(axes):\n"
            "    return {'method': 'naive'} if 'naive' in axes else {}\n"
        )
        hits = _method_name_uses(module, _method_names())
    finally:
        module.unlink()
    assert [h.split(": ", 1)[1] for h in hits] == ["imports w2s.methods.perturb", "'naive'", "'naive'"]


# Modules whose job is the heavy work itself (training loops, models, the served pyfunc).
HEAVY_BY_NATURE = (
    "w2s.core.models",
    "w2s.core.train",
    "w2s.core.losses",
    "w2s.core.frozen",
    "w2s.pipeline.distributed",
    "w2s.ops.serving",
    "w2s.ops.data_docs_views",  # GX's Data Docs views, subclassed: loaded by GX's site builder only
)


def test_importing_the_library_loads_no_heavy_dependency():
    """The CLI, the flows and the DVC stages import these at start-up: torch, transformers, MLflow,
    GX, DVC and the rest load only inside the functions that use them."""
    library = (m for m in GRAPH if m.startswith("w2s") and not _under(m, ORCHESTRATION))
    modules = ", ".join(sorted(m for m in library if not m.startswith(HEAVY_BY_NATURE)))
    code = (
        f"import sys, {modules}; from w2s.methods import all_methods; all_methods(); "
        "heavy = {'torch', 'transformers', 'mlflow', 'great_expectations', 'dvc', 'prefect', "
        "'deepspeed', 'sklearn', 'datasets', 'peft'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def test_no_function_is_longer_than_80_lines():
    """A function that grows past a screen is split where its steps are (the benchmark scripts too)."""
    files = [*_files(), *(REPO / "bench").glob("*.py"), *(REPO / "tools").glob("*.py")]
    long = [
        f"{p.relative_to(REPO)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for p in files
        for node in ast.walk(ast.parse(p.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno + 1 > 80
    ]
    assert long == []
