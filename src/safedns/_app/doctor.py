"""``safedns doctor``: what this host's resolver setup costs, and what to change.

Two halves, kept apart:

- :func:`gather` and :func:`probe_nameservers` do the I/O: read resolv.conf
  (``SAFEDNS_RESOLV_CONF`` honoured), nsswitch.conf, the hosts file and the
  environment, and send one short query to each nameserver (bounded: a short
  timeout, all servers at once, every socket closed).
- :func:`diagnose` is pure: from those facts it computes, per name, the
  candidates and queries of glibc's ``res_search`` order and of
  :func:`safedns.plan`, and the problems and advice. Tests feed it directly.

Query counts are for one uncached ``getaddrinfo``-like lookup (A and AAAA per
candidate name). "Found" assumes the name exists where safedns asks first
(its planning puts the likely answer first); "not found" is a name that
exists nowhere. glibc caches nothing, so it pays that on every lookup;
safedns pays it once per TTL.
"""

from __future__ import annotations

import concurrent.futures
import os
import socket
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import dns.exception
import dns.message
import dns.query
import dns.rcode

from safedns._app.replay import glibc_plan
from safedns._bypasses import Bypass
from safedns._config import ResolverConfig, parse_nameserver
from safedns._exceptions import InvalidName
from safedns._hosts import HOSTS_PATH, NSSWITCH_PATH, HostsFile, NsSwitch
from safedns._planning import cluster_domain_of, iana_tlds, plan

__all__ = [
    "DEFAULT_NAMES",
    "NODELOCAL_ADDRESS",
    "Diagnosis",
    "HostFacts",
    "NameCost",
    "Probe",
    "default_names",
    "diagnose",
    "format_diagnosis",
    "gather",
    "pod_namespace",
    "probe_nameservers",
    "queries_until",
]

#: Names examined when none is given (plus cluster names on a Kubernetes pod).
DEFAULT_NAMES = ("api.example.com", "my-svc")
#: The link-local address NodeLocal DNSCache listens on by default.
NODELOCAL_ADDRESS = "169.254.20.10"
#: glibc environment variables that change name resolution.
GLIBC_ENV = ("LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES", "RESOLV_HOST_CONF", "RESOLV_MULTI")
_MAX_PROBES = 8


# ---------------------------------------------------------------------- facts


@dataclass(frozen=True)
class Probe:
    """One nameserver's reply to one query: ``answered`` with an rcode and a
    latency, or not, with the reason."""

    server: str
    answered: bool
    rcode: str | None = None
    latency_ms: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class HostFacts:
    """What :func:`gather` read from the host (or what a test says it read)."""

    config: ResolverConfig
    resolv_conf: str
    resolv_conf_found: bool
    nsswitch: str
    hosts_sources: tuple[str, ...]
    hosts_path: str
    hosts_found: bool
    hosts_names: frozenset[str]
    environment: Mapping[str, str]
    config_error: str | None = None
    #: Whether the host has a route to a global IPv6 address (None: not looked).
    ipv6_route: bool | None = None


@dataclass(frozen=True)
class NameCost:
    """The queries one name costs, glibc against safedns."""

    name: str
    glibc_candidates: list[str]
    safedns_candidates: list[str]
    glibc_queries: int
    safedns_queries: int
    glibc_queries_not_found: int
    safedns_queries_not_found: int
    in_hosts_file: bool
    note: str
    error: str | None = None


