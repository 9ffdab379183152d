"""What the lab builds and probes, and what it expects: pure planning, no kernel, no processes.

Client addresses come from the zones' intervals (the same source -> zone map the ruleset uses), so a probe from
a client is a probe from that zone. Expected states come from nftc.reach, the policy's own first-match walk, and
from where Zimbra binds each port (the catalog's `bind`): the lab listens where Zimbra does.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass
from typing import Iterable

from ..semantics import catalog
from ..language import model as m
from ..language.text import columns
from ..semantics.reach import Decision, decide, zone_segments
from ..semantics.resolve import LOCALHOST, MEMCACHED_UDP, CheckedAssertion, CheckedPolicy
from ..semantics.zones import IP_VERSIONS, Interval, interfaces, zone_of
from .probe import DROPPED, OPEN, REFUSED

STATE_OF_VERDICT = {"accept": OPEN, "drop": DROPPED, "reject": REFUSED}
LOOPBACK = {4: "127.0.0.1", 6: "::1"}

# Documentation and benchmarking addresses: what a zone of every address (`any`) looks like from the outside.
_OUTSIDE_CANDIDATES = {
    4: ("203.0.113.10", "198.51.100.10", "192.0.2.10", "198.18.1.10", "100.64.0.10", "10.255.255.10"),
    6: ("2001:db8:ffff::10", "2001:db8:1::10", "3fff::10", "fd00:ffff::10"),
}
_SERVER_CANDIDATES = {4: ("198.18.0.1", "198.18.0.2", "198.19.0.1"), 6: ("2001:db8:fffe::1", "2001:db8:fffe::2")}
_UNUSABLE = tuple(ipaddress.ip_network(n) for n in ("0.0.0.0/8", "255.255.255.255/32", "::ffff:0:0/96", "::/96"))


@dataclass(frozen=True)
class Client:
    """One client namespace: a source inside `zone`, wired to the server on the server-side `interface`."""

    zone: str
    interface: str
    addresses: dict  # family (4, 6) -> address; a family the zone has no address in is missing


@dataclass(frozen=True)
class Topology:
    """Where the lab puts the server and one client per zone, by address family."""

    server_addresses: dict  # family -> the address clients connect to
    clients: tuple[Client, ...]

    def target(self, zone: str, family: int) -> str | None:
        """The address a probe from `zone` connects to; None when the zone has no source of that family."""
        if zone == LOCALHOST:
            return LOOPBACK[family]
        client = next(c for c in self.clients if c.zone == zone)
        return self.server_addresses[family] if family in client.addresses else None


@dataclass(frozen=True)
class Probe:
    """One connection the lab tries: from a zone's client to a service's port, over one IP version."""

    zone: str
    service: str
    protocol: str
    port: int
    family: int


@dataclass(frozen=True)
class Observation:
    """A probe's outcome next to what the policy predicts (reach.py): the lab's proof, or a mismatch."""

    probe: Probe
    expected: str
    observed: str
    reason: str  # why the policy expects it: rule and line, or the built-in default

    @property
    def matches(self) -> bool:
        return self.expected == self.observed


# Addresses


def _usable(address: ipaddress._BaseAddress) -> bool:
    bad = (address.is_unspecified or address.is_loopback or address.is_multicast or address.is_link_local
           or address.is_reserved)
    return not bad and not any(address in n for n in _UNUSABLE if n.version == address.version)


def _interval_candidates(intervals: Iterable[Interval], zone: str, family: int) -> list[str]:
    kind = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    out = []
    for interval in (i for i in intervals if i.zone == zone and i.version == family):
        size = interval.last - interval.first + 1
        picks = (interval.first + 1, interval.last - 1) if size > 2 else (interval.first, interval.last)
        out.extend(str(kind(p)) for p in picks)
    return out


def pick_address(checked: CheckedPolicy, zone: m.Zone, family: int, taken: set[str]) -> str | None:
    """A usable address the zone owns; a zone of every address prefers one that looks like the internet."""
    wide = any(isinstance(s, m.AnySource) for s in zone.sources)
    own = _interval_candidates(checked.address_map(family).intervals(), zone.name, family)
    candidates = list(_OUTSIDE_CANDIDATES[family]) + own if wide else own + list(_OUTSIDE_CANDIDATES[family])
    for candidate in candidates:
        if candidate not in taken and _usable(ipaddress.ip_address(candidate)) \
                and zone_of(checked, candidate, None) == zone.name:
            return candidate
    return None


def _interface_zone_address(family: int, index: int, taken: set[str]) -> str:
    """Interface zones match on the interface, so any unused address serves."""
    for n in range(index, index + 200):
        candidate = f"198.18.{10 + n}.2" if family == 4 else f"2001:db8:fffd:{n:x}::2"
        if candidate not in taken:
            return candidate
    raise ValueError("no free lab address")


def server_interface(zone: m.Zone, index: int, patterns: tuple[str, ...], used: set[str]) -> str:
    """The server-side veth: named after the zone's interface, else `lzN`, never matching another pattern."""
    names = interfaces(zone)
    if names:
        pattern = names[0]
        base = pattern[:-1] if pattern.endswith("*") else pattern
        options = [base] if not pattern.endswith("*") else [f"{base}{s}"[:15] for s in ("lab", "0", "1", "9")]
    else:
        options = [f"lz{index}", f"lzone{index}", f"labz{index}"]
    for option in options:
        foreign = [p for p in patterns if p not in names and fnmatch.fnmatchcase(option, p)]
        if option not in used and not foreign:
            return option
    raise ValueError(f"cannot name a lab interface for zone '{zone.name}'")


