"""The Jinja views GX's Data Docs site builder renders pages with, sharing compiled templates.

GX gives every page view its own Jinja environment, so each page compiles its templates again:
about three quarters of a gate's Data Docs build. These views hand their environments one
in-memory bytecode cache for the process, so a template compiles once (Jinja still checks the
template source against the cached code's checksum on every load). The site builder configured
in `w2s.ops.data_docs` instantiates them by module and class name; this module imports GX at its
top, so it is only imported when a site is built.
"""

from __future__ import annotations

import threading
from typing import Any

from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import BytecodeCache
from jinja2.bccache import Bucket


class _InMemoryBytecode(BytecodeCache):
    """Compiled templates by Jinja's key (template name and source file), for this process."""

    def __init__(self) -> None:
        self._code: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def load_bytecode(self, bucket: Bucket) -> None:
        with self._lock:
            code = self._code.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)  # a stale checksum resets the bucket: Jinja recompiles

    def dump_bytecode(self, bucket: Bucket) -> None:
        code = bucket.bytecode_to_string()
        with self._lock:
            self._code[bucket.key] = code


COMPILED = _InMemoryBytecode()


class PageView(DefaultJinjaPageView):
    """GX's page view (validation results, expectation suites) with the shared compiled templates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED


class IndexPageView(DefaultJinjaIndexPageView):
    """GX's index page view with the shared compiled templates."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env.bytecode_cache = COMPILED
