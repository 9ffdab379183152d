"""A cluster policy (one with `host` lines) -> one host's policy: a policy without hosts, so resolve, reach, the
lowering, the lab and apply work on it unchanged.

On host H: the other hosts are zones (their addresses: longest prefix, so a peer's /32 beats `any`); `cluster`
names every other host; `allow cluster -> zimbra.roles` becomes one `allow PEER -> SERVICES` per calling peer
(the role matrix, nftc.semantics.roles); a rule or assertion with `on` not naming H is dropped; a rule naming a
zone also names every peer whose addresses all lie inside that zone (so `allow internet -> zimbra.public` still
lets the peers reach the public ports). Every rule made keeps the span of the line it came from. README:
"Clusters".
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
from typing import Iterable

from ..language import model as m
from ..language.diagnostics import Diagnostic, did_you_mean, error, warning
from . import roles
from .zones import LOCALHOST, interfaces

CLUSTER = "cluster"  # the built-in zone of every other host (only in a policy with hosts)
ROLES_SERVICE = "zimbra.roles"  # the pseudo-service of `allow cluster -> zimbra.roles`
_ROLES_RULE = f"allow {CLUSTER} -> {ROLES_SERVICE}"
_RESERVED = {LOCALHOST: "the built-in zone of loopback traffic", m.ANY_SERVICE: "every address in a rule",
             CLUSTER: "every other host of the cluster"}


def host_names(policy: m.Policy) -> tuple[str, ...]:
    return tuple(h.name for h in policy.hosts)


def hosts_for_addresses(policy: m.Policy, addresses: Iterable[ipaddress.IPv4Address | ipaddress.IPv6Address]
                        ) -> tuple[str, ...]:
    """The hosts (in policy order) owning one of `addresses`: apply picks the machine's own host by them."""
    mine = set(addresses)
    return tuple(h.name for h in policy.hosts if any(a.network_address in mine for a in h.addresses))


def release(policy: m.Policy) -> tuple[roles.Version, frozenset[str]]:
    """The policy's Zimbra version and features (`zimbra` absent: the default release, no feature)."""
    if policy.zimbra is None:
        return roles.DEFAULT_VERSION, frozenset()
    return policy.zimbra.version, frozenset(f.name for f in policy.zimbra.features)


def active_calls(policy: m.Policy) -> tuple[roles.Call, ...]:
    """The calls of the role matrix in this cluster: its release, and whether it has a proxy."""
    version, features = release(policy)
    proxied = any(r.name == "proxy" for h in policy.hosts for r in h.roles)
    return roles.active_calls(version, features, proxied)


def role_services(policy: m.Policy, caller: m.Host, callee: m.Host) -> tuple[str, ...]:
    """The catalog services `caller` reaches on `callee` by their roles, in the matrix's order, each once."""
    calls = roles.calls_between(active_calls(policy), _roles(caller), _roles(callee))
    return tuple(dict.fromkeys(s for call in calls for s in call.services))


def _roles(host: m.Host) -> frozenset[str]:
    return frozenset(r.name for r in host.roles)


# One host's policy.


def host_policy(policy: m.Policy, name: str) -> m.Policy:
    """The policy as host `name` enforces it (`name` is a host of the policy: the compiler checks it first)."""
    host = next(h for h in policy.hosts if h.name == name)
    peers = tuple(h for h in policy.hosts if h.name != name)
    inherited = _inherited(policy.zones, peers)
    rules = tuple(made for rule in policy.rules if _applies(rule.hosts, name)
                  for made in _host_rules(policy, rule, host, peers, inherited))
    assertions = tuple(dataclasses.replace(a, zones=zones, hosts=()) for a in policy.assertions
                       if _applies(a.hosts, name) and (zones := _zone_refs(a.zones, name, peers, {})))
    zones = policy.zones + tuple(_host_zone(peer) for peer in peers)
    return dataclasses.replace(policy, zones=zones, rules=rules, assertions=assertions, hosts=())


def _applies(hosts: tuple[m.Name, ...], name: str) -> bool:
    return not hosts or any(h.name == name for h in hosts)


def _host_zone(host: m.Host) -> m.Zone:
    """A peer as a zone of its own addresses, trusted: no dynamic, file or url zone (a fail2ban ban, a blocklist)
    ever takes a cluster server's address (README: "What a ban does")."""
    spans = host.address_spans or (host.span,) * len(host.addresses)
    return m.Zone(host.name, tuple(m.AddressSource(a, s) for a, s in zip(host.addresses, spans)), trusted=True,
                  span=host.span)


