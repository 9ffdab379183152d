"""Issue 11: one cluster policy, a ruleset per host.

The language (`host`, `zimbra`, `on`), one host's policy (nftc.semantics.cluster.host_policy) on the shipped
example rulesets/zimbra-cluster.zfw, the role matrix's release and feature conditions (nftc.semantics.roles), and
the command line (`compile --host`, `--all -o DIR`, every host's errors said once). The bad-input table
(tests/bad/cluster_*.zfw) holds every cluster error with its whole text; the goldens hold each host's ruleset.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import pathlib

import pytest

from nftc.cli.main import main
from nftc.compiler import HostError, compile_cluster, compile_policy
from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.language.loader import load_policy
from nftc.language.parser import parse_text
from nftc.semantics import catalog, cluster, roles
from nftc.semantics.reach import decide, zone_segments
from nftc.semantics.zones import zone_of

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = str(ROOT / "rulesets" / "zimbra-cluster.zfw")
MULTI = str(ROOT / "rulesets" / "zimbra-multi.zfw")
HOSTS = {"ldap1": ("10.0.0.11", "fd00:10::11"), "mta1": ("10.0.0.12", "fd00:10::12"),
         "proxy1": ("10.0.0.13", "fd00:10::13"), "mbox1": ("10.0.0.14", "fd00:10::14"),
         "mbox2": ("10.0.0.15", "fd00:10::15")}
INTERNET = ("198.51.100.7", "2001:db8::7")
ADMIN = ("10.9.0.5", "fd00:9::5")


@functools.lru_cache(maxsize=None)
def _compiled(path: str, host: str):
    return compile_policy(path, {}, host=host)


def verdict(path: str, host: str, source: str, port: int, protocol: str = "tcp") -> str:
    """What `host`'s ruleset does with a new connection from `source` to `port`: accept, drop or reject."""
    checked = _compiled(path, host).checked
    return decide(zone_segments(checked, zone_of(checked, source, None)), protocol, port).verdict


# The language.


def test_item_language_host_zimbra_and_on_parse_to_model_nodes():
    text = ("host mbox1 = 10.0.0.14, fd00:10::14 roles mailbox, logger\nzimbra 8.8.15 features ng\n"
            "allow cluster -> zimbra.roles on mbox1\nassert mta1 !-> mysql on mbox1, mbox2\nhost bastion = 10.0.0.9\n")
    host, release, rule, assertion, bastion = parse_text(text, "p.zfw")
    assert host == m.Host("mbox1", (ipaddress.ip_network("10.0.0.14/32"), ipaddress.ip_network("fd00:10::14/128")),
                          (m.Name("mailbox"), m.Name("logger")))
    assert release == m.ZimbraRelease((8, 8, 15), (m.Name("ng"),))
    assert rule == m.Rule("allow", (m.Name("cluster"),), (m.Name("zimbra.roles"),), hosts=(m.Name("mbox1"),))
    assert assertion == m.Assertion((m.Name("mta1"),), (m.Name("mysql"),), False,
                                    hosts=(m.Name("mbox1"), m.Name("mbox2")))
    assert bastion == m.Host("bastion", (ipaddress.ip_network("10.0.0.9/32"),))  # roles are optional


def test_item_language_a_host_address_written_as_a_slash_32_is_the_address():
    (host,) = parse_text("host a = 10.0.0.1/32, fd00::1/128\n", "p.zfw")
    assert host.addresses == (ipaddress.ip_network("10.0.0.1/32"), ipaddress.ip_network("fd00::1/128"))


def test_item_language_the_policy_keeps_hosts_and_release(tmp_path):
    policy = load_policy(SHIPPED, {})
    assert cluster.host_names(policy) == ("ldap1", "mta1", "proxy1", "mbox1", "mbox2")
    assert cluster.release(policy) == ((10, 1), frozenset({"convertd", "onlyoffice"}))
    (tmp_path / "p.zfw").write_text("host a = 10.0.0.1 roles mta\n")
    assert cluster.release(load_policy(str(tmp_path / "p.zfw"), {})) == (roles.DEFAULT_VERSION, frozenset())


# Each host's ruleset opens a port only to the peers whose roles call it (the shipped example).

