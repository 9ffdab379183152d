"""Which zone a source address belongs to: the most specific (longest prefix) zone that contains it.

CIDRs are either nested or disjoint, so one sort and one sweep with a stack turn the zones' networks into
disjoint intervals, each owned by exactly one zone: an interval verdict map the kernel looks up in one step.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from . import model as m
from .diagnostics import Diagnostic, error

FAMILIES = (4, 6)
ANY_NETWORKS = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}


@dataclass(frozen=True)
class Interval:
    """Source addresses `first`..`last` (as integers) of one IP version belong to `zone`."""

    version: int
    first: int
    last: int
    zone: str

    def render(self) -> str:
        """The interval as one CIDR where it is one, else as `first-last`."""
        kind = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        first, last = kind(self.first), kind(self.last)
        networks = list(ipaddress.summarize_address_range(first, last))
        if len(networks) == 1:
            network = networks[0]
            return str(network.network_address) if network.num_addresses == 1 else str(network)
        return f"{first}-{last}"


@dataclass(frozen=True)
class _Claim:
    network: m.IPNetwork
    zone: str
    span: m.Span | None


def zone_networks(zone: m.Zone) -> list[tuple[m.IPNetwork, m.Span | None]]:
    networks = []
    for source in zone.sources:
        if isinstance(source, m.AddressSource):
            networks.append((source.network, source.span))
        elif isinstance(source, m.AnySource):
            networks.extend((ANY_NETWORKS[v], source.span) for v in FAMILIES)
        elif isinstance(source, m.FileSource):
            networks.extend((network, source.span) for network in source.networks)
    return networks


def flatten_zones(zones: tuple[m.Zone, ...]) -> tuple[tuple[Interval, ...], list[Diagnostic]]:
    """Disjoint intervals for every address zone, IPv4 first; errors for networks two zones both claim."""
    claims = sorted(
        (_Claim(network, zone.name, span) for zone in zones for network, span in zone_networks(zone)),
        key=lambda c: (c.network.version, int(c.network.network_address), c.network.prefixlen),
    )
    claims, errors = _drop_duplicates(claims)
    intervals: list[Interval] = []
    for version in FAMILIES:
        intervals.extend(_sweep([c for c in claims if c.network.version == version], version))
    return tuple(intervals), errors


def _drop_duplicates(claims: list[_Claim]) -> tuple[list[_Claim], list[Diagnostic]]:
    kept: list[_Claim] = []
    errors: list[Diagnostic] = []
    for claim in claims:
        if kept and kept[-1].network == claim.network:
            if kept[-1].zone != claim.zone:
                errors.append(error(
                    f"{claim.network} is in zone '{kept[-1].zone}' and in zone '{claim.zone}'",
                    claim.span,
                    hint=f"zones resolve by prefix length, so equal prefixes are ambiguous; "
                         f"the other is at {kept[-1].span}",
                ))
            continue
        kept.append(claim)
    return kept, errors


def _sweep(claims: list[_Claim], version: int) -> list[Interval]:
    out: list[Interval] = []
    stack: list[tuple[int, str]] = []  # (last address, zone) of the networks that enclose the cursor
    cursor = 0

    def emit(first: int, last: int, zone: str) -> None:
        if first > last:
            return
        if out and out[-1].zone == zone and out[-1].last + 1 == first:
            out[-1] = Interval(version, out[-1].first, last, zone)
        else:
            out.append(Interval(version, first, last, zone))

    for claim in claims:
        first = int(claim.network.network_address)
        last = int(claim.network.broadcast_address)
        while stack and stack[-1][0] < first:
            end, zone = stack.pop()
            emit(cursor, end, zone)
            cursor = end + 1
        if stack:
            emit(cursor, first - 1, stack[-1][1])
        stack.append((last, claim.zone))
        cursor = first
    while stack:
        end, zone = stack.pop()
        emit(cursor, end, zone)
        cursor = end + 1
    return out


def interfaces(zone: m.Zone) -> tuple[str, ...]:
    return tuple(s.name for s in zone.sources if isinstance(s, m.InterfaceSource))
