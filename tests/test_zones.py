"""A source belongs to the most specific zone that contains it; ties between zones are errors."""

from __future__ import annotations

import ipaddress

import pytest

from nftc.language import model as m
from nftc.semantics.zones import flatten_zones


def zone(name: str, *cidrs: str) -> m.Zone:
    sources = tuple(m.AnySource() if c == "any" else m.AddressSource(ipaddress.ip_network(c)) for c in cidrs)
    return m.Zone(name, sources)


def owner(intervals, address: str) -> str:
    value = ipaddress.ip_address(address)
    for interval in intervals:
        if interval.version == value.version and interval.first <= int(value) <= interval.last:
            return interval.zone
    return ""


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
    zones = (zone("internet", "any"), zone("corp", "10.0.0.0/8", "fd00::/8"), zone("lab", "10.1.0.0/16"),
             zone("host", "10.1.2.3/32"))
    intervals, errors = flatten_zones(zones)
    assert not errors
    assert owner(intervals, address) == expected


def test_intervals_are_disjoint_sorted_and_merged():
    zones = (zone("internet", "any"), zone("a", "10.0.0.0/25"), zone("b", "10.0.0.128/25"),
             zone("a2", "10.0.1.0/24"))
    intervals, _ = flatten_zones(zones)
    v4 = [i for i in intervals if i.version == 4]
    assert all(left.last < right.first for left, right in zip(v4, v4[1:]))
    assert all(not (left.zone == right.zone and left.last + 1 == right.first) for left, right in zip(v4, v4[1:]))
    assert v4[0].first == 0 and v4[-1].last == 2**32 - 1


def test_equal_prefix_in_two_zones_is_an_error():
    _, errors = flatten_zones((zone("a", "192.0.2.0/24"), zone("b", "192.0.2.0/24")))
    assert len(errors) == 1
    assert "192.0.2.0/24 is in zone 'a' and in zone 'b'" in errors[0].message


def test_same_network_twice_in_one_zone_is_not_an_error():
    intervals, errors = flatten_zones((zone("a", "192.0.2.0/24", "192.0.2.0/24"),))
    assert not errors
    assert [(i.first, i.last, i.zone) for i in intervals] == [(int(ipaddress.ip_address("192.0.2.0")),
                                                                int(ipaddress.ip_address("192.0.2.255")), "a")]


@pytest.mark.parametrize("first, last, length", [
    ("10.0.0.0", "10.0.0.255", 24),
    ("10.0.0.1", "10.0.0.1", 32),
    ("10.0.0.1", "10.0.0.2", None),
    ("10.0.0.2", "10.0.0.3", 31),
    ("fd00::", "fd00::ffff", 112),
])
def test_an_interval_has_a_prefix_length_when_it_is_one_cidr(first, last, length):
    """What the lowering writes as an address, a prefix or a range (the goldens show all three)."""
    from nftc.semantics.zones import Interval
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
    assert Interval(a.version, int(a), int(b), "z").prefix_length() == length
