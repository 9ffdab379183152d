"""Names -> meaning: checks a loaded policy and resolves every zone and service it names.

Collects every error it can find before stopping, so one run shows the author all of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import catalog
from ..language import model as m
from . import ports
from ..language.diagnostics import Diagnostic, PolicyError, did_you_mean, error, warning
from .zones import LOCALHOST, AddressMap, flatten_zones, has_networks, interfaces, trusted_networks, zone_networks

PROTECTED_GROUPS = ("zimbra.internal", "zimbra.admin")
MEMCACHED_UDP = m.PortRange("udp", 11211, 11211)  # memcached over UDP: dropped outside localhost (memcrashed)


@dataclass(frozen=True)
class ServiceRef:
    """A service or group a rule names, expanded to its merged ports."""

    name: str
    ports: tuple[m.PortRange, ...]


@dataclass(frozen=True)
class CheckedRule:
    """A rule with its names resolved: the zones and services it means, and the id its counters and logs carry."""

    id: str  # r1, r2 ...: short enough for a log prefix, unique in the policy
    rule: m.Rule
    zones: tuple[str, ...]
    services: tuple[ServiceRef, ...]  # empty for a broad rule (`-> any`)

    @property
    def broad(self) -> bool:
        return not self.services


@dataclass(frozen=True)
class CheckedAssertion:
    """An `assert` with its names resolved, to be proved on the same walk the ruleset makes."""

    assertion: m.Assertion
    zones: tuple[str, ...]
    services: tuple[ServiceRef, ...]


@dataclass(frozen=True)
class CheckedPolicy:
    """The policy once every name resolves: what the checks, the lowering and the lab work on."""

    policy: m.Policy
    address_maps: tuple[AddressMap, ...]  # source address -> zone, one map per IP version (IPv4 first)
    rules: tuple[CheckedRule, ...]
    assertions: tuple[CheckedAssertion, ...]
    protected: tuple[m.PortRange, ...]  # reached only from localhost or by a rule that names them
    warnings: tuple[Diagnostic, ...]

    def address_map(self, version: int) -> AddressMap:
        return next(a for a in self.address_maps if a.version == version)

    def zone_names(self) -> tuple[str, ...]:
        return (LOCALHOST,) + tuple(z.name for z in self.policy.zones)  # localhost is built in, not in policy.zones

    def rules_for(self, zone: str) -> tuple[CheckedRule, ...]:
        return tuple(r for r in self.rules if zone in r.zones)

    def blocks(self, zone: str) -> bool:
        """Whether `zone` bans its addresses: it has a fed source (dynamic, file...) and allows nothing, so the
        ruleset drops its addresses' packets before conntrack and ping accept them (README: "What a ban does").
        Never a zone of only `any`, interfaces and written addresses: an `any` that allows nothing would drop the
        replies to the server's own connections."""
        found = next((z for z in self.policy.zones if z.name == zone), None)
        return found is not None and found.fed and not any(r.rule.action == "allow" for r in self.rules_for(zone))


def check_policy(policy: m.Policy) -> CheckedPolicy:
    errors: list[Diagnostic] = []
    warnings: list[Diagnostic] = list(policy.warnings)  # the loader's (an address list's host bits)
    definitions = _definitions(policy, errors)
    expand = _Expander(definitions, errors)
    _check_zones(policy, errors)
    address_maps, overlap_errors = flatten_zones(policy.zones)
    errors.extend(overlap_errors)
    if not overlap_errors:  # an ambiguous zone also owns nothing: one error says it
        errors.extend(_zones_that_never_match(policy.zones, address_maps))
    for group in policy.groups:  # a cycle or an unknown member is an error even in a group no rule names
        expand.ports_of(group.name, group.span)
    protected = ports.to_ranges(ports.by_protocol(r for g in PROTECTED_GROUPS for r in expand.ports_of(g)))
    zone_names = {LOCALHOST} | {z.name for z in policy.zones}
    wide_zones = {z.name for z in policy.zones if any(isinstance(s, m.AnySource) for s in z.sources)}
    rules = tuple(
        _check_rule(f"r{i}", rule, zone_names, expand, protected, wide_zones, errors, warnings)
        for i, rule in enumerate(policy.rules, start=1)
    )
    assertions = tuple(_check_assertion(a, zone_names, expand, errors) for a in policy.assertions)
    if errors:
        raise PolicyError(errors)
    return CheckedPolicy(policy, address_maps, rules, assertions, protected, tuple(warnings))


