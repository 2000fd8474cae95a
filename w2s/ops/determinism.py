"""What decides whether a rerun reproduces a run bit for bit, recorded with every run.

On CPU the pipeline is deterministic: the same config and seed give bit-identical weak labels
and metrics (tested). On a GPU, cuDNN autotuning, TF32 matmuls and atomic-add kernels can each
change the low bits of a result; these facts say which of them were on."""

from __future__ import annotations

import os


def determinism_facts() -> dict[str, str]:
    """Device, library versions and the flags that break bit-identical reruns, as MLflow tags."""
    import torch

    cuda = torch.cuda.is_available()
    facts = {
        "determinism.device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "determinism.torch": torch.__version__,
        "determinism.threads": str(torch.get_num_threads()),
        "determinism.deterministic_algorithms": str(torch.are_deterministic_algorithms_enabled()),
        "determinism.cudnn_deterministic": str(torch.backends.cudnn.deterministic),
        "determinism.cudnn_benchmark": str(torch.backends.cudnn.benchmark),
        "determinism.tf32_matmul": str(torch.backends.cuda.matmul.allow_tf32),
        "determinism.cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"),
    }
    risks = []
    if cuda:
        if not torch.are_deterministic_algorithms_enabled():
            risks.append("non-deterministic CUDA kernels allowed (atomic adds in backward passes)")
        if torch.backends.cudnn.benchmark:
            risks.append("cuDNN autotuning picks kernels per run")
        if torch.backends.cuda.matmul.allow_tf32:
            risks.append("TF32 matmuls")
    facts["determinism.risks"] = "; ".join(risks) if risks else "none known (CPU)" if not cuda else "none known"
    return facts
