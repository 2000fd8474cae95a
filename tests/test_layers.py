"""The architecture's rules: flows -> tasks -> w2s, and no heavy work at import time."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imports(folder: str) -> set[tuple[str, str]]:
    found = set()
    for path in (REPO / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {(str(path), a.name.split(".")[0]) for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path), node.module.split(".")[0]))
    return found


def test_library_never_imports_the_orchestration_layer():
    bad = {(p, m) for p, m in _imports("w2s") if m in {"prefect", "tasks", "flows", "cli"}}
    assert not bad


def test_tasks_never_import_flows():
    assert not {(p, m) for p, m in _imports("tasks") if m in {"flows", "cli"}}


def test_importing_the_library_loads_no_heavy_dependency():
    code = (
        "import sys; import w2s.steps, w2s.strong, w2s.stages, w2s.tracking, w2s.registry, "
        "w2s.versioning, w2s.validation, w2s.config, w2s.lineage; "
        "heavy = {'torch', 'transformers', 'mlflow', 'great_expectations', 'dvc', 'prefect', "
        "'deepspeed', 'sklearn', 'datasets'}; print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