def plan_topology(checked: CheckedPolicy) -> Topology:
    taken: set[str] = set()
    used_interfaces: set[str] = set()
    patterns = tuple(name for zone in checked.policy.zones for name in interfaces(zone))
    clients = []
    for index, zone in enumerate(checked.policy.zones):
        addresses = {}
        for family in IP_VERSIONS:
            address = pick_address(checked, zone, family, taken)
            if address is None and interfaces(zone):
                address = _interface_zone_address(family, index, taken)
            if address is not None:
                addresses[family] = address
                taken.add(address)
        interface = server_interface(zone, index, patterns, used_interfaces)
        used_interfaces.add(interface)
        clients.append(Client(zone.name, interface, addresses))
    server = {f: next(a for a in _SERVER_CANDIDATES[f] if a not in taken) for f in IP_VERSIONS}
    return Topology(server, tuple(clients))


# Probes and expectations


# Not a catalog service (Zimbra's memcached is TCP only): probed so the lab shows UDP 11211 dropped from every zone.
MEMCACHED_UDP_SERVICE = m.Service("memcached_udp", (MEMCACHED_UDP,), "memcached over UDP (memcrashed)")


def probe_services(checked: CheckedPolicy) -> tuple[m.Service, ...]:
    """The Zimbra catalog, UDP memcached and the policy's own services, in that order."""
    return catalog.services() + (MEMCACHED_UDP_SERVICE,) + tuple(checked.policy.services)


def probe_ports(service: m.Service) -> tuple[tuple[str, int], ...]:
    """(protocol, port) pairs; a range is probed at its first and last port to keep the count bounded."""
    pairs: list[tuple[str, int]] = []
    for r in service.ports:
        for port in dict.fromkeys((r.first, r.last)):
            if (r.protocol, port) not in pairs:
                pairs.append((r.protocol, port))
    return tuple(pairs)


def plan_probes(checked: CheckedPolicy, topology: Topology) -> tuple[Probe, ...]:
    probes = []
    for zone in checked.zone_names():
        for family in IP_VERSIONS:
            if topology.target(zone, family) is None:
                continue
            for service in probe_services(checked):
                probes.extend(Probe(zone, service.name, protocol, port, family)
                              for protocol, port in probe_ports(service))
    return tuple(probes)


def listener_ports(probes: Iterable[Probe]) -> dict[str, dict[str, tuple[int, ...]]]:
    """Bind ("all", "loopback") -> protocol -> the ports to listen on: where Zimbra binds each (the catalog)."""
    wanted = {(p.protocol, p.port) for p in probes}
    return {bind: {protocol: tuple(sorted(port for proto, port in wanted
                                          if proto == protocol and catalog.bind_of(proto, port) == bind))
                   for protocol in m.PROTOCOLS}
            for bind in catalog.BINDS}


NOTHING_LISTENS = "nothing listens there: Zimbra binds it to loopback"


