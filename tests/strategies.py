"""Hypothesis strategies for .zfw policies, and a small reference model of what a valid policy means.

`policies()` draws a `PolicySpec`: random zones (IPv4/IPv6 CIDRs, `any`, interfaces, address files, `dynamic`),
services, groups, rules, true assertions, `log drops`, `icmp echo` and `rpfilter`, rendered to .zfw text by
`spec.files()`.
The generator keeps to what the language documents as valid: names unique and not built in, one `any` zone, no
network in two zones, no udp 11211, no `limit` on deny/reject or `any`, and no rule that can never match (the
reference model drops those; a dead rule decides nothing, so dropping it changes no other rule).

`Meaning` is the reference model, written from the README and independent of nftc.reach: first match over the
rules in file order, `allow Z -> any` skips the protected ports (a broad deny/reject closes them too), udp 11211 is dropped outside localhost, default drop
(localhost: accept).

`mutants()` draws broken text: a seed policy with characters and tokens deleted, inserted or swapped.
"""

from __future__ import annotations

import bisect
import ipaddress
import pathlib
import re
import string
from dataclasses import dataclass

from hypothesis import strategies as st

from nftc.semantics import catalog
from nftc.language import model
from nftc.language.model import Rate
from nftc.language.parser import MAX_LOG_PREFIX, largest_burst
from nftc.language.reserved import NFT_KEYWORDS as RESERVED_TABLE_WORDS

from helpers import first_error

ROOT = pathlib.Path(__file__).resolve().parent.parent
LOCALHOST = "localhost"
PROTOCOLS = ("tcp", "udp")
PROTECTED_GROUPS = ("zimbra.internal", "zimbra.admin")
MEMCACHED_UDP_PORT = 11211
VERDICTS = {"allow": "accept", "deny": "drop", "reject": "reject"}

# Words nft reads as keywords: nftc must keep them working as zone, service, group and table names.
NFT_KEYWORDS = ("ip", "ip6", "inet", "tcp", "udp", "table", "chain", "set", "map", "counter", "define", "include",
                "handle", "comment", "accept", "drop", "jump", "goto", "meta", "ct", "state", "log", "prefix",
                "delete", "flush", "elements", "flags", "type", "policy", "hook", "priority", "limit", "over",
                "rate", "burst", "packets", "timeout", "size", "dynamic", "interval", "vmap", "th", "last")
_ZFW_KEYWORDS = {"zone", "service", "group", "allow", "deny", "reject", "assert", "include", "table", "log",
                 "icmp", "any", "iface", "file", "dynamic", "limit", "per", "source", "burst", "drops", "prefix",
                 "echo", "off", "tcp", "udp", "localhost"}
_RESERVED_TABLES = {"filter", "nat", "mangle", "raw", "security"}
CATALOG_SERVICES = ("ssh", "smtp", "http", "https", "imaps", "submission", "dnscache", "syslog", "ldap",
                    "memcached", "admin", "admin_proxy")
CATALOG_GROUPS = ("zimbra.public", "zimbra.admin", "zimbra.internal", "zimbra.mailbox", "zimbra.ldap",
                  "zimbra.chat")
# Exact names and trailing wildcards that never overlap one another (overlaps: tests/test_injection.py).
INTERFACES = ("eth0", "eth1", "bond0.100", "veth-a_b", "wg*", "tun*", "ens3", "abcdefghijklmno")
STRING_CHARACTERS = "".join(c for c in map(chr, range(32, 127)) if c not in '"\\')

PortRange = tuple  # (protocol, first, last)


@dataclass(frozen=True)
class ZoneSpec:
    name: str
    sources: tuple[str, ...]  # source text as written after `=`, in order
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    address_file: tuple[str, str] | None = None  # (file name, content)
    trusted: bool = False  # issue 10: `trusted`, for a zone of written addresses only


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    ports: tuple[PortRange, ...]
    description: str = ""


