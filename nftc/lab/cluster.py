"""`nftc lab FILE` for a cluster policy: one namespace per host, with its own addresses (IPv4 and IPv6, nodad),
one client namespace per zone of the policy, all joined by a bridge in a namespace of its own; each host's
ruleset loaded into its namespace by `nftc apply --host NAME`; then every (source, host, service, protocol,
family) probed with real connections and compared with what each host's policy says (reach over host_policy:
the same computation as the rulesets), and with where Zimbra binds each port (plan.expected_state).

Sources: every host (from its own namespace; to itself over loopback, zone localhost) and every zone's client.
Nothing is linked to the machine's own namespace: the bridge joins the lab's namespaces only, and every route
is a host route to another member of the lab. Everything is deleted on the way out, as the single-host lab does.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

from ..language import model as m
from ..language.text import columns
from ..semantics.reach import decide, zone_segments
from ..semantics.resolve import LOCALHOST
from ..semantics.zones import IP_VERSIONS, zone_of
from . import netns, plan as labplan, session
from .plan import LOOPBACK, DROPPED, Observation, Probe

LAB_INTERFACE = "eth0"  # every member's side of its veth to the bridge: where each host sees every packet arrive
NO_ZONE = "no zone holds the source: dropped"


@dataclass(frozen=True)
class Member:
    """A namespace on the bridge: a host of the policy, or the client of one of its zones. `addresses`: family
    -> the member's addresses of that family, the first one the source and target of probes."""

    name: str
    kind: str  # "host" or "zone"
    addresses: dict


@dataclass(frozen=True)
class PathProbe:
    """One connection from `source` (a host or a zone) to host `target`; `probe.zone` is the source's zone on
    the target (what its ruleset sees)."""

    source: str
    target: str
    probe: Probe


@dataclass(frozen=True)
class ClusterPlan:
    """Each host's policy as it enforces it, the lab's members and every probe with its expectation."""

    checked: dict  # host -> CheckedPolicy
    hosts: tuple[Member, ...]
    clients: tuple[Member, ...]
    probes: tuple[PathProbe, ...]

    @property
    def members(self) -> tuple[Member, ...]:
        return self.hosts + self.clients

    def member(self, name: str) -> Member:
        return next(x for x in self.members if x.name == name)


# Planning: pure


def _host_member(host: m.Host) -> Member:
    by_family: dict[int, tuple[str, ...]] = {}
    for network in host.addresses:
        by_family[network.version] = by_family.get(network.version, ()) + (str(network.network_address),)
    return Member(host.name, "host", by_family)


def _client_address(checked: dict, zone: m.Zone, family: int, taken: set[str]) -> str | None:
    """An address the zone owns on every host (a host's address, or one inside a more specific zone, is not)."""
    first = next(iter(checked.values()))
    tried = set(taken)
    for _ in range(16):  # bounded: pick_address offers a handful of candidates per zone
        address = labplan.pick_address(first, zone, family, tried)
        if address is None:
            return None
        if all(zone_of(c, address, LAB_INTERFACE) == zone.name for c in checked.values()):
            return address
        tried.add(address)
    return None


def plan_clients(checked: dict, zones: Sequence[m.Zone], taken: set[str]) -> tuple[Member, ...]:
    clients = []
    for zone in zones:
        addresses = {}
        for family in IP_VERSIONS:
            address = _client_address(checked, zone, family, taken)
            if address is not None:
                addresses[family] = (address,)
                taken.add(address)
        if addresses:
            clients.append(Member(zone.name, "zone", addresses))
    return tuple(clients)


def plan_probes(checked: dict, hosts: Sequence[Member], clients: Sequence[Member]) -> tuple[PathProbe, ...]:
    probes = []
    for source in tuple(hosts) + tuple(clients):
        for target in hosts:
            host_checked = checked[target.name]
            for family in IP_VERSIONS:
                if source.name == target.name:
                    zone = LOCALHOST
                elif family in source.addresses and family in target.addresses:
                    zone = zone_of(host_checked, source.addresses[family][0], LAB_INTERFACE)
                else:
                    continue
                for service in labplan.probe_services(host_checked):
                    probes.extend(PathProbe(source.name, target.name, Probe(zone, service.name, protocol, port, family))
                                  for protocol, port in labplan.probe_ports(service))
    return tuple(probes)


def plan_cluster(hosts: Sequence[m.Host], checked: dict) -> ClusterPlan:
    """`hosts`: the policy's host lines; `checked`: host name -> that host's checked policy (the compiler's)."""
    members = tuple(_host_member(h) for h in hosts)
    taken = {a for x in members for addresses in x.addresses.values() for a in addresses}
    host_names = {h.name for h in hosts}
    zones = tuple(z for z in next(iter(checked.values())).policy.zones if z.name not in host_names)
    clients = plan_clients(checked, zones, taken)
    return ClusterPlan(dict(checked), members, clients, plan_probes(checked, members, clients))


