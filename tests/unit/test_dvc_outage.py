"""A DVC remote that does not take a push is a service outage (retried by the stage, exit 3), not
bad input; the file stays versioned in the cache, and the retry once the remote is back pushes it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from w2s.errors import ServiceUnavailable
from w2s.ops.versioning import add_and_push
from w2s.project import Project


def test_a_remote_outage_is_transient_and_a_retry_rides_it_out(tmp_path):
    # imported here, not at collection: importing Prefect configures its logging on the stream
    # of that moment, and collection's stream is closed before the tests run
    from w2s.tasks.retry import is_transient

    root, remote = tmp_path / "proj", tmp_path / "remote"
    root.mkdir()
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"]):
        subprocess.run(cmd, cwd=root, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "store", str(remote)], cwd=root, check=True)
    remote.write_text("a file where the remote's folder should be: every push fails\n")
    labels = root / "labels.parquet"
    labels.write_bytes(b"weak labels")

    with pytest.raises(ServiceUnavailable, match="DVC remote 'store' did not take labels.parquet") as failed:
        add_and_push(Project(root), labels)
    assert is_transient(failed.value), "the stage's retry policy retries it"
    assert (root / "labels.parquet.dvc").is_file(), "versioned in the cache all the same"

    remote.unlink()  # the remote is back
    done = add_and_push(Project(root), labels)
    assert done.remote == "store" and any(p.is_file() for p in remote.rglob("*"))