@dataclass(frozen=True)
class GroupSpec:
    name: str
    members: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class LimitSpec:
    count: int
    unit: str
    per_source: bool
    burst: int | None

    def text(self) -> str:
        return (f"limit {self.count}/{self.unit}" + (" per source" if self.per_source else "")
                + (f" burst {self.burst}" if self.burst else ""))


@dataclass(frozen=True)
class RuleSpec:
    action: str
    zones: tuple[str, ...]
    services: tuple[str, ...]  # ("any",) for a broad rule
    limit: LimitSpec | None = None
    log: bool = False

    @property
    def broad(self) -> bool:
        return self.services == ("any",)

    def text(self) -> str:
        tail = (f" {self.limit.text()}" if self.limit else "") + (" log" if self.log else "")
        return f"{self.action} {', '.join(self.zones)} -> {', '.join(self.services)}{tail}"


@dataclass(frozen=True)
class PolicySpec:
    zones: tuple[ZoneSpec, ...]
    services: tuple[ServiceSpec, ...]
    groups: tuple[GroupSpec, ...]
    rules: tuple[RuleSpec, ...]
    assertions: tuple[str, ...] = ()
    table: str | None = None
    log_drops: str | None = None
    icmp_echo: str | None = None
    definitions_in_include: bool = False
    newline: str = "\n"
    rpfilter: str | None = None  # `rpfilter MODE`; it changes no (zone, port) decision, only who reaches a zone

    @property
    def table_name(self) -> str:
        return self.table or "zfw"

    def zone_names(self) -> tuple[str, ...]:
        return (LOCALHOST,) + tuple(z.name for z in self.zones)

    def files(self) -> dict[str, str]:
        """File name -> text: `policy.zfw`, its address files and, maybe, `defs/services.zfw`."""
        definitions = [_service_text(s) for s in self.services] + [_group_text(g) for g in self.groups]
        main = [f"table {self.table}"] if self.table else []
        main += [f"zone {z.name} = {', '.join(z.sources)}{' trusted' if z.trusted else ''}" for z in self.zones]
        main += ['include "defs/services.zfw"  # services and groups'] if self.definitions_in_include else definitions
        main += [r.text() for r in self.rules] + list(self.assertions)
        main += [line for line in (self.log_drops, self.icmp_echo, self.rpfilter) if line]
        files = {"policy.zfw": self.newline.join(["# generated by tests/strategies.py", *main, ""])}
        if self.definitions_in_include:
            files["defs/services.zfw"] = "\n".join(definitions) + "\n"
        files.update(z.address_file for z in self.zones if z.address_file)
        return files

    def meaning(self) -> "Meaning":
        return Meaning(self.services, self.groups, self.rules)


def _service_text(service: ServiceSpec) -> str:
    parts, previous = [], None
    for protocol, first, last in service.ports:
        ports = str(first) if first == last else f"{first}-{last}"
        parts.append(ports if protocol == previous else f"{protocol} {ports}")
        previous = protocol
    description = f' "{service.description}"' if service.description else ""
    return f"service {service.name} = {', '.join(parts)}{description}"


def _group_text(group: GroupSpec) -> str:
    description = f' "{group.description}"' if group.description else ""
    return f"group {group.name} = {', '.join(group.members)}{description}"


# The reference model.


