"""What the policy means for each (zone, protocol, port): the same first-match walk the ruleset makes.

Used to prove `assert` lines, to find rules that can never match, and by the lab as its 'expected' column.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from . import ports
from ..language.diagnostics import Diagnostic, error
from ..language.model import PROTOCOLS
from .resolve import LOCALHOST, MEMCACHED_UDP, CheckedPolicy, CheckedRule


MEMCACHED_UDP_NOTE = f"UDP {MEMCACHED_UDP.first} is always dropped outside localhost"
VERDICT_OF_ACTION = {"allow": "accept", "deny": "drop", "reject": "reject"}
NEVER_MATCHES = "this rule can never match"


def verdict_of(action: str) -> str:
    """The nftables verdict of a rule's action: allow -> accept, deny -> drop, reject -> reject."""
    return VERDICT_OF_ACTION[action]


@dataclass(frozen=True)
class Decision:
    """What the ruleset does with a new connection, and the policy line that decides it."""

    verdict: str  # accept, drop or reject
    reason: str  # rule id, "loopback", "memcached-udp" or "default-drop"
    rule: CheckedRule | None = None
    service: str = ""  # the service of the rule that decides ("any" for a broad rule)

    @property
    def limited(self) -> bool:
        return self.rule is not None and self.rule.rule.limit is not None

    def describe(self) -> str:
        if self.rule is None:
            return {"loopback": "loopback traffic is accepted",
                    "memcached-udp": MEMCACHED_UDP_NOTE,
                    "default-drop": "no rule allows it (default drop)"}[self.reason]
        return f"rule {self.rule.id} at {self.rule.rule.span} ({self.rule.rule.action})"


@dataclass(frozen=True)
class Segment:
    """A run of ports of one protocol that every rule treats alike, and the decision on it."""

    protocol: str
    first: int
    last: int
    decision: Decision


def rule_ports(checked: CheckedPolicy, rule: CheckedRule) -> dict[str, ports.PortIntervals]:
    """The ports a rule matches. `allow Z -> any` opens every port outside the protected set; a broad deny or
    reject closes every port."""
    if rule.broad and rule.rule.action != "allow":
        return {p: ports.ALL_PORTS for p in PROTOCOLS}
    if rule.broad:
        protected = ports.by_protocol(checked.protected)
        return {p: ports.subtract(ports.ALL_PORTS, protected[p]) for p in PROTOCOLS}
    return ports.by_protocol(r for s in rule.services for r in s.ports)


def _service_ports(checked: CheckedPolicy, rule: CheckedRule, protocol: str):
    """(service name, ports) in the rule's order; a broad rule is the one service `any`."""
    if rule.broad:
        return [("any", rule_ports(checked, rule)[protocol])]
    return [(s.name, ports.by_protocol(s.ports)[protocol]) for s in rule.services]


def zone_segments(checked: CheckedPolicy, zone: str) -> tuple[Segment, ...]:
    """Every port of every protocol, cut into segments, each with the decision for a new connection."""
    segments: list[Segment] = []
    for protocol in PROTOCOLS:
        open_ports = ports.ALL_PORTS
        if zone != LOCALHOST and protocol == MEMCACHED_UDP.protocol:
            memcached = ((MEMCACHED_UDP.first, MEMCACHED_UDP.last),)
            segments += _cut(protocol, memcached, Decision("drop", "memcached-udp"))
            open_ports = ports.subtract(open_ports, memcached)
        for rule in checked.rules_for(zone):
            verdict = verdict_of(rule.rule.action)
            for service, spans in _service_ports(checked, rule, protocol):
                matched = ports.intersect(open_ports, spans)
                segments += _cut(protocol, matched, Decision(verdict, rule.id, rule, service))
                open_ports = ports.subtract(open_ports, matched)
        fallback = Decision("accept", "loopback") if zone == LOCALHOST else Decision("drop", "default-drop")
        segments += _cut(protocol, open_ports, fallback)
    return tuple(sorted(segments, key=lambda s: (s.protocol, s.first)))


def _cut(protocol: str, intervals: ports.PortIntervals, decision: Decision) -> list[Segment]:
    return [Segment(protocol, first, last, decision) for first, last in intervals]


def decide(segments: tuple[Segment, ...], protocol: str, port: int) -> Decision:
    keys = [(s.protocol, s.first) for s in segments]
    index = bisect.bisect_right(keys, (protocol, port)) - 1
    return segments[index].decision


def never_matching_rules(checked: CheckedPolicy) -> list[Diagnostic]:
    """A rule that decides no port in any of its zones is dead code: earlier rules decide all it names."""
    deciding = {s.decision.reason for z in checked.zone_names() for s in zone_segments(checked, z)}
    diagnostics = []
    for rule in checked.rules:
        if rule.id in deciding:
            continue
        earlier = _first_overlapping_rule(checked, rule)
        where = f"rule {earlier.id} at {earlier.rule.span} already decides every port it names" if earlier \
            else MEMCACHED_UDP_NOTE
        diagnostics.append(error(NEVER_MATCHES, rule.rule.span, hint=where))
    return diagnostics


def _first_overlapping_rule(checked: CheckedPolicy, rule: CheckedRule) -> CheckedRule | None:
    mine = rule_ports(checked, rule)
    for other in checked.rules:
        if other is rule:
            return None
        theirs = rule_ports(checked, other)
        if set(other.zones) & set(rule.zones) and any(ports.intersect(mine[p], theirs[p]) for p in PROTOCOLS):
            return other
    return None


def failed_assertions(checked: CheckedPolicy) -> list[Diagnostic]:
    diagnostics = []
    for item in checked.assertions:
        for zone in item.zones:
            segments = zone_segments(checked, zone)
            for service in item.services:
                problem = _assertion_problem(segments, service.ports, item.assertion.reach)
                if problem:
                    port_range, decision = problem
                    arrow = "->" if item.assertion.reach else "!->"
                    diagnostics.append(error(
                        f"assertion fails: {zone} {arrow} {service.name}: "
                        f"{port_range} is {'not reached' if item.assertion.reach else 'reached'}",
                        item.assertion.span, hint=_because(decision)))
    return diagnostics


def _because(decision: Decision) -> str:
    return f"decided by {decision.describe()}" if decision.rule is not None else decision.describe()


def _assertion_problem(segments, service_ports, must_reach: bool):
    for port_range in service_ports:
        for segment in segments:
            overlaps = segment.protocol == port_range.protocol and not (
                segment.last < port_range.first or segment.first > port_range.last)
            if overlaps and (segment.decision.verdict == "accept") != must_reach:
                return port_range, segment.decision
    return None