def _host_rules(policy: m.Policy, rule: m.Rule, host: m.Host, peers, inherited) -> tuple[m.Rule, ...]:
    if any(s.name == ROLES_SERVICE for s in rule.services):
        return _role_rules(policy, rule, host, peers)
    zones = _zone_refs(rule.zones, host.name, peers, inherited)
    return (dataclasses.replace(rule, zones=zones, hosts=()),) if zones else ()


def _role_rules(policy: m.Policy, rule: m.Rule, host: m.Host, peers) -> tuple[m.Rule, ...]:
    """`allow cluster -> zimbra.roles` on `host`: one rule per peer that calls one of its roles, in host order."""
    zone_span, service_span = rule.zones[0].span, rule.services[0].span
    made = []
    for peer in peers:
        services = role_services(policy, peer, host)
        if services:
            made.append(dataclasses.replace(rule, zones=(m.Name(peer.name, zone_span),),
                                            services=tuple(m.Name(s, service_span) for s in services), hosts=()))
    return tuple(made)


def _zone_refs(refs: tuple[m.Name, ...], name: str, peers, inherited: dict[str, tuple[str, ...]]
               ) -> tuple[m.Name, ...]:
    """The zones a line names on host `name`: as written (the host itself left out: it never reaches itself
    through its firewall), then `cluster`'s peers and the peers inside a named zone, each once."""
    written = tuple(ref for ref in refs if ref.name not in (CLUSTER, name))
    present = {ref.name for ref in written}
    added = []
    for ref in refs:
        expanded = [p.name for p in peers] if ref.name == CLUSTER else inherited.get(ref.name, ())
        for peer in expanded:
            if peer not in present:
                present.add(peer)
                added.append(m.Name(peer, ref.span))
    return written + tuple(added)


def _inherited(zones: tuple[m.Zone, ...], peers) -> dict[str, tuple[str, ...]]:
    """Zone -> the peers all of whose addresses lie inside it (`any` holds every peer)."""
    found = {}
    for zone in zones:
        holds = _holder(zone)
        inside = tuple(p.name for p in peers if all(map(holds, p.addresses)))
        if inside:
            found[zone.name] = inside
    return found


def _holder(zone: m.Zone):
    """address (a /32 or /128 network) -> whether the zone's written networks, `any` or its address files hold
    it. Interfaces, dynamic and url sources hold nothing here: their addresses are not in the policy. An address
    file's networks are merged into intervals once (a country list has 10^5 of them)."""
    if any(isinstance(s, m.AnySource) for s in zone.sources):
        return lambda address: True
    written = [s.network for s in zone.sources if isinstance(s, m.AddressSource)]
    intervals = {version: _file_intervals(zone, version) for version in (4, 6)}

    def holds(address: m.IPNetwork) -> bool:
        if any(address.version == n.version and address.subnet_of(n) for n in written):
            return True
        value, spans = int(address.network_address), intervals[address.version]
        at = bisect.bisect_right(spans, (value, 1 << 129)) - 1
        return at >= 0 and spans[at][1] >= value
    return holds


def _file_intervals(zone: m.Zone, version: int) -> list[tuple[int, int]]:
    """The networks of the zone's address files of one IP version, as sorted, disjoint first..last intervals."""
    packed = tuple(value for s in zone.sources if isinstance(s, m.FileSource) for value in (
        s.networks.packed(version) if isinstance(s.networks, m.AddressList)
        else [m.pack(n) for n in s.networks if n.version == version]))
    return m.AddressList(packed, ()).intervals(4) if version == 4 else m.AddressList((), packed).intervals(6)


# Checks of the cluster statements, before any host's policy is made (every error, in source order).


def check_cluster(policy: m.Policy) -> list[Diagnostic]:
    """Hosts, roles, the release and its features, `on`, `cluster` and `zimbra.roles`: errors and warnings."""
    return [d for check in _CHECKS for d in check(policy)]