class Meaning:
    """What each (zone, protocol, port) gets, from the README's rules, without nftc.reach."""

    def __init__(self, services, groups, rules):
        self.user = {s.name: s for s in services} | {g.name: g for g in groups}
        self.rules = tuple(rules)
        self._ports: dict[str, tuple[PortRange, ...]] = {}
        self.protected = tuple(r for g in PROTECTED_GROUPS for r in self.ports_of(g))

    def ports_of(self, name: str) -> tuple[PortRange, ...]:
        if name not in self._ports:
            self._ports[name] = self._expand(self.user.get(name) or _CATALOG[name])
        return self._ports[name]

    def _expand(self, item) -> tuple[PortRange, ...]:
        if isinstance(item, ServiceSpec):
            return item.ports
        if isinstance(item, model.Service):
            return tuple((r.protocol, r.first, r.last) for r in item.ports)
        return tuple(r for member in item.members for r in self.ports_of(getattr(member, "name", member)))

    def rule_matches(self, rule: RuleSpec, protocol: str, port: int) -> bool:
        if rule.broad:  # `allow Z -> any` skips the protected ports; a broad deny or reject closes every port
            return rule.action != "allow" or not _within(self.protected, protocol, port)
        return any(_within(self.ports_of(name), protocol, port) for name in rule.services)

    def decision(self, zone: str, protocol: str, port: int) -> tuple[str, str]:
        """(verdict, reason): reason is the rule id `rN`, 'memcached-udp', 'loopback' or 'default-drop'."""
        if zone != LOCALHOST and protocol == "udp" and port == MEMCACHED_UDP_PORT:
            return "drop", "memcached-udp"
        for number, rule in enumerate(self.rules, start=1):
            if zone in rule.zones and self.rule_matches(rule, protocol, port):
                return VERDICTS[rule.action], f"r{number}"
        return ("accept", "loopback") if zone == LOCALHOST else ("drop", "default-drop")

    def breakpoints(self, extra: tuple[PortRange, ...] = ()) -> tuple[int, ...]:
        """Ports where a decision may change: every port in [b[i], b[i+1]) gets the same decision."""
        ranges = list(self.protected) + list(extra)
        for rule in self.rules:
            for name in () if rule.broad else rule.services:
                ranges += self.ports_of(name)
        points = {1, MEMCACHED_UDP_PORT, MEMCACHED_UDP_PORT + 1}
        for _, first, last in ranges:
            points.update((first, last + 1))
        return tuple(sorted(p for p in points if 1 <= p <= 65535))

    def deciding(self, rule: RuleSpec, extra: tuple[PortRange, ...] = ()) -> bool:
        """Whether `rule`, appended after self.rules, decides at least one port in one of its zones."""
        extended = Meaning.__new__(Meaning)
        extended.user, extended.protected, extended.rules = self.user, self.protected, self.rules + (rule,)
        extended._ports = self._ports
        reason = f"r{len(extended.rules)}"
        points = extended.breakpoints(extra)
        return any(extended.decision(zone, protocol, port)[1] == reason
                   for zone in rule.zones for protocol in PROTOCOLS for port in points)

    def reaches_all(self, zone: str, name: str) -> bool | None:
        """True if every port of `name` is accepted from `zone`, False if none is, None if some are."""
        verdicts = set()
        points = self.breakpoints()
        for protocol, first, last in self.ports_of(name):
            inside = [first] + [p for p in points[bisect.bisect_right(points, first):] if p <= last]
            verdicts.update(self.decision(zone, protocol, p)[0] == "accept" for p in inside)
        return verdicts.pop() if len(verdicts) == 1 else None


_CATALOG = {s.name: s for s in catalog.services()} | {g.name: g for g in catalog.GROUPS}


def _within(ranges, protocol: str, port: int) -> bool:
    return any(p == protocol and first <= port <= last for p, first, last in ranges)


# Valid policies.


def names(prefix: str) -> st.SearchStrategy[str]:
    """Names of the language (letters, digits, '_', at most 32), clear of keywords and of the catalog."""
    tail = st.text(string.ascii_letters + string.digits + "_", max_size=31)
    plain = tail.map(lambda t: (prefix + t)[:32])
    keyword = st.sampled_from([k for k in NFT_KEYWORDS if k not in _ZFW_KEYWORDS and k not in _CATALOG])
    clash = _ZFW_KEYWORDS | set(_CATALOG)
    return st.one_of(plain, plain, plain, keyword).filter(lambda name: name not in clash)


def _network(version: int):
    bits = 32 if version == 4 else 128
    bases = ([0x0A000000, 0xC0A80100, 0xC6336400] if version == 4 else
             [0xFD00 << 112, 0x20010DB8 << 96, 0xFFFF << 32])
    base = st.sampled_from(bases) | st.integers(0, 2 ** bits - 1)
    return st.builds(lambda b, offset, length: ipaddress.ip_network(((b + offset) % 2 ** bits, length), strict=False),
                     base, st.integers(0, 2 ** 16 - 1), st.integers(1, bits))


