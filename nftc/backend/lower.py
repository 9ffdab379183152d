"""Checked policy -> nftables IR: one inet table with an input chain that dispatches to one chain per zone.

The path of a new connection: loopback, anti-spoofing (loopback sources off `lo`, then the reverse-path check),
UDP 11211, bans (the addresses of zones that allow nothing: every packet, not only new ones), ping (per source),
conntrack, ICMP errors, one lookup in an interface map and one in an address interval map (-> the zone's chain; a
source the map does not hold goes to the zone of `any`), one lookup in the zone's port map (protocol . port -> the
chain of the rule and service that decide it), then that chain's counter and verdict. The zone's port map is built
from `reach.zone_segments`, the same first-match walk the assertions are proved with, so what the kernel does and
what nftc proves are one computation. No path grows with the number of rules, ports or addresses.

The path of a packet conntrack already knows (established or related) that is not ICMP is shorter: after the
spoofed-loopback drops, the chain `established` (UDP 11211, bans, accept), the only rules of the long path that can
match it (README, chain input, step 3).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from itertools import compress

from . import ir, names
from ..language import model as m
from ..semantics import ports
from ..language.model import PROTOCOLS
from ..semantics.reach import Decision, Segment, verdict_of, zone_segments
from ..semantics.resolve import LOCALHOST, MEMCACHED_UDP, CheckedPolicy, CheckedRule
from ..semantics.zones import interfaces, trusted_networks

ICMPV6_ND = ("nd-router-solicit", "nd-router-advert", "nd-neighbor-solicit", "nd-neighbor-advert")
ICMPV6_MLD = ("mld-listener-query", "mld-listener-report", "mld2-listener-report")
ICMPV6_ERRORS = ("destination-unreachable", "packet-too-big", "time-exceeded", "parameter-problem")
ICMP_ERRORS = ("destination-unreachable", "time-exceeded", "parameter-problem")
# ICMP and ICMPv6 by protocol number (IANA): nft resolves a name like `ipv6-icmp` through /etc/protocols, which
# a minimal system (no netbase) lacks, and the kernel would then refuse the ruleset (the fresh-root test found it)
ICMP_PROTOCOLS = (1, 58)
_KNOWN = ir.Match(ir.Ct("state"), ir.Flags(("established", "related")))  # a flow conntrack already knows
LIMIT_SET_SIZE = 65535
LIMIT_SET_TIMEOUT = "1m"
# Fib lookups of the reverse-path check, per `rpfilter` mode (`off`: none). `mark` keeps fwmark policy routing
# (wg-quick, multi-WAN) working, as firewalld's rpfilter does; `iif` makes it strict: the route back to the
# source must leave by the interface the packet came in on, not just exist.
RPFILTER_LOOKUPS = {"strict": ("saddr", "mark", "iif"), "loose": ("saddr", "mark")}


@dataclass(frozen=True)
class Family:
    """One IP family, as the ruleset spells it (`semantics.zones.IP_VERSIONS` are the bare version numbers)."""

    version: int
    protocol: str  # the payload protocol: ip, ip6
    nfproto: str  # as `meta nfproto` names it: ipv4, ipv6
    key_type: str  # of a set of its addresses
    icmp: str  # its ICMP: icmp, icmpv6
    loopback: tuple[str | ir.Prefix, ...]  # sources that only ever come from the machine itself


FAMILIES = (
    Family(4, "ip", "ipv4", "ipv4_addr", "icmp", (ir.Prefix("127.0.0.0", 8),)),
    # ::1, and IPv4 loopback written in IPv6: IPv4-mapped (a dual-stack socket reports ::ffff:127.0.0.1 as
    # 127.0.0.1) and the deprecated IPv4-compatible form (RFC 4291 2.5.5.1). The kernel drops ::1 off `lo`
    # itself, but lets both others through.
    Family(6, "ip6", "ipv6", "ipv6_addr", "icmpv6",
           ("::1", ir.Prefix("::ffff:127.0.0.0", 104), ir.Prefix("::127.0.0.0", 104))),
)


class _Builder:
    """Collects the table's named objects in creation order, so output is deterministic."""

    def __init__(self, checked: CheckedPolicy):
        self.checked = checked
        self.counters: dict[str, ir.Counter] = {}
        self.sets: dict[str, ir.Set] = {}
        self.limits: dict[str, ir.LimitObject] = {}
        self.chains: dict[str, ir.Chain] = {}  # helper chains made on demand
        base = os.path.dirname(checked.policy.source)
        self.base = base

    def counter(self, name: str, comment: str = "") -> ir.CounterRef:
        self.counters.setdefault(name, ir.Counter(name, comment))
        return ir.CounterRef(name)

    def where(self, span: m.Span | None) -> str:
        if span is None:
            return ""
        return _comment(f"{os.path.relpath(span.file, self.base or '.')}:{span.line}")

    def log_rule(self, matches: tuple, tag: str, span: m.Span | None, asked: bool = False) -> tuple[ir.Rule, ...]:
        """A rate-limited log line before a drop: for every drop with `log drops`, else when a rule asks."""
        log = self.checked.policy.log_drops
        if log is None and not asked:
            return ()
        settings = log or m.DEFAULT_LOG_DROPS  # a rule's own `log` without `log drops`: the defaults
        limit = ir.Limit(settings.rate.count, settings.rate.unit, settings.burst)
        where = self.where(span or (log.span if log else None)) or "log"
        return (ir.Rule(matches + (limit, ir.Log(f"{settings.prefix}{tag} ")), where),)

    def over_limit_chain(self, rule: CheckedRule, where: str) -> str:
        name = names.over_limit_chain(rule.id)
        if name not in self.chains:
            rules = self.log_rule((), f"{rule.id}/limit", rule.rule.span) + (
                ir.Rule((self.counter(names.over_limit_counter(rule.id), where), ir.Verdict("drop")), where),)
            self.chains[name] = ir.Chain(name, rules, comment=_comment(f"over the limit of {where}"))
        return name

    def protected_set(self, protocol: str) -> ir.SetRef | None:
        intervals = ports.by_protocol(self.checked.protected)[protocol]
        if not intervals:
            return None
        name = names.protected_set(protocol)
        self.sets.setdefault(name, ir.Set(name, "inet_service", _port_elements(intervals), interval=True,
                                          comment="local-only and admin ports: opened only by name"))
        return ir.SetRef(name)