def _check_hosts(policy: m.Policy) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    zones = {z.name: z for z in policy.zones}
    seen: dict[str, m.Host] = {}
    owner: dict[m.IPNetwork, str] = {}
    for host in policy.hosts:
        if host.name in _RESERVED:
            found.append(error(f"'{host.name}' cannot name a host: it is {_RESERVED[host.name]}", host.span,
                               hint="choose another name, such as its short host name"))
        elif host.name in seen:
            found.append(error(f"duplicate host '{host.name}'", host.span, hint=f"first defined at "
                                                                               f"{seen[host.name].span}"))
        elif host.name in zones:
            found.append(error(f"host '{host.name}' has the name of zone '{host.name}' ({zones[host.name].span})",
                               host.span, hint="hosts are zones too: host and zone names must differ"))
        seen.setdefault(host.name, host)
        found += _check_roles(host)
        spans, mine = host.address_spans or (host.span,) * len(host.addresses), set()
        for address, span in zip(host.addresses, spans):
            odd = _odd_address(address.network_address)
            if odd:
                found.append(error(f"host {host.name}: {address.network_address} is {odd}", span,
                                   hint="a host's peers reach it at its own network addresses"))
            other = owner.setdefault(address, host.name)
            if other != host.name or address in mine:
                where = "listed twice" if other == host.name else f"also an address of host '{other}'"
                found.append(error(f"{address.network_address} is {where}", span,
                                   hint="each address belongs to one host, once"))
            mine.add(address)
    if policy.hosts and CLUSTER in zones:
        found.append(error(f"'{CLUSTER}' is built in when the policy declares hosts: every other host",
                           zones[CLUSTER].span, hint=f"remove the zone, or rename it; rules name '{CLUSTER}' "
                                                     "to mean the other hosts"))
    return found


def _odd_address(address) -> str:
    """'' for an address a peer can connect from, else what it is."""
    for kind, odd in (("loopback", address.is_loopback), ("unspecified", address.is_unspecified),
                      ("multicast", address.is_multicast), ("link-local", address.is_link_local)):
        if odd:
            return f"a {kind} address"
    return ""


def _check_roles(host: m.Host) -> list[Diagnostic]:
    found, seen = [], set()
    for role in host.roles:
        if role.name not in roles.ROLES:
            found.append(error(f"unknown role '{role.name}'", role.span,
                               hint=did_you_mean(role.name, roles.ROLES) or f"roles: {', '.join(roles.ROLES)}"))
        elif role.name in seen:
            found.append(error(f"role '{role.name}' is listed twice", role.span))
        seen.add(role.name)
    return found


def _check_release(policy: m.Policy) -> list[Diagnostic]:
    given = policy.zimbra
    if given is None:
        return []
    found: list[Diagnostic] = []
    if not policy.hosts:
        found.append(warning("'zimbra' has no effect in a policy without hosts", given.span,
                             hint="it chooses the role matrix of a cluster: host NAME = ADDRESS roles ROLE, ..."))
    problem = roles.version_problem(given.version)
    if problem:
        found.append(error(problem, given.span))
        return found
    seen: set[str] = set()
    for name in given.features:
        problem = roles.feature_problem(name.name, given.version)
        if name.name in seen:
            found.append(error(f"feature '{name.name}' is listed twice", name.span))
        elif problem:
            found.append(error(problem, name.span, hint=did_you_mean(name.name, (f.name for f in roles.FEATURES))
                               if roles.feature(name.name) is None else ""))
        seen.add(name.name)
    return found


def _check_feature_roles(policy: m.Policy) -> list[Diagnostic]:
    """A feature run by a role no host has, or a host with such a role and no feature: the matrix opens nothing
    for it (a warning: the policy is consistent, only likely not what was meant)."""
    if not policy.hosts:
        return []
    features = {f.name: f for f in (policy.zimbra.features if policy.zimbra else ())}
    found: list[Diagnostic] = []
    for feature in roles.FEATURES:
        if not feature.role:
            continue
        holders = [h for h in policy.hosts if any(r.name == feature.role for r in h.roles)]
        if feature.name in features and not holders:
            found.append(warning(f"feature {feature.name}: no host has the role {feature.role}, so nothing of it is "
                                 "opened", features[feature.name].span,
                                 hint=f"give the role to the host that runs it, such as: roles mailbox, "
                                      f"{feature.role}"))
        for host in holders if feature.name not in features else ():
            role = next(r for r in host.roles if r.name == feature.role)
            found.append(warning(f"host '{host.name}' has the role {feature.role}, but the release has no feature "
                                 f"{feature.name}: nothing calls it", role.span,
                                 hint=f"add it, such as: zimbra {roles.version_text(release(policy)[0])} features "
                                      f"{feature.name}"))
    return found