# (host, source host, port, protocol, verdict): both IP versions of the source are checked.
PATHS = [
    ("mbox1", "mta1", 7025, "tcp", "accept"),  # the issue: on mbox1, 7025 from mta1 ...
    ("mbox1", "proxy1", 7025, "tcp", "drop"),  # ... and not from proxy1
    ("mbox1", "proxy1", 7072, "tcp", "accept"),  # 7072 from proxy1 ...
    ("mbox1", "mta1", 7072, "tcp", "drop"),  # ... and not from mta1
    ("mbox1", "mta1", 7073, "tcp", "accept"),  # saslauthd, 8.7 on
    ("mbox1", "mta1", 7071, "tcp", "drop"),  # before 8.7 only
    ("mbox1", "proxy1", 8443, "tcp", "accept"),
    ("mbox1", "proxy1", 7143, "tcp", "accept"),
    ("mbox1", "proxy1", 7084, "tcp", "accept"),  # OnlyOffice runs on mbox1
    ("mbox2", "proxy1", 7084, "tcp", "drop"),  # ... not on mbox2
    ("mbox2", "mbox1", 7074, "tcp", "accept"),  # OnlyOffice (on mbox1) calls the mailboxes back
    ("mbox1", "mbox2", 7071, "tcp", "accept"),  # mailboxes proxy admin SOAP to each other
    ("mbox1", "mbox2", 8080, "tcp", "accept"),
    ("mbox1", "mbox2", 443, "tcp", "drop"),  # 80/443 only without a proxy
    ("mbox1", "mbox2", 7047, "tcp", "accept"),  # feature convertd
    ("mbox1", "mbox2", 22, "tcp", "accept"),  # zmrcd
    ("mbox1", "ldap1", 22, "tcp", "drop"),
    ("mbox1", "ldap1", 514, "udp", "accept"),  # mbox1 is the logger
    ("mbox2", "ldap1", 514, "udp", "drop"),
    ("ldap1", "mta1", 389, "tcp", "accept"),  # every server reads LDAP
    ("ldap1", "mta1", 636, "tcp", "drop"),  # without the feature ldaps
    ("mta1", "mbox1", 25, "tcp", "accept"),
    ("mta1", "ldap1", 25, "tcp", "accept"),
    ("mta1", "proxy1", 22, "tcp", "drop"),
    ("proxy1", "mbox2", 11211, "tcp", "accept"),  # memcached: proxies and mailboxes
    ("proxy1", "mta1", 11211, "tcp", "drop"),
    ("proxy1", "mbox2", 11211, "udp", "drop"),  # UDP memcached never
    ("ldap1", "proxy1", 7025, "tcp", "drop"),
]


@pytest.mark.parametrize("version", (0, 1), ids=("ipv4", "ipv6"))
@pytest.mark.parametrize("host, source, port, protocol, expected", PATHS,
                         ids=[f"{h}-from-{s}-{p}-{pr}" for h, s, p, pr, _ in PATHS])
def test_item_matrix_each_host_accepts_what_its_peers_roles_call(host, source, port, protocol, expected, version):
    assert verdict(SHIPPED, host, HOSTS[source][version], port, protocol) == expected


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("service", ("mysql", "zmconfigd", "amavis", "milter", "logger"))
def test_item_matrix_protected_ports_stay_protected(host, service):
    """Local-only ports are reached from no peer, no admin network and not from the internet, on any host."""
    for source in [a for name, pair in HOSTS.items() if name != host for a in pair] + [*INTERNET, *ADMIN]:
        for port in catalog.entry(service).ports:
            assert verdict(SHIPPED, host, source, port.first, port.protocol) == "drop", (source, port)


@pytest.mark.parametrize("version", (0, 1), ids=("ipv4", "ipv6"))
@pytest.mark.parametrize("host, source, port, expected", [
    ("proxy1", INTERNET, 443, "accept"),  # `allow internet -> zimbra.proxy on proxy1`
    ("mta1", INTERNET, 443, "drop"),  # ... not on mta1
    ("mta1", INTERNET, 25, "accept"),  # `allow internet -> smtp, smtps, submission on mta1`
    ("mbox1", INTERNET, 25, "drop"),
    ("mbox1", ADMIN, 7071, "accept"),  # `allow admins -> admin on mbox1, mbox2`
    ("ldap1", ADMIN, 7071, "drop"),
    ("ldap1", ADMIN, 22, "accept"),  # `allow admins -> ssh`: every host
])
def test_item_on_a_line_applies_on_the_hosts_it_names_only(host, source, port, expected, version):
    assert verdict(SHIPPED, host, source[version], port) == expected