@dataclass(frozen=True)
class Diagnosis:
    """Everything doctor found; :meth:`as_dict` is the ``--json`` document."""

    facts: HostFacts
    names: list[NameCost]
    probes: list[Probe]
    problems: list[dict[str, str]] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    #: The modules ``--import`` imported, and those loaded that resolve outside safedns.
    imported: list[str] = field(default_factory=list)
    bypasses: list[Bypass] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem of severity "error"."""
        return not any(p["severity"] == "error" for p in self.problems)

    @property
    def network(self) -> str:
        """ "reachable" if some nameserver answered, "unreachable" if none did."""
        return "reachable" if any(p.answered for p in self.probes) else "unreachable"

    def as_dict(self) -> dict[str, object]:
        config = self.facts.config
        return {
            "ok": self.ok,
            "resolv_conf": {"path": self.facts.resolv_conf, "found": self.facts.resolv_conf_found},
            "nsswitch": {"path": self.facts.nsswitch, "hosts": list(self.facts.hosts_sources)},
            "hosts_file": {
                "path": self.facts.hosts_path,
                "found": self.facts.hosts_found,
                "names": len(self.facts.hosts_names),
            },
            "environment": dict(self.facts.environment),
            "config_error": self.facts.config_error,
            "nameservers": list(config.nameservers),
            "search": list(config.search),
            "ndots": config.ndots,
            "timeout": config.timeout,
            "attempts": config.attempts,
            "cluster_domain": config.cluster_domain or cluster_domain_of(config.search),
            "no_aaaa": config.no_aaaa,
            "ipv6_route": self.facts.ipv6_route,
            "network": self.network,
            "probes": [asdict(p) for p in self.probes],
            "names": [asdict(n) for n in self.names],
            "problems": list(self.problems),
            "advice": list(self.advice),
            "imported": list(self.imported),
            "bypasses": [b.as_dict() for b in self.bypasses],
        }


# ------------------------------------------------------------------- the I/O


def gather(
    environ: Mapping[str, str] | None = None,
    *,
    resolv_conf: str | None = None,
    nsswitch: str = NSSWITCH_PATH,
    hosts: str = HOSTS_PATH,
) -> HostFacts:
    """Read this host's resolver setup. Never raises for a bad file or variable:
    a config that cannot be built is reported in ``config_error``, and the
    ``SAFEDNS_*`` variables that make it fail are left out (the others,
    ``SAFEDNS_NAMESERVERS`` say, still count)."""
    env = os.environ if environ is None else environ
    path = resolv_conf or env.get("SAFEDNS_RESOLV_CONF") or "/etc/resolv.conf"
    config, error = _config_without_bad_variables(path, env)
    hosts_file = HostsFile(hosts)
    names = {
        name.decode("ascii", "replace").lower()
        for entry in hosts_file.data.entries
        for name in (entry.name, *entry.aliases)
    }
    watched = {k: v for k, v in env.items() if k.startswith("SAFEDNS_") or k in GLIBC_ENV}
    return HostFacts(
        config=config,
        resolv_conf=path,
        resolv_conf_found=os.path.isfile(path),
        nsswitch=nsswitch,
        hosts_sources=tuple(s.name for s in NsSwitch(nsswitch).sources),
        hosts_path=hosts,
        hosts_found=not hosts_file.data.missing,
        hosts_names=frozenset(names),
        environment=dict(sorted(watched.items())),
        config_error=error,
        ipv6_route=has_ipv6_route(),
    )


def _config_without_bad_variables(
    path: str, env: Mapping[str, str]
) -> tuple[ResolverConfig, str | None]:
    """The config ``env`` gives, or, when it cannot be built, the one without
    the ``SAFEDNS_*`` variables that fail (added one at a time to glibc's
    view), and what was wrong with them."""
    try:
        return ResolverConfig.from_system(path, environ=env), None
    except (ValueError, OSError) as exc:
        first = str(exc)
    kept = {k: v for k, v in env.items() if not k.startswith("SAFEDNS_")}
    errors: list[str] = []
    for name in sorted(k for k in env if k.startswith("SAFEDNS_")):
        trial = {**kept, name: env[name]}
        try:
            ResolverConfig.from_system(path, environ=trial)
        except (ValueError, OSError) as exc:
            errors.append(f"{exc} ({name} ignored)")
        else:
            kept = trial
    try:
        config = ResolverConfig.from_system(path, environ=kept)
    except (ValueError, OSError):
        config = ResolverConfig()
    return config, "; ".join(errors) or first


def has_ipv6_route(probe: str = "2001:db8::1") -> bool:
    """Whether this host can route to a global IPv6 address: a UDP socket is
    connected to ``probe`` (the kernel picks a route; nothing is sent)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.connect((probe, 53))
    except OSError:  # no IPv6 at all, or no route (ENETUNREACH)
        return False
    return True


