"""Which zone a source address belongs to: the most specific (longest prefix) zone that contains it.

CIDRs are either nested or disjoint, so one sort and one sweep turn the zones' networks into disjoint intervals,
each owned by exactly one zone: an interval verdict map the kernel looks up in one step. The zone that holds the
network of length 0 (`any`) owns every address no other zone claims: it is the map's fallback, not the gaps
between the others spelled out, so a map holds about one interval per network and a lookup that misses goes to
the fallback's chain (nftc.backend.lower). Networks stay integers end to end (`model.pack`, as the loader reads an
address file), sorted once; without nested networks a map is built without a Python loop per network.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from itertools import chain, compress, count, islice, repeat
from operator import add, and_, eq, ne, not_, or_, rshift, sub
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from ..language import model as m
from ..language.diagnostics import Diagnostic, error

if TYPE_CHECKING:  # resolve builds on this module
    from .resolve import CheckedPolicy

LOCALHOST = "localhost"  # the built-in zone of loopback traffic
IP_VERSIONS = (4, 6)
ANY_NETWORKS = {4: ipaddress.ip_network("0.0.0.0/0"), 6: ipaddress.ip_network("::/0")}
BITS = m.BITS
_LENGTH_MASK = (1 << m.PREFIX_BITS) - 1
_SIZES = {v: [(1 << (bits - n)) - 1 for n in range(bits + 1)] for v, bits in BITS.items()}  # last - first, by length


@dataclass(frozen=True)
class Interval:
    """Source addresses `first`..`last` (as integers) of one IP version belong to `zone`."""

    version: int
    first: int
    last: int
    zone: str


@dataclass(frozen=True)
class AddressMap:
    """Source address -> zone for one IP version, as the kernel looks it up: the sorted, disjoint, never adjacent
    intervals `firsts[i]`..`lasts[i]` owned by `zones[i]`; an address in none belongs to `fallback` (the zone that
    holds `any`), or to no zone when it is None. Parallel tuples, not one object per interval: a map of 10^5."""

    version: int
    firsts: tuple[int, ...]
    lasts: tuple[int, ...]
    zones: tuple[str, ...]
    fallback: str | None

    def zone_of(self, value: int) -> str | None:
        owner = self.owner(value)
        return self.fallback if owner is None else owner

    def owner(self, value: int) -> str | None:
        """The zone of the interval holding `value`; None outside every interval (the fallback's addresses)."""
        index = bisect_right(self.firsts, value) - 1
        return self.zones[index] if index >= 0 and value <= self.lasts[index] else None

    def intervals(self) -> Iterator[Interval]:
        """Every address of the version in order, the fallback's gaps included (the lab picks clients from them)."""
        cursor = 0
        for first, last, zone in zip(self.firsts, self.lasts, self.zones):
            if self.fallback is not None and cursor < first:
                yield Interval(self.version, cursor, first - 1, self.fallback)
            yield Interval(self.version, first, last, zone)
            cursor = last + 1
        if self.fallback is not None and cursor < 1 << BITS[self.version]:
            yield Interval(self.version, cursor, (1 << BITS[self.version]) - 1, self.fallback)

    def owners(self) -> set[str]:
        """The zones that own at least one address (the fallback unless the intervals leave no gap)."""
        gap = not self.firsts or self.firsts[0] > 0 or self.lasts[-1] < (1 << BITS[self.version]) - 1 or \
            any(map(ne, self.firsts[1:], map(add, self.lasts, repeat(1))))  # the first test decides, mostly
        return set(self.zones) | ({self.fallback} if self.fallback is not None and gap else set())


@dataclass(frozen=True)
class _Source:
    """A zone source that claims networks: whose, and where (a duplicate network names both places)."""

    zone: str
    span: m.Span | None


def zone_networks(zone: m.Zone) -> list[tuple[m.IPNetwork, m.Span | None]]:
    """The zone's networks as objects: for diagnostics (an address file's are unpacked, slowly)."""
    networks = []
    for source in zone.sources:
        if isinstance(source, m.AddressSource):
            networks.append((source.network, source.span))
        elif isinstance(source, m.AnySource):
            networks.extend((ANY_NETWORKS[v], source.span) for v in IP_VERSIONS)
        elif isinstance(source, m.FileSource):
            networks.extend((network, source.span) for network in source.networks)
    return networks


def _packed(source: m.ZoneSource, version: int) -> Iterable[int] | None:
    """The networks `source` claims, packed (`model.pack`); None for a source that claims no networks."""
    if isinstance(source, m.AddressSource):
        return (m.pack(source.network),) if source.network.version == version else ()
    if isinstance(source, m.AnySource):
        return (0,)  # first address 0, length 0
    if isinstance(source, m.FileSource):
        networks = source.networks
        if isinstance(networks, m.AddressList):
            return networks.packed(version)
        return tuple(m.pack(n) for n in networks if n.version == version)
    return None


def has_networks(zone: m.Zone) -> bool:
    return any(_packed(source, version) for source in zone.sources for version in IP_VERSIONS)


def trusted_networks(zones: tuple[m.Zone, ...]) -> tuple[m.IPNetwork, ...]:
    """The networks of the trusted zones, IPv4 first, each in address order, without repeats or networks inside
    another: what no fed zone (dynamic, file...) ever takes, and fail2ban's `ignoreip`."""
    networks = sorted({s.network for z in zones if z.trusted for s in z.sources if isinstance(s, m.AddressSource)},
                      key=lambda n: (n.version, m.pack(n)))
    return tuple(n for n in networks if not any(
        o.version == n.version and o != n and n.subnet_of(o) for o in networks))


def is_trusted(zones: tuple[m.Zone, ...], address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return any(address in network for network in trusted_networks(zones) if network.version == address.version)


def _untrusted(packed: Iterable[int], trusted: list[m.IPNetwork], version: int) -> Iterable[int]:
    """The packed networks that lie in no trusted network: a fed zone (a file's entries) never takes those.
    CIDRs are nested or disjoint, so a network touching a trusted one either lies inside it (left out) or holds
    it whole (kept: the trusted network is the more specific, and wins by prefix length)."""
    if not trusted:
        return packed
    firsts = [int(n.network_address) for n in trusted]
    lasts = [int(n.broadcast_address) for n in trusted]
    sizes = _SIZES[version]

    def outside(network: int) -> bool:
        first = network >> m.PREFIX_BITS
        index = bisect_right(firsts, first) - 1
        return index < 0 or first + sizes[network & _LENGTH_MASK] > lasts[index]

    return tuple(filter(outside, packed))


def flatten_zones(zones: tuple[m.Zone, ...]) -> tuple[tuple[AddressMap, ...], list[Diagnostic]]:
    """One address map per IP version, IPv4 first; errors for networks two zones both claim. A fed source's
    networks inside a trusted zone's are left out: the trusted zone keeps them whatever their prefix length."""
    claimed = [(zone.name, s) for zone in zones for s in zone.sources if _packed(s, 4) is not None]
    sources = [_Source(name, s.span) for name, s in claimed]
    trusted = trusted_networks(zones)
    maps, errors = [], []
    for version in IP_VERSIONS:
        mine = [n for n in trusted if n.version == version]
        networks, owners = _sorted_claims([_untrusted(_packed(s, version), mine, version)
                                           if isinstance(s, m.FED_SOURCES) else _packed(s, version)
                                           for _, s in claimed])
        networks, owners, found = _without_duplicates(networks, owners, sources, version)
        errors += found
        maps.append(_address_map(networks, list(map([s.zone for s in sources].__getitem__, owners)), version))
    return tuple(maps), errors


def _sorted_claims(claims: list) -> tuple[list[int], list[int]]:
    """Every source's packed networks in one sorted list (by first address, widest first, equal networks in the
    order of their sources), with the index of the source of each.

    The largest source is sorted alone and the others' networks are placed into it by bisection: an address file
    of 10^5 networks costs one sort of 10^5 integers, and nothing per network to say whose it is."""
    if not claims:
        return [], []
    largest = max(range(len(claims)), key=lambda i: len(claims[i]))
    networks = sorted(claims[largest])
    others = sorted((network, index) for index, packed in enumerate(claims) if index != largest for network in packed)
    if not others:
        return networks, [largest] * len(networks)
    merged, owners, taken = [], [], 0
    for network, index in others:  # before an equal network of the largest source when the source comes first
        place = (bisect_left if index < largest else bisect_right)(networks, network)
        merged += networks[taken:place]
        owners += repeat(largest, place - taken)
        merged.append(network)
        owners.append(index)
        taken = place
    merged += networks[taken:]
    owners += repeat(largest, len(networks) - taken)
    return merged, owners


def _without_duplicates(networks: list[int], owners: list[int], sources: list[_Source], version: int):
    """The sorted networks and their sources without repeats; an error for each network a second zone claims."""
    repeats = list(map(eq, networks[1:], networks))  # at i: network i + 1 repeats network i
    if not any(repeats):
        return networks, owners, []
    errors = []
    start, previous = 0, -1
    for index in compress(count(1), repeats):
        start = start if index == previous + 1 else index - 1  # the first of this run of repeats: the one kept
        previous = index
        kept, again = sources[owners[start]], sources[owners[index]]
        if kept.zone != again.zone:
            errors.append(error(
                f"{m.unpack(networks[index], version)} is in zone '{kept.zone}' and in zone '{again.zone}'",
                again.span,
                hint=f"zones resolve by prefix length, so equal prefixes are ambiguous; the other is at {kept.span}",
            ))
    kept = list(chain((True,), map(not_, repeats)))
    return list(compress(networks, kept)), list(compress(owners, kept)), errors


def _address_map(networks: list[int], owners: list[str], version: int) -> AddressMap:
    """Sorted distinct networks and their zones -> the map: the length-0 network's zone is the fallback, nested
    networks are cut by `_sweep`, adjacent intervals of one zone merged, and the fallback's own intervals dropped."""
    firsts = list(map(rshift, networks, repeat(m.PREFIX_BITS)))
    lasts = list(map(add, firsts, map(_SIZES[version].__getitem__, map(and_, networks, repeat(_LENGTH_MASK)))))
    fallback = None
    if networks and networks[0] == 0:  # the network of length 0 sorts first
        fallback = owners[0]
        del firsts[0], lasts[0], owners[0]
    gaps = list(map(sub, islice(firsts, 1, None), lasts))  # from the end of each interval to the start of the next
    if gaps and min(gaps) <= 0:  # a network starts inside the one before it
        firsts, lasts, owners = _sweep(firsts, lasts, owners)
        gaps = list(map(sub, firsts[1:], lasts))
    if 1 in gaps:
        firsts, lasts, owners = _merged(firsts, lasts, owners, gaps)
    if fallback is not None and fallback in owners:
        keep = list(map(ne, owners, repeat(fallback)))
        firsts, lasts, owners = (list(compress(column, keep)) for column in (firsts, lasts, owners))
    return AddressMap(version, tuple(firsts), tuple(lasts), tuple(owners), fallback)


def _sweep(firsts: list[int], lasts: list[int], owners: list[str]):
    """Nested or disjoint networks, sorted by start (widest first) -> disjoint runs, each owned by the innermost
    network that holds it. Addresses outside every network are no run (they belong to the fallback)."""
    out: tuple[list, list, list] = ([], [], [])
    stack: list[tuple[int, str]] = []  # (last address, owner) of the networks that enclose the cursor
    cursor = 0

    def emit(first: int, last: int, owner: str) -> None:
        if first <= last:
            out[0].append(first)
            out[1].append(last)
            out[2].append(owner)

    for first, last, owner in zip(firsts, lasts, owners):
        while stack and stack[-1][0] < first:
            end, enclosing = stack.pop()
            emit(cursor, end, enclosing)
            cursor = end + 1
        if stack:
            emit(cursor, first - 1, stack[-1][1])
        stack.append((last, owner))
        cursor = first
    while stack:
        end, enclosing = stack.pop()
        emit(cursor, end, enclosing)
        cursor = end + 1
    return out


def _merged(firsts: list[int], lasts: list[int], owners: list[str], gaps: list[int]):
    """Disjoint sorted intervals with the intervals of one zone that touch (a gap of 1) merged into one. A few such
    (a list already merged, as most published lists are) are cut out with slices, many column by column."""
    if gaps.count(1) * _FEW_TOUCHING <= len(gaps):
        joins = [i for i in compress(count(), map(eq, gaps, repeat(1))) if owners[i] == owners[i + 1]]
        after = [i + 1 for i in joins]
        return _without(firsts, after), _without(lasts, joins), _without(owners, after)
    new = list(map(or_, map(ne, gaps, repeat(1)), map(ne, islice(owners, 1, None), owners)))  # i + 1 starts a run
    starts = [True, *new]
    return list(compress(firsts, starts)), list(compress(lasts, [*new, True])), list(compress(owners, starts))


_FEW_TOUCHING = 16  # at most one interval in this many touching the next: a step for each costs less than the columns


def _without(column: list, indices: list[int]) -> list:
    """`column` without the items at `indices` (sorted): slices, not a step per item."""
    kept, start = [], 0
    for index in indices:
        kept += column[start:index]
        start = index + 1
    kept += column[start:]
    return kept


def interfaces(zone: m.Zone) -> tuple[str, ...]:
    return tuple(s.name for s in zone.sources if isinstance(s, m.InterfaceSource))


def zone_of(checked: CheckedPolicy, address, interface: str | None,
            listed: Mapping[str, Iterable[m.IPNetwork]] | None = None) -> str | None:
    """The zone the ruleset sends a new connection from `address` (text or ipaddress) arriving on `interface` (None:
    unknown) to, in the ruleset's order: loopback; a blocking zone's addresses (`checked.blocks`: the policy's,
    then the run-time sets); the other run-time sets; the interface zones; the most specific address zone; the zone
    of `any`. None when no zone holds it (dropped as drop/no-zone). What the run-time sets hold is known only at run
    time: `listed` gives it, zone -> networks. A trusted zone's address is in no run-time set's zone."""
    address = ipaddress.ip_address(address)
    if address.is_loopback or interface == "lo":
        return LOCALHOST
    owner = checked.address_map(address.version).owner(int(address))
    if owner is not None and checked.blocks(owner):
        return owner
    in_sets = [] if is_trusted(checked.policy.zones, address) else [
        zone for zone, networks in (listed or {}).items() if any(address in n for n in networks)]
    for blocking in (True, False):
        for zone in checked.policy.zones:
            if zone.name in in_sets and checked.blocks(zone.name) == blocking:
                return zone.name
    for zone in checked.policy.zones:
        if interface and any(fnmatch.fnmatchcase(interface, pattern) for pattern in interfaces(zone)):
            return zone.name
    return checked.address_map(address.version).zone_of(int(address))