@pytest.mark.parametrize("version", (0, 1), ids=("ipv4", "ipv6"))
def test_item_inheritance_the_peers_inside_any_keep_its_rules(version):
    """A peer's /32 is its own zone (longest prefix), and still gets the rules of `internet` (= any), which
    holds it: mta1 and mbox2 reach the proxy's 443, the proxy and the LDAP server reach the MTA's 25."""
    assert verdict(SHIPPED, "proxy1", HOSTS["mta1"][version], 443) == "accept"
    assert verdict(SHIPPED, "proxy1", HOSTS["mbox2"][version], 993) == "accept"
    assert verdict(SHIPPED, "mta1", HOSTS["proxy1"][version], 587) == "accept"
    checked = _compiled(SHIPPED, "proxy1").checked
    assert zone_of(checked, HOSTS["mta1"][version], None) == "mta1"


def test_item_inheritance_needs_every_address_of_the_host_inside_the_zone(tmp_path):
    """A zone holding a host's IPv4 address only: its rules do not reach the host (both of its addresses are its
    zone), and a warning says so."""
    path = tmp_path / "p.zfw"
    path.write_text("host a = 10.0.0.1, fd00::1 roles mailbox\nhost b = 10.0.0.2, fd00::2 roles mta\n"
                    "host c = 10.0.0.3, fd00::3 roles mta\nzone lan = 10.0.0.0/24, fd00::2/127\n"
                    "allow lan -> ssh\n")
    compilation = compile_policy(str(path), {}, host="b")
    assert [w.message for w in compilation.warnings] == [
        "host 'a' is partly in zone 'lan' (fd00::1 is not): the rules of 'lan' do not apply to it"]
    for version in ("10.0.0.", "fd00::"):
        assert verdict(str(path), "b", f"{version}1", 22) == "drop"  # a: partly inside
        assert verdict(str(path), "b", f"{version}3", 22) == "accept"  # c: inside whole
    assert verdict(str(path), "b", "10.0.0.9", 22) == "accept"  # lan itself


def test_item_inheritance_reads_a_zones_address_file(tmp_path):
    """A host inside a zone's address file (IPv4 and IPv6) gets the zone's rules; one half inside: a warning."""
    (tmp_path / "lan.txt").write_text("192.0.2.0/24\n10.0.0.0/24\nfd00::/64\n")
    path = tmp_path / "p.zfw"
    path.write_text('host a = 10.0.0.1, fd00::1\nhost b = 10.0.0.2, fd00::2\nhost c = 10.0.0.3, fd01::3\n'
                    'zone lan = file "lan.txt"\nallow lan -> ssh\n')
    compilation = compile_policy(str(path), {}, host="a")
    assert [w.message for w in compilation.warnings] == [
        "host 'c' is partly in zone 'lan' (fd01::3 is not): the rules of 'lan' do not apply to it"]
    assert verdict(str(path), "a", "fd00::2", 22) == "accept"
    assert verdict(str(path), "a", "10.0.0.3", 22) == "drop"


def test_item_inheritance_applies_to_rules_not_to_assertions():
    """`assert internet !-> zimbra.internal` holds on every host: the peers are not the internet in an
    assertion (they reach internal ports by their roles)."""
    assert [c.host for c in compile_cluster(SHIPPED, {})] == list(HOSTS)


def test_item_host_policy_is_a_policy_without_hosts_with_the_peers_as_zones():
    policy = cluster.host_policy(load_policy(SHIPPED, {}), "mbox1")
    assert policy.hosts == ()
    assert [z.name for z in policy.zones] == ["internet", "admins", "ldap1", "mta1", "proxy1", "mbox2"]
    peers = {z.name: [str(s.network) for s in z.sources] for z in policy.zones[2:]}
    assert peers["mta1"] == ["10.0.0.12/32", "fd00:10::12/128"]
    assert all(r.hosts == () for r in policy.rules) and all(a.hosts == () for a in policy.assertions)


