"""Student losses as small callables `(logits, weak_probs, step_frac) -> scalar loss`.

`weak_probs` are soft targets over K classes (rows sum to 1); `step_frac` is the fraction of
training done. `LOSSES` maps each `strong.loss` name to its class; `make_loss` builds a fresh
instance for one training run from the configured settings (the confidence loss keeps a buffer
of recent rows, so no two runs may share one).

A loss also says how the model's outputs become class probabilities, its `link`
(`w2s.core.links.LINKS`):
`softmax` for the cross-entropy losses, whose outputs are logits; `simplex` for the squared loss,
whose outputs are the predicted probability vectors themselves (projected onto the simplex, so
they are probabilities). The pipeline and the saved model read the link by name and never ask
which loss trained the model.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

Loss = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]


def soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of -sum_k target_k log softmax(logits)_k."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()


def xent(logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
    """Cross-entropy against the soft weak labels."""
    del step_frac  # constant over training
    return soft_ce(logits, weak_probs)


class Xent:
    """Cross-entropy against the soft weak labels, as a loss class (it has no settings)."""

    def __call__(self, logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        return xent(logits, weak_probs, step_frac)


class LogConf:
    """Auxiliary confidence loss (Burns et al. 2023):
    `CE((1 - a(t)) p_w + a(t) h, p_s)` with `h` the student's own hardened, detached prediction
    and `a(t) = aux_coef * min(1, t / warmup_frac)`, a linear ramp (the reference code jumps).

    Binary: `h` thresholds the student's class-0 probability at its quantile `mean(p_w[:, 1])`,
    so the hardened positive rate matches the weak labels' prior; both the quantile and the
    prior are taken over the current batch plus a bounded buffer of recent rows, which keeps
    the threshold meaningful with small (micro)batches. Multi-class: argmax.
    """

    def __init__(self, aux_coef: float = 0.5, warmup_frac: float = 0.2, buffer_size: int = 256) -> None:
        self.aux_coef = aux_coef
        self.warmup_frac = warmup_frac
        self._p0: deque[float] = deque(maxlen=buffer_size)
        self._w1: deque[float] = deque(maxlen=buffer_size)
        self._last_frac = -1.0

    def coef(self, step_frac: float) -> float:
        """a(t): 0 at the start, rising linearly to aux_coef at warmup_frac, then constant."""
        if self.warmup_frac <= 0:
            return self.aux_coef
        return self.aux_coef * min(1.0, step_frac / self.warmup_frac)

    def harden(self, probs: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
        """One-hot hardened student predictions (detached)."""
        k = probs.shape[1]
        if k != 2:
            return F.one_hot(probs.argmax(1), k).to(probs.dtype)
        p0 = probs[:, 0].detach()
        pool_p0 = torch.cat([torch.tensor(list(self._p0), dtype=p0.dtype, device=p0.device), p0])
        pool_w1 = torch.cat([torch.tensor(list(self._w1), dtype=p0.dtype, device=p0.device), weak_probs[:, 1].detach()])
        threshold = torch.quantile(pool_p0, pool_w1.mean().clamp(0.0, 1.0))
        self._p0.extend(p0.tolist())
        self._w1.extend(weak_probs[:, 1].detach().tolist())
        is0 = (p0 >= threshold).to(probs.dtype)
        return torch.stack([is0, 1.0 - is0], dim=1)

    def __call__(self, logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        if step_frac < self._last_frac:  # a new training run: forget the previous one's rows
            self._p0.clear()
            self._w1.clear()
        self._last_frac = step_frac
        probs = F.softmax(logits.float(), dim=-1)
        a = self.coef(step_frac)
        target = (1.0 - a) * weak_probs + a * self.harden(probs, weak_probs)
        return soft_ce(logits, target.detach())


class Product:
    """Product-of-experts target: `t ∝ p_s^strong_exp · p_w^weak_exp` (detached), `CE(t, p_s)`."""

    def __init__(self, weak_exp: float = 1.0, strong_exp: float = 1.0) -> None:
        self.weak_exp = weak_exp
        self.strong_exp = strong_exp

    def target(self, logits: torch.Tensor, weak_probs: torch.Tensor) -> torch.Tensor:
        log_t = self.strong_exp * F.log_softmax(logits.float(), dim=-1) + self.weak_exp * torch.log(
            weak_probs.clamp_min(1e-12)
        )
        return F.softmax(log_t, dim=-1).detach()

    def __call__(self, logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        del step_frac
        return soft_ce(logits, self.target(logits, weak_probs))


class Squared:
    """Squared loss on the model's raw outputs, `sum_k (f_k(x) - p_w(x)_k)^2` averaged over rows:
    with a linear head on frozen features, least squares over a convex class (Charikar et al.'s
    setting). The outputs are the predicted probability vectors, not logits (`link = simplex`)."""

    link = "simplex"

    def __call__(self, logits: torch.Tensor, weak_probs: torch.Tensor, step_frac: float) -> torch.Tensor:
        del step_frac  # constant over training
        return ((logits.float() - weak_probs.float()) ** 2).sum(-1).mean()


# `strong.loss` name -> loss class; its settings (if any) are the `strong.<name>` section.
LOSSES: dict[str, type] = {"xent": Xent, "logconf": LogConf, "product": Product, "squared": Squared}


def make_loss(name: str, settings: Any = None) -> Loss:
    """A fresh loss for one training run; `settings` is its config section (a pydantic model)."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss '{name}' (known: {', '.join(LOSSES)})")
    params = settings.model_dump() if settings is not None else {}
    return LOSSES[name](**params)
