"""A source belongs to the most specific zone that contains it; ties between zones are errors.

Issue 9, "Fewer elements": the zone of `any` is each map's fallback, not the gaps between the other zones spelled
out; and "The compile at 200k": the map is built from integers, without a Python loop per network unless
networks nest. A reference model (the longest prefix that holds the address, by brute force) checks both.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import strategies as st

from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.semantics.zones import Interval, flatten_zones

from helpers import check_property, compile_text, examples


def zone(name: str, *cidrs: str) -> m.Zone:
    sources = tuple(m.AnySource() if c == "any" else m.AddressSource(ipaddress.ip_network(c)) for c in cidrs)
    return m.Zone(name, sources)


def file_zone(name: str, *cidrs: str) -> m.Zone:
    return m.Zone(name, (m.FileSource(f"{name}.txt", tuple(ipaddress.ip_network(c) for c in cidrs)),))


def owner(maps, address: str) -> str | None:
    value = ipaddress.ip_address(address)
    return next(a for a in maps if a.version == value.version).zone_of(int(value))


def partition(maps, version: int) -> list[Interval]:
    return list(next(a for a in maps if a.version == version).intervals())


NESTED = (zone("internet", "any"), zone("corp", "10.0.0.0/8", "fd00::/8"), zone("lab", "10.1.0.0/16"),
          zone("host", "10.1.2.3/32"))


@pytest.mark.parametrize("address, expected", [
    ("8.8.8.8", "internet"),
    ("10.9.9.9", "corp"),
    ("10.1.0.5", "lab"),
    ("10.1.2.3", "host"),
    ("10.1.2.4", "lab"),
    ("2001:db8::1", "internet"),
    ("fd00::1", "corp"),
])
def test_longest_prefix_decides_the_zone(address, expected):
    maps, errors = flatten_zones(NESTED)
    assert not errors
    assert owner(maps, address) == expected
    assert next(i.zone for i in partition(maps, ipaddress.ip_address(address).version)
                if i.first <= int(ipaddress.ip_address(address)) <= i.last) == expected


def test_intervals_are_disjoint_sorted_and_merged():
    zones = (zone("internet", "any"), zone("a", "10.0.0.0/25"), zone("b", "10.0.0.128/25"),
             zone("a2", "10.0.1.0/24"))
    maps, _ = flatten_zones(zones)
    v4 = partition(maps, 4)
    assert all(left.last < right.first for left, right in zip(v4, v4[1:]))
    assert all(not (left.zone == right.zone and left.last + 1 == right.first) for left, right in zip(v4, v4[1:]))
    assert v4[0].first == 0 and v4[-1].last == 2**32 - 1
    assert all(left.last + 1 == right.first for left, right in zip(v4, v4[1:]))  # every address, once


def test_networks_of_one_zone_that_touch_are_one_interval():
    maps, _ = flatten_zones((zone("a", "10.0.0.10/31", "10.0.0.12/30"), file_zone("b", "10.0.0.0/25", "10.0.0.128/25")))
    v4 = maps[0]
    assert list(zip(v4.firsts, v4.lasts, v4.zones)) == [
        (int(ipaddress.ip_address("10.0.0.0")), int(ipaddress.ip_address("10.0.0.9")), "b"),
        (int(ipaddress.ip_address("10.0.0.10")), int(ipaddress.ip_address("10.0.0.15")), "a"),
        (int(ipaddress.ip_address("10.0.0.16")), int(ipaddress.ip_address("10.0.0.255")), "b")]


def test_issue9_the_zone_of_any_is_the_fallback_and_owns_no_interval_of_the_map():
    """The map holds the other zones' networks only (about one interval each, not also the gaps between them);
    a source in none goes to the zone of `any`, even one inside another zone's network (10.5/16 in 10/8)."""
    zones = (zone("internet", "any", "10.5.0.0/16"), zone("corp", "10.0.0.0/8"), zone("lan", "192.168.1.0/24"))
    maps, errors = flatten_zones(zones)
    assert not errors
    assert [(a.version, a.fallback, len(a.firsts)) for a in maps] == [(4, "internet", 3), (6, "internet", 0)]
    assert "internet" not in maps[0].zones
    assert [owner(maps, a) for a in ("10.5.1.1", "10.6.0.1", "192.168.1.9", "8.8.8.8", "::1")] == \
        ["internet", "corp", "lan", "internet", "internet"]


def test_issue9_without_any_a_source_in_no_zone_has_no_zone():
    maps, _ = flatten_zones((zone("lan", "192.168.1.0/24"),))
    assert [a.fallback for a in maps] == [None, None]
    assert owner(maps, "192.168.2.1") is None and owner(maps, "fd00::1") is None
    assert [(i.first, i.last) for i in partition(maps, 4)] == [(int(ipaddress.ip_address("192.168.1.0")),
                                                                 int(ipaddress.ip_address("192.168.1.255")))]


def test_issue9_a_zone_of_any_that_more_specific_zones_cover_whole_can_never_match():
    with pytest.raises(PolicyError) as raised:
        compile_text("zone wide = any\nzone halves = 0.0.0.0/1, 128.0.0.0/1, ::/1, 8000::/1\nallow wide -> ssh\n")
    assert [d.message for d in raised.value.diagnostics] == \
        ["zone 'wide' can never match: more specific zones claim all its addresses"]


@pytest.mark.parametrize("halves", ["0.0.0.0/1, 192.0.0.0/2, ::/1, 8000::/1", "0.0.0.0/1, 128.0.0.0/1, ::/1",
                                    "0.0.0.0/2, 128.0.0.0/1, ::/1, 8000::/1"])
