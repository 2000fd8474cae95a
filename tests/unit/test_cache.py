import pytest

from w2s.core.cache import ArtifactCache, cache_key


def test_key_changes_with_any_part_of_the_spec():
    base = {"weak": {"C": 1.0}, "seed": 0, "data": "abc"}
    assert cache_key("weak", base) == cache_key("weak", dict(base))
    assert cache_key("weak", base) != cache_key("weak", {**base, "seed": 1})
    assert cache_key("weak", base) != cache_key("strong", base)


def test_entry_is_sealed_and_verified(tmp_path):
    cache = ArtifactCache(tmp_path)
    assert cache.lookup("weak", "k1") is None
    with cache.build("weak", "k1", {"x": 1}) as folder:
        (folder / "preds.txt").write_text("hello")
    hit = cache.lookup("weak", "k1")
    assert hit is not None and (hit / "preds.txt").read_text() == "hello"
    (hit / "preds.txt").write_text("tampered")
    assert cache.lookup("weak", "k1") is None, "a corrupted entry must not be used"
    assert not cache.path("weak", "k1").exists()


def test_failed_build_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)
    with pytest.raises(RuntimeError), cache.build("weak", "k2", {}) as folder:
        (folder / "half.txt").write_text("partial")
        raise RuntimeError("training died")
    assert cache.lookup("weak", "k2") is None
    assert list((tmp_path / "weak").iterdir()) == []
