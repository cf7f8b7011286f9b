"""httpx2 transports that resolve through safedns (``pip install 'safedns[httpx2]'``).

httpx2 is the maintained fork of httpx 0.28 over httpcore2, with the same API
under new module names. ``safedns.httpx2.SafeTransport`` and
``AsyncSafeTransport`` are ``safedns.httpx``'s, made from the same source, not
a copy of it: each module of ``safedns.httpx`` is loaded a second time, as
``safedns.httpx2.<module>``, with exactly three rewrites of its text
(``REWRITES``): ``import httpx`` becomes ``import httpx2 as httpx``, ``import
httpcore`` becomes ``import httpcore2 as httpcore``, and ``safedns.httpx.``
becomes ``safedns.httpx2.``. Everything else (Happy Eyeballs, DNS off the
request path, retries elsewhere under the budget) is the same code.

>>> import httpx2, safedns                                  # doctest: +SKIP
>>> from safedns.httpx2 import SafeTransport
>>> with httpx2.Client(transport=SafeTransport(retry=safedns.RetryPolicy())) as client:
...     client.get("https://api.example.com/")
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

try:
    import httpcore2 as _httpcore2  # noqa: F401
    import httpx2 as _httpx2  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        f"safedns.httpx2 needs httpx2 and httpcore2: pip install 'safedns[httpx2]' ({exc})"
    ) from exc

__all__ = [
    "AsyncSafeBackend",
    "AsyncSafeTransport",
    "SafeBackend",
    "SafeTransport",
    "TransportStats",
]

#: The rewrites that make a ``safedns.httpx`` module one of ``safedns.httpx2``:
#: (pattern, replacement), each applied to whole lines of import statements
#: or dotted module names only.
REWRITES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^import httpx$", re.M), "import httpx2 as httpx"),
    (re.compile(r"^import httpcore$", re.M), "import httpcore2 as httpcore"),
    (re.compile(r"\bsafedns\.httpx\."), "safedns.httpx2."),
)

_PREFIX = __name__ + "."


def _source_dir() -> Path:
    """The folder of ``safedns.httpx``, found without importing it (that
    would need httpx)."""
    spec = importlib.util.find_spec("safedns")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "httpx"


SOURCE = _source_dir()


def twin_source(text: str) -> str:
    """``text`` (a module of ``safedns.httpx``) as its ``safedns.httpx2`` twin."""
    for pattern, replacement in REWRITES:
        text = pattern.sub(replacement, text)
    return text


class _TwinLoader(importlib.abc.Loader):
    def __init__(self, path: Path) -> None:
        self.path = path

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return None

    def exec_module(self, module: types.ModuleType) -> None:
        text = twin_source(self.path.read_text(encoding="utf-8"))
        exec(compile(text, str(self.path), "exec", dont_inherit=True), module.__dict__)


class _TwinFinder(importlib.abc.MetaPathFinder):
    """Finds ``safedns.httpx2._x`` in ``safedns/httpx/_x.py``."""

    def find_spec(
        self, fullname: str, path: Any = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(_PREFIX):
            return None
        leaf = fullname[len(_PREFIX) :]
        source = SOURCE / f"{leaf}.py"
        if "." in leaf or not leaf.startswith("_") or not source.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, source, loader=_TwinLoader(source))


if not any(isinstance(finder, _TwinFinder) for finder in sys.meta_path):
    sys.meta_path.insert(0, _TwinFinder())

_sync: Any = importlib.import_module(_PREFIX + "_sync")
_async: Any = importlib.import_module(_PREFIX + "_async")
_common: Any = importlib.import_module(_PREFIX + "_common")

SafeBackend: Any = _sync.SafeBackend
SafeTransport: Any = _sync.SafeTransport
AsyncSafeBackend: Any = _async.AsyncSafeBackend
AsyncSafeTransport: Any = _async.AsyncSafeTransport
TransportStats: Any = _common.TransportStats

for _name in __all__:
    if globals()[_name].__module__.startswith(_PREFIX):  # made here, not shared
        globals()[_name].__module__ = __name__
del _name
