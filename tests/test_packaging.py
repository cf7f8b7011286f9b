"""The release artefacts: an sdist and a wheel built the standard way
(``python -m build``), each installed into a clean virtual environment and
smoke-tested there, away from this checkout.

The clean environments have no pip of their own and reach no index: the
artefact is installed with this environment's pip (``pip --python``) with
``--no-deps --no-index``, and the declared dependencies (dnspython,
cachetools) are the ones already installed here, made visible through a
``.pth`` line *after* the venv's own site-packages, so ``import safedns``
can only find the installed artefact.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path
from typing import Any

import pytest

import safedns

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.packaging

SMOKE = """
import json, os, sys
import safedns
from safedns.testing import DNSServer

here = os.path.realpath(safedns.__file__)
assert here.startswith(os.path.realpath(sys.prefix)), here
from importlib import metadata, resources
assert metadata.version("safedns") == safedns.__version__
assert (resources.files("safedns") / "py.typed").is_file()
assert (resources.files("safedns") / "data" / "tlds-alpha-by-domain.txt").is_file()
with DNSServer() as server:
    server.add("api.example.com", "A", "192.0.2.10", ttl=60)
    config = safedns.ResolverConfig(nameservers=[server.nameserver], search=["svc.local"], ndots=5)
    with safedns.Resolver(config) as resolver:
        first = resolver.resolve("api.example.com")
        second = resolver.resolve("api.example.com")
    assert first.addresses == ["192.0.2.10"], first
    assert second.from_cache
    queries = len(server.queries)
print(json.dumps({"file": here, "version": safedns.__version__, "queries": queries}))
"""


def _run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        **kwargs,
    )
    assert result.returncode == 0, f"{args}:\n{result.stdout}\n{result.stderr}"
    return result


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        message = f"{module} is not installed (pip install -e '.[test]')"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``python -m build``: the sdist, then the wheel built from that sdist."""
    _require("build")
    _require("hatchling")
    out = tmp_path_factory.mktemp("dist")
    # --no-isolation: use the hatchling installed here instead of downloading
    # one; build still checks that it satisfies [build-system] requires.
    _run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT)
    yield out


def _artefact(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    assert len(found) == 1, found
    return found[0]


def _clean_venv(path: Path) -> Path:
    """A venv with no pip and no safedns; this environment's dependencies visible
    after its own site-packages. Returns its python."""
    _run(sys.executable, "-m", "venv", "--without-pip", path)
    python = path / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    site = Path(purelib.stdout.strip())
    (site / "zz_outer_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    probe = _run(python, "-c", "import importlib.util as u; print(u.find_spec('safedns'))")
    assert probe.stdout.strip() == "None", "the clean venv already sees a safedns"
    return python


def _install_and_smoke(python: Path, artefact: Path, *extra: str) -> None:
    _run(
        sys.executable,
        "-m",
        "pip",
        "--python",
        python,
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        *extra,
        artefact,
    )
    result = _run(python, "-c", SMOKE, cwd=python.parent)
    report = json.loads(result.stdout)
    assert report["version"] == safedns.__version__
    assert report["queries"] == 1
    script = python.parent / "safedns"
    version = _run(script, "--version")
    assert version.stdout.strip() == f"safedns {safedns.__version__}"


def test_wheel_contents_and_metadata(dist: Path) -> None:
    wheel = _artefact(dist, "safedns-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        info = f"safedns-{safedns.__version__}.dist-info"
        metadata = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    assert "safedns/py.typed" in names
    assert "safedns/data/tlds-alpha-by-domain.txt" in names
    assert "safedns/testing/_server.py" in names
    assert f"{info}/licenses/LICENSE" in names
    assert not any(name.startswith(("tests/", "src/")) for name in names)
    assert metadata["License-Expression"] == "MIT"
    requires = metadata.get_all("Requires-Dist") or []
    assert any(r.startswith("dnspython") for r in requires), requires
    assert any(r.startswith("cachetools") for r in requires), requires
    urls = dict(u.split(", ", 1) for u in metadata.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls), urls
    assert "safedns = safedns._app.cli:main" in entry_points


def test_sdist_contents(dist: Path) -> None:
    sdist = _artefact(dist, "safedns-*.tar.gz")
    with tarfile.open(sdist) as tf:
        names = {name.split("/", 1)[1] for name in tf.getnames() if "/" in name}
    for wanted in (
        "LICENSE",
        "CHANGELOG.md",
        "README.md",
        "pyproject.toml",
        "src/safedns/__init__.py",
        "src/safedns/py.typed",
        "tests/conftest.py",
    ):
        assert wanted in names, wanted


def test_wheel_installs_into_a_clean_venv(dist: Path, tmp_path: Path) -> None:
    python = _clean_venv(tmp_path / "venv")
    _install_and_smoke(python, _artefact(dist, "safedns-*.whl"))


def test_sdist_installs_into_a_clean_venv(dist: Path, tmp_path: Path) -> None:
    python = _clean_venv(tmp_path / "venv")
    # Building from the sdist needs hatchling: the one visible through the .pth line.
    _install_and_smoke(python, _artefact(dist, "safedns-*.tar.gz"), "--no-build-isolation")