networks = st.one_of(_network(4), _network(6))


@st.composite
def _network_text(draw, network) -> str:
    """One network as a user may write it: bare host address or /32, IPv6 compressed, exploded or upper case."""
    host = network.prefixlen == network.max_prefixlen and draw(st.booleans())
    text = str(network.network_address) if host else str(network)
    if network.version == 6 and draw(st.booleans()):
        text = network.network_address.exploded if host else network.exploded
    return text.upper() if draw(st.booleans()) else text


@st.composite
def _zones(draw) -> tuple[ZoneSpec, ...]:
    zone_names = draw(st.lists(names("z"), min_size=1, max_size=5, unique=True))
    claimed: set = set()
    free_interfaces = list(INTERFACES)
    any_zone = draw(st.sampled_from([None, *zone_names]))
    zones = []
    for index, name in enumerate(zone_names):
        sources, own = [], []
        for network in draw(st.lists(networks, max_size=4)):
            if network not in claimed:
                claimed.add(network)
                own.append(network)
                sources.append(draw(_network_text(network)))
        if name == any_zone:
            sources.append("any")
        for _ in range(draw(st.integers(0, 2))):
            if free_interfaces:
                interface = draw(st.sampled_from(free_interfaces))
                free_interfaces.remove(interface)
                sources.append(f"iface {interface}")
        address_file = None
        in_file = [n for n in draw(st.lists(networks, max_size=6)) if n not in claimed]
        if in_file:
            claimed.update(in_file)
            own += in_file
            address_file = (f"zone{index}.txt", _address_file(in_file))
            sources.append(f'file "zone{index}.txt"')
        written = len(sources) == len(own) and not address_file  # only addresses: it may be trusted
        if draw(st.booleans()) or not sources:
            sources.append("dynamic")
        trusted = written and bool(own) and "dynamic" not in sources and draw(st.booleans())
        zones.append(ZoneSpec(name, tuple(draw(st.permutations(sources))), tuple(own), address_file, trusted))
    return tuple(zones)


def _address_file(entries) -> str:
    lines = ["# addresses, one a line"]
    for number, network in enumerate(entries):
        lines.append(f"  {network}  # entry {number}" if number % 2 else str(network))
        lines += [""] if number % 3 == 0 else []
    return "\n".join(lines) + "\n"


_interesting_ports = st.sampled_from([1, 22, 25, 53, 389, 443, 514, 7071, 9071, 11211, 11212, 65535])
_ports = st.one_of(_interesting_ports, st.integers(1, 65535))


@st.composite
def _port_range(draw) -> PortRange:
    protocol = draw(st.sampled_from(PROTOCOLS))
    first = draw(_ports)
    last = draw(st.one_of(st.just(first), st.integers(first, min(65535, first + 100)), st.integers(first, 65535)))
    if protocol == "udp" and first <= MEMCACHED_UDP_PORT <= last:  # an allow naming udp 11211 is an error
        return ("udp", first, last) if last < MEMCACHED_UDP_PORT else ("tcp", first, last)
    return protocol, first, last


descriptions = st.text(STRING_CHARACTERS, max_size=100)


@st.composite
def _services(draw) -> tuple[ServiceSpec, ...]:
    service_names = draw(st.lists(names("s"), max_size=4, unique=True))
    return tuple(ServiceSpec(name, tuple(draw(st.lists(_port_range(), min_size=1, max_size=4))),
                             draw(st.one_of(st.just(""), descriptions)))
                 for name in service_names)


@st.composite
def _groups(draw, services, taken) -> tuple[GroupSpec, ...]:
    group_names = draw(st.lists(names("g").filter(lambda n: n not in taken), max_size=3, unique=True))
    groups: list[GroupSpec] = []
    for name in group_names:
        known = [s.name for s in services] + [g.name for g in groups] + list(CATALOG_SERVICES + CATALOG_GROUPS)
        members = draw(st.lists(st.sampled_from(known), min_size=1, max_size=4, unique=True))
        groups.append(GroupSpec(name, tuple(members), draw(st.one_of(st.just(""), descriptions))))
    return tuple(groups)