def expected_state(decision: Decision, zone: str, protocol: str, port: int) -> tuple[str, str]:
    """(state, reason) a probe from `zone` should see: the policy's verdict, except that an accepted connection
    to a port Zimbra binds to loopback finds no listener from any other zone (refused): real exposure."""
    state, reason = STATE_OF_VERDICT[decision.verdict], decision.describe()
    if state == OPEN and zone != LOCALHOST and catalog.bind_of(protocol, port) == "loopback":
        return REFUSED, f"{reason}; {NOTHING_LISTENS}"
    return state, reason


def expectations(checked: CheckedPolicy, probes: tuple[Probe, ...]) -> dict[Probe, tuple[str, str]]:
    """Probe -> (expected state, reason), from the policy's decision for that zone, protocol and port, and from
    where Zimbra binds the port."""
    segments = {zone: zone_segments(checked, zone) for zone in checked.zone_names()}
    return {probe: expected_state(decide(segments[probe.zone], probe.protocol, probe.port), probe.zone,
                                  probe.protocol, probe.port)
            for probe in probes}


def observe(checked: CheckedPolicy, observed: dict[Probe, str]) -> tuple[Observation, ...]:
    expected = expectations(checked, tuple(observed))
    return tuple(Observation(p, expected[p][0], observed[p], expected[p][1]) for p in observed)


# Assertions on the kernel


@dataclass(frozen=True)
class AssertionCheck:
    """A policy `assert` checked against what the kernel did, with the probes that broke it."""

    text: str
    holds: bool
    probes: int
    violations: tuple[Observation, ...]


def check_assertions(assertions: tuple[CheckedAssertion, ...],
                     observations: tuple[Observation, ...]) -> tuple[AssertionCheck, ...]:
    """`assert Z -> S`: every probed port of S is open from Z; `!->`: none is."""
    checks = []
    for item in assertions:
        for zone in item.zones:
            for service in item.services:
                relevant = [o for o in observations if o.probe.zone == zone and any(
                    r.protocol == o.probe.protocol and r.first <= o.probe.port <= r.last for r in service.ports)]
                must_reach = item.assertion.reach
                bad = tuple(o for o in relevant if (o.observed == OPEN) != must_reach)
                arrow = "->" if must_reach else "!->"
                checks.append(AssertionCheck(f"assert {zone} {arrow} {service.name}", not bad and bool(relevant),
                                             len(relevant), bad))
    return tuple(checks)


# The matrix


def _cell(states: list[str]) -> str:
    distinct = list(dict.fromkeys(states))
    return distinct[0] if len(distinct) == 1 else "/".join(distinct)


def matrix_rows(observations: tuple[Observation, ...]) -> list[tuple[str, ...]]:
    """One row per zone and service: ports, then expected and observed per family, then a mismatch mark."""
    rows: dict[tuple[str, str], dict] = {}
    for o in observations:
        row = rows.setdefault((o.probe.zone, o.probe.service), {"ports": [], "cells": {}})
        port = f"{o.probe.port}/{o.probe.protocol}"
        if port not in row["ports"]:
            row["ports"].append(port)
        cell = row["cells"].setdefault(o.probe.family, ([], [], []))
        cell[0].append(o.expected)
        cell[1].append(o.observed)
        cell[2].append(o.matches)
    out = []
    for (zone, service), row in rows.items():
        values = [zone, service, " ".join(row["ports"])]
        ok = True
        for family in IP_VERSIONS:
            expected, observed, matches = row["cells"].get(family, ([], [], []))
            values += [_cell(expected) if expected else "-", _cell(observed) if observed else "-"]
            ok = ok and all(matches)
        values.append("" if ok else "MISMATCH")
        out.append(tuple(values))
    return out


MATRIX_HEADER = ("ZONE", "SERVICE", "PORTS", "IPv4 EXPECTED", "IPv4 OBSERVED", "IPv6 EXPECTED", "IPv6 OBSERVED", "")


def format_matrix(observations: tuple[Observation, ...]) -> str:
    return columns([MATRIX_HEADER, *matrix_rows(observations)])


def format_mismatch(o: Observation) -> str:
    p = o.probe
    return (f"mismatch: {p.zone} -> {p.service} {p.port}/{p.protocol} IPv{p.family}: expected {o.expected} "
            f"({o.reason}), observed {o.observed}")
