"""The size-grid figure: parameter counts of the registered encoders, truncated, and one line per
weak model with hollow points where the seeds do not resolve the gap."""

from __future__ import annotations

from pathlib import Path

from tools.plot_size_grid import parameter_count, plot


def test_parameter_counts_match_the_published_sizes_and_shrink_with_truncation():
    minilm, mpnet2, mpnet12 = (parameter_count("minilm-l6", None), parameter_count("mpnet-base", 2),
                               parameter_count("mpnet-base", 12))  # fmt: skip
    assert 22.5e6 < minilm < 23e6 and 109e6 < mpnet12 < 110.5e6  # 22.7M and 109.5M as published
    # each mpnet layer is 4 h^2 + 2 h (4 h) weights plus biases and norms, h = 768
    assert (mpnet12 - mpnet2) / 10 == 4 * 768**2 + 8 * 768**2 + 4 * 768 + 768 + 3072 + 4 * 768


def test_one_line_per_weak_model_and_no_interval_for_an_unresolved_gap(tmp_path: Path, monkeypatch):
    import matplotlib.pyplot as plt

    drawn: list = []
    monkeypatch.setattr(plt.Figure, "savefig", lambda self, out, dpi: drawn.append(self))
    rows = [
        {"variant": v, "weak.encoder.model": w, "params": p, "pgr": g, "pgr_lo": lo, "pgr_hi": hi}
        for v, p in (("small", 20e6), ("large", 100e6))
        for w, g, lo, hi in (("a", 0.5, 0.3, 0.7), ("b", 0.2, None, None))
    ]
    plot(rows, tmp_path / "f.png", "t")
    (fig,) = drawn
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["weak: a (1 layer)", "weak: b (1 layer)"]
    assert len(ax.containers) == 2, "an error bar for each of a's two points, none for b's"
