"""The team stack's S3 keys on a real SeaweedFS S3 gateway (the `weed` binary of the test extra)
on loopback, configured by the stack's own infra/seaweedfs/s3-identities.sh, started with the
flags of infra/seaweedfs/entrypoint.sh: each job's key can do what that job does and nothing
more, checked through boto3 and through real `dvc push` / `dvc pull` runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BIN, REPO

KEYS = {who: (f"{who}-access-key", f"{who}-secret-key-0123456789") for who in ("admin", "mlflow", "worker", "reader")}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS in one process with the stack's identities and buckets; yields the S3 endpoint."""
    from test_servers import _start, _wait_http

    tmp = tmp_path_factory.mktemp("seaweedfs")
    env = {f"S3_{who.upper()}_ACCESS_KEY": k for who, (k, _) in KEYS.items()}
    env |= {f"S3_{who.upper()}_SECRET_KEY": s for who, (_, s) in KEYS.items()}
    script = REPO / "infra" / "seaweedfs" / "s3-identities.sh"
    identities = subprocess.run(["sh", str(script)], env={"PATH": os.environ["PATH"], **env}, capture_output=True)
    assert identities.returncode == 0, identities.stderr
    (tmp / "s3.json").write_bytes(identities.stdout)
    (tmp / "data").mkdir()
    ports = {name: _port_with_grpc() for name in ("master", "volume", "filer", "s3")}
    cmd = [str(BIN / "weed"), "server", f"-dir={tmp / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    cmd += [f"-master.port={ports['master']}", f"-volume.port={ports['volume']}", f"-filer.port={ports['filer']}"]
    # as infra/seaweedfs/entrypoint.sh starts it (smaller volumes: a test writes kilobytes)
    cmd += ["-volume.max=0", "-master.volumeSizeLimitMB=64", "-s3", f"-s3.port={ports['s3']}"]
    # The volume server turns read-only below 1 % free disk by default, which on a shared CI disk
    # failed every write here with a bare InternalError; the test writes kilobytes.
    cmd += ["-volume.minFreeSpace=256MiB"]
    cmd += [f"-s3.config={tmp / 's3.json'}"]
    proc = _start(cmd, dict(os.environ), tmp / "weed.log")
    try:
        endpoint = f"http://127.0.0.1:{ports['s3']}"
        _wait_http(f"{endpoint}/status", proc, tmp / "weed.log", timeout=120)
        for bucket in ("mlflow", "dvc"):  # as the create-buckets job does, with the admin key
            _client(endpoint, "admin").create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(2)
            except subprocess.TimeoutExpired:  # weed takes its time over a clean shutdown
                os.killpg(proc.pid, 9)
                proc.wait()


def _port_with_grpc() -> int:
    """A free port P below 55536 whose P + 10000 is free too: each SeaweedFS server listens on
    its port and on a gRPC port 10000 above it."""
    import random
    import socket

    while True:
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


def _client(endpoint: str, who: str):
    import boto3

    key, secret = KEYS[who]
    return boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1"
    )


def _allowed(call) -> bool:
    from botocore.exceptions import ClientError

    try:
        call()
    except ClientError as exc:
        assert exc.response["Error"]["Code"] == "AccessDenied", exc
        return False
    return True


def test_each_key_reaches_only_its_own_bucket_and_only_the_admin_creates_buckets(gateway):
    admin, mlflow, worker, reader = (_client(gateway, who) for who in KEYS)
    mlflow.put_object(Bucket="mlflow", Key="0/run/artifacts/model/model.safetensors", Body=b"weights")
    worker.put_object(Bucket="dvc", Key="w2s/files/md5/ab/cdef", Body=b"labels")
    can = {
        ("mlflow", "write mlflow"): lambda: mlflow.put_object(Bucket="mlflow", Key="x", Body=b"1"),
        ("mlflow", "read dvc"): lambda: mlflow.get_object(Bucket="dvc", Key="w2s/files/md5/ab/cdef"),
        ("worker", "read dvc"): lambda: worker.get_object(Bucket="dvc", Key="w2s/files/md5/ab/cdef"),
        ("worker", "list dvc"): lambda: worker.list_objects_v2(Bucket="dvc"),
        ("worker", "read mlflow"): lambda: worker.get_object(Bucket="mlflow", Key="x"),
        ("worker", "overwrite model weights"): lambda: worker.put_object(
            Bucket="mlflow", Key="0/run/artifacts/model/model.safetensors", Body=b"evil"
        ),
        ("worker", "create a bucket"): lambda: worker.create_bucket(Bucket="other"),
        ("reader", "read dvc"): lambda: reader.get_object(Bucket="dvc", Key="w2s/files/md5/ab/cdef"),
        ("reader", "list dvc"): lambda: reader.list_objects_v2(Bucket="dvc"),
        ("reader", "write dvc"): lambda: reader.put_object(Bucket="dvc", Key="w2s/x", Body=b"1"),
        ("reader", "delete dvc"): lambda: reader.delete_object(Bucket="dvc", Key="w2s/files/md5/ab/cdef"),
        ("reader", "read mlflow"): lambda: reader.get_object(Bucket="mlflow", Key="x"),
        ("admin", "create a bucket"): lambda: admin.create_bucket(Bucket="scratch"),
    }
    expected = {
        ("mlflow", "write mlflow"),
        ("worker", "read dvc"),
        ("worker", "list dvc"),
        ("reader", "read dvc"),
        ("reader", "list dvc"),
        ("admin", "create a bucket"),
    }
    assert {case for case, call in can.items() if _allowed(call)} == expected
    assert admin.get_object(Bucket="mlflow", Key="0/run/artifacts/model/model.safetensors")["Body"].read() == b"weights"


def _dvc(repo: Path, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    key, secret = KEYS[who]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)


def test_the_worker_pushes_with_its_key_and_a_reader_pulls_but_cannot_push(gateway, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    for args in (("init", "-q"), ("remote", "add", "-d", "team", "s3://dvc/w2s")):
        assert _dvc(repo, "worker", *args).returncode == 0
    assert _dvc(repo, "worker", "remote", "modify", "team", "endpointurl", gateway).returncode == 0
    (repo / "labels.parquet").write_bytes(os.urandom(4096))
    assert _dvc(repo, "worker", "add", "-q", "labels.parquet").returncode == 0
    pushed = _dvc(repo, "worker", "push")
    assert pushed.returncode == 0, pushed.stderr[-2000:]

    (repo / "more.parquet").write_bytes(os.urandom(4096))
    assert _dvc(repo, "reader", "add", "-q", "more.parquet").returncode == 0
    refused = _dvc(repo, "reader", "push", "more.parquet")
    assert refused.returncode != 0, "a reader's key cannot write the remote"

    data = (repo / "labels.parquet").read_bytes()
    shutil.rmtree(repo / ".dvc" / "cache")
    (repo / "labels.parquet").unlink()
    pulled = _dvc(repo, "reader", "pull", "labels.parquet")
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert (repo / "labels.parquet").read_bytes() == data