def _definitions(policy: m.Policy, errors: list[Diagnostic]) -> dict[str, m.Service | m.Group]:
    definitions: dict[str, m.Service | m.Group] = {s.name: s for s in catalog.services()}
    definitions.update((g.name, g) for g in catalog.GROUPS)
    for item in policy.services + policy.groups:
        previous = definitions.get(item.name)
        if item.name == m.ANY_SERVICE:
            errors.append(error("'any' is reserved: it means every port", item.span))
        elif previous is not None:
            where = f"defined at {previous.span}" if previous.span else "a built-in service of the Zimbra catalog"
            errors.append(error(f"duplicate name '{item.name}': {where}", item.span,
                                hint=f"choose another name, such as '{item.name}_local'"))
        else:
            definitions[item.name] = item
    return definitions


class _Expander:
    """Expands service and group names to ports; reports unknown names and group cycles once each."""

    def __init__(self, definitions: dict[str, m.Service | m.Group], errors: list[Diagnostic]):
        self.definitions = definitions
        self.errors = errors
        self.done: dict[str, tuple[m.PortRange, ...]] = {}

    def ports_of(self, name: str, span: m.Span | None = None, visiting: tuple[str, ...] = ()) -> tuple:
        if name in self.done:
            return self.done[name]
        item = self.definitions.get(name)
        if item is None and name == m.ANY_SERVICE:
            self.errors.append(error("a group lists services, not 'any'", span,
                                     hint="'any' is for rules only: allow ZONES -> any"))
            return ()
        if item is None:
            self.errors.append(error(f"unknown service '{name}'", span, did_you_mean(name, self.definitions)))
            return ()
        if name in visiting:
            self.errors.append(error(f"group '{name}' contains itself", item.span,
                                     hint=" -> ".join(visiting + (name,))))
            return ()
        if isinstance(item, m.Service):
            result = ports.to_ranges(ports.by_protocol(item.ports))
        else:
            members = [r for ref in item.members for r in self.ports_of(ref.name, ref.span, visiting + (name,))]
            result = ports.to_ranges(ports.by_protocol(members))
        self.done[name] = result
        return result


def _check_zones(policy: m.Policy, errors: list[Diagnostic]) -> None:
    seen: dict[str, m.Zone] = {}
    for zone in policy.zones:
        if zone.name == LOCALHOST:
            errors.append(error("'localhost' is a built-in zone (the loopback interface)", zone.span,
                                hint="choose another name; loopback traffic is always accepted"))
        elif zone.name == m.ANY_SERVICE:
            errors.append(error("'any' cannot name a zone: in a rule it would read as every address", zone.span,
                                hint="a zone of every address is written: zone internet = any"))
        elif zone.name in seen:
            errors.append(error(f"duplicate zone '{zone.name}'", zone.span,
                                hint=f"first defined at {seen[zone.name].span}"))
        seen.setdefault(zone.name, zone)
        if not has_networks(zone) and not interfaces(zone) and not zone.dynamic and zone.url is None:
            errors.append(error(f"zone '{zone.name}' is empty", zone.span,
                                hint="its address file holds no address"))
        urls = [s for s in zone.sources if isinstance(s, m.UrlSource)]
        if len(urls) > 1:  # one list per zone: `nftc refresh` keeps and replaces a zone's list as one
            errors.append(error(f"zone '{zone.name}' has a second url", urls[1].span,
                                hint="one blocklist per zone: make a zone for each list"))
        if zone.trusted:
            errors.extend(_untrustable(zone))
        dynamic = [s for s in zone.sources if isinstance(s, m.DynamicSource)]
        if len(dynamic) > 1:
            errors.append(error(f"zone '{zone.name}' lists 'dynamic' twice", dynamic[1].span or zone.span,
                                hint="one dynamic source a zone: its sets are dyn_ZONE_v4 and dyn_ZONE_v6"))
        claimed: dict[str, m.Span | None] = {}
        for iface in interfaces(zone):
            if iface in claimed:
                errors.append(error(f"interface {iface} is listed twice in zone '{zone.name}'", zone.span))
            claimed[iface] = zone.span
    _check_interfaces_unique(policy, errors)


