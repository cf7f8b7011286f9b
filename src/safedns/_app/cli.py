"""The ``safedns`` command: ``resolve``, ``replay``, ``run`` and ``audit``.

``main(argv)`` returns the exit status instead of exiting, so tests call it
in-process. Errors are one line on stderr, never a traceback: 1 for a name
that does not exist, 2 for everything else that went wrong.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any, cast

from safedns._app.doctor import (
    default_names,
    diagnose,
    format_diagnosis,
    gather,
    pod_namespace,
    probe_nameservers,
    queries_until,
)
from safedns._app.fleet import format_fleet, run_fleet
from safedns._app.replay import format_report, glibc_plan, run_replay
from safedns._app.timeline import (
    PlotUnavailable,
    QueryTimeline,
    check_plot_available,
    close_progress,
    make_progress,
    plot_replay,
)
from safedns._bypasses import bypasses
from safedns._config import ResolverConfig
from safedns._exceptions import InvalidName, NameNotFound, TemporaryFailure
from safedns._planning import cluster_domain_of, plan
from safedns._records import reverse_name
from safedns._resolver import Resolver

__all__ = ["main"]

_DEFAULT_RESOLV_CONF = "/etc/resolv.conf"


def main(argv: list[str] | None = None) -> int:
    """Run the ``safedns`` command line; return the exit status."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse already printed
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("safedns: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``safedns audit | head``): exit quietly.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1


# ---------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _version() -> str:
    from safedns import __version__

    return __version__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="safedns",
        description="A caching, ndots-aware DNS stub resolver that will not flood your DNS.",
    )
    parser.add_argument("--version", action="version", version=f"safedns {_version()}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    resolve = commands.add_parser(
        "resolve",
        help="resolve a name and show every query sent",
        description="Resolve NAME with the system's resolver settings (overridable) and "
        "print the answer and every query sent upstream. Exit status: 0 found, 1 not found "
        "(no such name, or no records of a type), 2 timeout or bad input.",
    )
    resolve.add_argument("name", metavar="NAME")
    resolve.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        help="record type: A (default), AAAA, MX, CNAME, TXT, ... (repeatable); PTR of an "
        "IP address asks its reverse name (10.2.0.192.in-addr.arpa.)",
    )
    resolve.add_argument(
        "-x",
        "--reverse",
        action="store_true",
        help="NAME is an IP address: ask its PTR record (as --type PTR)",
    )
    resolve.add_argument("--json", action="store_true", help="print one JSON object")
    resolve.add_argument(
        "--server",
        action="append",
        metavar="IP[:PORT]",
        help="nameserver to ask (repeatable); replaces resolv.conf's",
    )
    resolve.add_argument(
        "--search", action="append", metavar="DOMAIN", help="search domain (repeatable)"
    )
    resolve.add_argument("--ndots", type=int, metavar="N")
    resolve.add_argument("--timeout", type=_positive_float, metavar="S", help="seconds per try")
    resolve.set_defaults(handler=_cmd_resolve)

    replay = commands.add_parser(
        "replay",
        help="replay a cluster workload: glibc's query storm vs safedns",
        description="Run a seeded Kubernetes-like lookup workload against an embedded DNS "
        "server, once the way glibc resolves (the baseline) and once through safedns; count "
        "the queries, then stop the server and see who still answers.",
    )
    replay.add_argument("--json", action="store_true", help="print one JSON object")
    replay.add_argument(
        "--lookups", type=_positive_int, metavar="N", help="lookups (default 10000)"
    )
    replay.add_argument("--quick", action="store_true", help="2000 lookups and a 2 s outage")
    replay.add_argument("--seed", type=int, default=1, metavar="S", help="default 1")
    replay.add_argument(
        "--outage-seconds", type=_positive_float, metavar="S", help="default 5 (2 with --quick)"
    )
    replay.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="processes driving the baseline (default: up to 3 with more than 2 CPUs, else 1 "
        "= in-process)",
    )
    replay.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw upstream queries/s over time, baseline vs safedns (needs safedns[plot])",
    )
    replay.add_argument(
        "--pods",
        type=_positive_int,
        metavar="N",
        help="instead of the replay, the fleet model: N pods against one cluster DNS, "
        "next to one CoreDNS replica's capacity",
    )
    replay.add_argument(
        "--pod-rate",
        type=_positive_float,
        default=10.0,
        metavar="LOOKUPS",
        help="with --pods: lookups per second per pod (default 10)",
    )
    replay.set_defaults(handler=_cmd_replay)

    run = commands.add_parser(
        "run",
        help="run a command with safedns as its resolver",
        description="Run COMMAND with safedns as its resolver.",
        usage="safedns run [-h] -- COMMAND [ARGS...]",
    )
    run.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")
    run.set_defaults(handler=_cmd_run)

    doctor = commands.add_parser(
        "doctor",
        help="check this host's resolver setup: cost per name, nameservers, advice",
        description="Read resolv.conf (or $SAFEDNS_RESOLV_CONF), nsswitch.conf, the hosts file "
        "and the SAFEDNS_* and glibc environment variables; for each NAME, count the queries "
        "glibc and safedns send; ask each nameserver once; give advice. Exit status 1 when it "
        "finds a problem (an error; with --strict, a warning too).",
    )
    doctor.add_argument("names", nargs="*", metavar="NAME", help="names to examine")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    doctor.add_argument(
        "--probe-timeout",
        type=_positive_float,
        default=1.0,
        metavar="S",
        help="seconds to wait for each nameserver (default 1)",
    )
    doctor.add_argument("--resolv-conf", metavar="PATH")
    doctor.add_argument("--nsswitch-conf", metavar="PATH", default="/etc/nsswitch.conf")
    doctor.add_argument("--hosts-file", metavar="PATH", default="/etc/hosts")
    doctor.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE[,MODULE...]",
        help="import these modules (an application's entry module, say) and report those "
        "loaded that resolve names outside safedns (grpc, psycopg2, ...)",
    )
    doctor.set_defaults(handler=_cmd_doctor)

    audit = commands.add_parser(
        "audit",
        help="read the resolver configuration and explain its risks",
        description="Read the resolver configuration the way glibc does and explain what it "
        "costs: queries per lookup, failure modes, and what safedns would ask instead.",
    )
    audit.add_argument(
        "--resolv-conf",
        metavar="PATH",
        help="default: $SAFEDNS_RESOLV_CONF or /etc/resolv.conf",
    )
    audit.set_defaults(handler=_cmd_audit)
    return parser