def target_address(plan: ClusterPlan, path: PathProbe) -> str:
    if path.source == path.target:
        return LOOPBACK[path.probe.family]
    return plan.member(path.target).addresses[path.probe.family][0]


def expectations(plan: ClusterPlan) -> dict[PathProbe, tuple[str, str]]:
    """PathProbe -> (expected state, reason): each target host's policy (reach), then where Zimbra binds."""
    segments = {}
    out = {}
    for path in plan.probes:
        zone = path.probe.zone
        if zone is None:
            out[path] = (DROPPED, NO_ZONE)
            continue
        key = (path.target, zone)
        if key not in segments:
            segments[key] = zone_segments(plan.checked[path.target], zone)
        decision = decide(segments[key], path.probe.protocol, path.probe.port)
        out[path] = labplan.expected_state(decision, zone, path.probe.protocol, path.probe.port)
    return out


# The lab on the kernel


@dataclass
class LiveCluster:
    """A built cluster lab: namespaces by member name, the processes started in it (killed by PID on close)."""

    lab: netns.Lab
    plan: ClusterPlan
    state_dir: str
    bridge: str = ""
    namespaces: dict = field(default_factory=dict)  # member name -> namespace
    pids: list[int] = field(default_factory=list)
    memcached: bool = False


def _host_prefixes(member: Member) -> tuple[str, ...]:
    return tuple(netns.host_prefix(a) for addresses in member.addresses.values() for a in addresses)


