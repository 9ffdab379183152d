"""The typed policy model: what a .zfw file means, independent of Lark and of nftables.

Every node carries its `span` outside equality, so tests can compare a parsed node with one built by hand.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Iterator, Union

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

PROTOCOLS = ("tcp", "udp")


@dataclass(frozen=True)
class Span:
    """Where a node came from: file name as shown to the user, 1-based line and column, and its length."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


def _span() -> Span | None:
    return field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class PortRange:
    """A protocol and an inclusive port range; a single port has first == last."""

    protocol: str
    first: int
    last: int

    def __str__(self) -> str:
        ports = str(self.first) if self.first == self.last else f"{self.first}-{self.last}"
        return f"{ports}/{self.protocol}"


@dataclass(frozen=True)
class Service:
    """A named set of ports, built in (the Zimbra catalog) or declared with `service NAME = ...`."""

    name: str
    ports: tuple[PortRange, ...]
    description: str = ""
    span: Span | None = _span()


@dataclass(frozen=True)
class Name:
    """A reference to a zone, service or group by name, kept with its position for diagnostics."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Group:
    """A named list of service (or group) names, declared with `group NAME = a, b, ...`."""

    name: str
    members: tuple[Name, ...]
    description: str = ""
    span: Span | None = _span()


# Zone sources: where a packet may come from.


@dataclass(frozen=True)
class AddressSource:
    """An address or network written in the policy."""

    network: IPNetwork
    span: Span | None = _span()


@dataclass(frozen=True)
class AnySource:
    """Every source address that no more specific zone claims (0.0.0.0/0 and ::/0)."""

    span: Span | None = _span()


@dataclass(frozen=True)
class InterfaceSource:
    """Everything that arrives on an interface; `eth*` style wildcards allowed."""

    name: str
    span: Span | None = _span()


BITS = {4: 32, 6: 128}  # address bits per IP version
PREFIX_BITS = 8  # a packed network is `first address << PREFIX_BITS | prefix length` (a length is at most 128)
# by IP version, then prefix length: the host bits of a packed network, which a valid one has clear
HOST_BITS = {v: [((1 << (bits - n)) - 1) << PREFIX_BITS for n in range(bits + 1)] for v, bits in BITS.items()}


def pack(network: IPNetwork) -> int:
    """A network as one integer: sorting packed networks of one IP version sorts by first address, widest first."""
    return int(network.network_address) << PREFIX_BITS | network.prefixlen


def unpack(packed: int, version: int) -> IPNetwork:
    kind = ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network
    return kind((packed >> PREFIX_BITS, packed & ((1 << PREFIX_BITS) - 1)))


@dataclass(frozen=True)
class AddressList:
    """The networks of an address file, packed (`pack`), one tuple per IP version.

    A file of 10^5 lines is 10^5 integers, not 10^5 ipaddress objects, which cost ten times the time and memory;
    iterating gives the networks as objects, for the few uses that need them (diagnostics)."""

    v4: tuple[int, ...] = ()
    v6: tuple[int, ...] = ()

    def packed(self, version: int) -> tuple[int, ...]:
        return self.v4 if version == 4 else self.v6

    def __len__(self) -> int:
        return len(self.v4) + len(self.v6)

    def intervals(self, version: int) -> list[tuple[int, int]]:
        """The networks of one IP version as the fewest disjoint first..last intervals (nested, repeated and
        adjacent entries merged), in order: what an interval set without auto-merge takes."""
        bits, merged = BITS[version], []
        for value in sorted(self.packed(version)):
            length = value & ((1 << PREFIX_BITS) - 1)
            first = value >> PREFIX_BITS
            last = first | ((1 << (bits - length)) - 1)
            if merged and first <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], last)
            else:
                merged.append([first, last])
        return [(first, last) for first, last in merged]

    def __iter__(self) -> Iterator[IPNetwork]:
        return (unpack(packed, version) for version in (4, 6) for packed in self.packed(version))


@dataclass(frozen=True)
class FileSource:
    """Addresses read from a file, one per line (`#` comments allowed); the parser leaves `networks` empty, the
    loader fills it."""

    path: str
    networks: tuple[IPNetwork, ...] | AddressList
    span: Span | None = _span()


@dataclass(frozen=True)
class DynamicSource:
    """Addresses added at run time to the sets `dyn_ZONE_v4`/`_v6` (fail2ban, an admin); kept across reloads.
    `timeout 1h` (`timeout_seconds`, 0: none): they expire by themselves, each after the set's timeout or its own."""

    timeout_seconds: int = 0
    span: Span | None = _span()