def test_issue9_a_zone_of_any_with_one_gap_left_owns_it(halves):
    compilation = compile_text(f"zone wide = any\nzone halves = {halves}\nallow wide -> ssh\n")
    assert "wide" in set().union(*(a.owners() for a in compilation.checked.address_maps))


def test_equal_prefix_in_two_zones_is_an_error():
    _, errors = flatten_zones((zone("a", "192.0.2.0/24"), zone("b", "192.0.2.0/24")))
    assert len(errors) == 1
    assert "192.0.2.0/24 is in zone 'a' and in zone 'b'" in errors[0].message


@pytest.mark.parametrize("zones, message", [
    ((zone("a", "192.0.2.0/24"), file_zone("b", "10.0.0.0/8", "192.0.2.0/24", "fd00::/8")),
     "192.0.2.0/24 is in zone 'a' and in zone 'b'"),
    ((file_zone("b", "10.0.0.0/8", "192.0.2.0/24", "fd00::/8"), zone("a", "192.0.2.0/24")),
     "192.0.2.0/24 is in zone 'b' and in zone 'a'"),
    ((file_zone("b", "fd00::/8", "10.0.0.0/8", "2001:db8::/32"), zone("a", "any", "2001:db8::/32")),
     "2001:db8::/32 is in zone 'b' and in zone 'a'"),
])
def test_issue9_a_network_in_two_zones_is_named_in_policy_order_whichever_source_is_largest(zones, message):
    """The largest source is sorted alone and the others placed into it: equal networks keep the policy's order."""
    _, errors = flatten_zones(zones)
    assert [e.message for e in errors] == [message]


def test_same_network_twice_in_one_zone_is_not_an_error():
    maps, errors = flatten_zones((zone("a", "192.0.2.0/24", "192.0.2.0/24"), file_zone("a", "192.0.2.0/24")))
    assert not errors
    assert [(i.first, i.last, i.zone) for i in partition(maps, 4)] == [(int(ipaddress.ip_address("192.0.2.0")),
                                                                         int(ipaddress.ip_address("192.0.2.255")),
                                                                         "a")]


# The reference: the zone of the longest prefix that holds the address, found by brute force.

ZONE_NAMES = ("a", "b", "c", "d")


@st.composite
def nested_zones(draw):
    """Zones of networks inside 10.0.0.0/24 (and its IPv6 twin), nesting often, some touching, some repeated in
    one zone, an address file among them, `any` sometimes; networks two zones share are left out (an error)."""
    networks: dict[tuple[int, int, int], str] = {}
    for _ in range(draw(st.integers(0, 14))):
        version = draw(st.sampled_from((4, 6)))
        length = draw(st.integers(24, 32))
        first = draw(st.integers(0, 255)) >> (32 - length) << (32 - length)
        networks.setdefault((version, first, length), draw(st.sampled_from(ZONE_NAMES)))
    wide = draw(st.sampled_from((None,) + ZONE_NAMES))
    trusted = draw(st.sampled_from((None,) + ZONE_NAMES))  # issue 10: taken when the zone lists only addresses
    zones = []
    for name in ZONE_NAMES:
        mine = [_network(v, f, n) for (v, f, n), z in networks.items() if z == name]
        sources = [m.AnySource()] if name == wide else []
        if mine and draw(st.booleans()):
            sources.append(m.FileSource(f"{name}.txt", tuple(mine)))
        else:
            sources += [m.AddressSource(n) for n in mine]
        if sources:
            trusts = name == trusted and all(isinstance(s, m.AddressSource) for s in sources)
            zones.append(m.Zone(name, tuple(sources), trusted=trusts))
    return tuple(zones)


def _network(version: int, first: int, length: int) -> m.IPNetwork:
    if version == 4:
        return ipaddress.ip_network((int(ipaddress.ip_address("10.0.0.0")) + first, length))
    return ipaddress.ip_network((int(ipaddress.ip_address("fd00::")) + first, length + 96))


def reference_zone(zones, address) -> str | None:
    """The longest prefix holding the address, where a file's network inside a trusted zone's counts for nothing
    (issue 10: a fed zone never takes a trusted zone's addresses)."""
    trusted = [n for z in zones if z.trusted for n in _networks(z)]
    holding = [(network.prefixlen, z.name) for z in zones for source in z.sources for network in _networks_of(source)
               if network.version == address.version and address in network
               and not (isinstance(source, m.FileSource) and any(network.subnet_of(t) for t in trusted
                                                                 if t.version == network.version))]
    return max(holding)[1] if holding else None


def _networks_of(source):
    return _networks(m.Zone("", (source,)))


def _networks(z: m.Zone):
    for source in z.sources:
        if isinstance(source, m.AnySource):
            yield from (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
        elif isinstance(source, m.AddressSource):
            yield source.network
        else:
            yield from source.networks


def agrees_with_the_reference(zones):
    maps, errors = flatten_zones(zones)
    assert not errors
    for version, base in ((4, ipaddress.ip_address("10.0.0.0")), (6, ipaddress.ip_address("fd00::"))):
        for offset in (-1, *range(256), 256):
            address = base + offset
            assert owner(maps, str(address)) == reference_zone(zones, address), address
        intervals = next(a for a in maps if a.version == version)
        assert all(last < first for last, first in zip(intervals.lasts, intervals.firsts[1:]))
        assert all(not (last + 1 == first and left == right) for last, first, left, right in
                   zip(intervals.lasts, intervals.firsts[1:], intervals.zones, intervals.zones[1:]))
        assert intervals.fallback not in intervals.zones


@examples(few=15, many=500)
def test_issue9_the_map_agrees_with_the_longest_prefix_reference(examples):
    check_property(agrees_with_the_reference, examples, nested_zones())