def lower_policy(checked: CheckedPolicy) -> ir.Table:
    builder = _Builder(checked)
    protected = {p: builder.protected_set(p) for p in PROTOCOLS}
    zone_chains = [_zone_chain(builder, zone, protected) for zone in checked.zone_names()]
    input_chain = _input_chain(builder)
    output_chain = _output_chain(builder)
    return ir.Table(
        family="inet",
        name=checked.policy.table,
        comment="",
        counters=tuple(builder.counters.values()),
        limits=tuple(builder.limits.values()),
        sets=tuple(builder.sets.values()),
        chains=(input_chain, output_chain, *zone_chains, *builder.chains.values()),
    )


def _input_chain(b: _Builder) -> ir.Chain:
    """Every packet first passes the loopback and spoofed-loopback rules; then established/related packets but
    ICMP take the short path of `_established_chain`, and the rest goes on here. The short path leaves out only
    rules that can never match such a packet (ND and MLD: ICMPv6, untracked; the reverse-path check: new only;
    ping: ICMP), so both paths drop, count and accept exactly what this one chain did before them. The ban rules
    are made once for both (their maps hold 10^5 addresses), in the order the rules name their counters."""
    spoofed = _spoofed_loopback_rules(b)  # before any accept: a forged loopback source may match a local connection
    memcached, bans = _memcached_rule(b), _ban_rules(b)
    rules = [
        ir.Rule((ir.Match(ir.Meta("iif"), "lo"), ir.Verdict("goto", names.zone_chain(LOCALHOST))),
                "loopback: built-in zone localhost"),
        *spoofed,
        ir.Rule((_KNOWN, ir.Match(ir.Meta("l4proto"), ir.AnonSet(ICMP_PROTOCOLS), negate=True),
                 ir.Verdict("goto", _established_chain(b, memcached, bans))),
                "established and related but ICMP: the short path"),
        *_on_link_icmpv6_rules(),  # before the reverse-path check: ND from :: (duplicate address detection)
        *_rpfilter_rules(b),
        memcached,
        *bans,  # before ping and conntrack: a ban cuts open sessions and pings too
        *_echo_rules(b),  # before conntrack: every request of one ping is "established" after the first reply
        ir.Rule((_KNOWN, ir.Verdict("accept")), "replies to allowed connections"),
        ir.Rule((ir.Match(ir.Ct("state"), ir.Flags(("invalid",))), b.counter(names.drop_counter("invalid")),
                 ir.Verdict("drop")), "invalid conntrack state"),
        *_icmp_error_rules(),
        *_dispatch_rules(b),
        *b.log_rule((), "no-zone", None),
        ir.Rule((b.counter(names.drop_counter("no-zone")), ir.Verdict("drop")), "source in no zone"),
    ]
    return ir.Chain(names.INPUT_CHAIN, tuple(rules), ir.Hook("input", 0, "drop"))


