"""The hosts file and nsswitch.conf, read with glibc's rules (safedns._hosts), and how
``getaddrinfo`` uses them: hosts first, re-read on change, ``localhost`` as glibc does."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import safedns
from safedns import Resolver, ResolverConfig
from safedns._dropin.addrinfo import AddrInfo
from safedns._hosts import (
    DEFAULT_HOSTS_LINE,
    HostsFile,
    NsSwitch,
    host_conf_multi,
    parse_hosts,
    parse_hosts_line,
    parse_hosts_sources,
)
from safedns.testing import DNSServer

S = socket
V4 = socket.AF_INET
V6 = socket.AF_INET6


def _v4(text: str) -> tuple[int, bytes]:
    return (V4, socket.inet_pton(V4, text))


def _v6(text: str) -> tuple[int, bytes]:
    return (V6, socket.inet_pton(V6, text))


HOSTS = b"""\
# The hosts file of a test
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
10.1.1.1  First.Example  one two   # comment after the names
10.1.1.2  second.example one
fd00::9   first.example six
::ffff:10.2.2.2 mapped.example
   10.3.3.3 indented.example
#10.4.4.4 commented.example
10.5.5.5 dup.example
10.5.5.5 dup.example
010.7.7.7 leadingzero.example
127.1 shortform.example
10.8.8.8\tTABS.example\v\fvt\r
10.9.9.9
bogus not.an.address
10.10.10.10 nul.example\x00hidden.example
\xc3\xa9\xff 10.11.11.11 nonascii
10.12.12.12 caf\xc3\xa9.example
"""


# --------------------------------------------------------------------------- parsing


def test_line_parsing_rules() -> None:
    entry = parse_hosts_line(b"10.1.1.1  First.Example  one two   # comment")
    assert entry is not None
    assert (entry.family, entry.name, entry.aliases) == (V4, b"First.Example", (b"one", b"two"))
    assert parse_hosts_line(b"# 10.1.1.1 commented") is None
    assert parse_hosts_line(b"   ") is None
    assert parse_hosts_line(b"010.1.1.1 leading.zero") is None  # inet_pton, not inet_aton
    assert parse_hosts_line(b"127.1 short") is None
    assert parse_hosts_line(b"not-an-address name") is None
    only_address = parse_hosts_line(b"10.9.9.9")
    assert only_address is not None and only_address.name == b""
    v6 = parse_hosts_line(b"fe80::1%eth0 scoped")  # inet_pton rejects a scope
    assert v6 is None
    mapped = parse_hosts_line(b"::ffff:1.2.3.4 m")
    assert mapped is not None and mapped.family == V6


def test_whitespace_nul_and_comment() -> None:
    data = parse_hosts(HOSTS)
    assert data.lookup(b"vt", V4) is not None  # \v \f \r separate fields like spaces
    assert data.lookup(b"tabs.example", V4) is not None
    assert data.lookup(b"nul.example", V4) is not None
    assert data.lookup(b"hidden.example", V4) is None  # a NUL ends the line
    assert data.lookup(b"commented.example", 0) is None
    assert data.lookup(b"indented.example", V4) is not None
    assert data.lookup(b"leadingzero.example", 0) is None
    assert data.lookup(b"shortform.example", 0) is None
    assert data.lookup(b"caf\xc3\xa9.example", V4) is not None  # raw bytes, as glibc


def test_case_insensitive_ascii_only_and_exact_otherwise() -> None:
    data = parse_hosts(HOSTS)
    for name in (b"first.example", b"FIRST.EXAMPLE", b"First.Example", b"ONE"):
        found = data.lookup(name, V4)
        assert found is not None and found.canonical_name == b"First.Example"
    assert data.lookup(b"localhost.", 0) is None  # no dot stripping
    assert data.lookup(b"CAF\xc3\xa9.EXAMPLE", V4) is not None
    assert data.lookup(b"caf\xc3\x89.example", V4) is None  # non-ASCII: no case folding


def test_lookup_per_family_as_glibc() -> None:
    data = parse_hosts(HOSTS)
    both = data.lookup(b"localhost", 0)
    assert both is not None
    assert both.addresses == (_v4("127.0.0.1"), _v6("::1"))
    # IPv4 lookups map ::1 to 127.0.0.1 and ::ffff:a.b.c.d to a.b.c.d ...
    only4 = data.lookup(b"localhost", V4)
    assert only4 is not None and only4.addresses == (_v4("127.0.0.1"), _v4("127.0.0.1"))
    assert only4.aliases == (b"ip6-localhost", b"ip6-loopback")
    mapped = data.lookup(b"mapped.example", V4)
    assert mapped is not None and mapped.addresses == (_v4("10.2.2.2"),)
    # ... IPv6 lookups take IPv6 lines only; any-family lookups keep each line as written.
    six = data.lookup(b"localhost", V6)
    assert six is not None and six.addresses == (_v6("::1"),)
    assert data.lookup(b"one", V6) is None
    any_family = data.lookup(b"mapped.example", 0)
    assert any_family is not None and any_family.addresses == (_v6("::ffff:10.2.2.2"),)
    assert data.lookup(b"ip6-localhost", V4) is not None
    assert data.lookup(b"six", V4) is None


def test_multi_merges_lines_first_match_names() -> None:
    data = parse_hosts(HOSTS)
    found = data.lookup(b"one", V4)
    assert found is not None
    assert found.addresses == (_v4("10.1.1.1"), _v4("10.1.1.2"))
    assert found.canonical_name == b"First.Example"
    # gethostbyname_ex's aliases: each line's aliases, then its name if it differs.
    assert found.aliases == (b"one", b"two", b"one", b"second.example")
    dup = data.lookup(b"dup.example", 0)
    assert dup is not None and dup.addresses == (_v4("10.5.5.5"), _v4("10.5.5.5"))
    first = data.lookup(b"first.example", 0)
    assert first is not None and first.addresses == (_v4("10.1.1.1"), _v6("fd00::9"))
    single = data.lookup(b"one", V4, multi=False)
    assert single is not None and single.addresses == (_v4("10.1.1.1"),)
    assert single.aliases == (b"one", b"two")


def test_empty_name_matches_a_line_without_names() -> None:
    found = parse_hosts(HOSTS).lookup(b"", 0)
    assert found is not None and found.addresses == (_v4("10.9.9.9"),)


# --------------------------------------------------------------------------- the file


def test_reread_on_change(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_bytes(b"10.0.0.1 a.example\n")
    hosts = HostsFile(str(path), multi=True)
    assert hosts.lookup(b"a.example") is not None
    assert not hosts.refresh()
    path.write_bytes(b"10.0.0.2 b.example\n")  # same size: mtime / inode tell
    os.utime(path, ns=(1, 1))
    assert hosts.refresh()
    assert hosts.lookup(b"a.example") is None
    assert hosts.lookup(b"b.example") is not None
    replacement = tmp_path / "hosts.new"
    replacement.write_bytes(b"10.0.0.3 c.example\n")
    os.utime(replacement, ns=(1, 1))
    os.replace(replacement, path)  # new inode, same mtime and size
    assert hosts.lookup(b"c.example") is not None
    path.unlink()
    assert hosts.refresh()
    assert hosts.data.missing
    assert hosts.lookup(b"c.example") is None


def test_host_conf_multi(tmp_path: Path) -> None:
    conf = tmp_path / "host.conf"
    conf.write_text("# comment\nmulti on\n")
    assert host_conf_multi(str(conf), {}) is True
    conf.write_text("multi off\n")
    assert host_conf_multi(str(conf), {}) is False
    assert host_conf_multi(str(tmp_path / "missing"), {}) is False
    assert host_conf_multi(str(conf), {"RESOLV_MULTI": "on"}) is True
    assert host_conf_multi(None, {"RESOLV_HOST_CONF": str(conf)}) is False


# --------------------------------------------------------------------------- nsswitch


def test_nsswitch_sources_and_actions(tmp_path: Path) -> None:
    files, dns = parse_hosts_sources("files dns")
    assert (files.name, dns.name) == ("files", "dns")
    assert files.action("success") == "return" and files.action("notfound") == "continue"
    sources = parse_hosts_sources("files [NOTFOUND=return] mdns4_minimal [!UNAVAIL=return] dns")
    assert [s.name for s in sources] == ["files", "mdns4_minimal", "dns"]
    assert sources[0].action("notfound") == "return"
    assert sources[1].action("notfound") == "return"
    assert sources[1].action("unavail") == "continue"
    path = tmp_path / "nsswitch.conf"
    path.write_text("passwd: files\n# hosts: nope\nhosts:   dns   files # tail\n")
    assert [s.name for s in NsSwitch(str(path)).sources] == ["dns", "files"]
    missing = NsSwitch(str(tmp_path / "missing"))
    assert missing.sources == parse_hosts_sources(DEFAULT_HOSTS_LINE)


# --------------------------------------------------------------------------- with getaddrinfo


@pytest.fixture
def dns() -> Iterator[DNSServer]:
    with DNSServer() as server:
        server.add("both.example", "A", "192.0.2.50")
        server.add("dns-only.example", "A", "192.0.2.51")
        yield server


def _addrinfo(tmp_path: Path, dns: DNSServer, hosts: bytes, nsswitch: str) -> AddrInfo:
    (tmp_path / "hosts").write_bytes(hosts)
    (tmp_path / "nsswitch.conf").write_text(nsswitch)
    resolver = Resolver(ResolverConfig(nameservers=[dns.nameserver], search=()))
    return AddrInfo(
        resolver,
        hosts_path=str(tmp_path / "hosts"),
        nsswitch_path=str(tmp_path / "nsswitch.conf"),
        multi=True,
        hosts_check_interval=0,
    )


def _addresses(ai: AddrInfo, name: str, family: int = 0) -> list[str]:
    return [info[4][0] for info in ai.getaddrinfo(name, 80, family, S.SOCK_STREAM)]


def test_hosts_answer_first_and_dns_is_not_asked(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(tmp_path, dns, b"10.0.0.1 both.example\n", "hosts: files dns\n")
    assert _addresses(ai, "both.example", V4) == ["10.0.0.1"]
    assert _addresses(ai, "dns-only.example", V4) == ["192.0.2.51"]
    assert dns.queries == [("dns-only.example.", "A")]


def test_nsswitch_order_dns_first(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(
        tmp_path, dns, b"10.0.0.1 both.example\n10.0.0.2 hosts-only\n", "hosts: dns files\n"
    )
    assert _addresses(ai, "both.example", V4) == ["192.0.2.50"]
    assert _addresses(ai, "hosts-only", V4) == ["10.0.0.2"]


def test_files_only_never_asks_dns(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(tmp_path, dns, b"10.0.0.1 a\n", "hosts: files\n")
    with pytest.raises(socket.gaierror) as info:
        ai.getaddrinfo("dns-only.example", 80)
    assert info.value.errno == S.EAI_NONAME
    assert dns.queries == []


def test_hosts_change_is_seen_and_cache_dropped(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(tmp_path, dns, b"10.0.0.1 both.example\n", "hosts: files dns\n")
    assert _addresses(ai, "both.example", V4) == ["10.0.0.1"]
    assert _addresses(ai, "dns-only.example", V4) == ["192.0.2.51"]
    (tmp_path / "hosts").write_bytes(b"10.0.0.9 dns-only.example\n")
    os.utime(tmp_path / "hosts", ns=(2, 2))
    assert _addresses(ai, "dns-only.example", V4) == ["10.0.0.9"]  # hosts now wins
    assert _addresses(ai, "both.example", V4) == ["192.0.2.50"]  # gone from hosts: DNS


def test_hosts_check_interval_bounds_staleness(tmp_path: Path, dns: DNSServer) -> None:
    clock = [100.0]
    (tmp_path / "hosts").write_bytes(b"10.0.0.1 h.example\n")
    (tmp_path / "nsswitch.conf").write_text("hosts: files dns\n")
    resolver = Resolver(ResolverConfig(nameservers=[dns.nameserver]), clock=lambda: clock[0])
    ai = AddrInfo(
        resolver,
        hosts_path=str(tmp_path / "hosts"),
        nsswitch_path=str(tmp_path / "nsswitch.conf"),
        hosts_check_interval=1.0,
    )
    assert _addresses(ai, "h.example", V4) == ["10.0.0.1"]
    (tmp_path / "hosts").write_bytes(b"10.0.0.2 h.example\n")
    os.utime(tmp_path / "hosts", ns=(3, 3))
    assert _addresses(ai, "h.example", V4) == ["10.0.0.1"]  # within the interval: cached
    clock[0] += 1.0
    assert _addresses(ai, "h.example", V4) == ["10.0.0.2"]


def test_localhost_as_glibc(tmp_path: Path, dns: DNSServer) -> None:
    """glibc's localhost comes from the hosts file: with only '::1 localhost', an IPv4
    lookup still gets 127.0.0.1; with no entry at all, DNS is asked."""
    ai = _addrinfo(tmp_path, dns, b"::1 localhost\n", "hosts: files dns\n")
    assert _addresses(ai, "localhost", V4) == ["127.0.0.1"]
    assert _addresses(ai, "localhost", V6) == ["::1"]
    assert _addresses(ai, "localhost") == ["::1"]
    assert ai.gethostbyname("localhost") == "127.0.0.1"
    assert ai.gethostbyname_ex("localhost") == ("localhost", [], ["127.0.0.1"])
    assert dns.queries == []
    ai2 = _addrinfo(tmp_path, dns, b"127.0.0.1 localhost\n", "hosts: files dns\n")
    assert _addresses(ai2, "localhost", V4) == ["127.0.0.1"]
    with pytest.raises(socket.gaierror):
        ai2.getaddrinfo("localhost", 80, V6)  # not in the file: DNS, which says NXDOMAIN
    assert ("localhost.", "AAAA") in dns.queries


def test_gethostbyname_ex_merges_hosts_aliases(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(tmp_path, dns, HOSTS, "hosts: files dns\n")
    assert ai.gethostbyname_ex("one") == (
        "First.Example",
        ["one", "two", "one", "second.example"],
        ["10.1.1.1", "10.1.1.2"],
    )
    info = ai.getaddrinfo("ONE", 80, 0, S.SOCK_STREAM, 0, S.AI_CANONNAME)
    assert [row[3] for row in info] == ["First.Example", ""]


def test_missing_hosts_file_falls_through_to_dns(tmp_path: Path, dns: DNSServer) -> None:
    ai = _addrinfo(tmp_path, dns, b"", "hosts: files dns\n")
    (tmp_path / "hosts").unlink()
    assert _addresses(ai, "dns-only.example", V4) == ["192.0.2.51"]


def test_machine_hosts_file_matches_stdlib_for_its_names() -> None:
    """Every name in this machine's /etc/hosts resolves like the standard library does, for
    the families the file answers (so no lookup here reaches this machine's DNS)."""
    hosts = HostsFile()
    names = {n for e in hosts.data.entries for n in (e.name, *e.aliases) if n and n.isascii()}
    server = DNSServer()
    try:
        ai = AddrInfo(Resolver(ResolverConfig(nameservers=[server.nameserver])))
        checked = 0
        for raw in sorted(names)[:50]:
            name = raw.decode()
            for family in (0, V4, V6):
                if hosts.lookup(raw, family) is None:
                    continue
                want = socket.getaddrinfo(name, 80, family, S.SOCK_STREAM)
                assert ai.getaddrinfo(name, 80, family, S.SOCK_STREAM) == want, name
                checked += 1
        assert checked > 0
        assert server.queries == []
    finally:
        server.close()
    assert safedns.getaddrinfo is not None


def test_other_nss_modules(tmp_path: Path, dns: DNSServer) -> None:
    """myhostname, mdns and the like are skipped; systemd-resolved's ``resolve`` stands for
    DNS when the line has no ``dns``; a line with neither files nor DNS means both."""
    hosts = b"10.0.0.1 h.example\n"
    for line in (
        "hosts: files mdns4_minimal [NOTFOUND=return] dns myhostname\n",
        "hosts: mymachines resolve [!UNAVAIL=return] files myhostname dns\n",
        "hosts: files myhostname resolve [!UNAVAIL=return]\n",
        "hosts: nis\n",
    ):
        ai = _addrinfo(tmp_path, dns, hosts, line)
        assert _addresses(ai, "h.example", V4) == ["10.0.0.1"], line
        assert _addresses(ai, "dns-only.example", V4) == ["192.0.2.51"], line
