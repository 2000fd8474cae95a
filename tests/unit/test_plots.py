"""Training-curve PNGs: drawn once per content, copied into each run folder that logs them."""

from __future__ import annotations

import pytest

from w2s.analysis import plots
from w2s.core.cache import ArtifactCache

CURVE = [
    {"step": 5, "epoch": 0.5, "val_gt_acc": 0.61, "val_weak_acc": 0.70},
    {"step": 10, "epoch": 1.0, "val_gt_acc": 0.66, "val_weak_acc": 0.74},
]


def test_a_reused_models_curve_is_copied_from_the_cache_not_drawn_again(tmp_path, monkeypatch):
    cache = ArtifactCache(tmp_path / "cache")
    first = plots.curve_png(CURVE, "w2s", cache, tmp_path / "run1")
    assert first == tmp_path / "run1" / "curve_w2s.png"
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.stat().st_size > 1000

    def not_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("an unchanged curve was drawn again")

    monkeypatch.setattr(plots, "plot_curve", not_again)
    second = plots.curve_png(CURVE, "w2s", cache, tmp_path / "run2")
    assert second.read_bytes() == first.read_bytes()
    assert len(list((tmp_path / "cache" / "plot").iterdir())) == 1

    # another curve, or the same points of another model kind, is another drawing
    with pytest.raises(AssertionError, match="drawn again"):
        plots.curve_png([*CURVE, {"step": 15, "val_gt_acc": 0.7}], "w2s", cache, tmp_path / "run3")
    with pytest.raises(AssertionError, match="drawn again"):
        plots.curve_png(CURVE, "ceiling", cache, tmp_path / "run3")
    assert not (tmp_path / "run3").exists(), "nothing half-written when the drawing fails"
    assert len(list((tmp_path / "cache" / "plot").iterdir())) == 1, "a failed drawing leaves no staging folder"