def build(live: LiveCluster) -> None:
    """The bridge, then each member on it with its addresses, then host routes: every member to every host,
    every host to every member (the replies). No default route anywhere."""
    lab, plan = live.lab, live.plan
    live.bridge = session.prepare_namespace(lab, "-br")
    lab.exec(live.bridge, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
    lab.exec(live.bridge, "ip", "link", "set", "br0", "up")
    for index, member in enumerate(plan.members):
        namespace = session.prepare_namespace(lab, f"-{'h' if member.kind == 'host' else 'z'}-{member.name}")
        live.namespaces[member.name] = namespace
        lab.wire(live.bridge, namespace, (), _host_prefixes(member), left_if=f"p{index}", right_if=LAB_INTERFACE)
        lab.exec(live.bridge, "ip", "link", "set", f"p{index}", "master", "br0")
    for member in plan.members:
        peers = plan.members if member.kind == "host" else plan.hosts
        for peer in (p for p in peers if p.name != member.name):
            for family, addresses in peer.addresses.items():
                if family not in member.addresses:
                    continue
                for address in addresses:
                    lab.exec(live.namespaces[member.name], "ip", f"-{family}", "route", "add",
                             netns.host_prefix(address), "dev", LAB_INTERFACE, "src", member.addresses[family][0])


def start_listeners(live: LiveCluster) -> None:
    """In each host: the listeners of every port probed there, bound where Zimbra binds them."""
    for host in live.plan.hosts:
        probes = [p.probe for p in live.plan.probes if p.target == host.name]
        addresses = tuple(a for addresses in host.addresses.values() for a in addresses)
        live.memcached = session.start_listeners_in(live, live.namespaces[host.name], addresses,
                                                    labplan.listener_ports(probes), log=f"-{host.name}")


HostLoader = Callable[[LiveCluster, str], None]


def load_host(live: LiveCluster, policy_path: str, host: str) -> None:
    """Host `host`'s ruleset into its namespace, by `nftc apply --host HOST` (an admin's code path)."""
    session.apply_in(live.namespaces[host], os.path.join(live.state_dir, f"apply-{host}"), policy_path, host)


@contextmanager
def cluster_session(plan: ClusterPlan, load: HostLoader, keep: bool = False) -> Iterator[LiveCluster]:
    """A built, listening, loaded cluster lab; torn down on the way out unless `keep`."""
    lab = netns.Lab(prefix=netns.unique_prefix(session.PREFIX_STEM))
    live = LiveCluster(lab, plan, tempfile.mkdtemp(prefix=f"{lab.prefix}-"))
    kept = False
    try:
        build(live)
        start_listeners(live)
        lab.flush_neighbours()
        for host in plan.hosts:
            load(live, host.name)
        yield live
        if keep:
            open(os.path.join(live.state_dir, session.KEPT_MARK), "x").close()
        kept = keep
    finally:
        if not kept:
            session.tear_down_live(live.pids, lab, live.state_dir)


# Probing and the report


@dataclass(frozen=True)
class PathObservation:
    """A probe's outcome on the kernel next to what the target host's policy predicts."""

    source: str
    target: str
    observation: Observation

    @property
    def matches(self) -> bool:
        return self.observation.matches


@dataclass(frozen=True)
class ClusterReport:
    observations: tuple[PathObservation, ...]
    assertions: tuple[tuple[str, labplan.AssertionCheck], ...]  # (host, check)
    memcached: bool

    @property
    def mismatches(self) -> tuple[PathObservation, ...]:
        return tuple(o for o in self.observations if not o.matches)

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(check.holds for _, check in self.assertions)

    def cell(self, source: str, target: str, service: str, family: int, port: int | None = None,
             protocol: str = "tcp") -> PathObservation:
        return next(o for o in self.observations if (o.source, o.target) == (source, target)
                    and o.observation.probe.service == service and o.observation.probe.family == family
                    and o.observation.probe.protocol == protocol and (port is None or o.observation.probe.port == port))


def probe_cluster(live: LiveCluster) -> ClusterReport:
    """Every planned probe, one prober per source namespace, all at once; compared with the expectations."""
    plan = live.plan
    live.lab.flush_neighbours()
    by_source: dict[str, list[PathProbe]] = {}
    for path in plan.probes:
        by_source.setdefault(path.source, []).append(path)
    results = session.scan_groups({source: (live.namespaces[source], [
        {"address": target_address(plan, p), "protocol": p.probe.protocol, "port": p.probe.port} for p in paths])
        for source, paths in by_source.items()})
    expected = expectations(plan)
    observations = tuple(
        PathObservation(p.source, p.target, Observation(p.probe, *_expected_pair(expected[p], result["state"])))
        for source, paths in by_source.items() for p, result in zip(paths, results[source]))
    checks = tuple((host.name, check) for host in plan.hosts for check in labplan.check_assertions(
        plan.checked[host.name].assertions,
        tuple(o.observation for o in observations if o.target == host.name)))
    return ClusterReport(observations, checks, live.memcached)


def _expected_pair(expected: tuple[str, str], observed: str) -> tuple[str, str, str]:
    """(expected, observed, reason): Observation's field order."""
    return expected[0], observed, expected[1]


def format_mismatch(o: PathObservation) -> str:
    p = o.observation.probe
    return (f"mismatch: {o.source} -> {o.target} {p.service} {p.port}/{p.protocol} IPv{p.family} (zone {p.zone} "
            f"there): expected {o.observation.expected} ({o.observation.reason}), observed {o.observation.observed}")


def _open_services(report: ClusterReport, source: str, target: str) -> str:
    """The services observed open from `source` on `target`, marked when open over one IP version only."""
    families: dict[str, set[int]] = {}
    for o in report.observations:
        probe = o.observation.probe
        if (o.source, o.target) == (source, target) and o.observation.observed == labplan.OPEN:
            families.setdefault(probe.service, set()).add(probe.family)
    both = set(IP_VERSIONS)
    return ", ".join(name + ("" if found == both else f" (IPv{min(found)} only)")
                     for name, found in families.items()) or "nothing"


def report_text(report: ClusterReport) -> str:
    """The observed matrix (source, host, what answered), the mismatches, the assertions, the counts."""
    pairs = list(dict.fromkeys((o.source, o.target) for o in report.observations if o.source != o.target))
    lines = [columns([("FROM", "TO", "OPEN ON THE KERNEL"),
                      *((s, t, _open_services(report, s, t)) for s, t in pairs)]), ""]
    lines += [format_mismatch(o) for o in report.mismatches]
    for host, check in report.assertions:
        verdict = "holds on the kernel" if check.holds else "FAILS on the kernel"
        lines.append(f"on {host}: {check.text}: {verdict} ({check.probes} probes)")
    memcached = "a real memcached" if report.memcached else "the echo listener (memcached not installed)"
    lines.append(f"{len(report.observations)} probes, {len(report.mismatches)} mismatches; "
                 f"{session.MEMCACHED_PORT} served by {memcached}")
    return "\n".join(lines)


def report_json(report: ClusterReport) -> str:
    def observation(o: PathObservation) -> dict:
        p = o.observation.probe
        return {"from": o.source, "to": o.target, "zone": p.zone, "service": p.service, "protocol": p.protocol,
                "port": p.port, "family": p.family, "expected": o.observation.expected,
                "observed": o.observation.observed, "reason": o.observation.reason}

    return json.dumps({
        "ok": report.ok,
        "observations": [observation(o) for o in report.observations],
        "mismatches": [observation(o) for o in report.mismatches],
        "assertions": [{"host": h, "assertion": a.text, "holds": a.holds, "probes": a.probes}
                       for h, a in report.assertions],
        "memcached": report.memcached,
    }, indent=2)


def enter_commands(live: LiveCluster) -> str:
    lines = ["The cluster lab is kept. Enter a member with:"]
    for member in live.plan.members:
        addresses = ", ".join(a for addresses in member.addresses.values() for a in addresses)
        lines.append(f"  ip netns exec {live.namespaces[member.name]} bash        # {member.kind} {member.name} "
                     f"({addresses})")
    lines.append(f"Tear it down with:\n  nftc lab --down {live.lab.prefix}")
    return "\n".join(lines)