def _established_chain(b: _Builder, memcached: ir.Rule, bans: list[ir.Rule]) -> str:
    """`established`: what an established or related packet that is not ICMP still meets before its accept, in
    the input chain's order: UDP 11211 (an entry from before the table, or made by anyone, is no licence) and the
    bans (a ban cuts open sessions). ICMP stays in the input chain, where every echo request is metered."""
    name = names.ESTABLISHED_CHAIN
    rules = (memcached, *bans,
             ir.Rule((ir.Verdict("accept"),), "replies to allowed connections"))
    b.chains[name] = ir.Chain(name, rules, comment="established and related but ICMP")
    return name


def _memcached_rule(b: _Builder) -> ir.Rule:
    return ir.Rule((ir.Match(ir.Payload(MEMCACHED_UDP.protocol, "dport"), MEMCACHED_UDP.first),
                    b.counter(names.drop_counter("memcached-udp")),
                    ir.Verdict("drop")), "memcached UDP: never outside localhost (memcrashed)")


def _spoofed_loopback_rules(b: _Builder) -> list[ir.Rule]:
    """A loopback source arriving on any other interface is forged: services trust 127.0.0.1."""
    not_lo = ir.Match(ir.Meta("iif"), "lo", negate=True)
    return [ir.Rule((not_lo, ir.Match(ir.Payload(f.protocol, "saddr"), _one_or_set(f.loopback)),
                     b.counter(names.drop_counter("spoofed-loopback")), ir.Verdict("drop")),
                    "loopback address off loopback")
            for f in FAMILIES]


def _one_or_set(values: tuple) -> ir.Value:
    """A single value as itself (the rule reads as before), several as an anonymous set: still one rule."""
    return values[0] if len(values) == 1 else ir.AnonSet(values)


def _on_link_icmpv6_rules() -> list[ir.Rule]:
    """Neighbour discovery and MLD, only with the hop limit that proves they were sent on the link itself."""
    return [
        ir.Rule((ir.Match(ir.Payload("icmpv6", "type"), ir.AnonSet(ICMPV6_ND)),
                 ir.Match(ir.Payload("ip6", "hoplimit"), 255), ir.Verdict("accept")),
                "IPv6 neighbour discovery (RFC 4890)"),
        ir.Rule((ir.Match(ir.Payload("icmpv6", "type"), ir.AnonSet(ICMPV6_MLD)),
                 ir.Match(ir.Payload("ip6", "hoplimit"), 1), ir.Verdict("accept")), "IPv6 multicast listeners"),
    ]