def test_item_peers_are_trusted_no_ban_takes_a_cluster_server(tmp_path, capsys):
    """A peer's zone is trusted: a dynamic zone (fail2ban) never takes its address; `ignoreip` lists every host."""
    path = tmp_path / "p.zfw"
    path.write_text("host a = 10.0.0.1, fd00::1 roles mailbox\nhost b = 10.0.0.2 roles mta\n"
                    "zone f2b = dynamic\ndeny f2b -> any\nallow cluster -> zimbra.roles\n")
    checked = _compiled(str(path), "a").checked
    assert zone_of(checked, "10.0.0.2", None, {"f2b": [ipaddress.ip_network("10.0.0.0/24")]}) == "b"
    assert zone_of(checked, "10.0.0.9", None, {"f2b": [ipaddress.ip_network("10.0.0.0/24")]}) == "f2b"
    assert _nftc("ignoreip", str(path), capsys=capsys) == (
        0, "ignoreip = 127.0.0.1/8 ::1 10.0.0.1/32 10.0.0.2/32 fd00::1/128\n", "")


def test_item_host_policy_rules_made_from_zimbra_roles_point_at_their_line():
    """`allow cluster -> zimbra.roles` is one rule per calling peer, each with the span of that line, so the
    ruleset's comments and `explain` name the line that decided it."""
    checked = _compiled(SHIPPED, "mbox1").checked
    line = next(i for i, text in enumerate(open(SHIPPED).read().split("\n"), 1) if "zimbra.roles" in text
                and text.startswith("allow"))
    made = [r for r in checked.rules if r.rule.span.line == line]
    assert [r.zones for r in made] == [("ldap1",), ("mta1",), ("proxy1",), ("mbox2",)]
    assert [s.name for s in made[1].services] == ["lmtp", "mta_auth", "syslog"]
    decision = decide(zone_segments(checked, "mta1"), "tcp", 7025)
    assert decision.rule.rule.span.line == line


def test_item_cluster_names_every_other_host(tmp_path):
    path = tmp_path / "p.zfw"
    path.write_text("host a = 10.0.0.1 roles mta\nhost b = 10.0.0.2 roles mta\nhost c = 10.0.0.3\n"
                    "allow cluster -> ssh\nallow a -> smtp on b\n")
    assert [r.zones for r in _compiled(str(path), "a").checked.rules] == [("b", "c")]  # the line for b is gone
    assert [r.zones for r in _compiled(str(path), "b").checked.rules] == [("a", "c"), ("a",)]
    assert verdict(str(path), "c", "10.0.0.1", 22) == "accept"


def test_item_a_host_is_a_zone_and_the_host_itself_is_left_out(tmp_path):
    """`allow a -> ssh` on host a itself has no zone left: the line is dropped there, not an unknown zone."""
    path = tmp_path / "p.zfw"
    path.write_text("host a = 10.0.0.1\nhost b = 10.0.0.2\nallow a -> ssh\n")
    assert _compiled(str(path), "a").checked.rules == ()
    assert verdict(str(path), "b", "10.0.0.1", 22) == "accept"


def test_item_a_bastion_without_roles_gets_nothing_from_the_matrix(tmp_path):
    path = tmp_path / "p.zfw"
    path.write_text("host ldap1 = 10.0.0.1 roles ldap\nhost bastion = 10.0.0.9\nallow cluster -> zimbra.roles\n"
                    "allow bastion -> ssh\n")
    assert verdict(str(path), "ldap1", "10.0.0.9", 389) == "drop"
    assert verdict(str(path), "ldap1", "10.0.0.9", 22) == "accept"


# `cluster` without hosts is an ordinary zone.


def test_item_cluster_is_an_ordinary_zone_without_hosts():
    compilation = compile_policy(MULTI, {})
    assert compilation.host is None
    user_zone = next(z for z in compilation.checked.policy.zones if z.name == "cluster")
    assert [str(s.network) for s in user_zone.sources] == ["10.0.0.10/31", "10.0.0.12/30", "fd00:10::/64"]
    assert [c.host for c in compile_cluster(MULTI, {})] == [None]


# Versions and features: which calls exist.

