"""Real glibc ``getaddrinfo`` under a Kubernetes-like resolv.conf, in a network namespace.

glibc only talks to nameservers on port 53, and the host's ``/etc/resolv.conf`` must not be
touched, so :class:`GlibcNamespace` creates a network namespace (``ip netns add``), brings up
its loopback, writes ``/etc/netns/NAME/{resolv.conf,hosts,nsswitch.conf}`` (which
``ip netns exec`` bind-mounts over ``/etc`` for the commands it runs, and for them only) and
starts a :class:`~safedns.testing._dnsmasq.Dnsmasq` on 127.0.0.1:53 inside it. Python code
then runs in the namespace with :meth:`GlibcNamespace.run_python`, and
``GlibcNamespace.dnsmasq.queries()`` counts what glibc sent. Needs root.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeAlias

from ._dnsmasq import Dnsmasq, Records, dnsmasq_available

__all__ = ["GaiResult", "GlibcNamespace", "netns_available"]

NETNS_ETC = "/etc/netns"

GaiResult: TypeAlias = (
    "list[tuple[int, int, int, str, tuple[Any, ...]]] | tuple[str, str, int | None, str]"
)
"""Per call: getaddrinfo's 5-tuples, or ``("error", type_name, errno, message)``."""

HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"

# Only files and dns for hosts: a host-side "resolve" (systemd-resolved), "mdns" or
# "myhostname" module would answer or forward outside the namespace's dnsmasq.
NSSWITCH = """\
passwd:     files
group:      files
shadow:     files
hosts:      files dns
networks:   files
protocols:  files
services:   files
"""

_GETADDRINFO_SCRIPT = """\
import json, socket, sys
out = []
for args in json.load(sys.stdin):
    try:
        infos = socket.getaddrinfo(*args)
    except Exception as exc:
        out.append(["error", type(exc).__name__, getattr(exc, "errno", None), str(exc)])
    else:
        out.append([[int(f), int(t), p, c, list(sa)] for f, t, p, c, sa in infos])
json.dump(out, sys.stdout)
"""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


@functools.cache
def netns_available() -> bool:
    """True when network namespaces with a dnsmasq inside can be used here.

    Needs root, ``ip`` and dnsmasq, and a probe ``ip netns add``/``del`` must work.
    The result is cached.
    """
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return False
    if shutil.which("ip") is None or not dnsmasq_available():
        return False
    name = f"safedns-probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        if _ip("netns", "add", name, check=False).returncode != 0:
            return False
        return _ip("-n", name, "link", "set", "lo", "up", check=False).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            _ip("netns", "del", name, check=False)


def _to_gai_result(item: Any) -> GaiResult:
    if item and item[0] == "error":
        _, type_name, errno, message = item
        return ("error", str(type_name), errno, str(message))
    result = []
    for family, kind, proto, canonname, sockaddr in item:
        with contextlib.suppress(ValueError):
            family = socket.AddressFamily(family)
        with contextlib.suppress(ValueError):
            kind = socket.SocketKind(kind)
        result.append((family, kind, proto, canonname, tuple(sockaddr)))
    return result