def _icmp_error_rules() -> list[ir.Rule]:
    return [
        ir.Rule((ir.Match(ir.Payload("icmpv6", "type"), ir.AnonSet(ICMPV6_ERRORS)), ir.Verdict("accept")),
                "ICMPv6 errors IPv6 needs (packet-too-big...)"),
        ir.Rule((ir.Match(ir.Payload("icmp", "type"), ir.AnonSet(ICMP_ERRORS)), ir.Verdict("accept")),
                "ICMP errors"),
    ]


def _rpfilter_rules(b: _Builder) -> list[ir.Rule]:
    """No route back to the source (strict: by the interface it came in on): forged, or routed asymmetrically.

    Checked before the source picks a zone, so a LAN address sent in on the internet interface is never the LAN;
    before the echo meters too, so forged sources cannot fill them. Only for packets conntrack sees as new: a
    route lookup for every packet of every established connection cost 4-8 % of the new-connection rate
    (docs/benchmarks.md), and a packet can only be established after its connection's first one passed here.
    In the input chain only: nftc filters what reaches this host and never forwarding.
    """
    rpfilter = b.checked.policy.rpfilter
    if rpfilter.mode not in RPFILTER_LOOKUPS:
        return []
    where = f"{b.where(rpfilter.span)} rpfilter {rpfilter.mode}" if rpfilter.span else \
        f"rpfilter {rpfilter.mode} (default)"
    back = "by the interface it came in on" if rpfilter.mode == "strict" else "by any interface"
    chain = _counted_drop_chain(b, "rpfilter", rpfilter.span, where, f"no route back to the source {back}")
    new = ir.Match(ir.Ct("state"), ir.Flags(("new",)))
    missing = ir.Match(ir.Fib(RPFILTER_LOOKUPS[rpfilter.mode], "oif"), ir.Presence(False))
    return [ir.Rule((new, missing, ir.Verdict("goto", chain)), where)]


def _echo_rules(b: _Builder) -> list[ir.Rule]:
    """Ping, each source under its own rate (a per-source meter, as `limit ... per source`): a flood spends only
    the flooder's budget. The meter's rule accepts under the rate, so what it does not accept falls through to
    the drop: over the rate, `icmp echo off`, and a new source when the meter is full (fail closed: forged
    sources cannot buy unmetered replies)."""
    echo = b.checked.policy.icmp_echo
    where = b.where(echo.span) or "icmp echo (default)"
    drop = _counted_drop_chain(b, "echo", echo.span, where, "ping over the rate of its source, or icmp echo off")
    rules = []
    for family in FAMILIES:
        request = ir.Match(ir.Payload(family.icmp, "type"), "echo-request")
        if echo.enabled:
            name = names.echo_meter(family.version)
            b.sets[name] = ir.Set(name, family.key_type, dynamic=True, size=LIMIT_SET_SIZE,
                                  timeout=LIMIT_SET_TIMEOUT, comment=_comment(f"{where} per-source meter"))
            under = ir.Limit(echo.rate.count, echo.rate.unit, echo.burst)
            update = ir.SetUpdate(name, ir.Payload(family.protocol, "saddr"), under)
            rules.append(ir.Rule((request, update, ir.Verdict("accept")), where))
        rules.append(ir.Rule((request, ir.Verdict("goto", drop)), where))
    return rules


def _counted_drop_chain(b: _Builder, reason: str, span: m.Span | None, where: str, comment: str) -> str:
    """`drop_REASON`: log (under `log drops`), count as `drop/REASON` and drop. A chain, so the match that sends
    a packet here (a route lookup, a meter) runs once however many rules the drop takes."""
    name = names.drop_chain(reason)
    rules = b.log_rule((), reason, span) + (ir.Rule((b.counter(names.drop_counter(reason)), ir.Verdict("drop")),
                                                    where),)
    b.chains[name] = ir.Chain(name, rules, comment=_comment(comment))
    return name