DEFAULT_REFRESH_SECONDS = 12 * 3600  # `url "..."` without `refresh`: Spamhaus asks for at most one fetch an hour


@dataclass(frozen=True)
class UrlSource:
    """`url "https://..." [refresh 12h]`: a downloaded blocklist. `nftc refresh` fetches it into the state
    directory; a compile fills `networks` from the last good copy it is given (none: empty), and the table keeps
    them in the zone's own sets `url_ZONE_v4`/`_v6`, whose elements a refresh replaces (README: "Blocklists")."""

    url: str
    refresh_seconds: int = DEFAULT_REFRESH_SECONDS
    networks: AddressList = AddressList()
    span: Span | None = _span()


_DURATION_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}  # nft's units, the grammar's DURATION
_DURATION_PART = re.compile(r"([0-9]+)([dhms])")
_DURATION_DIGITS = 18  # more is out of every range a duration is checked against (and Python reads <= 4300)


def parse_duration(text: str) -> int:
    """`12h` -> 43200 seconds: the one reading of the grammar's DURATION terminal, and of the `1h30m` that
    format_duration writes (a number of more than 18 digits reads as 10**18, out of every range)."""
    return sum(_duration_number(digits) * _DURATION_UNITS[unit] for digits, unit in _DURATION_PART.findall(text))


def _duration_number(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= _DURATION_DIGITS else 10**_DURATION_DIGITS


def format_duration(seconds: int) -> str:
    """5400 -> `1h30m`, as nft prints a timeout: a compiled set then reads the same as the kernel lists it."""
    parts = []
    for unit, size in _DURATION_UNITS.items():
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts) or "0s"


ZoneSource = Union[AddressSource, AnySource, InterfaceSource, FileSource, DynamicSource, UrlSource]
# Sources whose addresses do not stand in the policy text: added at run time, or read from a file or a download.
# A zone with one of them never takes a trusted zone's addresses, and bans them when it allows nothing (README:
# "What a ban does"). A new kind of fed source joins here and is then treated as these are.
FED_SOURCES: tuple[type, ...] = (FileSource, DynamicSource, UrlSource)


@dataclass(frozen=True)
class Zone:
    """Where packets come from: a name and its sources; each packet belongs to exactly one zone."""

    name: str
    sources: tuple[ZoneSource, ...]
    trusted: bool = False  # `trusted`: no fed zone (FED_SOURCES) ever takes its addresses
    span: Span | None = _span()

    @property
    def dynamic(self) -> bool:
        return any(isinstance(s, DynamicSource) for s in self.sources)

    @property
    def dynamic_timeout(self) -> int:
        """Seconds after which a run-time address expires (0: never; a zone has one dynamic source: resolve)."""
        return next((s.timeout_seconds for s in self.sources if isinstance(s, DynamicSource)), 0)

    @property
    def url(self) -> UrlSource | None:
        """The zone's blocklist, if it has one (a zone has at most one: resolve says so)."""
        return next((s for s in self.sources if isinstance(s, UrlSource)), None)

    @property
    def fed(self) -> bool:
        """Whether some of its addresses come from outside the policy text (FED_SOURCES)."""
        return any(isinstance(s, FED_SOURCES) for s in self.sources)


@dataclass(frozen=True)
class Rate:
    """A packet rate: `count` per `unit` (second, minute, hour, day)."""

    count: int
    unit: str

    def __str__(self) -> str:
        return f"{self.count}/{self.unit}"


@dataclass(frozen=True)
class Limit:
    """New connections allowed at `rate` (with `burst`), per source address or in total; over it: drop and count."""

    rate: Rate
    per_source: bool
    burst: int
    span: Span | None = _span()


ANY_SERVICE = "any"


