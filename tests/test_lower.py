"""The ruleset's shape: the path of a packet does not grow with ports or addresses; output is stable."""

from __future__ import annotations

import ipaddress

import pytest

from nftc.backend import ir
from nftc.backend.render_nft import CONTAINERS, render_nft, render_rule

from helpers import compile_text


def addresses(count: int) -> str:
    base = int(ipaddress.ip_address("10.0.0.0"))
    return "\n".join(str(ipaddress.ip_address(base + 512 * i)) + "/24" for i in range(count)) + "\n"


def rule_counts(compilation) -> dict[str, int]:
    return {chain.name: len(chain.rules) for chain in compilation.table.chains}


def policy_with(zone_size: int, port_count: int) -> str:
    ports = ", ".join(str(20000 + p) for p in range(port_count))
    return (f'zone big = file "big.txt"\nzone internet = any\nservice many = tcp {ports}\n'
            "allow big -> many, ssh\nallow internet -> zimbra.public\n")


def test_rules_on_the_path_do_not_grow_with_addresses_or_ports():
    small = compile_text(policy_with(10, 10), {"big.txt": addresses(10)})
    large = compile_text(policy_with(5000, 1000), {"big.txt": addresses(5000)})
    assert rule_counts(small) == rule_counts(large)
    zones_v4 = {s.name: len(s.elements) for s in large.table.sets}["zones_v4"]
    assert zones_v4 == 5000  # the addresses live in one map, not in rules; one interval each (issue 9)


def test_issue9_the_zone_of_any_is_no_interval_of_the_map_but_where_a_miss_goes():
    """Issue 9, "Fewer elements": the map holds the other zones' networks only, not also every gap between them;
    right after each family's map lookup, a source it does not hold goes to the zone of `any`."""
    compilation = compile_text(policy_with(3, 1), {"big.txt": addresses(3)})
    maps = {s.name: render_nft_set(s) for s in compilation.table.sets if s.name.startswith("zones_v")}
    assert maps == {"zones_v4": ["10.0.0.0/24 : goto zone_big", "10.0.2.0/24 : goto zone_big",
                                 "10.0.4.0/24 : goto zone_big"]}
    dispatch = [render_rule(r) for r in next(c for c in compilation.table.chains if c.name == "input").rules]
    start = dispatch.index('ip saddr vmap @zones_v4 comment "zones by IPv4 source"')
    assert dispatch[start:] == [
        'ip saddr vmap @zones_v4 comment "zones by IPv4 source"',
        'meta nfproto ipv4 goto zone_internet comment "IPv4 source in no other zone: zone internet"',
        'meta nfproto ipv6 goto zone_internet comment "IPv6 source in no other zone: zone internet"',
        'counter name "drop/no-zone" drop comment "source in no zone"']
    assert 'ip6 saddr vmap' not in " ".join(dispatch)  # no IPv6 zone but `any`: no IPv6 map at all


def test_issue9_without_a_zone_of_any_a_miss_is_dropped_as_no_zone():
    compilation = compile_text("zone lan = 10.0.0.0/8, fd00::/8\nallow lan -> ssh\n")
    dispatch = [render_rule(r) for r in next(c for c in compilation.table.chains if c.name == "input").rules]
    assert dispatch[-3:] == ['ip saddr vmap @zones_v4 comment "zones by IPv4 source"',
                             'ip6 saddr vmap @zones_v6 comment "zones by IPv6 source"',
                             'counter name "drop/no-zone" drop comment "source in no zone"']


def render_nft_set(s) -> list[str]:
    text = CONTAINERS[type(s)](s)
    return text.split("elements = { ", 1)[1].rsplit(" }", 1)[0].split(",\n\t\t     ")


@pytest.mark.slow  # compiles 300 services: 0.2 s
def test_rules_on_the_path_do_not_grow_with_rules_or_services():
    def policy(count: int) -> str:
        services = "".join(f"service s{i} = tcp {20000 + 2 * i}\n" for i in range(count))
        rules = "".join(f"allow lan -> s{i}\n" for i in range(count))
        return "zone lan = 10.0.0.0/8\n" + services + rules

    few, many = compile_text(policy(2)), compile_text(policy(300))
    zone_chain = {c.name: len(c.rules) for c in many.table.chains}["zone_lan"]
    assert zone_chain == {c.name: len(c.rules) for c in few.table.chains}["zone_lan"]
    assert {c.name: len(c.rules) for c in many.table.chains}["lan/s299/r300"] == 1


def test_same_policy_compiles_to_byte_identical_text():
    text = "zone lan = 192.168.1.0/24, fd00::/64\nzone internet = any\nallow lan -> any\n" \
           "allow internet -> zimbra.public limit 50/second burst 100\n"
    assert render_nft(compile_text(text).table) == render_nft(compile_text(text).table)


def test_only_nftc_table_is_replaced():
    script = render_nft(compile_text("zone internet = any\nallow internet -> smtp\n").table)
    lines = script.splitlines()
    assert lines[:3] == ["table inet zfw {}", "delete table inet zfw", "table inet zfw {"]
    assert "flush ruleset" not in script
    assert sum(line.startswith("table ") for line in lines) == 2


def test_no_forward_chain_is_emitted():
    script = render_nft(compile_text("zone internet = any\nallow internet -> smtp\n").table)
    assert "hook forward" not in script


def test_every_policy_rule_carries_its_source_line():
    compilation = compile_text("zone internet = any\n\nallow internet -> smtp\n")
    action = next(c for c in compilation.table.chains if c.name == "internet/smtp/r1")
    assert [rule.comment for rule in action.rules] == ["policy.zfw:3 r1"]


def test_memcached_udp_is_dropped_on_input_and_output():
    script = render_nft(compile_text("zone internet = any\nallow internet -> smtp\n").table)
    assert 'udp dport 11211 counter name "drop/memcached-udp" drop' in script
    assert 'oif != "lo" udp sport 11211 counter name "output/memcached-reflection" drop' in script


@pytest.mark.parametrize("first, last, length", [
    ("10.0.0.0", "10.0.0.255", 24),
    ("10.0.0.1", "10.0.0.1", 32),
    ("10.0.0.1", "10.0.0.2", None),
    ("10.0.0.2", "10.0.0.5", None),
    ("10.0.0.2", "10.0.0.3", 31),
    ("0.0.0.0", "255.255.255.255", 0),
    ("fd00::", "fd00::ffff", 112),
])
def test_an_interval_has_a_prefix_length_when_it_is_one_cidr(first, last, length):
    """What the renderers write an interval of a zone map as: an address, a prefix or a range."""
    a, b = ipaddress.ip_address(first), ipaddress.ip_address(last)
    assert ir.AddressIntervals(a.version, (int(a),), (int(b),), ("z",)).prefix_lengths() == [length]