def _runtime_sets(b: _Builder, zone: m.Zone) -> list[tuple[Family, str]]:
    """(family, name) of the sets holding a zone's run-time addresses, made on first use: `dyn_Z_v4/_v6` of a
    dynamic zone. The ban and the dispatch both find a zone's sets here: a source kept in sets of its own joins
    both by adding its sets here."""
    found = []
    for family in FAMILIES if zone.dynamic else ():
        name = names.dynamic_set(zone.name, family.version)
        timeout = m.format_duration(zone.dynamic_timeout) if zone.dynamic_timeout else ""
        b.sets.setdefault(name, ir.Set(name, family.key_type, interval=True, timeout=timeout, dynamic_zone=zone.name,
                                       comment=_comment(f"zone {zone.name}: added at run time")))
        found.append((family, name))
    source = zone.url
    for family in FAMILIES if source is not None else ():
        name = names.blocklist_set(zone.name, family.version)
        b.sets.setdefault(name, ir.Set(name, family.key_type, _blocklist_elements(source.networks, family.version),
                                       interval=True, comment=_comment(f"zone {zone.name}: nftc refresh")))
        found.append((family, name))
    return found


def _blocklist_elements(networks: m.AddressList, version: int) -> ir.AddressIntervals:
    """A blocklist's networks as the disjoint intervals an interval set takes (a list may nest or repeat
    entries; the kernel refuses overlapping intervals, and auto-merge is not used), in the node that renders
    10^5 of them without an object each."""
    intervals = networks.intervals(version)
    return ir.AddressIntervals(version, tuple(first for first, _ in intervals), tuple(last for _, last in intervals))


def _not_trusted(b: _Builder, family: Family) -> tuple[ir.Match, ...]:
    """`ip saddr != @trusted_v4`: a run-time set never takes a trusted zone's address (a false positive of
    fail2ban must not cut the admins or the cluster off). Nothing when no trusted zone has a network of the family."""
    networks = [n for n in trusted_networks(b.checked.policy.zones) if n.version == family.version]
    if not networks:
        return ()
    name = names.trusted_set(family.version)
    elements = tuple(ir.Element(str(n.network_address) if n.prefixlen == n.max_prefixlen
                                else ir.Prefix(str(n.network_address), n.prefixlen)) for n in networks)
    b.sets.setdefault(name, ir.Set(name, family.key_type, elements, interval=True,
                                   comment="trusted zones: never in a run-time set's zone"))
    return (ir.Match(ir.Payload(family.protocol, "saddr"), ir.SetRef(name), negate=True),)


def _ban_rules(b: _Builder) -> list[ir.Rule]:
    """The addresses of blocking zones (`CheckedPolicy.blocks`: fed, allowing nothing) go to their zone's ban chain
    before ping and conntrack accept anything: per family, one lookup in the map of the addresses the policy and
    its files give them (taken out of the zone map), then one per run-time set, which skips trusted addresses."""
    blocking = [z for z in b.checked.policy.zones if b.checked.blocks(z.name)]
    rules = []
    for family in FAMILIES:
        rules += _ban_map_rules(b, family, [z.name for z in blocking])
        for zone in blocking:
            for set_family, name in _runtime_sets(b, zone):
                if set_family is family:
                    rules.append(ir.Rule((ir.Match(ir.Payload(family.protocol, "saddr"), ir.SetRef(name)),
                                          *_not_trusted(b, family), ir.Verdict("goto", _ban_chain(b, zone.name))),
                                         f"zone {zone.name} allows nothing: banned"))
    return rules


