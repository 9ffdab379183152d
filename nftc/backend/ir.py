"""The nftables IR: typed objects for what nftc emits. Both renderers (text, JSON) read only these."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from functools import partial
from itertools import compress, count, repeat
from operator import and_, sub
from typing import Iterable, Iterator, Union

from ..language.model import BITS


# Expressions: the left side of a match, or the key of a set update / verdict map.


@dataclass(frozen=True)
class Meta:
    """`meta KEY`: what the kernel knows of the packet besides its headers (interface, protocol)."""

    key: str  # iif, iifname, oif, l4proto, nfproto


@dataclass(frozen=True)
class Payload:
    """`PROTOCOL FIELD`: a header field (`ip saddr`, `tcp dport`)."""

    protocol: str  # ip, ip6, tcp, udp, icmp, icmpv6
    field: str  # saddr, dport, sport, type, hoplimit


@dataclass(frozen=True)
class Ct:
    """`ct KEY`: conntrack's view of the packet's connection."""

    key: str  # state


@dataclass(frozen=True)
class Fib:
    """`fib saddr . iif oif`: a route lookup made for the packet; here, the route back to its source."""

    flags: tuple[str, ...]  # what the lookup keys on: saddr, daddr, mark, iif, oif
    result: str  # oif: the interface the route leaves by


@dataclass(frozen=True)
class Concat:
    """`a . b`: a concatenated key (of fields, for a lookup) or value (of literals, for an element)."""

    parts: tuple


Field = Union[Meta, Payload, Ct, Fib, Concat]


# Values: the right side of a match.


@dataclass(frozen=True)
class SetRef:
    """`@NAME`: a named set or map of the table."""

    name: str


@dataclass(frozen=True)
class AnonSet:
    """`{ a, b }`: an anonymous set, written into the rule."""

    values: tuple[str | int | Prefix, ...]


@dataclass(frozen=True)
class Prefix:
    """`ADDRESS/LENGTH`: a network."""

    address: str
    length: int


@dataclass(frozen=True)
class Range:
    """`FIRST-LAST`: an interval of ports or addresses."""

    first: str | int
    last: str | int


@dataclass(frozen=True)
class Flags:
    """A bitmask match such as `ct state established,related` (JSON op `in`)."""

    values: tuple[str, ...]


@dataclass(frozen=True)
class Presence:
    """Whether a lookup found anything: `exists` or `missing` (`fib saddr . iif oif missing`: no route back)."""

    exists: bool


Value = Union[str, int, SetRef, AnonSet, Prefix, Range, Flags, Concat, Presence]


@dataclass(frozen=True)
class Match:
    """`LEFT RIGHT` or `LEFT != RIGHT`: one condition of a rule."""

    left: Field
    right: Value
    negate: bool = False


# Statements.


@dataclass(frozen=True)
class CounterRef:
    """`counter name NAME`: counts into a named counter, which status and monitoring read by name."""

    name: str


@dataclass(frozen=True)
class Limit:
    """`limit rate [over] N/PER burst B packets`: a token bucket."""

    rate: int
    per: str  # second, minute, hour, day
    burst: int
    over: bool = False


@dataclass(frozen=True)
class LimitRef:
    """`limit name NAME`: a named limit object, one bucket shared by every rule that names it."""

    name: str


@dataclass(frozen=True)
class Log:
    """`log prefix "..."`: the kernel log line a drop leaves."""

    prefix: str


@dataclass(frozen=True)
class SetUpdate:
    """`update @set { key limit ... }`: a per-key stateful limit, the nftables 'meter'."""

    set_name: str
    key: Field
    limit: Limit


@dataclass(frozen=True)
class Verdict:
    """What a rule does with the packet at its end."""

    kind: str  # accept, drop, return, jump, goto, reject
    target: str = ""  # chain for jump/goto
    reject_with: str = ""  # "tcp reset" or "" (icmpx port-unreachable)


@dataclass(frozen=True)
class VerdictMap:
    """`KEY vmap @NAME`: one lookup that decides where a packet goes, whatever the map's size."""

    key: Field
    map_name: str


