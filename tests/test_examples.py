"""Every example runs: each is started as its own process, against the embedded
``DNSServer`` and local HTTP servers, and its output is checked."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import safedns
from safedns.testing import DNSServer

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
SRC = str(Path(safedns.__file__).resolve().parents[1])
SAFEDNS = Path(sys.executable).parent / "safedns"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """An environment for child processes: this checkout's safedns, a private
    resolv.conf, no inherited resolver variables."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("search ns1.svc.cluster.local svc.cluster.local cluster.local\n")
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SAFEDNS_") and k not in ("LOCALDOMAIN", "RES_OPTIONS")
    }
    return {**base, "PYTHONPATH": SRC, "SAFEDNS_RESOLV_CONF": str(resolv)}


def run_example(name: str, env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.parametrize("name", ["basic.py", "async_resolve.py", "outage.py"])
def test_existing_examples_run(name: str, env: dict[str, str]) -> None:
    assert run_example(name, env).strip()


def test_patch_sync_example(env: dict[str, str]) -> None:
    out = run_example("patch_sync.py", env)
    assert "urllib.request: hello from the downstream" in out
    assert "requests: hello from the downstream" in out
    # 20 requests by name under ndots:5, one A+AAAA lookup in all.
    assert "20 requests, 2 DNS queries" in out
    assert "('svc.example.com.', 'A'), ('svc.example.com.', 'AAAA')" in out


def test_fastapi_example(env: dict[str, str]) -> None:
    if importlib.util.find_spec("safedns.httpx") is None:
        pytest.skip("safedns.httpx (AsyncSafeTransport) is not on this branch yet")
    out = run_example("fastapi_service.py", env)
    assert "'downstream_status': 200" in out and "3 open orders" in out
    queries = int(out.split("20 calls to the downstream, ")[1].split()[0])
    assert 1 <= queries <= 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def names() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add("svc.example.com", "A", "192.0.2.44", ttl=300)
        yield server


def _gunicorn(env: dict[str, str], name: str, requests: int) -> tuple[list[list[str]], str]:
    """Run the gunicorn example as examples/README.md says, on a free loopback
    port with 2 workers; ``requests`` GETs of ``/?name=NAME``. Returns the
    split bodies and gunicorn's stderr."""
    port = _free_port()
    env = {
        **env,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
        # A worker that does not stop is killed after 5 s, not gunicorn's 30 s.
        "GUNICORN_CMD_ARGS": "--graceful-timeout 5",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi_app:app"],
        cwd=EXAMPLES,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/?name={name}"
        bodies = []
        deadline = time.monotonic() + 60
        while len(bodies) < requests:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    bodies.append(response.read().decode().split())
            except OSError:
                assert proc.poll() is None, proc.communicate()[1]
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.1)
    finally:
        # SIGINT is gunicorn's quick shutdown (SIGTERM waits up to its 30 s
        # graceful timeout for workers, which is not what this test is about).
        proc.send_signal(signal.SIGINT)
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            raise AssertionError(f"gunicorn did not stop on SIGINT: {stderr}") from None
    return bodies, stderr


def test_gunicorn_config_patches_every_worker(names: DNSServer, env: dict[str, str]) -> None:
    env = {**env, "SAFEDNS_NAMESERVERS": names.nameserver}
    bodies, stderr = _gunicorn(env, "svc.example.com", 20)
    assert all(body[1:] == ["True", "192.0.2.44"] for body in bodies), bodies
    workers = {body[0] for body in bodies}
    assert "resolves through safedns" in stderr
    assert "embedded DNS server" not in stderr  # SAFEDNS_NAMESERVERS was set
    # Each worker resolves once (A and AAAA) and answers from its cache after that.
    assert 2 <= len(names.queries) <= 2 * len(workers), names.queries
    assert set(names.queries) <= {("svc.example.com.", "A"), ("svc.example.com.", "AAAA")}


def test_gunicorn_example_runs_on_loopback_by_itself(env: dict[str, str]) -> None:
    """Run as examples/README.md says, without SAFEDNS_NAMESERVERS: the workers
    resolve through the example's embedded DNS server, not the host's (issue
    19, 7)."""
    bodies, stderr = _gunicorn(env, "svc.example.com", 4)
    assert all(body[1:] == ["True", "192.0.2.44"] for body in bodies), bodies
    assert "embedded DNS server on 127.0.0.1:" in stderr
    assert "resolves through safedns" in stderr


def test_kubernetes_manifest(names: DNSServer, env: dict[str, str]) -> None:
    manifest = yaml.safe_load((EXAMPLES / "kubernetes" / "deployment.yaml").read_text())
    assert manifest["kind"] == "Deployment"
    pod = manifest["spec"]["template"]["spec"]
    assert {"name": "ndots", "value": "2"} in pod["dnsConfig"]["options"]
    (container,) = pod["containers"]
    assert container["command"] == ["safedns", "run", "--"]
    (init,) = pod["initContainers"]
    assert init["command"] == ["safedns", "doctor"]
    env = {**env, "SAFEDNS_NAMESERVERS": names.nameserver}

    # The entrypoint wrapper, with a program of ours in place of the image's.
    check = (
        "import socket, safedns; "
        "print(socket.getaddrinfo('svc.example.com', 80)[0][4][0], safedns.is_patched())"
    )
    wrapped = subprocess.run(
        [str(SAFEDNS), *container["command"][1:], sys.executable, "-c", check],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert wrapped.returncode == 0, wrapped.stderr
    assert wrapped.stdout.split() == ["192.0.2.44", "True"]

    # The init container's check passes against a DNS server that answers.
    doctor = subprocess.run(
        [str(SAFEDNS), *init["command"][1:], *init["args"]],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "payments.billing" in doctor.stdout