@dataclass(frozen=True)
class Rule:
    """`allow|deny|reject ZONES -> SERVICES [limit ...] [log] [on HOSTS]`; `services` may be the single name `any`;
    `hosts` (`on`): the cluster hosts whose ruleset has the rule (empty: every host, or a policy without hosts)."""

    action: str
    zones: tuple[Name, ...]
    services: tuple[Name, ...]
    limit: Limit | None = None
    log: bool = False
    span: Span | None = _span()
    hosts: tuple[Name, ...] = ()


@dataclass(frozen=True)
class Assertion:
    """`assert ZONES -> SERVICES` (must reach) or `assert ZONES !-> SERVICES` (must never reach); `hosts` as a
    rule's `on`."""

    zones: tuple[Name, ...]
    services: tuple[Name, ...]
    reach: bool
    span: Span | None = _span()
    hosts: tuple[Name, ...] = ()


@dataclass(frozen=True)
class Host:
    """`host NAME = ADDRESS, ... [roles ROLE, ...]`: a server of a cluster, its own addresses (single addresses,
    /32 or /128) and the Zimbra roles it runs (nftc.semantics.roles). A host is also a zone of its peers."""

    name: str
    addresses: tuple[IPNetwork, ...]
    roles: tuple[Name, ...] = ()
    span: Span | None = _span()
    address_spans: tuple[Span | None, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class ZimbraRelease:
    """`zimbra VERSION [features NAME, ...]`: the release a cluster runs (`(10, 1)`) and its optional features;
    they decide which calls of the role matrix exist (nftc.semantics.roles)."""

    version: tuple[int, ...]
    features: tuple[Name, ...] = ()
    span: Span | None = _span()


@dataclass(frozen=True)
class LogDrops:
    """`log drops [RATE] [burst N] [prefix "..."]`: log every drop, rate limited, prefix plus a rule id."""

    rate: Rate
    burst: int
    prefix: str
    span: Span | None = _span()


@dataclass(frozen=True)
class IcmpEcho:
    """`icmp echo RATE [burst N]` or `icmp echo off`: answering ping (IPv4 and IPv6), RATE per source address."""

    enabled: bool
    rate: Rate | None
    burst: int
    span: Span | None = _span()


RPFILTER_MODES = ("strict", "loose", "off")


@dataclass(frozen=True)
class RpFilter:
    """`rpfilter strict|loose|off`: whether a source must be reachable back through the interface it came in on
    (strict), through any interface (loose), or is not checked (off)."""

    mode: str
    span: Span | None = _span()


@dataclass(frozen=True)
class TableName:
    """`table NAME`: the one table the policy compiles to."""

    name: str
    span: Span | None = _span()


@dataclass(frozen=True)
class Include:
    """`include "FILE"`: replaced by the file's statements when the policy is loaded."""

    path: str
    span: Span | None = _span()


Statement = Union[TableName, Zone, Service, Group, Rule, Assertion, LogDrops, IcmpEcho, RpFilter, Include, Host,
                  ZimbraRelease]


DEFAULT_TABLE = "zfw"
DEFAULT_ECHO = IcmpEcho(enabled=True, rate=Rate(10, "second"), burst=20)
# `log drops` without options, and what a rule's own `log` uses when the policy has no `log drops` (README)
DEFAULT_LOG_DROPS = LogDrops(Rate(10, "minute"), 5, "nftc drop: ")
ACCEPT_LOG_PREFIX = "nftc accept: "  # a rule's `log` on accepted connections: the rule id follows
DEFAULT_RPFILTER = RpFilter("strict")  # a single-homed or symmetric host; README: `rpfilter`


@dataclass(frozen=True)
class Policy:
    """A whole policy after includes are expanded: statements in source order, grouped by kind."""

    table: str
    zones: tuple[Zone, ...]
    services: tuple[Service, ...]
    groups: tuple[Group, ...]
    rules: tuple[Rule, ...]
    assertions: tuple[Assertion, ...]
    log_drops: LogDrops | None
    icmp_echo: IcmpEcho
    rpfilter: RpFilter
    source: str
    warnings: tuple = ()  # the loader's diagnostics.Diagnostic warnings (an address list's host bits set)
    hosts: tuple[Host, ...] = ()  # a cluster policy: one ruleset per host (nftc.semantics.cluster.host_policy)
    zimbra: ZimbraRelease | None = None  # None: the default release (nftc.semantics.roles.DEFAULT_RELEASE)