def _probe(server: str, timeout: float) -> Probe:
    try:
        host, port = parse_nameserver(server)
    except ValueError as exc:
        return Probe(server, False, error=str(exc))
    query = dns.message.make_query(".", "NS")
    began = time.perf_counter()
    try:
        reply = dns.query.udp(query, host, port=port, timeout=timeout, ignore_unexpected=True)
    except dns.exception.Timeout:
        return Probe(server, False, error=f"no answer within {timeout:g} s")
    except (OSError, dns.exception.DNSException) as exc:
        return Probe(server, False, error=f"unreachable: {exc}")
    latency = (time.perf_counter() - began) * 1000
    return Probe(server, True, dns.rcode.to_text(reply.rcode()), round(latency, 2))


def probe_nameservers(servers: Sequence[str], timeout: float = 1.0) -> list[Probe]:
    """Ask each server (at most 8) for the root NS set, all at once; the whole
    probe takes about ``timeout`` at most."""
    chosen = list(servers)[:_MAX_PROBES]
    if not chosen:
        return []
    with concurrent.futures.ThreadPoolExecutor(len(chosen), "safedns-doctor") as pool:
        return list(pool.map(lambda s: _probe(s, timeout), chosen))


# ------------------------------------------------------------------ analysis


def queries_until(candidates: Sequence[str], found: str | None) -> int:
    """Queries (A and AAAA per candidate) until ``found`` answers, or all of them."""
    if found is not None and found in candidates:
        return 2 * (candidates.index(found) + 1)
    return 2 * len(candidates)


def pod_namespace(search: Sequence[str]) -> str:
    """The pod's namespace as its first search domain (``<ns>.svc.<cluster>``)
    shows it, else ``default``."""
    labels = search[0].split(".") if search else []
    return labels[0] if len(labels) > 2 and labels[1] == "svc" else "default"


def default_names(config: ResolverConfig) -> list[str]:
    """The names examined when none is given."""
    names = list(DEFAULT_NAMES)
    cluster = config.cluster_domain or cluster_domain_of(config.search)
    if cluster is not None:
        namespace = pod_namespace(config.search)
        names += [f"my-svc.{namespace}", "api.prod", f"kubernetes.default.svc.{cluster}"]
    return names


def _expected_answer(bare: str, ours: Sequence[str], config: ResolverConfig) -> str:
    """Where the name most likely exists: as written when it ends in the
    cluster domain, ``service.namespace`` under ``svc.<cluster>``, else the
    candidate safedns asks first."""
    cluster = config.cluster_domain or cluster_domain_of(config.search)
    if _in_cluster(bare, config):
        return f"{bare}."
    if cluster is not None and bare.count(".") == 1:
        service = f"{bare}.svc.{cluster}."
        if service in ours:
            return service
    return ours[0]


def _in_cluster(bare: str, config: ResolverConfig) -> bool:
    cluster = config.cluster_domain or cluster_domain_of(config.search)
    return cluster is not None and (bare == cluster or bare.endswith(f".{cluster}"))


def _cost(name: str, facts: HostFacts) -> NameCost:
    config = facts.config
    in_hosts = name.rstrip(".").lower() in facts.hosts_names
    try:
        ours = plan(name, config)
        theirs = glibc_plan(name, config.search, config.ndots)
    except (InvalidName, ValueError) as exc:
        return NameCost(name, [], [], 0, 0, 0, 0, in_hosts, "", error=str(exc))
    bare = name.rstrip(".").lower()
    absolute = f"{bare}."
    found = _expected_answer(bare, ours, config)
    if name.endswith("."):
        note = "absolute name (trailing dot): asked once, by both"
    elif ours == theirs and ours[0] != absolute and _in_cluster(bare, config):
        note = (
            f"a full cluster name: both walk the search list first; write {absolute} to ask once"
        )
    elif ours == theirs:
        dots = bare.count(".")
        if (
            dots
            and dots < config.ndots
            and bare.rsplit(".", 1)[-1] in iana_tlds()
            and config.search
        ):
            note = (
                "ambiguous: it could be a service in namespace "
                f"{bare.rsplit('.', 1)[-1]!r}, so it walks the search list first, as glibc "
                f"does; write {absolute} if you mean the public name"
            )
        else:
            note = "same order as glibc"
    elif ours == [absolute]:
        note = "under the cluster domain: already fully qualified, asked once"
    elif ours[0] == absolute and _in_cluster(bare, config):
        note = (
            "a full cluster name: asked as-is first (CoreDNS answers none of its search "
            "names), then the search list; glibc walks the search list first"
        )
    elif ours[0] == absolute:
        note = "clearly external: asked as-is first, then the search list"
    else:
        note = "safedns orders the candidates differently from glibc"
    return NameCost(
        name=name,
        glibc_candidates=theirs,
        safedns_candidates=ours,
        glibc_queries=queries_until(theirs, found),
        safedns_queries=queries_until(ours, found),
        glibc_queries_not_found=queries_until(theirs, None),
        safedns_queries_not_found=queries_until(ours, None),
        in_hosts_file=in_hosts,
        note=note,
    )