def _error(message: str, status: int = 2) -> int:
    print(f"safedns: {message}", file=sys.stderr)
    return status


# --------------------------------------------------------------------- resolve


def _cmd_resolve(args: argparse.Namespace) -> int:
    changes: dict[str, Any] = {}
    if args.server:
        changes["nameservers"] = tuple(args.server)
    if args.search:
        changes["search"] = tuple(args.search)
    if args.ndots is not None:
        changes["ndots"] = args.ndots
    if args.timeout is not None:
        changes["timeout"] = args.timeout
    try:
        config = ResolverConfig.from_system().replace(**changes)
    except (ValueError, OSError) as exc:
        return _error(f"bad resolver settings: {exc}")

    sent: list[tuple[str, str, str, str]] = []

    def on_query(server: str, qname: str, rdtype: str, transport: str) -> None:
        sent.append((server, qname, rdtype, transport))

    default = ["PTR"] if args.reverse else ["A"]
    types: list[str] = list(dict.fromkeys(t.upper() for t in args.types or default))
    if args.reverse and types != ["PTR"]:
        return _error("resolve: --reverse asks PTR only")
    reverse = args.reverse or _is_address(args.name)
    results: list[dict[str, Any]] = []
    status = 0
    with Resolver(config, on_query=on_query) as resolver:
        for rdtype in types:
            try:
                if rdtype == "PTR" and reverse:  # 10.2.0.192.in-addr.arpa., no search list
                    answer = resolver.resolve_address(args.name)
                else:
                    answer = resolver.resolve(args.name, rdtype)
            except NameNotFound as exc:
                results.append({"type": rdtype, "error": "not found", "message": str(exc)})
                status = max(status, 1)
            except (InvalidName, ValueError, TemporaryFailure) as exc:  # ValueError: bad type
                kind = "temporary failure" if isinstance(exc, TemporaryFailure) else "invalid"
                results.append({"type": rdtype, "error": kind, "message": str(exc)})
                status = 2
            else:
                results.append(
                    {
                        "type": answer.rdtype,
                        "name": answer.name,
                        "canonical_name": answer.canonical_name,
                        "ttl": answer.ttl,
                        "records": list(answer.records),
                        "from_cache": answer.from_cache,
                        "stale": answer.stale,
                    }
                )
    queries = [
        {"server": server, "qname": qname, "type": rdtype, "transport": transport}
        for server, qname, rdtype, transport in sent
    ]
    if args.json:
        document = {"name": args.name, "answers": results, "queries": queries}
        print(json.dumps(document, indent=2))
        return status
    for result in results:
        if "error" in result:
            print(f"safedns: {result['message']}", file=sys.stderr)
            continue
        print(f"answer: {result['name']} {result['type']} ttl={result['ttl']}")
        print(f"canonical name: {result['canonical_name']}")
        for record in result["records"]:
            print(f"  {record}")
    print(f"queries sent: {len(sent)}")
    for server, qname, rdtype, transport in sent:
        print(f"  {server} {qname} {rdtype} {transport}")
    return status


