"""A shared registry's tags are written by whoever reaches the tracking server: lineage never lets
one become a path outside the destination, a git option, or a DVC object path."""

from __future__ import annotations

from pathlib import Path

import pytest

from w2s.errors import W2SError
from w2s.ops.lineage import _committed_md5, checked_md5, contained, fetch_data
from w2s.project import Project

MD5 = "0123456789abcdef0123456789abcdef"


def _info(dvc_file: str, md5: str = MD5) -> dict:
    return {"model": "w2s-strong/3", "data": {"in_dvc": "yes", "dvc_md5": md5, "dvc_file": dvc_file}}


@pytest.mark.parametrize("dvc_file", ["../../outside.dvc", "/etc/passwd.dvc", "data/../../x.dvc"])
def test_a_recorded_path_cannot_lead_outside_the_destination(tmp_path, dvc_file):
    dest = tmp_path / "restore"
    dest.mkdir()
    with pytest.raises(W2SError, match="leads outside"):
        fetch_data(_info(dvc_file), Project(tmp_path), dest)
    assert list(tmp_path.iterdir()) == [dest] and not any(dest.iterdir()), "nothing was written"


@pytest.mark.parametrize("md5", ["../../../etc/passwd", MD5[:31], MD5 + ".dirx", MD5.upper()])
def test_a_recorded_md5_must_be_a_dvc_object_id(tmp_path, md5):
    with pytest.raises(W2SError, match="is not a DVC object id"):
        fetch_data(_info("data.dvc", md5), Project(tmp_path), tmp_path)
    assert checked_md5(MD5, "m") == MD5 and checked_md5(MD5 + ".dir", "m") == MD5 + ".dir"


def test_contained_accepts_nested_relative_paths(tmp_path):
    assert contained(tmp_path, "data/x/y.csv", "m") == (tmp_path / "data/x/y.csv").resolve()


def _repo_with_dvc_file(root: Path) -> str:
    """A real git repository whose one commit holds data.dvc; returns the commit's hash."""
    import subprocess

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, text=True).stdout

    git("init", "-q")
    (root / "data.dvc").write_text(f"outs:\n- md5: {MD5}\n  path: data\n")
    git("add", "data.dvc")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "data")
    return git("rev-parse", "HEAD").strip()


@pytest.mark.parametrize("commit", ["--output={pwned}", "-p", "HEAD", "main", "abc", "{head}z"])
def test_a_recorded_commit_reaches_git_only_as_a_hex_hash(tmp_path, commit):
    """Against a real repository: the real commit's hash finds the recorded md5, and anything that
    is not a hex hash (an option git would obey, a ref name) finds nothing and runs nothing."""
    head = _repo_with_dvc_file(tmp_path)
    pwned = tmp_path / "pwned"
    assert _committed_md5(Project(tmp_path), head, "data.dvc") == MD5  # git is reached with a hash
    assert _committed_md5(Project(tmp_path), commit.format(pwned=pwned, head=head), "data.dvc") is None
    assert not pwned.exists(), "git wrote a file the recorded 'commit' named"