def diagnose(
    facts: HostFacts,
    names: Sequence[str],
    probes: Sequence[Probe],
    *,
    imported: Sequence[str] = (),
    bypasses: Sequence[Bypass] = (),
) -> Diagnosis:
    """The problems and advice for ``facts`` (pure); ``bypasses``: the modules the
    application loads (``imported``) that resolve outside safedns."""
    config = facts.config
    costs = [_cost(name, facts) for name in names]
    problems: list[dict[str, str]] = []
    advice: list[str] = []

    def problem(severity: str, message: str) -> None:
        problems.append({"severity": severity, "message": message})

    if facts.config_error:
        problem("error", f"the SAFEDNS_* settings are invalid: {facts.config_error}")
    for cost in costs:
        if cost.error:
            problem("error", f"{cost.name!r} is not a valid host name: {cost.error}")
    if probes and not any(p.answered for p in probes):
        problem(
            "error",
            "no nameserver answered: this host cannot reach DNS right now (no network, "
            "or every nameserver is down); only cached answers (serve-stale) can help",
        )
    else:
        for p in probes:
            if not p.answered:
                problem("warning", f"nameserver {p.server} does not answer: {p.error}")
            elif p.rcode not in ("NOERROR", "NXDOMAIN"):
                problem("warning", f"nameserver {p.server} answers {p.rcode}")
    if "dns" not in facts.hosts_sources:
        problem("warning", f"nsswitch.conf's hosts: line has no 'dns' ({facts.nsswitch})")
    if "HOSTALIASES" in facts.environment:
        problem(
            "warning",
            "HOSTALIASES is set: glibc maps single-label names through it; safedns does not",
        )
    if len(config.nameservers) == 1:
        problem(
            "warning",
            "one nameserver: when it fails every uncached lookup fails (safedns keeps serving "
            "stale answers meanwhile)",
        )

    cluster = config.cluster_domain or cluster_domain_of(config.search)
    worst = max((c for c in costs if not c.error), key=lambda c: c.glibc_queries, default=None)
    if worst is not None and worst.glibc_queries > worst.safedns_queries:
        problem(
            "warning",
            f"ndots:{config.ndots} with {len(config.search)} search domain(s): glibc sends "
            f"{worst.glibc_queries} queries to find {worst.name} where safedns sends "
            f"{worst.safedns_queries}, on every lookup (glibc caches nothing)",
        )
    if cluster is not None and config.ndots > 2:
        advice.append(
            "lower ndots in the pod spec (names with two or more dots are then asked as-is "
            'first):\n  dnsConfig:\n    options:\n      - name: ndots\n        value: "2"'
        )
    if cluster is not None and NODELOCAL_ADDRESS not in config.nameservers:
        advice.append(
            "run NodeLocal DNSCache: a cache on every node (169.254.20.10) absorbs what pods "
            "send before it reaches CoreDNS, and it keeps TCP to CoreDNS (no conntrack races)"
        )
    if cluster is not None or (worst is not None and worst.glibc_queries > worst.safedns_queries):
        advice.append(
            "call safedns.patch() at start-up (or run the service as `safedns run -- CMD`): "
            "socket.getaddrinfo then plans, caches and budgets queries in this process; "
            "with a pre-fork server, patch in each worker (gunicorn post_fork)"
        )
    if any("ambiguous" in c.note for c in costs):
        advice.append(
            "one-dot names ending in a top-level domain (api.prod) can be a service in a "
            "namespace: safedns, like glibc, tries the search list first so a public twin "
            "never answers for it; end public names with a dot, or write service names in "
            f"full (api.prod.svc.{cluster or 'cluster.local'}.)"
        )
    if facts.ipv6_route is False and not config.no_aaaa:
        advice.append(
            "this host has no IPv6 route, so AAAA answers are of no use here: add "
            "`options no-aaaa` (glibc 2.36; safedns reads it too) to halve the queries:\n"
            "  dnsConfig:\n    options:\n      - name: no-aaaa"
        )
    if any(c.in_hosts_file for c in costs):
        advice.append("names in the hosts file are answered from it, without DNS")
    for bypass in bypasses:
        problem(
            "warning",
            f"{bypass.module} ({bypass.package}) resolves outside safedns: patch() and "
            "safedns run do not cover its lookups",
        )
    return Diagnosis(facts, costs, list(probes), problems, advice, list(imported), list(bypasses))