PEERS = "host mbox1 = 10.0.0.14 roles mailbox\nhost mbox2 = 10.0.0.15 roles mailbox\n"
MTA = "host mta1 = 10.0.0.12 roles mta\n"
PROXY = "host proxy1 = 10.0.0.13 roles proxy\n"
ROLES_LINE = "allow cluster -> zimbra.roles\n"


# (hosts, release line, source, port, protocol, verdict on mbox1)
RELEASES = [
    (PEERS + MTA, "zimbra 8.6", "10.0.0.12", 7071, "tcp", "accept"),  # before 8.7: saslauthd on 7071
    (PEERS + MTA, "zimbra 8.6", "10.0.0.12", 7073, "tcp", "drop"),
    (PEERS + MTA, "zimbra 8.7", "10.0.0.12", 7073, "tcp", "accept"),  # 7073 from 8.7
    (PEERS + MTA, "zimbra 8.7", "10.0.0.12", 7071, "tcp", "drop"),
    (PEERS + MTA, "", "10.0.0.12", 7073, "tcp", "accept"),  # default: 10.1
    (PEERS, "", "10.0.0.15", 443, "tcp", "accept"),  # no proxy: mailboxes reach 80/443 ...
    (PEERS, "", "10.0.0.15", 80, "tcp", "accept"),
    (PEERS, "", "10.0.0.15", 8080, "tcp", "drop"),  # ... not 8080
    (PEERS + PROXY, "", "10.0.0.15", 8080, "tcp", "accept"),  # with a proxy: 8080/8443, not 80/443
    (PEERS + PROXY, "", "10.0.0.15", 443, "tcp", "drop"),
    (PEERS, "", "10.0.0.15", 7047, "tcp", "drop"),  # convertd only with the feature
    (PEERS, "zimbra 10.1 features convertd", "10.0.0.15", 7047, "tcp", "accept"),
    (PEERS, "zimbra 9.0", "10.0.0.15", 5269, "tcp", "drop"),
    (PEERS, "zimbra 9.0 features chat", "10.0.0.15", 5269, "tcp", "accept"),
    (PEERS + PROXY, "zimbra 8.8.15 features ng", "10.0.0.13", 8742, "tcp", "accept"),
    (PEERS + PROXY, "zimbra 8.8.15 features ng", "10.0.0.15", 8736, "tcp", "accept"),
    (PEERS + PROXY, "zimbra 8.8.15", "10.0.0.13", 8742, "tcp", "drop"),
    (PEERS + PROXY, "zimbra 10.1 features admin_proxy", "10.0.0.13", 7071, "tcp", "accept"),
    (PEERS + PROXY, "zimbra 10.1", "10.0.0.13", 7071, "tcp", "drop"),
]


@pytest.mark.parametrize("hosts, release, source, port, protocol, expected", RELEASES,
                         ids=[f"{r or 'default'}-{s}-{p}" for _, r, s, p, _, _ in RELEASES])
def test_item_release_versions_and_features_decide_the_calls(hosts, release, source, port, protocol, expected,
                                                             tmp_path):
    path = tmp_path / "p.zfw"
    path.write_text(hosts + release + "\n" + ROLES_LINE)
    assert verdict(str(path), "mbox1", source, port, protocol) == expected


def test_item_release_ldaps_replaces_389_with_636(tmp_path):
    path = tmp_path / "p.zfw"
    path.write_text("host ldap1 = 10.0.0.11 roles ldap\n" + MTA + "zimbra 10.1 features ldaps\n" + ROLES_LINE)
    assert verdict(str(path), "ldap1", "10.0.0.12", 636) == "accept"
    assert verdict(str(path), "ldap1", "10.0.0.12", 389) == "drop"


def test_item_roles_every_service_of_the_matrix_is_in_the_catalog():
    assert [s for s in roles.SERVICES if catalog.entry(s) is None] == []
    assert {c.callee for c in roles.CALLS} | {r for c in roles.CALLS for r in c.callers} <= \
        set(roles.ROLES) | {roles.EVERY_HOST}
    assert {c.feature for c in roles.CALLS if c.feature} <= {f.name for f in roles.FEATURES}


def test_item_release_every_feature_exists_in_some_known_version():
    for feature in roles.FEATURES:
        since = feature.since or roles.OLDEST_KNOWN
        assert feature.exists_in(since) and not roles.version_problem(since), feature.name


# Errors and warnings that need a host's compile, and the command line.