rates = st.builds(lambda count, unit: (count, unit), st.one_of(st.integers(1, 1000), st.integers(1, 10 ** 9)),
                  st.sampled_from(("second", "minute", "hour", "day")))
bursts = st.one_of(st.none(), st.integers(1, 1000), st.integers(1, 10 ** 9))


def fitting_burst(count: int, unit: str, burst: int | None) -> int | None:
    """A burst the kernel can hold at this rate (nftc refuses larger ones with a positioned error)."""
    return None if burst is None else min(burst, largest_burst(Rate(count, unit)))


@st.composite
def _rule(draw, zone_names, service_names) -> RuleSpec:
    action = draw(st.sampled_from(("allow", "allow", "deny", "reject")))
    zones = tuple(draw(st.lists(st.sampled_from(zone_names), min_size=1, max_size=3, unique=True)))
    if draw(st.integers(0, 5)) == 0:
        return RuleSpec(action, zones, ("any",), None, draw(st.booleans()))
    services = tuple(draw(st.lists(st.sampled_from(service_names), min_size=1, max_size=4, unique=True)))
    limit = None
    if action == "allow" and draw(st.integers(0, 3)) == 0:
        (count, unit), burst = draw(rates), draw(bursts)
        limit = LimitSpec(count, unit, draw(st.booleans()), fitting_burst(count, unit, burst))
    return RuleSpec(action, zones, services, limit, draw(st.integers(0, 4)) == 0)


@st.composite
def policies(draw) -> PolicySpec:
    zones = draw(_zones())
    services = draw(_services())
    groups = draw(_groups(services, {s.name for s in services}))
    service_names = [s.name for s in services + groups] + list(CATALOG_SERVICES + CATALOG_GROUPS)
    zone_names = [LOCALHOST] + [z.name for z in zones]
    meaning = Meaning(services, groups, ())
    for rule in draw(st.lists(_rule(zone_names, service_names), min_size=1, max_size=8)):
        if meaning.deciding(rule):
            meaning = Meaning(services, groups, meaning.rules + (rule,))
    assertions = []
    for zone, name in draw(st.lists(st.tuples(st.sampled_from(zone_names), st.sampled_from(service_names)),
                                    max_size=3)):
        reached = meaning.reaches_all(zone, name)
        if reached is not None:
            assertions.append(f"assert {zone} {'->' if reached else '!->'} {name}")
    table = draw(st.one_of(st.none(), names("t").filter(
        lambda n: n not in _RESERVED_TABLES and n.lower() not in RESERVED_TABLE_WORDS)))
    log_drops = draw(st.one_of(st.none(), _log_drops()))
    icmp_echo = draw(st.one_of(st.none(), st.just("icmp echo off"), _icmp_echo()))
    rpfilter = draw(st.one_of(st.none(), st.sampled_from([f"rpfilter {mode}" for mode in model.RPFILTER_MODES])))
    return PolicySpec(zones, services, groups, meaning.rules, tuple(assertions), table, log_drops, icmp_echo,
                      draw(st.booleans()), draw(st.sampled_from(("\n", "\n", "\r\n"))), rpfilter)


@st.composite
def _log_drops(draw) -> str:
    words = ["log drops"]
    count, unit = 10, "minute"
    if draw(st.booleans()):
        count, unit = draw(rates)
        words.append(f"{count}/{unit}")
    burst = fitting_burst(count, unit, draw(bursts))
    words += [f"burst {burst}"] if burst else []
    prefix = draw(st.one_of(st.none(), st.text(STRING_CHARACTERS.replace("$", ""), max_size=MAX_LOG_PREFIX)))
    words += [f'prefix "{prefix}"'] if prefix is not None else []
    return " ".join(words)


