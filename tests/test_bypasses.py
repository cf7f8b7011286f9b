"""``safedns.bypasses()`` and its warning (issue 18 §1): modules that resolve outside
safedns, checked on the real grpcio and psycopg2. Each case runs in a fresh
interpreter, since what a process has imported is the whole point."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import safedns
from safedns import Bypass
from safedns._bypasses import KNOWN

SRC = str(Path(safedns.__file__).resolve().parents[1])


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter on this source tree, its log on stderr."""
    prelude = (
        "import logging, sys\n"
        "logging.basicConfig(stream=sys.stderr, format='%(levelname)s %(name)s %(message)s')\n"
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        check=False,
    )


def warnings_about(stderr: str, module: str) -> list[str]:
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(f"WARNING safedns {module} (") and "outside safedns" in line
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_grpc_and_psycopg2_are_named_and_the_log_warns() -> None:
    """A process that imported grpc and psycopg2 and called patch(): bypasses() names
    both, the log warns once about each, and their lookups really do bypass the
    patched socket.getaddrinfo (a spy on it sees no call while a grpc channel and a
    psycopg2 connection try ``localhost``)."""
    proc = run_python(
        """
        import json, socket
        import grpc, psycopg2
        import safedns

        safedns.patch()
        names = [b.module for b in safedns.bypasses()]
        calls = []
        patched = socket.getaddrinfo
        def spy(*args, **kwargs):
            calls.append(args[0])
            return patched(*args, **kwargs)
        socket.getaddrinfo = spy
        port = int(sys.argv[1])
        channel = grpc.insecure_channel(f"localhost:{port}")
        try:
            grpc.channel_ready_future(channel).result(timeout=1)
        except grpc.FutureTimeoutError:
            pass
        channel.close()
        try:
            psycopg2.connect(host="localhost", port=port, dbname="x", connect_timeout=5)
        except psycopg2.OperationalError:
            pass
        try:  # the control: a lookup through Python's socket module is seen
            socket.create_connection(("localhost", port), timeout=5)
        except OSError:
            pass
        socket.getaddrinfo = patched
        stats = safedns.Resolver().stats()
        safedns.Resolver().stats()  # a second reading warns no more
        print(json.dumps({"names": names, "calls": calls, "count": stats.bypassing_modules}))
        """,
        str(free_port()),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["names"] == ["grpc", "psycopg2"]
    assert result["count"] == 2
    # Neither library asked Python's socket module; the control did.
    assert result["calls"] == ["localhost"]
    (grpc_line,) = warnings_about(proc.stderr, "grpc")
    assert "GRPC_DNS_RESOLVER" in grpc_line and "NodeLocal DNSCache" in grpc_line
    (pg_line,) = warnings_about(proc.stderr, "psycopg2")
    assert "hostaddr" in pg_line


def test_a_process_that_imported_neither_reports_none() -> None:
    proc = run_python(
        """
        import json, socket
        import safedns

        safedns.patch()
        socket.getaddrinfo("localhost", 80)
        print(json.dumps({
            "bypasses": [b.module for b in safedns.bypasses()],
            "count": safedns.Resolver().stats().bypassing_modules,
            "grpc": "grpc" in sys.modules,
            "psycopg2": "psycopg2" in sys.modules,
        }))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {
        "bypasses": [],
        "count": 0,
        "grpc": False,
        "psycopg2": False,
    }
    assert "outside safedns" not in proc.stderr


def test_a_module_imported_after_patch_is_warned_about_at_the_next_cheap_point() -> None:
    """Imported after patch(): no warning at the import itself; one at the next
    stats() reading (grpc) or the drop-in's next check of its files (psycopg2, on a
    lookup after ``hosts_check_interval``); then none again."""
    proc = run_python(
        """
        import logging, socket
        import safedns

        log = logging.getLogger("safedns")
        addrinfo = safedns.patch()
        addrinfo.hosts_check_interval = 0.0
        import grpc
        log.warning("mark imported grpc")
        safedns.Resolver().stats()
        log.warning("mark read stats")
        import psycopg2
        log.warning("mark imported psycopg2")
        socket.getaddrinfo("localhost", 80)
        log.warning("mark looked up")
        socket.getaddrinfo("localhost", 80)
        safedns.Resolver().stats()
        """
    )
    assert proc.returncode == 0, proc.stderr
    order = [
        line.split(" ", 3)[2] if "mark" not in line else line.split(" ", 2)[2]
        for line in proc.stderr.splitlines()
        if line.startswith("WARNING safedns")
    ]
    assert order == [
        "mark imported grpc",
        "grpc",
        "mark read stats",
        "mark imported psycopg2",
        "psycopg2",
        "mark looked up",
    ]


def test_no_warning_while_not_patched() -> None:
    proc = run_python(
        """
        import json
        import grpc
        import safedns

        with safedns.patched():
            pass
        count = safedns.Resolver().stats().bypassing_modules  # counted, not warned
        print(json.dumps([count, [b.module for b in safedns.bypasses()]]))
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == [1, ["grpc"]]
    # patched() warned once while it was in; after it, nothing more.
    assert len(warnings_about(proc.stderr, "grpc")) == 1


def test_bypasses_reads_the_module_table_it_is_given() -> None:
    known = [entry.module for entry in KNOWN]
    assert known == ["grpc", "psycopg2", "psycopg", "MySQLdb", "confluent_kafka", "pycurl"]
    everything = {name: object() for name in [*known, "requests", "asyncpg"]}
    assert [b.module for b in safedns.bypasses(everything)] == known
    assert safedns.bypasses({}) == []
    assert safedns.bypasses({"grpc_status": object()}) == []  # only the module itself
    for entry in safedns.bypasses(everything):
        assert isinstance(entry, Bypass)
        document = entry.as_dict()
        assert set(document) == {"module", "package", "resolves", "advice"}
        assert all(isinstance(v, str) and v for v in document.values())
    assert "bypasses" in safedns.__all__ and "Bypass" in safedns.__all__


def run_doctor(tmp_path: Path, command: list[str], *args: str) -> subprocess.CompletedProcess[str]:
    """``command doctor ... args`` in ``tmp_path``, against a nameserver that never
    answers (the probe gives up after 0.2 s)."""
    resolv_conf = tmp_path / "resolv.conf"
    resolv_conf.write_text("nameserver 127.0.0.1\n")
    doctor = ["doctor", "--resolv-conf", str(resolv_conf), "--probe-timeout", "0.2"]
    return subprocess.run(
        [*command, *doctor, "x.example.", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.parametrize("output", ["json", "text"])
def test_doctor_import_reports_the_bypasses(output: str, tmp_path: Path) -> None:
    imports = ["--import", "grpc,json", "--import", "psycopg2"]
    json_flag = ["--json"] if output == "json" else []
    proc = run_doctor(tmp_path, [sys.executable, "-m", "safedns"], *imports, *json_flag)
    assert proc.returncode in (0, 1), proc.stderr
    if output == "json":
        document = json.loads(proc.stdout)
        assert document["imported"] == ["grpc", "json", "psycopg2"]
        assert [b["module"] for b in document["bypasses"]] == ["grpc", "psycopg2"]
        assert "GRPC_DNS_RESOLVER" in document["bypasses"][0]["resolves"]
        assert any("grpc (grpcio) resolves outside" in p["message"] for p in document["problems"])
    else:
        assert "modules that resolve outside safedns (after importing grpc, json, psycopg2)" in (
            proc.stdout
        )
        assert "  grpc (grpcio)\n    how: gRPC's C-core" in proc.stdout


def test_doctor_import_of_the_applications_own_module(tmp_path: Path) -> None:
    """--import finds a module in the current directory, as ``python -m`` would, and
    reports what that module loads; a module that fails to import is exit 2."""
    (tmp_path / "myapp.py").write_text("import grpc\n")
    (tmp_path / "broken.py").write_text("raise RuntimeError('no config')\n")
    # A script elsewhere, like the console script: sys.path[0] is not the directory.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "safedns"
    script.write_text("from safedns._app.cli import main\nraise SystemExit(main())\n")

    def doctor(*args: str) -> subprocess.CompletedProcess[str]:
        return run_doctor(tmp_path, [sys.executable, str(script)], *args)

    proc = doctor("--json", "--import", "myapp")
    assert proc.returncode in (0, 1), proc.stderr
    assert [b["module"] for b in json.loads(proc.stdout)["bypasses"]] == ["grpc"]
    for bad, message in (
        ("broken", "--import broken: RuntimeError: no config"),
        ("nosuch_module_x", "--import nosuch_module_x: ModuleNotFoundError"),
        ("grpc,", "--import: empty module name"),
    ):
        proc = doctor("--import", bad)
        assert proc.returncode == 2 and message in proc.stderr, (bad, proc.stderr)
        assert proc.stdout == ""


def test_both_exporters_expose_the_count() -> None:
    """Prometheus and OpenTelemetry show ``bypassing_modules`` as a gauge: 2 in a
    process that imported grpc and psycopg2."""
    proc = run_python(
        """
        import json
        import grpc, psycopg2
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from prometheus_client import CollectorRegistry, generate_latest
        import safedns
        import safedns.metrics.opentelemetry
        import safedns.metrics.prometheus

        with safedns.Resolver(safedns.ResolverConfig(nameservers=["127.0.0.1"])) as resolver:
            registry = CollectorRegistry()
            safedns.metrics.prometheus.register(resolver, registry)
            text = generate_latest(registry).decode()
            reader = InMemoryMetricReader()
            provider = MeterProvider(metric_readers=[reader])
            safedns.metrics.opentelemetry.instrument(resolver, provider)
            points = {}
            for resource in reader.get_metrics_data().resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        values = [p.value for p in metric.data.data_points]
                        points[metric.name] = (type(metric.data).__name__, values)
            provider.shutdown()
        lines = [l for l in text.splitlines() if "bypassing_modules" in l]
        print(json.dumps({"prometheus": lines, "otel": points["safedns.bypassing_modules"]}))
        """
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert "# TYPE safedns_bypassing_modules gauge" in result["prometheus"]
    assert "safedns_bypassing_modules 2.0" in result["prometheus"]
    assert result["otel"] == ["Gauge", [2]]