def _ban_map_rules(b: _Builder, family: Family, blocking: list[str]) -> list[ir.Rule]:
    """`ip saddr vmap @bans_vN`: the address map's intervals of blocking zones (the most specific zone already
    won, and a trusted zone's addresses are no file's), each to its zone's ban chain."""
    addresses = b.checked.address_map(family.version)
    present = set(addresses.zones)
    chains = {zone: _ban_chain(b, zone) for zone in blocking if zone in present}
    if not chains:
        return []
    keep = list(map(chains.__contains__, addresses.zones))  # 10^5 zones: no Python step per interval
    name = names.ban_map(family.version)
    targets = tuple(map(chains.__getitem__, compress(addresses.zones, keep)))
    elements = ir.AddressIntervals(family.version, tuple(compress(addresses.firsts, keep)),
                                   tuple(compress(addresses.lasts, keep)), targets)
    b.sets[name] = ir.Set(name, family.key_type, elements, interval=True, is_map=True,
                          comment="source -> ban of the blocking zone it is in")
    return [ir.Rule((ir.VerdictMap(ir.Payload(family.protocol, "saddr"), name),),
                    f"blocking zones by IPv{family.version} source")]


def _ban_chain(b: _Builder, zone: str) -> str:
    """`ban_ZONE`: a new connection goes on to the zone's chain, where its rules decide it as for any zone (deny,
    reject, default drop: what `reach` proves and the lab checks); every other packet (an open session, a ping
    after the first, an ICMP error) is counted as `ZONE/ban` and dropped, never rejected, even when the zone's
    rules reject: a reset or ICMP error per packet would answer a banned flood packet for packet, and send those
    answers to whatever address a forger put in. A reject is for a client opening a connection; a banned session
    stalls, as with fail2ban's own drop action."""
    name = names.ban_chain(zone)
    if name not in b.chains:
        new = ir.Match(ir.Ct("state"), ir.Flags(("new",)))
        rules = (ir.Rule((new, ir.Verdict("goto", names.zone_chain(zone))), f"zone {zone}: new connections"),
                 *b.log_rule((), f"{zone}/ban", None),
                 ir.Rule((b.counter(names.ban_counter(zone)), ir.Verdict("drop")), f"zone {zone}: banned"))
        b.chains[name] = ir.Chain(name, rules, comment=_comment(f"zone {zone} allows nothing: its sources are banned"))
    return name


def _dynamic_rules(b: _Builder) -> list[ir.Rule]:
    """The run-time sets of zones that allow something, looked up before the zone maps (one address wins), after
    conntrack: their addresses keep their open sessions. A trusted zone's address is never theirs."""
    rules = []
    for zone in (z for z in b.checked.policy.zones if not b.checked.blocks(z.name)):
        for family, name in _runtime_sets(b, zone):
            rules.append(ir.Rule((ir.Match(ir.Payload(family.protocol, "saddr"), ir.SetRef(name)),
                                  *_not_trusted(b, family), ir.Verdict("goto", names.zone_chain(zone.name))),
                                 f"zone {zone.name} (dynamic)"))
    return rules


def _dispatch_rules(b: _Builder) -> list[ir.Rule]:
    rules = _dynamic_rules(b)
    by_interface = [(name, zone.name) for zone in b.checked.policy.zones for name in interfaces(zone)]
    if by_interface:
        b.sets[names.INTERFACE_MAP] = ir.Set(
            names.INTERFACE_MAP, "ifname", tuple(ir.Element(name, ir.Verdict("goto", names.zone_chain(zone)))
                                                 for name, zone in sorted(by_interface)),
            interval=any(name.endswith("*") for name, _ in by_interface), is_map=True,
            comment="interface -> zone")
        rules.append(ir.Rule((ir.VerdictMap(ir.Meta("iifname"), names.INTERFACE_MAP),), "zones by interface"))
    for family in FAMILIES:
        rules += _address_rules(b, family)
    return rules


