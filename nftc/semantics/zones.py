"""Which zone a source address belongs to: the most specific (longest prefix) zone that contains it.

CIDRs are either nested or disjoint, so one sort and one sweep with a stack turn the zones' networks into
disjoint intervals, each owned by exactly one zone: an interval verdict map the kernel looks up in one step.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..language import model as m
from ..language.diagnostics import Diagnostic, error

if TYPE_CHECKING:  # resolve builds on this module
    from .resolve import CheckedPolicy

LOCALHOST = "localhost"  # the built-in zone of loopback traffic
IP_VERSIONS = (4, 6)
ANY_NETWORKS = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


BITS = {4: 32, 6: 128}


@dataclass(frozen=True)
class Interval:
    """Source addresses `first`..`last` (as integers) of one IP version belong to `zone`."""

    version: int
    first: int
    last: int
    zone: str

    def prefix_length(self) -> int | None:
        """The prefix length when the interval is one CIDR (an aligned power-of-two block), else None."""
        size = self.last - self.first + 1
        if size & (size - 1) == 0 and self.first % size == 0:
            return BITS[self.version] - (size.bit_length() - 1)
        return None

    def address(self, value: int) -> str:
        """inet_ntop: the C library's text form, ten times faster than ipaddress's (large zones print 10^5 of these)."""
        if self.version == 4:
            return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
        return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


@dataclass(frozen=True)
class _Claim:
    """A network a zone claims, as integers: sorting and sweeping never build an address object."""

    version: int
    first: int
    last: int
    zone: str
    span: m.Span | None
    network: m.IPNetwork


def _claim(network: m.IPNetwork, zone: str, span: m.Span | None) -> _Claim:
    first = int(network.network_address)
    last = first + (1 << (BITS[network.version] - network.prefixlen)) - 1
    return _Claim(network.version, first, last, zone, span, network)


def zone_networks(zone: m.Zone) -> list[tuple[m.IPNetwork, m.Span | None]]:
    networks = []
    for source in zone.sources:
        if isinstance(source, m.AddressSource):
            networks.append((source.network, source.span))
        elif isinstance(source, m.AnySource):
            networks.extend((ANY_NETWORKS[v], source.span) for v in IP_VERSIONS)
        elif isinstance(source, m.FileSource):
            networks.extend((network, source.span) for network in source.networks)
    return networks


def flatten_zones(zones: tuple[m.Zone, ...]) -> tuple[tuple[Interval, ...], list[Diagnostic]]:
    """Disjoint intervals for every address zone, IPv4 first; errors for networks two zones both claim."""
    claims = sorted(
        (_claim(network, zone.name, span) for zone in zones for network, span in zone_networks(zone)),
        key=lambda c: (c.version, c.first, -c.last),
    )
    claims, errors = _drop_duplicates(claims)
    intervals: list[Interval] = []
    for version in IP_VERSIONS:
        intervals.extend(_sweep([c for c in claims if c.version == version], version))
    return tuple(intervals), errors


def _drop_duplicates(claims: list[_Claim]) -> tuple[list[_Claim], list[Diagnostic]]:
    kept: list[_Claim] = []
    errors: list[Diagnostic] = []
    for claim in claims:
        previous = kept[-1] if kept else None
        if previous and (previous.version, previous.first, previous.last) == (claim.version, claim.first, claim.last):
            if previous.zone != claim.zone:
                errors.append(error(
                    f"{claim.network} is in zone '{previous.zone}' and in zone '{claim.zone}'",
                    claim.span,
                    hint=f"zones resolve by prefix length, so equal prefixes are ambiguous; "
                         f"the other is at {previous.span}",
                ))
            continue
        kept.append(claim)
    return kept, errors


def _sweep(claims: list[_Claim], version: int) -> list[Interval]:
    """Nested or disjoint networks, sorted by start (widest first) -> disjoint runs, adjacent runs merged."""
    runs: list[list] = []  # [first, last, zone]
    stack: list[tuple[int, str]] = []  # (last address, zone) of the networks that enclose the cursor
    cursor = 0

    def emit(first: int, last: int, zone: str) -> None:
        if first > last:
            return
        if runs and runs[-1][2] == zone and runs[-1][1] + 1 == first:
            runs[-1][1] = last
        else:
            runs.append([first, last, zone])

    for claim in claims:
        while stack and stack[-1][0] < claim.first:
            end, zone = stack.pop()
            emit(cursor, end, zone)
            cursor = end + 1
        if stack:
            emit(cursor, claim.first - 1, stack[-1][1])
        stack.append((claim.last, claim.zone))
        cursor = claim.first
    while stack:
        end, zone = stack.pop()
        emit(cursor, end, zone)
        cursor = end + 1
    return [Interval(version, first, last, zone) for first, last, zone in runs]


def interfaces(zone: m.Zone) -> tuple[str, ...]:
    return tuple(s.name for s in zone.sources if isinstance(s, m.InterfaceSource))


def zone_of(checked: CheckedPolicy, address, interface: str | None) -> str | None:
    """The zone the ruleset sends a new connection from `address` (text or ipaddress) arriving on `interface` (None:
    unknown) to, in the ruleset's order: loopback, then the interface zones, then the most specific address zone;
    None when no zone holds it (dropped as drop/no-zone). Addresses of dynamic zones are known only at run time."""
    address = ipaddress.ip_address(address)
    if address.is_loopback or interface == "lo":
        return LOCALHOST
    for zone in checked.policy.zones:
        if interface and any(fnmatch.fnmatchcase(interface, pattern) for pattern in interfaces(zone)):
            return zone.name
    value = int(address)
    return next((i.zone for i in checked.intervals if i.version == address.version and i.first <= value <= i.last),
                None)