Statement = Union[Match, CounterRef, Limit, LimitRef, Log, SetUpdate, Verdict, VerdictMap]


@dataclass(frozen=True)
class Rule:
    """Matches then statements, in order; the comment says which policy line made it."""

    statements: tuple[Statement, ...]
    comment: str = ""


@dataclass(frozen=True)
class Hook:
    """`type filter hook HOOK priority P; policy POLICY;`: what makes a chain a base chain."""

    hook: str  # input, output
    priority: int = 0
    policy: str = "accept"


@dataclass(frozen=True)
class Chain:
    """A chain: a base chain when it has a hook, else reached by jump, goto or a verdict map."""

    name: str
    rules: tuple[Rule, ...]
    hook: Hook | None = None
    comment: str = ""


@dataclass(frozen=True)
class Element:
    """One element of a set, or of a map with its verdict."""

    key: str | int | Prefix | Range | Concat
    verdict: Verdict | None = None


@dataclass(frozen=True)
class AddressIntervals:
    """The elements of an address interval map as parallel tuples: the addresses `firsts[i]`..`lasts[i]` (integers
    of IP version `version`) go to the chain `targets[i]`; without targets, the elements of an address interval
    set (a blocklist). One node where `Element`s would be one object per interval, most of the time and memory of
    a compile with 10^5 addresses; the renderers write each interval as an `Element` would be: an address, a
    prefix or a range, then `goto` in a map."""

    version: int
    firsts: tuple[int, ...]
    lasts: tuple[int, ...]
    targets: tuple[str, ...] | None = None  # None: a set's elements, no verdicts

    def __len__(self) -> int:
        return len(self.firsts)

    def __hash__(self) -> int:
        """Of its ends only (equal nodes hash alike): the renderers' caches hash it at every lookup, 10^5 integers."""
        return hash((self.version, len(self.firsts), self.firsts[:1], self.lasts[-1:], self.targets is None))

    @property
    def bits(self) -> int:
        return BITS[self.version]

    def addresses(self, values: Iterable[int]) -> Iterator[str]:
        """inet_ntop: the C library's text form, ten times faster than ipaddress's."""
        family, size = (socket.AF_INET, 4) if self.version == 4 else (socket.AF_INET6, 16)
        return map(partial(socket.inet_ntop, family), map(int.to_bytes, values, repeat(size), repeat("big")))

    def prefix_lengths(self) -> list[int | None]:
        """Per interval, its prefix length when it is one CIDR (an aligned power-of-two block), else None.
        Column by column, no Python code per interval; the few not aligned on their size are then cleared."""
        masks = list(map(sub, self.lasts, self.firsts))
        lengths = list(map(_PREFIX_LENGTHS[self.version].get, masks))
        for index in compress(count(), map(and_, self.firsts, masks)):
            lengths[index] = None
        return lengths


_PREFIX_LENGTHS = {v: {(1 << (bits - n)) - 1: n for n in range(bits + 1)} for v, bits in BITS.items()}  # by mask


@dataclass(frozen=True)
class Set:
    """A named set, or a verdict map when `is_map`; dynamic sets are filled by the ruleset itself."""

    name: str
    key_type: str  # ipv4_addr, ipv6_addr, inet_service, ifname, "inet_proto . inet_service"
    elements: tuple[Element, ...] | AddressIntervals = ()
    interval: bool = False
    is_map: bool = False
    dynamic: bool = False
    size: int = 0
    timeout: str = ""  # like 1m
    comment: str = ""
    dynamic_zone: str = ""  # the dynamic zone whose run-time addresses the set holds: an apply carries them


@dataclass(frozen=True)
class Counter:
    """A named counter object."""

    name: str
    comment: str = ""


@dataclass(frozen=True)
class LimitObject:
    """A named limit object (see LimitRef)."""

    name: str
    limit: Limit
    comment: str = ""


@dataclass(frozen=True)
class Table:
    """The one table nftc emits: everything it loads, replaced as a whole or in place."""

    family: str
    name: str
    comment: str
    counters: tuple[Counter, ...]
    limits: tuple[LimitObject, ...]
    sets: tuple[Set, ...]
    chains: tuple[Chain, ...]