def _address_rules(b: _Builder, family: Family) -> list[ir.Rule]:
    """One lookup in the family's interval map (every zone but the one of `any`), then, for a source the map does
    not hold, the zone of `any`: the map holds about one interval per network, not also every gap between them."""
    addresses = b.checked.address_map(family.version)
    firsts, lasts, zones = addresses.firsts, addresses.lasts, addresses.zones
    banned = {zone for zone in set(zones) if b.checked.blocks(zone)}  # in the ban map instead: _ban_map_rules
    if banned:
        keep = [zone not in banned for zone in zones]
        firsts, lasts, zones = (tuple(compress(column, keep)) for column in (firsts, lasts, zones))
    rules = []
    if firsts:
        name = names.zone_map(family.version)
        chains = {zone: names.zone_chain(zone) for zone in set(zones)}
        elements = ir.AddressIntervals(family.version, firsts, lasts, tuple(map(chains.__getitem__, zones)))
        b.sets[name] = ir.Set(name, family.key_type, elements, interval=True, is_map=True,
                              comment="source -> most specific zone")
        rules.append(ir.Rule((ir.VerdictMap(ir.Payload(family.protocol, "saddr"), name),),
                             f"zones by IPv{family.version} source"))
    if addresses.fallback is not None:
        rules.append(ir.Rule((ir.Match(ir.Meta("nfproto"), family.nfproto),
                              ir.Verdict("goto", names.zone_chain(addresses.fallback))),
                             _comment(f"IPv{family.version} source in no other zone: zone {addresses.fallback}")))
    return rules


def _zone_chain(b: _Builder, zone: str, protected: dict[str, ir.SetRef | None]) -> ir.Chain:
    """One port-map lookup decides TCP and UDP; other protocols go to the zone's first broad rule, if any."""
    rules = _port_map_rules(b, zone)
    broad = next((r for r in b.checked.rules_for(zone) if r.broad), None)
    if broad is not None:
        chain = _action_chain(b, zone, Decision(verdict_of(broad.rule.action), broad.id, broad, "any"))
        other = ir.Match(ir.Meta("l4proto"), ir.AnonSet(PROTOCOLS), negate=True)
        rules.append(ir.Rule((other, ir.Verdict("goto", chain)), f"{b.where(broad.rule.span)} {broad.id}"))
    if zone == LOCALHOST:
        rules.append(ir.Rule((b.counter(names.LOCALHOST_ACCEPT), ir.Verdict("accept")), "loopback is trusted"))
        return ir.Chain(names.zone_chain(zone), tuple(rules), comment="zone localhost")
    for protocol, ref in protected.items():
        if ref is not None:  # closed anyway; counted apart: knocks on local-only ports
            match = ir.Match(ir.Payload(protocol, "dport"), ref)
            rules += b.log_rule((match,), f"{zone}/protected", None)
            rules.append(ir.Rule((match, b.counter(names.protected_drop(zone)), ir.Verdict("drop")),
                                 f"zone {zone}: protected port"))
    rules += b.log_rule((), f"{zone}/default", None)
    rules.append(ir.Rule((b.counter(names.default_drop(zone)), ir.Verdict("drop")), f"zone {zone}: no rule"))
    return ir.Chain(names.zone_chain(zone), tuple(rules), comment=_comment(f"zone {zone}"))


def _port_map_rules(b: _Builder, zone: str) -> list[ir.Rule]:
    elements = tuple(
        ir.Element(ir.Concat((segment.protocol, _port_key(segment.first, segment.last))),
                   ir.Verdict("goto", _action_chain(b, zone, segment.decision)))
        for segment in _merged(zone_segments(b.checked, zone)) if segment.decision.rule is not None
    )
    if not elements:
        return []
    name = names.port_map(zone)
    b.sets[name] = ir.Set(name, "inet_proto . inet_service", elements, interval=True, is_map=True,
                          comment=_comment(f"zone {zone}: protocol . port -> the rule that decides it"))
    key = ir.Concat((ir.Meta("l4proto"), ir.Payload("th", "dport")))
    return [ir.Rule((ir.VerdictMap(key, name),), _comment(f"zone {zone}: first matching rule, per port"))]


def _merged(segments: tuple[Segment, ...]) -> list[Segment]:
    out: list[Segment] = []
    for segment in segments:
        last = out[-1] if out else None
        if last and (last.protocol, last.decision, last.last + 1) == (segment.protocol, segment.decision, segment.first):
            out[-1] = Segment(last.protocol, last.first, segment.last, last.decision)
        else:
            out.append(segment)
    return out