@st.composite
def _icmp_echo(draw) -> str:
    count, unit = draw(rates)
    burst = fitting_burst(count, unit, draw(bursts))
    return f"icmp echo {count}/{unit}" + (f" burst {burst}" if burst else "")


# Broken text.

SEEDS = tuple(p.read_text() for p in sorted((ROOT / "rulesets").glob("*.zfw")))
KITCHEN_SINK = """\
# every statement of the language once
table t_sink
zone internet = any
zone lan      = 192.168.1.0/24, fd00:1::/64, iface eth1
zone vpn      = iface wg*, dynamic
zone banned   = file "banned.txt"
service webdav = tcp 8008, 8443, udp 5000-5010 "WebDAV for the CRM"
group   mailflow = smtp, submission, webdav "what the MTA takes"
include "extra.zfw"
allow internet -> zimbra.public
deny  banned   -> any log
allow lan, vpn -> mailflow, zimbra.admin limit 20/second per source burst 40
reject lan     -> ldap
allow lan      -> any
assert internet !-> zimbra.admin
assert lan -> mailflow
log drops 10/minute burst 5 prefix "zfw drop: "
icmp echo 5/second burst 10
rpfilter loose
"""
SINK_FILES = {"banned.txt": "# banned\n203.0.113.0/24\n2001:db8:bad::/48  # a whole site\n",
              "extra.zfw": "service policyd = tcp 10040-10042\nallow localhost -> policyd\n"}

_WRITABLE = st.characters(exclude_categories=("Cs",))  # a lone surrogate cannot be written to a UTF-8 file
_INSERTIONS = ('"', ";", "{", "}", "\n", "\0", "#", "\\", "->", "!->", ",", "=", "*", "/", "-", ".", ":", " ",
               "\t", "\r", "\x0c", "\x1b[31m", "é", "\u202e", "\U0001f525", "\ufeff", "x" * 10_000, "9" * 30,
               '"' + "s" * 200 + '"', "zone", "any", "allow", "include", "file", "limit", "per source", "burst",
               "0.0.0.0/0", "::/0", "10.0.0.1/33", "65536", "0", "1-0", "tcp", "udp", "iface", "dynamic", "assert",
               "log drops", "icmp echo", "off", "rpfilter", "strict", "loose", "table", "localhost", "zimbra.public",
               '"nonexistent.zfw"', '""', '"."', '"banned.txt"', '"extra.zfw"', '"policy.zfw"')


@st.composite
def _mutate(draw, text: str) -> str:
    for _ in range(draw(st.integers(1, 5))):
        kind = draw(st.sampled_from(("delete", "insert", "insert", "swap", "duplicate", "replace")))
        at = draw(st.integers(0, len(text)))
        if kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 20)):]
        elif kind == "insert":
            inserted = draw(st.one_of(st.sampled_from(_INSERTIONS), st.text(_WRITABLE, max_size=5)))
            text = text[:at] + inserted + text[at:]
        elif kind == "replace" and at < len(text):
            text = text[:at] + draw(_WRITABLE) + text[at + 1:]
        elif kind == "duplicate":
            lines = text.split("\n")
            line = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:line + 1] + lines[line:])
        else:
            tokens = text.split(" ")
            if len(tokens) > 1:
                i, j = draw(st.integers(0, len(tokens) - 1)), draw(st.integers(0, len(tokens) - 1))
                tokens[i], tokens[j] = tokens[j], tokens[i]
                text = " ".join(tokens)
    return text


