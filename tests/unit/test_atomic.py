"""Atomic artifacts: a file the pipeline writes appears whole or not at all, and a cache entry
whose content does not match its manifest is rebuilt, never used."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from w2s.core.cache import MANIFEST, ArtifactCache
from w2s.io import atomic_path, copy_file, write_json, write_text

from conftest import REPO


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_write_that_raises_leaves_no_target_and_no_temp_file(tmp_path):
    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"half": ')
        raise RuntimeError("disk full")
    assert _leftovers(target.parent) == []


def test_a_failed_rewrite_keeps_the_previous_file_whole(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"pgr": 0.4})
    circular: dict = {}
    circular["self"] = circular  # json.dumps fails on it after the temp file exists
    with pytest.raises(ValueError, match="Circular reference"):
        write_json(target, circular)
    assert json.loads(target.read_text()) == {"pgr": 0.4}
    assert _leftovers(tmp_path) == ["metrics.json"]


def test_a_killed_writer_never_publishes_a_partial_file(tmp_path):
    """SIGKILL in the middle of a write (no cleanup runs): the target is simply absent."""
    target = tmp_path / "weak.parquet"
    script = (
        "import os, signal, sys\n"
        "from w2s.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    with open(tmp, 'wb') as f:\n"
        "        f.write(b'PAR1' + b'x' * 4096)\n"
        "        f.flush()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(target)], cwd=REPO, timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    assert all(name.endswith(".tmp") for name in _leftovers(tmp_path))  # only the orphaned temp file


def test_text_and_copy_helpers_publish_nothing_on_failure(tmp_path):
    with pytest.raises(FileNotFoundError):
        copy_file(tmp_path / "absent.parquet", tmp_path / "copy.parquet")
    with pytest.raises(UnicodeEncodeError):
        write_text(tmp_path / "results.md", "half \udcff")
    assert _leftovers(tmp_path) == []


def _labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ["b", "c"],
            "text": ["tb", "tc"],
            "weak_probs": [[0.3, 0.7], [0.6, 0.4]],
            "weak_label": [1, 0],
            "split": ["transfer", "val"],
        }
    )


def test_a_weak_label_write_interrupted_in_the_parquet_publishes_neither_file(tmp_path, monkeypatch):
    from w2s.pipeline.labels import write_weak_labels

    def half_then_die(self, path, **kwargs):
        Path(path).write_bytes(b"PAR1 partial")
        raise OSError("killed mid-write")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", half_then_die)
    with pytest.raises(OSError, match="killed mid-write"):
        write_weak_labels(_labels(), tmp_path / "wl.parquet", {"weak_model": {}})
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["writing the parquet", "replacing the parquet", "writing the sidecar"])
def test_a_rewrite_interrupted_anywhere_never_leaves_a_sidecar_naming_other_bytes(tmp_path, monkeypatch, where):
    """A label file is rewritten with other content and the writer dies at each point of the
    rewrite: whatever is left, a sidecar that exists names the md5 of the Parquet file beside it."""
    import w2s.io
    import w2s.pipeline.labels
    from w2s.io import file_md5
    from w2s.pipeline.labels import write_weak_labels

    path = tmp_path / "wl.parquet"
    write_weak_labels(_labels(), path, {"weak_model": {"v": 1}})
    changed = _labels().assign(weak_label=lambda f: 1 - f["weak_label"])
    real_replace, real_to_parquet = w2s.io.os.replace, pd.DataFrame.to_parquet

    def die(*args, **kwargs):
        raise OSError(f"killed while {where}")

    if where == "writing the parquet":
        monkeypatch.setattr(pd.DataFrame, "to_parquet", lambda self, p, **kw: (real_to_parquet(self, p, **kw), die()))
    elif where == "replacing the parquet":
        monkeypatch.setattr(
            w2s.io.os, "replace", lambda a, b: die() if str(b).endswith(".parquet") else real_replace(a, b)
        )
    else:
        monkeypatch.setattr(w2s.pipeline.labels, "write_json", die)
    with pytest.raises(OSError, match="killed while"):
        write_weak_labels(changed, path, {"weak_model": {"v": 2}})
    monkeypatch.undo()
    sidecar = path.with_suffix(".json")
    assert not sidecar.exists() or json.loads(sidecar.read_text())["md5"] == file_md5(path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []
    md5 = write_weak_labels(changed, path, {"weak_model": {"v": 2}})  # the next publish heals it
    assert json.loads(sidecar.read_text())["md5"] == md5 == file_md5(path)


# -- the content-addressed cache, through the real weak-model step --


def _weak_inputs(tmp_path: Path):
    from w2s.config import Config
    from w2s.core.refs import SplitsRef

    words = {"pos": "great lovely fine good", "neg": "awful bad poor dull"}
    rows = []
    for i, split in enumerate(["weak_train"] * 40 + ["transfer"] * 20 + ["val"] * 10 + ["test"] * 20):
        label = "pos" if i % 2 else "neg"
        rows.append(
            {
                "id": f"r{i}",
                "text": f"{words[label].split()[i % 4]} film number {i}",
                "label": label,
                "group": None,
                "split": split,
            }
        )
    path = tmp_path / "splits.parquet"
    pd.DataFrame(rows).to_parquet(path, index=False)
    return SplitsRef(str(path), "m", ["neg", "pos"], {}), Config(), ArtifactCache(tmp_path / "cache")


def _corrupt(entry: Path, how: str) -> None:
    preds = entry / "preds.parquet"
    if how == "flipped-byte":
        data = bytearray(preds.read_bytes())
        data[len(data) // 2] ^= 0xFF
        preds.write_bytes(bytes(data))
    elif how == "truncated":
        preds.write_bytes(preds.read_bytes()[:100])
    elif how == "file-deleted":
        preds.unlink()
    elif how == "manifest-garbled":
        (entry / MANIFEST).write_text('{"files": ')


@pytest.mark.parametrize("how", ["flipped-byte", "truncated", "file-deleted", "manifest-garbled"])
def test_a_corrupted_cache_entry_is_recomputed_not_used(tmp_path, how, caplog):
    from w2s.pipeline.weak_model import train_weak

    splits, cfg, cache = _weak_inputs(tmp_path)
    first = train_weak(splits, cfg, cache)
    assert not first.reused
    good = pd.read_parquet(Path(first.dir) / "preds.parquet")
    assert train_weak(splits, cfg, cache).reused  # an intact entry is reused

    _corrupt(Path(first.dir), how)
    again = train_weak(splits, cfg, cache)

    assert not again.reused and again.key == first.key
    assert "failed verification; rebuilding it" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(Path(again.dir) / "preds.parquet"), good)
    assert train_weak(splits, cfg, cache).reused  # the rebuilt entry verifies
    assert [p.name for p in (cache.root / "weak").iterdir()] == [first.key]  # no staging folder left