class _Resources:
    """What a GlibcNamespace set up, released in reverse order (also by a finalizer)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.netns_created = False
        self.etc_dir: str | None = None
        self.dnsmasq: Dnsmasq | None = None

    def release(self) -> None:
        errors: list[str] = []
        if self.dnsmasq is not None:
            try:
                self.dnsmasq.close()
            except Exception as exc:
                errors.append(f"stopping dnsmasq: {exc}")
            self.dnsmasq = None
        if self.netns_created:
            try:
                proc = _ip("netns", "del", self.name, check=False)
                if proc.returncode != 0 and self.name in _netns_names():
                    errors.append(f"ip netns del {self.name}: {proc.stderr.strip()}")
            except (OSError, subprocess.SubprocessError) as exc:
                errors.append(f"ip netns del {self.name}: {exc}")
            self.netns_created = False
        if self.etc_dir is not None:
            shutil.rmtree(self.etc_dir, ignore_errors=True)
            with contextlib.suppress(OSError):
                os.rmdir(NETNS_ETC)  # only succeeds when no other namespace uses it
            self.etc_dir = None
        if errors:
            raise RuntimeError("; ".join(errors))


def _netns_names() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class GlibcNamespace:
    """A network namespace whose glibc resolves through a dnsmasq on 127.0.0.1:53.

    ``records`` are served by :attr:`dnsmasq` (see :class:`Dnsmasq`) with TTL ``ttl``.
    ``search``, ``ndots`` and ``options`` (e.g. ``("attempts:2", "single-request")``) go
    into the namespace's resolv.conf. ``name`` defaults to a unique ``safedns-...`` name.

    Use as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        records: Records = (),
        *,
        search: Sequence[str] = ("ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"),
        ndots: int = 5,
        options: Sequence[str] = (),
        name: str | None = None,
        ttl: int = 300,
    ) -> None:
        self.records = records
        self.search = tuple(search)
        self.ndots = ndots
        self.options = tuple(options)
        self.name = name or f"safedns-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        if "/" in self.name or not self.name.strip():
            raise ValueError(f"invalid namespace name: {self.name!r}")
        self.ttl = ttl
        self._res: _Resources | None = None
        self._finalizer: weakref.finalize[..., GlibcNamespace] | None = None

    @property
    def etc_dir(self) -> str:
        """``/etc/netns/NAME``: files bind-mounted over ``/etc`` inside the namespace."""
        return os.path.join(NETNS_ETC, self.name)

    @property
    def dnsmasq(self) -> Dnsmasq:
        """The namespace's DNS server, for :meth:`Dnsmasq.queries` / :meth:`Dnsmasq.clear`."""
        if self._res is None or self._res.dnsmasq is None:
            raise RuntimeError("GlibcNamespace is not started")
        return self._res.dnsmasq

    def resolv_conf(self) -> str:
        """The resolv.conf text used inside the namespace."""
        lines = ["nameserver 127.0.0.1"]
        if self.search:
            lines.append("search " + " ".join(self.search))
        lines.append("options " + " ".join([f"ndots:{self.ndots}", *self.options]))
        return "\n".join(lines) + "\n"

    def start(self) -> GlibcNamespace:
        """Create the namespace and start dnsmasq in it. Returns ``self``.

        On failure everything set up so far is removed again.
        """
        if self._res is not None:
            return self
        res = _Resources(self.name)
        self._res = res
        self._finalizer = weakref.finalize(self, res.release)
        try:
            if self.name in _netns_names():
                raise RuntimeError(f"network namespace {self.name!r} already exists")
            self._write_etc(res)
            _ip("netns", "add", self.name)
            res.netns_created = True
            _ip("-n", self.name, "link", "set", "lo", "up")
            res.dnsmasq = Dnsmasq(
                self.records, host="127.0.0.1", port=53, ttl=self.ttl, netns=self.name
            ).start()
        except BaseException as exc:
            detail = exc.stderr.strip() if isinstance(exc, subprocess.CalledProcessError) else ""
            with contextlib.suppress(Exception):
                self.close()
            if detail:
                raise RuntimeError(f"setting up netns {self.name}: {detail}") from exc
            raise
        return self

    def _write_etc(self, res: _Resources) -> None:
        if os.path.exists(self.etc_dir):
            raise RuntimeError(f"{self.etc_dir} already exists")
        for attempt in range(5):  # another instance may rmdir an empty /etc/netns meanwhile
            try:
                os.makedirs(self.etc_dir)
                break
            except FileNotFoundError:
                if attempt == 4:
                    raise
        res.etc_dir = self.etc_dir
        files = {"resolv.conf": self.resolv_conf(), "hosts": HOSTS}
        if os.path.exists("/etc/nsswitch.conf"):  # a bind mount needs an existing target
            files["nsswitch.conf"] = NSSWITCH
        for filename, text in files.items():
            with open(os.path.join(self.etc_dir, filename), "w", encoding="utf-8") as f:
                f.write(text)

    def close(self) -> None:
        """Stop dnsmasq, delete the namespace and its ``/etc/netns`` files. Idempotent."""
        finalizer, self._finalizer = self._finalizer, None
        self._res = None
        if finalizer is not None:
            finalizer()

    def __enter__(self) -> GlibcNamespace:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "started" if self._res is not None else "stopped"
        return f"<GlibcNamespace {self.name} ndots:{self.ndots} {state}>"

    # -- running code inside ----------------------------------------------------------

    def command(self, *args: str) -> list[str]:
        """``ip netns exec NAME *args``."""
        return ["ip", "netns", "exec", self.name, *args]

    def run_python(
        self, code: str, timeout: float = 60, *, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``python -c code`` inside the namespace; ``safedns`` is importable there.

        The current ``sys.path`` is passed as ``PYTHONPATH``. Output is captured as text;
        the return code is not checked.
        """
        if self._res is None:
            raise RuntimeError("GlibcNamespace is not started")
        paths = [p or os.getcwd() for p in sys.path]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys(paths)))
        return subprocess.run(
            self.command(sys.executable, "-c", code),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )

    def getaddrinfo(self, calls: Sequence[Sequence[Any]], timeout: float = 60) -> list[GaiResult]:
        """Run ``socket.getaddrinfo(*args)`` for each ``args`` in ``calls``, in order, in one
        process inside the namespace.

        Arguments must be JSON-serialisable (host, port, family, type, proto, flags). Each
        result is the list of ``(family, type, proto, canonname, sockaddr)`` tuples, or
        ``("error", exception_type_name, errno, message)``.
        """
        proc = self.run_python(
            _GETADDRINFO_SCRIPT, timeout=timeout, input=json.dumps([list(c) for c in calls])
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"getaddrinfo helper failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return [_to_gai_result(item) for item in json.loads(proc.stdout)]