@st.composite
def mutants(draw) -> dict[str, str | bytes]:
    """Files for one broken (or, by chance, still valid) policy: `policy.zfw` first, maybe as bytes."""
    seed = draw(st.one_of(st.sampled_from(SEEDS + (KITCHEN_SINK,)),
                          policies().map(lambda spec: spec.files()["policy.zfw"])))
    text = draw(_mutate(seed))
    files: dict[str, str | bytes] = {"policy.zfw": text}
    if draw(st.integers(0, 4)) == 0:  # not UTF-8, or a byte-order mark
        data = text.encode("utf-8", "surrogatepass")
        at = draw(st.integers(0, len(data)))
        files["policy.zfw"] = data[:at] + draw(st.sampled_from((b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbb\xbf")))\
            + data[at:]
    files.update(SINK_FILES)
    if draw(st.booleans()):
        files["extra.zfw"] = draw(_mutate(SINK_FILES["extra.zfw"]))
    if draw(st.booleans()):
        files["banned.txt"] = draw(_mutate(SINK_FILES["banned.txt"]))
    return files


@st.composite
def token_soup(draw) -> dict[str, str]:
    """Statements made of the language's own tokens in random order: gets past the lexer, into the parser."""
    vocabulary = st.sampled_from(_INSERTIONS[9:] + ("lan", "ssh", "smtp", "z1", "10.0.0.0/8", "fd00::/64",
                                                   "10/second", "22", "80-90", "eth0", "x*"))
    lines = draw(st.lists(st.lists(vocabulary, min_size=1, max_size=10).map(" ".join), min_size=1, max_size=8))
    return {"policy.zfw": "\n".join(lines) + "\n", **SINK_FILES}




# Checks shared by the property, injection and fuzz tests.

_QUOTED = re.compile(r'"[^"\n]*"')
_COMMENT_OR_PREFIX = re.compile(r'(comment|prefix) ("[^"\n]*")')
MAX_COMMENT = 128  # the kernel's limit for table, set, chain, rule and counter comments
MAX_LOG_PREFIX = 127  # NF_LOG_PREFIXLEN, with its NUL


def nft_text_problems(text: str, table: str) -> list[str]:
    """What is wrong with an emitted nft script, for a reader that trusts nothing: [] when it is sound."""
    problems = []
    top = [line for line in text.split("\n") if line and not line.startswith("\t")]
    expected = [f"table inet {table} {{}}", f"delete table inet {table}", f"table inet {table} {{", "}"]
    if top != expected:
        problems.append(f"top-level statements {top[:6]!r}, expected {expected!r}")
    depth = 0
    for number, line in enumerate(text.split("\n"), start=1):
        if line.count('"') % 2:
            problems.append(f"line {number}: odd number of quotes: {line[:200]!r}")
        for quoted in _QUOTED.findall(line):
            if not re.fullmatch(r'"[ -~]*"', quoted):
                problems.append(f"line {number}: string outside printable ASCII: {quoted[:200]!r}")
        for kind, quoted in _COMMENT_OR_PREFIX.findall(line):
            limit = MAX_COMMENT if kind == "comment" else MAX_LOG_PREFIX
            if len(quoted) - 2 > limit:
                problems.append(f"line {number}: {kind} of {len(quoted) - 2} characters (the kernel takes {limit})")
        bare = _QUOTED.sub('""', line)
        depth += bare.count("{") - bare.count("}")
        if depth < 0:
            problems.append(f"line {number}: braces unbalanced")
    if depth != 0:
        problems.append(f"braces unbalanced at the end (depth {depth})")
    return problems


def diagnostic_problems(code: int, stderr: str, not_utf8: bool = False) -> list[str]:
    """What is wrong with how `nftc compile` ended on bad input: [] for exit 0, or exit 2 with a positioned error."""
    if "Traceback" in stderr:
        return [f"a traceback on standard error: {stderr[-2000:]}"]
    if code not in (0, 2):
        return [f"exit {code}, expected 0 or 2: {stderr[:500]!r}"]
    first = stderr.split("\n", 1)[0]
    if code == 2 and not first_error(first):
        if not (not_utf8 and re.match(r"^(error|[^:\n]+): ", first)):
            return [f"first line of standard error has no position: {first[:300]!r}"]
    return []


def control_characters(text: str) -> list[str]:
    """Characters a terminal would act on (ESC, NUL, CR...), other than newline."""
    return sorted({repr(c) for c in text if (ord(c) < 32 and c != "\n") or 0x7F <= ord(c) < 0xA0
                   or c in "\u202e\u202d\u2066\u2067\u2068"})