def _is_address(name: str) -> bool:
    try:
        reverse_name(name)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------- replay


def _cmd_replay(args: argparse.Namespace) -> int:
    if args.pods is not None:
        if args.plot:
            return _error("replay: --plot draws the replay, not the fleet model (--pods)")
        fleet = run_fleet(args.pods, rate=args.pod_rate, seed=args.seed)
        print(json.dumps(fleet.as_dict(), indent=2) if args.json else format_fleet(fleet))
        return 0
    if args.plot:
        try:
            check_plot_available()
        except PlotUnavailable as exc:
            return _error(str(exc))
    lookups = args.lookups if args.lookups is not None else 2_000 if args.quick else 10_000
    outage = args.outage_seconds if args.outage_seconds is not None else 2.0 if args.quick else 5.0
    timeline = QueryTimeline() if args.plot else None
    progress = make_progress(sys.stderr)
    try:
        report = run_replay(
            lookups,
            seed=args.seed,
            outage_seconds=outage,
            workers=args.workers,
            progress=progress,
            recorder=timeline,
        )
    finally:
        close_progress(progress)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(format_report(report))
    if timeline is not None:
        try:
            plot_replay(timeline, report, args.plot)
        except OSError as exc:
            return _error(f"cannot write {args.plot}: {exc}")
        print(f"plot written to {args.plot}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------- run


def _cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        return _error("run: no command given (usage: safedns run -- COMMAND [ARGS...])")
    try:
        module = importlib.import_module("safedns._patch")
        run_command = cast(Callable[[list[str]], int], module.run_command)
    except (ImportError, AttributeError):
        print("safedns run is not available in this build", file=sys.stderr)
        return 2
    return int(run_command(command))


# ---------------------------------------------------------------------- doctor


def _cmd_doctor(args: argparse.Namespace) -> int:
    imported = [name.strip() for item in args.imports for name in item.split(",")]
    if "" in imported:
        return _error("--import: empty module name")
    if imported and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m`: the application's own modules
    for name in imported:
        try:
            importlib.import_module(name)
        except Exception as exc:  # an application module can raise anything on import
            return _error(f"--import {name}: {type(exc).__name__}: {exc}")
    facts = gather(
        resolv_conf=args.resolv_conf, nsswitch=args.nsswitch_conf, hosts=args.hosts_file
    )
    names = list(args.names) or default_names(facts.config)
    probes = probe_nameservers(facts.config.nameservers, args.probe_timeout)
    found = bypasses() if imported else []
    diagnosis = diagnose(facts, names, probes, imported=imported, bypasses=found)
    if args.json:
        print(json.dumps(diagnosis.as_dict(), indent=2))
    else:
        print(format_diagnosis(diagnosis))
    failed = not diagnosis.ok or (args.strict and bool(diagnosis.problems))
    return 1 if failed else 0


# ----------------------------------------------------------------------- audit


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _cmd_audit(args: argparse.Namespace) -> int:
    path: str = args.resolv_conf or os.environ.get("SAFEDNS_RESOLV_CONF") or _DEFAULT_RESOLV_CONF
    try:
        config = ResolverConfig.from_system(path)
    except (ValueError, OSError) as exc:
        return _error(f"cannot read the resolver configuration: {exc}")
    search, ndots = config.search, config.ndots
    servers = config.nameservers

    source = path if os.path.isfile(path) else f"{path} (not found: glibc's defaults)"
    print(f"resolver configuration from {source}")
    print(f"  nameservers  {' '.join(servers)}")
    print(f"  search       {' '.join(search) or '(none)'}")
    print(f"  ndots        {ndots}")
    rotate = "on" if config.rotate else "off"
    print(f"  timeout      {config.timeout:g} s, attempts {config.attempts}, rotate {rotate}")

    risks: list[str] = []
    typical = "example.com" if ndots == 2 else "api.example.com"
    external_cost = 2 * len(glibc_plan(typical, search, ndots))
    if search and ndots >= 2:
        risks.append(
            f"ndots:{ndots} with {_plural(len(search), 'search domain')}: an external "
            f"name such as {typical} ({typical.count('.')} dots < {ndots}) is tried under "
            f"every search domain before itself: {external_cost} queries per uncached lookup "
            f"(A and AAAA for {len(search) + 1} names) where 2 would do, "
            f"{external_cost // 2}x the load on your DNS"
        )
    missing = "nonexistent.example.com"
    missing_cost = 2 * len(glibc_plan(missing, search, ndots))
    if search:
        risks.append(
            f"a name that does not exist ({missing}) costs {missing_cost} queries per "
            "lookup, whatever ndots; glibc caches no answer, positive or negative"
        )
    if len(servers) == 1:
        risks.append(
            "one nameserver: when it is down or overloaded every lookup fails, and nothing "
            "answers from a cache meanwhile"
        )
    per_query = config.timeout * config.attempts * len(servers)
    rounds = 2 if search else 1
    risks.append(
        f"when no nameserver answers, one query waits up to {per_query:g} s (timeout "
        f"{config.timeout:g} s x {_plural(config.attempts, 'attempt')} x "
        f"{_plural(len(servers), 'nameserver')})"
        + (
            f"; glibc then still tries the name as-is: up to {rounds * per_query:g} s per lookup"
            if rounds > 1
            else ""
        )
    )
    print("\nrisks")
    for risk in risks:
        print(f"  - {risk}")

    cluster = cluster_domain_of(search)
    first = search[0] if search else None
    samples: list[tuple[str, str | None]] = [
        (typical, f"{typical}."),
        ("my-svc", f"my-svc.{first}." if first else "my-svc."),
    ]
    if cluster is not None:
        namespace = pod_namespace(search)
        samples.append((f"my-svc.{namespace}", f"my-svc.{namespace}.svc.{cluster}."))
    samples.append((missing, None))

    print("\nqueries per uncached lookup (A and AAAA for each name tried until one answers)")
    rows = [("name", "if it exists as", "glibc", "safedns")]
    orders: list[tuple[str, list[str]]] = []
    for name, found in samples:
        ours = plan(name, config)
        rows.append(
            (
                name,
                found or "(nowhere)",
                str(queries_until(glibc_plan(name, search, ndots), found)),
                str(queries_until(ours, found)),
            )
        )
        orders.append((name, ours))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print(
            f"  {row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  "
            f"{row[2].rjust(widths[2])}  {row[3].rjust(widths[3])}"
        )
    print(
        "\nwhat safedns asks, in order (then it caches by TTL and serves stale data "
        "when DNS is down)"
    )
    for name, ours in orders:
        print(f"  {name}: {' '.join(ours)}")
    return 0