# Why a zone with such a source cannot be `trusted`: what it trusts must stand in the policy, as written addresses.
_UNTRUSTABLE = {
    m.AnySource: "'any' holds every address",
    m.InterfaceSource: "a trusted zone lists addresses, not interfaces",
    m.DynamicSource: "its addresses are added at run time",
    m.FileSource: "its addresses come from a file",
    m.UrlSource: "its addresses are downloaded",
}


def _untrustable(zone: m.Zone) -> list[Diagnostic]:
    """One error for a trusted zone with a source other than a written address: trusting a fed source would let
    whoever fills it exempt addresses from every ban; trusting `any` would exempt every address."""
    for source in zone.sources:
        if not isinstance(source, m.AddressSource):
            why = _UNTRUSTABLE.get(type(source), "its addresses do not stand in the policy")
            return [error(f"zone '{zone.name}' cannot be trusted: {why}", source.span or zone.span,
                          hint="a trusted zone lists its networks, such as: zone admins = 10.9.0.0/24 trusted")]
    return []


def _check_interfaces_unique(policy: m.Policy, errors: list[Diagnostic]) -> None:
    owner: dict[str, str] = {}
    for zone in policy.zones:
        for source in zone.sources:
            if isinstance(source, m.InterfaceSource):
                if source.name in ("lo", "lo*"):
                    errors.append(error("the loopback interface is the built-in zone 'localhost'", source.span,
                                        hint="remove it: loopback traffic is always accepted"))
                elif _overlapping_pattern(source.name, owner):
                    other = _overlapping_pattern(source.name, owner)
                    errors.append(error(f"interface {source.name} overlaps {other} (zone '{owner[other]}')",
                                        source.span, hint="a packet belongs to one zone: keep only one of the two"))
                elif owner.get(source.name, zone.name) != zone.name:
                    errors.append(error(f"interface {source.name} is in zone '{owner[source.name]}' "
                                        f"and in zone '{zone.name}'", source.span,
                                        hint="a packet belongs to one zone: list each interface once"))
                owner.setdefault(source.name, zone.name)


def _overlapping_pattern(name: str, seen: dict[str, str]) -> str:
    """Another interface pattern that matches some of the same names: `eth*` and `eth0`, `eth*` and `eth1*`."""
    for other in seen:
        if other == name:
            continue
        a, b = name.rstrip("*"), other.rstrip("*")
        if (other.endswith("*") and a.startswith(b)) or (name.endswith("*") and b.startswith(a)):
            return other
    return ""


def _zones_that_never_match(zones: tuple[m.Zone, ...], address_maps: tuple[AddressMap, ...]) -> list[Diagnostic]:
    owners = set().union(*(a.owners() for a in address_maps))
    return [
        error(f"zone '{z.name}' can never match: more specific zones claim all its addresses", z.span,
              hint="they are " + _and([f"'{name}'" for name in _zones_inside(z, zones)]))
        for z in zones
        if not interfaces(z) and z.name not in owners and has_networks(z) and not _trusted_overlap(z, zones)
    ]


def _trusted_overlap(zone: m.Zone, zones: tuple[m.Zone, ...]) -> bool:
    """A fed zone whose entries a trusted zone took: not a mistake of the policy (a blocklist may list an admin)."""
    trusted = trusted_networks(zones)
    return zone.fed and any(n.version == t.version and n.subnet_of(t) for n, _ in zone_networks(zone) for t in trusted)


def _and(words: list[str]) -> str:
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


def _zones_inside(zone: m.Zone, zones: tuple[m.Zone, ...]) -> list[str]:
    """The other zones holding a network inside one of `zone`'s networks, in source order."""
    mine = [network for network, _ in zone_networks(zone)]
    return [other.name for other in zones if other.name != zone.name and any(
        n.version == o.version and n.subnet_of(o) for n, _ in zone_networks(other) for o in mine)]


