"""Graph smoothing of weak labels (Zhou et al. 2004 label spreading, as in Lang et al.).

A symmetric kNN graph `W` on cosine similarity of strong embeddings, `S = D^-1/2 W D^-1/2`, and
the iteration `F <- mu S F + (1 - mu) Y` from `F = Y` until no entry moves more than `tol`.
Rows of `F` normalised to sum to 1 are the refined soft labels.

Inductive by default: the graph holds only the rows the student trains and early-stops on
(transfer and val). A test or ood_test row is never a node, so its text shapes nobody's label;
its own refined label (for `refined_acc`) is the out-of-sample extension of the same iteration's
fixed point, `mu * mean(F over its k nearest graph rows) + (1 - mu) * y`. `transductive: true`
puts every target row in the graph, as Lang et al. do (flagged in the results as transductive).
"""

from __future__ import annotations

import numpy as np
from pydantic import Field
from scipy import sparse

from w2s.core.config import Section
from w2s.methods.base import Refined, RefineInputs, RefiningMethod


def knn_graph(vectors: np.ndarray, k: int, chunk: int = 2048) -> sparse.csr_matrix:
    """Symmetric 0/1 adjacency of each row's `k` most cosine-similar other rows."""
    n = len(vectors)
    if n < 2:
        raise ValueError("a kNN graph needs at least two nodes")
    k = min(k, n - 1)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    rows, cols = [], []
    for start in range(0, n, chunk):  # chunked so memory stays O(chunk * n), not O(n^2)
        sims = unit[start : start + chunk] @ unit.T
        local = np.arange(len(sims))
        sims[local, start + local] = -np.inf  # no self-loops
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        rows.append(np.repeat(start + local, k))
        cols.append(nearest.ravel())
    r, c = np.concatenate(rows), np.concatenate(cols)
    w = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(n, n))
    return ((w + w.T) > 0).astype(np.float64).tocsr()


def normalised(w: sparse.csr_matrix) -> sparse.csr_matrix:
    """`D^-1/2 W D^-1/2` (isolated nodes keep a zero row)."""
    deg = np.asarray(w.sum(axis=1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
    d = sparse.diags(inv)
    return (d @ w @ d).tocsr()


def label_spreading(
    s: sparse.csr_matrix, y: np.ndarray, mu: float, max_iter: int = 200, tol: float = 1e-6
) -> tuple[np.ndarray, int]:
    """Iterate `F <- mu S F + (1 - mu) Y`; return row-normalised F and the iterations used."""
    f = y.astype(np.float64).copy()
    iters, moved = 0, np.inf
    while iters < max_iter and moved >= tol:
        nxt = mu * (s @ f) + (1.0 - mu) * y
        moved = float(np.abs(nxt - f).max())
        f, iters = nxt, iters + 1
    f = np.maximum(f, 0.0)
    return f / np.maximum(f.sum(axis=1, keepdims=True), 1e-12), iters


def smooth_labels(
    vectors: np.ndarray, probs: np.ndarray, k: int, mu: float, max_iter: int = 200, tol: float = 1e-6
) -> tuple[np.ndarray, dict[str, float]]:
    """Label-spread soft weak labels over the kNN graph of `vectors`; return them and a summary."""
    if len(vectors) != len(probs):
        raise ValueError(f"{len(vectors)} embeddings but {len(probs)} label rows")
    smoothed, iters = label_spreading(normalised(knn_graph(vectors, k)), probs, mu, max_iter, tol)
    changed = float(np.mean(smoothed.argmax(1) != probs.argmax(1)))
    return smoothed, {"iterations": iters, "argmax_changed_frac": changed}


def extend(
    vectors: np.ndarray, graph_vectors: np.ndarray, graph_labels: np.ndarray, probs: np.ndarray, k: int, mu: float
) -> np.ndarray:
    """Labels of rows outside the graph: `mu * mean(F of the k most cosine-similar graph rows) +
    (1 - mu) * own weak label`, row-normalised (one step of the iteration at its fixed point)."""
    k = min(k, len(graph_vectors))

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    nearest = np.argpartition(-(unit(vectors) @ unit(graph_vectors).T), k - 1, axis=1)[:, :k]
    f = mu * graph_labels[nearest].mean(axis=1) + (1.0 - mu) * probs
    return f / np.maximum(f.sum(axis=1, keepdims=True), 1e-12)


class SmoothConfig(Section):
    k: int = Field(10, ge=1, description="Neighbours per node of the kNN graph (cosine, on strong embeddings).")
    mu: float = Field(0.8, ge=0, lt=1, description="Label-spreading weight of the graph: F <- mu S F + (1-mu) Y.")
    max_iter: int = Field(200, ge=1, description="Iteration cap of label spreading.")
    tol: float = Field(1e-6, gt=0, description="Stop when no entry of F moves more than this.")
    transductive: bool = Field(
        False,
        description="Put test and ood_test rows in the graph too (Lang et al.'s transductive "
        "setting: evaluation texts then shape the training labels). Default: inductive, the graph "
        "holds transfer and val rows only and other rows get the out-of-sample extension.",
    )


GRAPH_SPLITS = ("transfer", "val")  # the rows an inductive graph holds: what the student sees


def smooth_inputs(inp: RefineInputs, probs: np.ndarray, c: SmoothConfig) -> tuple[np.ndarray, dict]:
    """Label spreading of `probs` (aligned with `inp.targets`) over the strong embeddings of the
    graph's rows; the other rows by `extend` (inductive), or every row in the graph."""
    vectors = inp.embed(inp.targets)
    if c.transductive:
        return smooth_labels(vectors, probs, c.k, c.mu, c.max_iter, c.tol)
    in_graph = inp.targets["split"].isin(GRAPH_SPLITS).to_numpy()
    out = probs.astype(np.float64).copy()
    out[in_graph], info = smooth_labels(vectors[in_graph], probs[in_graph], c.k, c.mu, c.max_iter, c.tol)
    if (~in_graph).any():
        out[~in_graph] = extend(vectors[~in_graph], vectors[in_graph], out[in_graph], probs[~in_graph], c.k, c.mu)
    return out, {**info, "graph_rows": int(in_graph.sum())}


class Smooth(RefiningMethod):
    name = "smooth"
    summary = "graph smoothing: label spreading on a kNN graph of strong embeddings"
    Settings = SmoothConfig

    def refine(self, inp: RefineInputs) -> Refined:
        probs, info = smooth_inputs(inp, inp.weak_probs, self.settings)
        return Refined(probs, info)


METHOD = Smooth