def _nftc(*args: str, capsys) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_item_cli_compile_of_a_cluster_without_host_says_how_to_choose(capsys):
    assert _nftc("compile", SHIPPED, capsys=capsys) == (2, "", (
        f"nftc: compile: {SHIPPED} declares hosts ldap1, mta1, proxy1, mbox1, mbox2: choose one with --host NAME "
        "(or --all -o DIR)\n"))


def test_item_cli_compile_an_unknown_host_or_a_host_without_hosts(capsys):
    assert _nftc("compile", SHIPPED, "--host", "mbox3", capsys=capsys) == (
        2, "", f"nftc: compile: {SHIPPED} has no host 'mbox3'; did you mean 'mbox2'?\n")
    assert _nftc("compile", MULTI, "--host", "mbox1", capsys=capsys) == (
        2, "", f"nftc: compile: {MULTI} declares no hosts: --host mbox1 is for a cluster policy "
               "(host NAME = ADDRESS, ... roles ROLE, ...)\n")


def test_item_cli_compile_host_prints_that_hosts_ruleset(capsys):
    code, out, err = _nftc("compile", SHIPPED, "--host", "mbox1", capsys=capsys)
    assert (code, err) == (0, "")
    assert "goto zone_mta1" in out and "zone_mbox1" not in out


def test_item_cli_compile_all_writes_every_hosts_ruleset(tmp_path, capsys):
    """Each file `--all` writes is what `compile --host HOST` prints: the host's golden, which tests/test_golden.py
    checks against `compile --host` (compared with the goldens, not compiled again: 0.1 s less per run)."""
    for fmt, options in (("nft", ()), ("json", ("--format", "json"))):  # nft by default
        code, out, err = _nftc("compile", SHIPPED, "--all", "-o", str(tmp_path), *options, capsys=capsys)
        assert (code, err) == (0, "")
        assert out == "".join(f"wrote {tmp_path / host}.{fmt}\n" for host in HOSTS)
        for host in HOSTS:
            golden = ROOT / "tests" / "golden" / f"zimbra-cluster.{host}.{fmt}"
            assert (tmp_path / f"{host}.{fmt}").read_text() == golden.read_text(), host
    assert sorted(os.listdir(tmp_path)) == sorted(f"{h}.{f}" for h in HOSTS for f in ("nft", "json"))


def test_item_cli_compile_all_refuses_a_directory_it_should_not_write(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "file").write_text("")
    cases = {
        ("-o", str(tmp_path / "link")): f"-o {tmp_path / 'link'} is a symlink: give the directory itself",
        ("-o", str(tmp_path / "file")): f"-o {tmp_path / 'file'} is not a directory",
        ("-o", str(tmp_path / "none")): f"-o {tmp_path / 'none'} is not a directory (create it first)",
        (): "--all needs -o DIR, the directory to write HOST.nft into",
        ("-o", str(tmp_path / "real"), "--host", "mbox1"): "--all compiles every host: give --host or --all, "
                                                           "not both",
    }
    for extra, message in cases.items():
        assert _nftc("compile", SHIPPED, "--all", *extra, capsys=capsys) == (2, "", f"nftc: compile: {message}\n")
    assert _nftc("compile", MULTI, "--all", "-o", str(tmp_path / "real"), capsys=capsys) == (
        2, "", f"nftc: compile: {MULTI} declares no hosts: --all is for a cluster policy; compile it without\n")
    assert os.listdir(tmp_path / "real") == []


def test_item_cli_every_hosts_errors_are_said_once_with_the_hosts_they_concern(tmp_path, capsys):
    path = tmp_path / "p.zfw"
    path.write_text("host a = 10.0.0.1 roles mta\nhost b = 10.0.0.2 roles mta\n"
                    "allow cluster -> smpt\nallow lan -> ssh on b\n")
    code, out, err = _nftc("compile", str(path), "--all", "-o", str(tmp_path), capsys=capsys)
    assert (code, out) == (2, "")
    assert err == (
        f"{path}:3:18: error: every host: unknown service 'smpt'\n"
        "  allow cluster -> smpt\n"
        "                   ^~~~\n"
        "  hint: did you mean 'smtp'?\n"
        f"{path}:4:7: error: host b: unknown zone 'lan'\n"
        "  allow lan -> ssh on b\n"
        "        ^~~\n")