def _check_rule(rule_id, rule: m.Rule, zone_names, expand: _Expander, protected, wide_zones, errors, warnings):
    zones = _zone_refs(rule.zones, zone_names, errors)
    names = [s.name for s in rule.services]
    if m.ANY_SERVICE in names:
        if len(names) > 1:
            errors.append(error("'any' cannot be listed with other services", rule.services[0].span))
        if rule.limit:
            errors.append(error("'limit' needs named services, not 'any'", rule.limit.span))
        if rule.action == "allow" and LOCALHOST not in zones:
            warnings.append(warning(
                "'any' does not open the protected local-only ports of zimbra.internal and zimbra.admin",
                rule.services[0].span,
                hint=f"still closed: {' '.join(map(str, protected))}; to open one, name it, "
                     f"for example: allow {zones[0]} -> zimbra.ldap",
            ))
        return CheckedRule(rule_id, rule, zones, ())
    if rule.limit and rule.action != "allow":
        errors.append(error(f"'limit' applies to allow rules, not to {rule.action}", rule.limit.span))
    services = tuple(ServiceRef(ref.name, expand.ports_of(ref.name, ref.span)) for ref in rule.services)
    _check_duplicates(rule.services, "service", errors)
    if rule.action == "allow":
        _check_opened(rule, zones, services, protected, wide_zones, errors, warnings)
    return CheckedRule(rule_id, rule, zones, services)


def _check_opened(rule, zones, services, protected, wide_zones, errors, warnings) -> None:
    """UDP 11211 can never be opened; protected ports opened to a zone of every address earn a warning."""
    others = [z for z in zones if z != LOCALHOST]
    memcached = ports.by_protocol((MEMCACHED_UDP,))
    for service, ref in zip(services, rule.services):
        spans = ports.by_protocol(service.ports)
        if others and ports.intersect(spans[MEMCACHED_UDP.protocol], memcached[MEMCACHED_UDP.protocol]):
            errors.append(error(f"'{ref.name}' includes {MEMCACHED_UDP.protocol} {MEMCACHED_UDP.first}: UDP memcached "
                                "is always dropped from every zone but localhost (memcrashed amplification)", ref.span,
                                hint="memcached in Zimbra is TCP only"))
        opened = ports.to_ranges({p: ports.intersect(spans[p], ports.by_protocol(protected)[p])
                                  for p in spans})
        for zone in sorted(set(others) & wide_zones):
            if opened:
                warnings.append(warning(
                    f"opens protected port{'s' if len(opened) > 1 else ''} "
                    f"{' '.join(map(str, opened[:6]))}{' ...' if len(opened) > 6 else ''} "
                    f"to zone '{zone}', which holds every address", ref.span,
                    hint="open admin and internal ports to admin networks or cluster peers only"))


def _zone_refs(refs: tuple[m.Name, ...], zone_names: set[str], errors) -> tuple[str, ...]:
    for ref in refs:
        if ref.name not in zone_names:
            errors.append(error(f"unknown zone '{ref.name}'", ref.span, did_you_mean(ref.name, zone_names)))
    _check_duplicates(refs, "zone", errors)
    return tuple(ref.name for ref in refs)


def _check_duplicates(refs: tuple[m.Name, ...], what: str, errors) -> None:
    seen: set[str] = set()
    reported: set[str] = set()  # once per name, however often it repeats
    for ref in refs:
        if ref.name in seen and ref.name not in reported:
            errors.append(error(f"{what} '{ref.name}' is listed twice", ref.span))
            reported.add(ref.name)
        seen.add(ref.name)


def _check_assertion(assertion: m.Assertion, zone_names, expand: _Expander, errors) -> CheckedAssertion:
    zones = _zone_refs(assertion.zones, zone_names, errors)
    services = []
    for ref in assertion.services:
        if ref.name == m.ANY_SERVICE:
            errors.append(error("assertions name services, not 'any'", ref.span))
            continue
        services.append(ServiceRef(ref.name, expand.ports_of(ref.name, ref.span)))
    return CheckedAssertion(assertion, zones, tuple(services))
