"""Where the training backends put their tensors, checked on a CPU so that a GPU cannot surprise us.

On a GPU, NCCL reduces only GPU tensors: a collective handed a host tensor dies there
("No backend type associated with device type cpu"). gloo on a CPU cannot see that bug, because
the host and the engine are the same device. These tests make them differ: the training loop runs
with the default device switched to `meta`, so a tensor built without naming its device lands
there, and every `torch.distributed` collective is wrapped to assert that each tensor it receives
is on the engine's device. One rank, gloo, in this process. A static check adds that every tensor
factory call in the training modules names its device, and a counter that no step reads a tensor
back to the host (a host sync per step idles the GPU between steps)."""

from __future__ import annotations

import ast
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from conftest import REPO, free_port

COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "broadcast",
    "reduce",
    "all_to_all_single",
    "barrier",
)
FACTORIES = {
    "tensor",
    "as_tensor",
    "zeros",
    "ones",
    "empty",
    "full",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
    "randint",
    "scalar_tensor",
}
AUDITED = sorted((REPO / "w2s" / "pipeline" / "distributed").glob("*.py")) + [REPO / "w2s" / "core" / "train.py"]


class TinyNet(nn.Module):
    """A classifier over 8 features; it computes in its weights' dtype (the engine's, under bf16)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Linear(8, 16)
        self.frozen = nn.Linear(16, 16)  # a frozen part, as a LoRA model's base
        self.frozen.requires_grad_(False)
        self.head = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.frozen(torch.relu(self.body(x.to(self.head.weight.dtype)))))).float()


class Features:
    """A batchable dataset held in host memory (device named: it is the host's by design)."""

    def __init__(self, n: int) -> None:
        self.x = torch.as_tensor(np.random.default_rng(0).normal(size=(n, 8)), dtype=torch.float32, device="cpu")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def lengths(self) -> np.ndarray:
        return np.ones(len(self.x), dtype=np.int64)

    def batch(self, idx: Any) -> tuple[torch.Tensor]:
        return (self.x[torch.as_tensor(np.asarray(idx), device="cpu")],)


def targets(n: int) -> np.ndarray:
    labels = np.random.default_rng(1).integers(0, 2, size=n)
    return np.eye(2, dtype=np.float32)[labels]


@pytest.fixture(scope="module")
def one_rank() -> Iterator[None]:
    """A one-rank gloo process group in this process, as a launcher would set it up."""
    import deepspeed
    import torch.distributed as dist

    env = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}
    env |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        deepspeed.init_distributed(dist_backend="gloo", verbose=False)
        yield
        dist.destroy_process_group()


@pytest.fixture(autouse=True)
def restored_linear() -> Iterator[None]:
    """ZeRO-3 swaps torch.nn.functional.linear for its own, process-wide, "until manually reset":
    the tests after these in this process must get torch's back."""
    import torch.nn.functional as F

    linear = F.linear
    yield
    F.linear = linear


@contextlib.contextmanager
def collectives_on(device: torch.device, seen: list[tuple[str, str]]) -> Iterator[None]:
    """Every torch.distributed collective asserts that its tensors are on `device`; each call is
    recorded as (name, calling file)."""
    import torch.distributed as dist

    def tensors(value: Any) -> list[torch.Tensor]:
        if isinstance(value, torch.Tensor):
            return [value]
        if isinstance(value, list | tuple):
            return [t for v in value for t in tensors(v)]
        return []

    def wrap(name: str, real: Any) -> Any:
        def checked(*args: Any, **kwargs: Any) -> Any:
            caller = sys._getframe(1).f_code.co_filename
            seen.append((name, caller))
            for t in tensors([*args, *kwargs.values()]):
                assert t.device == device, f"{name} from {caller} got a tensor on {t.device}, the engine is on {device}"
            return real(*args, **kwargs)

        return checked

    with pytest.MonkeyPatch.context() as mp:
        for name in COLLECTIVES:
            if hasattr(dist, name):
                mp.setattr(dist, name, wrap(name, getattr(dist, name)))
        yield


def _ds_backend(stage: int, folder: Path, total: int) -> Any:
    from w2s.config import load_config
    from w2s.pipeline.distributed.backend import DeepSpeedBackend
    from w2s.pipeline.distributed.dsconfig import generate

    overrides = ["strong.batch_size=8", f"strong.deepspeed.stage={stage}", "strong.deepspeed.grad_accum=2"]
    cfg = load_config(None, [*overrides, "strong.precision=bf16", "strong.lr=1e-2"]).strong
    return DeepSpeedBackend(TinyNet(), cfg, total, generate(cfg, 1), folder), cfg


def _improving() -> Any:
    """An evaluator whose score improves at every call, so every evaluation keeps a checkpoint."""
    calls = iter(range(1000))
    return lambda model: {"score": float(next(calls))}


