"""Every code snippet of the README and of docs/ (its guides included), extracted and tried as a
new user would: verbatim, from the project folder, in fresh processes with no MLflow setting
exported. The guides on one's own data and on retraining are walked end to end, in order, in
test_guides.py; the example module of docs/methods.md runs in test_method_protocol.py.

- A `python` block runs whole in a fresh interpreter, in a project whose registry holds the
  docs' model name (the session's tiny student, registered again as w2s-strong).
- A `bash` block runs line by line (continuation lines joined, `&&`, `||`, `;` and `|` chains
  split, comments dropped, a leading `VAR=value` kept as that command's environment):
  - `w2s` commands that read (help, predict, lineage, gc --dry-run, ui)
    and `dvc metrics show` / `dvc plots show` run verbatim;
  - every other `w2s` command (training, sweeps, hub models, GPU clusters) goes through the real
    argument parser and has its config validated (`w2s plan` too: it is arithmetic over the
    config, tested in test_plan_lm.py): a sweep config is expanded into every point's
    validated config, so a renamed flag or key in the docs fails here; `dvc exp run -S` has its
    overrides validated the same way;
  - `make` targets must exist (`make -n`), the subcommands of `dvc`, `mlflow` and `prefect` must
    exist (`--help`), scripts must exist, and `bash bench/gpu_check.sh` flags must parse;
  - `python -c` code must compile; the rest of a pipeline (`| tee`, `| head`), what runs after
    `||`, `cd`, `export`, `mkdir`, `git`, `curl`, `pip` and `huggingface-cli` lines are the user's own.
A line of a program not listed here fails the test, so a new kind of snippet gets classified.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import TinyRun, make_project

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Walked end to end in test_guides.py; the python block of methods.md runs in test_method_protocol.py.
WALKED = {"docs/guides/own-data.md", "docs/guides/retraining.md"}
PYTHON_ELSEWHERE = {"docs/methods.md"}
DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").rglob("*.md"))]
# The files doc commands name as the user's own, and what the test puts there.
USER_CSV = "id,text\n1,Make America great again!\n2,Stronger together.\n3,I am with her.\n"
# `w2s plan` is arithmetic over the config (tests/unit/test_plan_lm.py): validated like the rest.
VERBATIM_W2S = ("--help", "predict", "lineage", "gc", "ui")
HUB = re.compile(r"(Qwen|meta-llama|EleutherAI|gpt2)")
OPERATORS = ("&&", "||", ";", "|")
USERS_OWN = ("cd", "export", "mkdir", "git", "curl", "huggingface-cli")


def blocks(lang: str, skip: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(file, body) of every fenced code block in `lang` of the docs, but those in `skip`."""
    import textwrap

    found = []
    for doc in DOCS:
        if doc in WALKED or doc in skip:
            continue
        text = (REPO / doc).read_text()
        found += [
            (doc, textwrap.dedent(body))
            for _, body in re.findall(rf"^( *)```{lang}\n(.*?)^\1```", text, flags=re.S | re.M)
        ]
    return found


def commands(block: str) -> list[list[str]]:
    """Shell words of each command of a bash block (continuations joined, chains split); a command
    after `||` or `|` keeps the operator as its first word, for the caller to classify."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words, op = shlex.split(line, comments=True), None
        while words:
            cut = next((i for i, w in enumerate(words) if w in OPERATORS), len(words))
            out.append(([op] if op in ("||", "|") else []) + words[:cut])
            op = words[cut] if cut < len(words) else None
            words = words[cut + 1 :]
    return out


def fresh_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """A new shell's environment: the venv on PATH, no MLflow or project settings exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "W2S_PROJECT"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **(extra or {})}