# ----------------------------------------------------------------- rendering


def format_diagnosis(diagnosis: Diagnosis) -> str:
    """The diagnosis as text."""
    facts, config = diagnosis.facts, diagnosis.facts.config
    found = "" if facts.resolv_conf_found else " (not found: glibc's defaults)"
    lines = [
        f"resolver configuration from {facts.resolv_conf}{found}",
        f"  nameservers  {' '.join(config.nameservers)}",
        f"  search       {' '.join(config.search) or '(none)'}",
        f"  ndots        {config.ndots}",
        f"  timeout      {config.timeout:g} s, attempts {config.attempts}",
        f"  hosts:       {' '.join(facts.hosts_sources)}  ({facts.nsswitch})",
        f"  hosts file   {facts.hosts_path}: {len(facts.hosts_names)} names"
        + ("" if facts.hosts_found else " (not found)"),
    ]
    for key, value in facts.environment.items():
        lines.append(f"  env          {key}={value}")
    lines += ["", f"nameservers ({diagnosis.network})"]
    for p in diagnosis.probes:
        state = f"answers {p.rcode} in {p.latency_ms:g} ms" if p.answered else p.error
        lines.append(f"  {p.server}: {state}")
    lines += ["", "queries per uncached lookup (A and AAAA)  glibc  safedns  (not found)"]
    width = max((len(c.name) for c in diagnosis.names), default=0)
    for c in diagnosis.names:
        if c.error:
            lines.append(f"  {c.name.ljust(width)}  invalid: {c.error}")
            continue
        lines.append(
            f"  {c.name.ljust(width)}  {c.glibc_queries:>5}  {c.safedns_queries:>7}  "
            f"({c.glibc_queries_not_found} vs {c.safedns_queries_not_found})  {c.note}"
        )
    if diagnosis.imported:
        imported = ", ".join(diagnosis.imported)
        lines += ["", f"modules that resolve outside safedns (after importing {imported})"]
        if not diagnosis.bypasses:
            lines.append("  none: lookups go through Python's socket module or an event loop")
        for bypass in diagnosis.bypasses:
            lines.append(f"  {bypass.module} ({bypass.package})")
            for label, text in (("how", bypass.resolves), ("what to do", bypass.advice)):
                lines += textwrap.wrap(
                    f"{label}: {text}", 88, initial_indent="    ", subsequent_indent="      "
                )
    if diagnosis.problems:
        lines += ["", "problems"]
        lines += [f"  {p['severity']}: {p['message']}" for p in diagnosis.problems]
    if diagnosis.advice:
        lines += ["", "advice"]
        for item in diagnosis.advice:
            first, *rest = item.split("\n")
            lines.append(f"  - {first}")
            lines += [f"    {line}" for line in rest]
    lines += ["", "ok" if diagnosis.ok else "problems found"]
    return "\n".join(lines)