def test_item_zimbra_roles_line_is_dead_only_when_every_rule_it_made_is(tmp_path, capsys):
    """On mta1 the LDAP server's only call (smtp) is already allowed: not an error. On ldap1 every call is."""
    path = tmp_path / "p.zfw"
    path.write_text("host ldap1 = 10.0.0.11 roles ldap\nhost mta1 = 10.0.0.12 roles mta\n"
                    "host mbox1 = 10.0.0.14 roles mailbox\n"
                    "allow ldap1 -> smtp on mta1\nallow cluster -> ldap, ssh on ldap1\nallow cluster -> zimbra.roles\n")
    assert compile_policy(str(path), {}, host="mta1").host == "mta1"
    with pytest.raises(PolicyError) as raised:
        compile_cluster(str(path), {})
    assert [(d.message, d.span.line) for d in raised.value.diagnostics] == [
        ("host ldap1: this rule can never match", 6)]


@pytest.mark.parametrize("text, message", [
    ("zone lan = iface eth1\nhost a = 10.0.0.1 roles mta\n",
     "zone 'lan' takes every packet arriving on eth1, the hosts' too"),
    ("zimbra 9.0\nzone lan = 10.0.0.0/8\nallow lan -> ssh\n",
     "'zimbra' has no effect in a policy without hosts"),
    ("host a = 10.0.0.1 roles mailbox\nzimbra 10.1 features onlyoffice\n",
     "feature onlyoffice: no host has the role onlyoffice, so nothing of it is opened"),
    ("host a = 10.0.0.1 roles mailbox, license\n",
     "host 'a' has the role license, but the release has no feature license: nothing calls it"),
])
def test_item_cluster_warnings(text, message, tmp_path):
    path = tmp_path / "p.zfw"
    path.write_text(text)
    host = "a" if "host" in text else None
    assert [w.message for w in compile_policy(str(path), {}, host=host).warnings] == [message]


def test_item_hosts_for_addresses_finds_the_machines_host():
    policy = load_policy(SHIPPED, {})
    addresses = [ipaddress.ip_address(a) for a in ("127.0.0.1", "fd00:10::14", "192.0.2.1")]
    assert cluster.hosts_for_addresses(policy, addresses) == ("mbox1",)
    assert cluster.hosts_for_addresses(policy, [ipaddress.ip_address("10.0.0.16")]) == ()
    two = [ipaddress.ip_address("10.0.0.14"), ipaddress.ip_address("10.0.0.15")]
    assert cluster.hosts_for_addresses(policy, two) == ("mbox1", "mbox2")


def test_item_compile_policy_picks_the_host_with_the_given_picker():
    assert compile_policy(SHIPPED, {}, pick_host=lambda policy: "mta1").host == "mta1"
    assert compile_policy(SHIPPED, {}, host="proxy1", pick_host=lambda policy: "mta1").host == "proxy1"
    with pytest.raises(HostError):
        compile_policy(SHIPPED, {})


def test_item_records_a_recorded_script_stands_only_for_its_own_host(tmp_path):
    """Re-apply keys include the host: mbox1's recorded script is not mbox2's, although the files are the
    same; the digests of two hosts differ."""
    from nftc.backend.render_nft import render_nft
    from nftc.system import records, reapply
    from nftc.system.records import Target
    from nftc.system.state import StateDir, as_json

    sources: dict[str, str] = {}
    compilation = compile_policy(SHIPPED, sources, host="mbox1")
    assert compilation.digest != compile_policy(SHIPPED, {}, host="mbox2").digest
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    applied = records.Applied(SHIPPED, compilation.digest, Target("inet", "zimbra"), "t", False, 0,
                              reapply.provenance(sources, False, 0, "mbox1"))
    state.stage({records.APPLIED: as_json(applied.as_dict()), records.SCRIPT: render_nft(compilation.table)}).commit()
    assert records.read_applied(state).provenance.host == "mbox1"
    assert reapply.recorded(state, SHIPPED, False, lambda kept: "mbox1") is not None
    assert reapply.recorded(state, SHIPPED, False, lambda kept: "mbox2") is None
    assert reapply.recorded(state, SHIPPED, False) is None  # a compile now for no host: not this script