@pytest.fixture(scope="module")
def readme_project(tmp_path_factory: pytest.TempPathFactory, bundled_dir: Path, tiny_run: TinyRun) -> Path:
    """A project whose store holds the tiny run, its student registered as w2s-strong (@challenger
    and @champion), its DVC views, and the user files the README names."""
    root = make_project(tmp_path_factory.mktemp("readme") / "proj", bundled_dir)
    (root / ".w2s").mkdir(exist_ok=True)
    shutil.copy(tiny_run.root / ".w2s" / "mlflow.db", root / ".w2s" / "mlflow.db")
    shutil.copy(tiny_run.root / "metrics.json", root / "metrics.json")
    shutil.copytree(tiny_run.root / "plots", root / "plots")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    # in a process of its own: registering resolves the logged model through MLflow's global
    # tracking URI, which this process may have pointed at another test's project
    register = (
        "from mlflow import MlflowClient; c = MlflowClient(); "
        "t = c.get_model_version_by_alias('w2s-test', 'challenger'); c.create_registered_model('w2s-strong'); "
        "v = c.create_model_version('w2s-strong', t.source, t.run_id, tags=t.tags); "
        "[c.set_registered_model_alias('w2s-strong', a, v.version) for a in ('challenger', 'champion')]"
    )
    uri = f"sqlite:///{root / '.w2s' / 'mlflow.db'}"
    env = fresh_env({"MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri})
    subprocess.run([sys.executable, "-c", register], env=env, check=True, capture_output=True, timeout=300)
    (root / "new.csv").write_text(USER_CSV)
    return root


def test_every_python_snippet_runs_verbatim_from_the_project_folder(readme_project: Path) -> None:
    snippets = blocks("python", skip=PYTHON_ELSEWHERE)
    assert snippets, "the docs show how to load the registered model"
    for doc, code in snippets:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=readme_project,
            env=fresh_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, f"{doc}: snippet failed:\n{code}\n{proc.stderr[-2000:]}"


def _validate_w2s(argv: list[str], repo_view: Path) -> None:
    """Parse a w2s command line with the real parser; validate the config it would run."""
    from w2s.cli.main import build_parser
    from w2s.config import load_config
    from w2s.pipeline.sweep_grid import expand, load_sweep

    args = build_parser().parse_args(argv)
    if args.command == "sweep":
        assert expand(load_sweep(repo_view / args.config), repo_view), argv
    elif hasattr(args, "set"):
        config = getattr(args, "config", None)
        load_config(repo_view / (config or "params.yaml"), args.set)


def _run(words: list[str], cwd: Path, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(words, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{shlex.join(words)} failed:\n{proc.stdout[-1000:]}\n{proc.stderr[-2000:]}"
    return proc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _w2s_ui_serves(project: Path, env: dict[str, str]) -> None:
    """`w2s ui` verbatim: the MLflow UI answers on the project's store with the registered model."""
    port = _free_port()
    proc = subprocess.Popen(
        ["w2s", "ui", "--port", str(port)], cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/registered-models/get?name=w2s-strong"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    body = r.read().decode()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, "w2s ui did not come up"
                time.sleep(0.5)
        assert '"champion"' in body and '"challenger"' in body
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _validate_gpu_check(argv: list[str]) -> None:
    """`bash bench/gpu_check.sh FLAGS`: the flags parse (the check itself needs a GPU)."""
    sys.path.insert(0, str(REPO))
    try:
        from bench.gpu_check import parse_args
    finally:
        sys.path.remove(str(REPO))
    parse_args(argv)


def test_every_shell_snippet_runs_or_validates(readme_project: Path, tmp_path: Path) -> None:
    repo_view = tmp_path / "repo"  # params.yaml and configs/ as in a clone, plus the user's files
    repo_view.mkdir()
    shutil.copy(REPO / "params.yaml", repo_view / "params.yaml")
    shutil.copytree(REPO / "configs", repo_view / "configs")
    shutil.copytree(REPO / "examples", repo_view / "examples")
    seen: set[str] = set()
    done: set[tuple[tuple[str, ...], tuple[tuple[str, str], ...]]] = set()
    helped: set[tuple[str, ...]] = set()
    for doc, block in blocks("bash"):
        for words in commands(block):
            assigns = {}
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                key, _, value = words.pop(0).partition("=")
                assigns[key] = value
            words = [w for w in words if not re.fullmatch(r"\d?>&?\d?|&", w)]  # redirections, `&`
            command = (tuple(words), tuple(assigns.items()))
            if not words or command in done:
                continue  # a command the docs repeat is tried once
            done.add(command)
            prog, rest = words[0], words[1:]
            seen.add(prog)
            env = fresh_env(assigns)
            if prog == "w2s":
                verb = rest[0] if rest else "--help"
                runnable = verb in VERBATIM_W2S and not HUB.search(" ".join(rest)) and "PREFECT_API_URL" not in assigns
                if verb == "ui":
                    _w2s_ui_serves(readme_project, env)
                elif runnable:
                    _run(words, readme_project, env)
                else:
                    _validate_w2s(rest, repo_view)
            elif prog == "make":
                _run(["make", "-n", *rest], REPO, env)
            elif prog == "dvc" and rest[:2] in (["metrics", "show"], ["plots", "show"]):
                out = _run(words, readme_project, env)
                assert "metrics.json" in out.stdout or "dvc_plots" in out.stdout, out.stdout
            elif prog in ("dvc", "mlflow", "prefect"):
                sub = [w for w in rest if not w.startswith("-")][:2]
                if prog == "dvc" and sub and sub[0] in ("add", "repro"):
                    sub = sub[:1]  # their operands are the user's paths
                if prog == "dvc" and sub == ["exp", "run"]:
                    from w2s.config import load_config

                    sets = [rest[i + 1] for i, w in enumerate(rest) if w in ("-S", "--set-param")]
                    load_config(repo_view / "params.yaml", sets)
                if (prog, *sub) not in helped:  # one `--help` per subcommand the docs name
                    helped.add((prog, *sub))
                    _run([prog, *sub, "--help"], REPO, env, timeout=120)
            elif prog == "bash":
                assert (REPO / rest[0]).is_file(), f"{doc}: {shlex.join(words)}"
                if rest[0] == "bench/gpu_check.sh":
                    _validate_gpu_check(rest[1:])
            elif prog in ("python", "python3") and rest[:1] == ["-c"]:
                compile(rest[1], f"{doc}: python -c", "exec")
            elif prog in ("python", "python3") and rest[:2] == ["-m", "pip"]:
                continue  # the user's own install
            elif prog in ("python", "python3") and rest[:1] == ["-m"]:  # a module of this repository
                module = REPO / rest[1].replace(".", "/")
                assert module.with_suffix(".py").is_file() or (module / "__main__.py").is_file(), (
                    f"{doc}: {shlex.join(words)}"
                )
            elif prog in ("python", "python3"):
                assert (REPO / rest[0]).is_file(), f"{doc}: {shlex.join(words)}"
            elif prog in ("||", "|"):
                assert prog == "||" or rest[0] in ("tee", "head"), f"{doc}: {shlex.join(words)}"
            elif prog in USERS_OWN:
                continue
            else:
                pytest.fail(f"{doc} runs `{prog}`: classify it in this test")
    assert {"w2s", "make", "dvc", "bash", "python"} <= seen
