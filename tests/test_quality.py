"""The project's own hygiene: lint, format, types and the public surface."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import safedns

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize(
    "command",
    [("ruff", "check", "."), ("ruff", "format", "--check", "."), ("mypy",)],
    ids=["ruff-check", "ruff-format", "mypy"],
)
def test_tool_is_clean(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_public_names_match_all() -> None:
    public = {name for name in dir(safedns) if not name.startswith("_")}
    # Public submodules, once imported.
    modules = {"aiohttp", "httpx", "metrics", "requests", "testing", "urllib3"}
    assert public - modules <= set(safedns.__all__) | {"annotations"}
    for name in safedns.__all__:
        obj = getattr(safedns, name)
        if isinstance(obj, type) or callable(obj):
            assert obj.__module__ == "safedns", name


def test_typed_marker_is_shipped() -> None:
    assert (Path(safedns.__file__).parent / "py.typed").exists()