@pytest.mark.parametrize("stage", [2, 3])
def test_deepspeed_training_hands_collectives_only_tensors_on_the_engine_device(one_rank, tmp_path, stage):
    from w2s.core.losses import xent
    from w2s.core.train import train

    n = 32
    backend, cfg = _ds_backend(stage, tmp_path / "ckpt", total=4)
    seen: list[tuple[str, str]] = []
    # a default device other than the engine's: a tensor built without naming its device goes there
    with torch.device("meta"), collectives_on(backend.engine.device, seen):
        result = train(
            backend.model,
            Features(n),
            targets(n),
            cfg.model_copy(update={"epochs": 1.0, "evals_per_epoch": 4}),
            0,
            xent,
            _improving(),
            "score",
            backend=backend,
            checkpoint_every=1,
        )
    ours = {name for name, caller in seen if Path(caller).is_relative_to(REPO / "w2s")}
    assert {"all_reduce", "barrier"} <= ours, seen  # the step's loss reduction and the checkpoint's barriers
    assert result.steps == 4 and all(np.isfinite(p["train_loss"]) for p in result.curve)
    best = result.best_state
    assert best is not None and {t.device.type for t in best.values()} == {"cpu"}
    live = {k: v for k, v in backend.model.state_dict().items() if v.numel()}
    assert all(best[k].data_ptr() != v.data_ptr() for k, v in live.items()), "host copies, not the live weights"
    frozen = {f"frozen.{p}" for p in ("weight", "bias")}
    assert all(best[k].numel() for k in best) and frozen <= best.keys()

    # a fresh engine resumes from the last checkpoint with the kept weights in host memory
    again, _ = _ds_backend(stage, tmp_path / "ckpt", total=4)
    with torch.device("meta"), collectives_on(again.engine.device, []):
        state, kept = again.resume()
    assert state["step"] == state["best_step"] == 3 and kept is not None and kept.keys() == best.keys()
    assert {t.device.type for t in kept.values()} == {"cpu"}


def test_the_plain_loop_builds_every_tensor_where_it_belongs():
    from w2s.core.losses import xent
    from w2s.core.train import TorchBackend, train

    n = 24
    model = TinyNet()
    cfg = _ds_backend_cfg()
    with torch.device("meta"):
        result = train(model, Features(n), targets(n), cfg, 0, xent, _improving(), "score")
    assert result.steps == 3 and {t.device.type for t in result.best_state.values()} == {"cpu"}
    backend = TorchBackend(model, cfg, 1)
    first, second = backend.full_state(), backend.full_state()
    assert first["frozen.weight"] is second["frozen.weight"], "a frozen weight is copied once"
    assert first["head.weight"] is not second["head.weight"]
    assert first["head.weight"].data_ptr() != model.head.weight.data_ptr()


def _ds_backend_cfg() -> Any:
    from w2s.core.config import EncoderTrainConfig

    return EncoderTrainConfig(batch_size=8, epochs=1.0, evals_per_epoch=3, lr=1e-2)


@contextlib.contextmanager
def host_reads(counted: list[str]) -> Iterator[None]:
    """Record each read of a tensor's value into host memory (`item`, `float`, `tolist`, `numpy`)
    that w2s code makes."""
    root = str(REPO / "w2s")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("item", "__float__", "tolist", "numpy"):
            real = getattr(torch.Tensor, name)

            def read(self: torch.Tensor, *args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
                caller = sys._getframe(1).f_code.co_filename
                if caller.startswith(root):
                    counted.append(f"{_name} in {os.path.relpath(caller, REPO)}:{sys._getframe(1).f_lineno}")
                return _real(self, *args, **kwargs)

            mp.setattr(torch.Tensor, name, read)
        yield


def test_no_training_step_reads_a_tensor_back_to_the_host(one_rank, tmp_path):
    from w2s.core.losses import xent
    from w2s.core.train import TorchBackend, train

    n = 32
    backend, cfg = _ds_backend(2, tmp_path, total=4)
    for make in (lambda: TorchBackend(TinyNet(), cfg, 4), lambda: backend):
        use = make()
        counted: list[str] = []
        with host_reads(counted):
            result = train(
                use.model, Features(n), targets(n), cfg.model_copy(update={"epochs": 1.0}), 0, xent, backend=use
            )
        assert result.steps == 4 and counted == [], f"{type(use).__name__}: {counted}"
    counted = []
    with host_reads(counted):  # one read of the loss per evaluation, in the loop itself
        result = train(TinyNet(), Features(n), targets(n), _ds_backend_cfg(), 0, xent, _improving(), "score")
    assert len(counted) == len(result.curve) == 4 and all("w2s/core/train.py" in c for c in counted), counted


@pytest.mark.parametrize("path", AUDITED, ids=lambda p: p.name)
def test_every_tensor_factory_in_the_training_modules_names_its_device(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        func = node.func
        factory = func.attr in FACTORIES and isinstance(func.value, ast.Name) and func.value.id == "torch"
        if factory and not any(k.arg == "device" for k in node.keywords):
            missing.append(f"{path.name}:{node.lineno} torch.{func.attr}(...)")
    assert not missing, f"tensor built without naming its device (it would land on the default device): {missing}"
