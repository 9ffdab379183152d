"""Who reaches whom on what: the cluster matrix (`nftc matrix`) and one source's verdicts (`nftc explain`).

Both read each host's policy as it enforces it (nftc.semantics.cluster.host_policy, resolved: what the compiler
lowers) through the same first-match walk the rulesets make (nftc.semantics.reach), so what they print is what the
rulesets do. A policy without hosts is one view, host None. Pure: no I/O, no printing (nftc.cli.cluster prints).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Sequence

from ..language import model as m
from .reach import Decision, Segment, decide, zone_segments
from .resolve import LOCALHOST, CheckedPolicy, CheckedRule
from .zones import zone_of

ANY = m.ANY_SERVICE  # the service name of a broad rule (`allow Z -> any`)


@dataclass(frozen=True)
class View:
    """One host's policy as that host enforces it; `host` None for a policy without hosts."""

    host: str | None
    checked: CheckedPolicy


@dataclass(frozen=True)
class Opening:
    """A service (or `any`) a source reaches on a host, the ports of it that are open there, and the rule that
    opens them (None: loopback traffic, accepted before any rule)."""

    service: str
    ports: tuple[m.PortRange, ...]
    rule: CheckedRule | None


@dataclass(frozen=True)
class Cell:
    """What `source` reaches on `host`; `openings` None when source and host are the same machine."""

    source: str
    host: str | None
    openings: tuple[Opening, ...] | None


@dataclass(frozen=True)
class Matrix:
    """Rows: every host, then every zone of the policy, as sources; columns: every host."""

    hosts: tuple[str | None, ...]
    sources: tuple[str, ...]
    cells: tuple[Cell, ...]  # row by row, in the order of `sources` then `hosts`

    def cell(self, source: str, host: str | None) -> Cell:
        return next(c for c in self.cells if c.source == source and c.host == host)


def openings(checked: CheckedPolicy, zone: str) -> tuple[Opening, ...]:
    """What `zone` reaches: the accepted ports grouped by the rule and the service of it that accepts them, in
    the order of the policy's rules (loopback first), then of the rule's services."""
    grouped: dict[tuple[str, str], list[Segment]] = {}
    for segment in zone_segments(checked, zone):
        if segment.decision.verdict == "accept":
            grouped.setdefault((segment.decision.reason, segment.decision.service or ANY), []).append(segment)
    order = {rule.id: index for index, rule in enumerate(checked.rules)}
    made = []
    for (reason, service), found in grouped.items():
        ranges = tuple(m.PortRange(s.protocol, s.first, s.last) for s in found)
        made.append((order.get(reason, -1), min(s.protocol != "tcp" for s in found), found[0].first,
                     Opening(service, ranges, found[0].decision.rule)))
    return tuple(item[-1] for item in sorted(made, key=lambda item: item[:3]))


def _host_names(views: Sequence[View]) -> tuple[str, ...]:
    return tuple(v.host for v in views if v.host is not None)


def user_zones(views: Sequence[View]) -> tuple[str, ...]:
    """The zones the policy's author wrote (on a host's policy, the other hosts are zones too: left out)."""
    hosts = set(_host_names(views))
    return tuple(z.name for z in views[0].checked.policy.zones if z.name not in hosts)


def cluster_matrix(views: Sequence[View]) -> Matrix:
    """Every host and every user zone against every host."""
    hosts = tuple(v.host for v in views)
    sources = _host_names(views) + user_zones(views)
    cells = []
    for source in sources:
        for view in views:
            found = None if source == view.host else openings(view.checked, source)
            cells.append(Cell(source, view.host, found))
    return Matrix(hosts, sources, tuple(cells))


# `nftc explain`


class ExplainError(ValueError):
    """An address or PORT/PROTO that cannot be read; the message is one line for the user."""


@dataclass(frozen=True)
class Explanation:
    """What host `host` does with new connections from `address`: its zone there, then either the decision for
    one port (`decision`) or every opening."""

    host: str | None
    address: str
    zone: str | None  # None: no zone holds the address, and the ruleset drops it (no rule can match it)
    decision: Decision | None = None
    openings: tuple[Opening, ...] = ()


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ExplainError(f"'{text}' is not an IP address (such as 10.0.0.12 or fd00:10::12)") from None


def parse_port(text: str) -> tuple[int, str]:
    """`7025/tcp` -> (7025, "tcp")."""
    port, _, protocol = text.partition("/")
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535 and protocol in m.PROTOCOLS):
        raise ExplainError(f"'{text}' is not PORT/PROTO, such as 7025/tcp or 514/udp")
    return int(port), protocol


def host_addresses(views: Sequence[View], host: str | None) -> frozenset:
    """A host's own addresses, read where they are written: in its peers' policies, as the zone named after it."""
    found = set()
    for view in views:
        for zone in view.checked.policy.zones:
            if view.host != host and zone.name == host:
                found.update(s.network.network_address for s in zone.sources if isinstance(s, m.AddressSource))
    return frozenset(found)


def source_zone(views: Sequence[View], view: View, address) -> str | None:
    """The zone of `address` on `view`'s host, as its ruleset classifies a packet from it arriving on some
    interface that names no zone; an address of the host itself comes over loopback."""
    if address in host_addresses(views, view.host):
        return LOCALHOST
    return zone_of(view.checked, address, None)


def explain(views: Sequence[View], address, port: tuple[int, str] | None = None) -> tuple[Explanation, ...]:
    """For each view: the decision for `port` (number, protocol) from `address`, or every opening without one."""
    made = []
    for view in views:
        zone = source_zone(views, view, address)
        if zone is None:
            made.append(Explanation(view.host, str(address), None,
                                    Decision("drop", "default-drop") if port else None))
            continue
        if port is None:
            made.append(Explanation(view.host, str(address), zone, openings=openings(view.checked, zone)))
        else:
            made.append(Explanation(view.host, str(address), zone,
                                    decide(zone_segments(view.checked, zone), port[1], port[0])))
    return tuple(made)