def _port_key(first: int, last: int) -> int | ir.Range:
    return first if first == last else ir.Range(first, last)


def _action_chain(b: _Builder, zone: str, decision: Decision) -> str:
    """`ZONE/SERVICE/RULE`: the counter and verdict of one rule for one service in one zone (made once)."""
    rule = decision.rule
    name = names.action(zone, decision.service, rule.id)
    if name in b.chains:
        return name
    where = f"{b.where(rule.rule.span)} {rule.id}"
    counter = b.counter(name, where)
    if decision.verdict == "accept":
        rules = _limit_rules(b, rule, where) + _accept_log(b, rule)
        rules.append(ir.Rule((counter, ir.Verdict("accept")), where))
    else:
        rules = list(b.log_rule((), rule.id, rule.rule.span, asked=rule.rule.log))
        if decision.verdict == "drop":
            rules.append(ir.Rule((counter, ir.Verdict("drop")), where))
        else:
            tcp = ir.Match(ir.Meta("l4proto"), "tcp")
            rules += [ir.Rule((tcp, counter, ir.Verdict("reject", reject_with="tcp reset")), where),
                      ir.Rule((counter, ir.Verdict("reject")), where)]
    b.chains[name] = ir.Chain(name, tuple(rules), comment=_comment(f"{where}: {zone} -> {decision.service}"))
    return name


def _accept_log(b: _Builder, rule: CheckedRule) -> list[ir.Rule]:
    if not rule.rule.log:
        return []
    settings = b.checked.policy.log_drops or m.DEFAULT_LOG_DROPS
    prefix = f"{m.ACCEPT_LOG_PREFIX}{rule.id} "
    limit = ir.Limit(settings.rate.count, settings.rate.unit, settings.burst)
    return [ir.Rule((limit, ir.Log(prefix)), b.where(rule.rule.span))]


def _limit_rules(b: _Builder, rule: CheckedRule, where: str) -> list[ir.Rule]:
    """Over the rate: go to the rule's over-limit chain. The limiter runs once per packet, never twice."""
    limit = rule.rule.limit
    if limit is None:
        return []
    over = ir.Limit(limit.rate.count, limit.rate.unit, limit.burst, over=True)
    chain = b.over_limit_chain(rule, where)
    if not limit.per_source:
        name = names.limit(rule.id)
        b.limits.setdefault(name, ir.LimitObject(name, over, where))
        return [ir.Rule((ir.LimitRef(name), ir.Verdict("goto", chain)), where)]
    rules = []
    for family in FAMILIES:
        name = names.source_meter(rule.id, family.version)
        b.sets.setdefault(name, ir.Set(name, family.key_type, dynamic=True, size=LIMIT_SET_SIZE,
                                       timeout=LIMIT_SET_TIMEOUT, comment=_comment(f"{where} per-source meter")))
        update = ir.SetUpdate(name, ir.Payload(family.protocol, "saddr"), over)
        rules.append(ir.Rule((update, ir.Verdict("goto", chain)), where))
    return rules


def _output_chain(b: _Builder) -> ir.Chain:
    reflection = ir.Match(ir.Payload(MEMCACHED_UDP.protocol, "sport"), MEMCACHED_UDP.first)
    rule = ir.Rule((ir.Match(ir.Meta("oif"), "lo", negate=True), reflection,
                    b.counter(names.MEMCACHED_REFLECTION), ir.Verdict("drop")),
                   "never answer UDP memcached off the host (reflection)")
    return ir.Chain(names.OUTPUT_CHAIN, (rule,), ir.Hook("output", 0, "accept"))


def _port_elements(intervals: ports.PortIntervals) -> tuple[ir.Element, ...]:
    return tuple(ir.Element(first if first == last else ir.Range(first, last)) for first, last in intervals)


_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:/@+=,()>-]")


def _comment(text: str) -> str:
    """nft comments are quoted strings without escapes: keep a safe alphabet, at most 120 characters."""
    return _UNSAFE.sub("_", text)[:120]