def _check_on(policy: m.Policy) -> list[Diagnostic]:
    names = set(host_names(policy))
    found: list[Diagnostic] = []
    for line in policy.rules + policy.assertions:
        seen: set[str] = set()
        for ref in line.hosts:
            if not names:
                found.append(error(f"'on {ref.name}': this policy declares no hosts", ref.span,
                                   hint="'on' names hosts declared with: host NAME = ADDRESS, ... roles ROLE"))
                break
            if ref.name not in names:
                found.append(error(f"unknown host '{ref.name}'", ref.span,
                                   hint=did_you_mean(ref.name, names) or f"hosts: {', '.join(host_names(policy))}"))
            elif ref.name in seen:
                found.append(error(f"host '{ref.name}' is listed twice", ref.span))
            seen.add(ref.name)
    return found


def _check_roles_service(policy: m.Policy) -> list[Diagnostic]:
    """`zimbra.roles` only as `allow cluster -> zimbra.roles`, in a policy with hosts."""
    found: list[Diagnostic] = []
    for rule in policy.rules:
        ref = next((s for s in rule.services if s.name == ROLES_SERVICE), None)
        if ref is None:
            continue
        problem, hint = _roles_rule_problem(policy, rule)
        if problem:
            found.append(error(problem, ref.span, hint=hint))
    for assertion in policy.assertions:
        for ref in assertion.services:
            if ref.name == ROLES_SERVICE:
                found.append(error(f"an assertion names services, not {ROLES_SERVICE}", ref.span,
                                   hint="name the service, such as: assert mta1 -> lmtp on mbox1"))
    for group in policy.groups:
        for ref in group.members:
            if ref.name == ROLES_SERVICE:
                found.append(error(f"a group cannot hold {ROLES_SERVICE}", ref.span,
                                   hint=f"it is for one line only: {_ROLES_RULE}"))
    return found


def _roles_rule_problem(policy: m.Policy, rule: m.Rule) -> tuple[str, str]:
    """(message, hint) for a rule naming zimbra.roles that is not `allow cluster -> zimbra.roles`; ('', '')."""
    alone = f"write it alone on its line: {_ROLES_RULE}"
    if not policy.hosts:
        return (f"{ROLES_SERVICE} needs hosts: this policy declares none",
                "declare the servers, such as: host mbox1 = 10.0.0.14 roles mailbox")
    if rule.action != "allow":
        return f"{ROLES_SERVICE} is allowed, never denied or rejected", \
            f"to close a peer's port, {rule.action} it by name before the line {_ROLES_RULE}"
    if len(rule.services) > 1:
        return f"{ROLES_SERVICE} stands alone in its service list", alone
    if [z.name for z in rule.zones] != [CLUSTER]:
        return f"{ROLES_SERVICE} is allowed from '{CLUSTER}' alone", alone
    return "", ""


def _check_partly_inside(policy: m.Policy) -> list[Diagnostic]:
    """A host with some of its addresses in a zone and not the others: the zone's rules do not reach it."""
    found: list[Diagnostic] = []
    for zone in policy.zones if policy.hosts else ():
        holds = _holder(zone)
        for host in policy.hosts:
            inside = list(map(holds, host.addresses))
            if any(inside) and not all(inside):
                outside = ", ".join(str(a.network_address) for a, i in zip(host.addresses, inside) if not i)
                found.append(warning(f"host '{host.name}' is partly in zone '{zone.name}' ({outside} is not): "
                                     f"the rules of '{zone.name}' do not apply to it", host.span,
                                     hint=f"add the host's other addresses to '{zone.name}', or name "
                                          f"'{host.name}' in those rules"))
    return found


def _check_interface_zones(policy: m.Policy) -> list[Diagnostic]:
    """An interface zone takes every packet arriving on its interfaces, the peers' too, before any address."""
    if not policy.hosts:
        return []
    return [warning(f"zone '{z.name}' takes every packet arriving on {', '.join(interfaces(z))}, the hosts' too",
                    z.span, hint="the hosts' own rules apply to peers arriving on other interfaces only")
            for z in policy.zones if interfaces(z)]


_CHECKS = (_check_hosts, _check_release, _check_feature_roles, _check_on, _check_roles_service, _check_partly_inside,
           _check_interface_zones)
