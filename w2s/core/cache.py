"""Content-addressed artifact store.

An entry is a folder at `<root>/<kind>/<key>` where `key` is a hash of everything that
determines its content (data hashes, model ids, hyperparameters, seed, the step's code version).
It is built in a temporary folder and renamed into place only when complete, with a manifest of
file md5s that is checked on every use: a partial or corrupted entry is rebuilt, never used.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from w2s.core.config import stable_hash
from w2s.io import file_md5, read_json, write_json

log = logging.getLogger(__name__)
MANIFEST = "_manifest.json"


def cache_key(kind: str, spec: dict[str, Any]) -> str:
    """Hash of the entry kind and its full specification."""
    return stable_hash({"kind": kind, "spec": spec})


class ArtifactCache:
    """Folders keyed by content hash, verified on read, written atomically."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def lookup(self, kind: str, key: str) -> Path | None:
        """The entry's folder if it exists and every file matches its manifest, else None."""
        folder = self.path(kind, key)
        manifest = folder / MANIFEST
        if not manifest.is_file():
            return None
        try:
            files = read_json(manifest)["files"]
            ok = all(file_md5(folder / name) == md5 for name, md5 in files.items())
        except (OSError, ValueError, KeyError):
            ok = False
        if not ok:
            log.warning("cache entry %s/%s failed verification; rebuilding it", kind, key[:12])
            shutil.rmtree(folder, ignore_errors=True)
            return None
        return folder

    @contextmanager
    def build(self, kind: str, key: str, spec: dict[str, Any]) -> Iterator[Path]:
        """Yield an empty staging folder; on success seal it with a manifest and move it in place."""
        final = self.path(kind, key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", dir=final.parent))
        try:
            yield staging
            files = {str(p.relative_to(staging)): file_md5(p) for p in sorted(staging.rglob("*")) if p.is_file()}
            write_json(staging / MANIFEST, {"kind": kind, "key": key, "spec": spec, "files": files})
            if self.lookup(kind, key) is None:  # a concurrent run may have sealed it already
                try:
                    os.replace(staging, final)
                except OSError:  # ...or sealed it between the lookup and the rename
                    if self.lookup(kind, key) is None:
                        raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
