"""Parser unit tests: parsed statements equal statements built by hand (spans are outside equality by design)."""

from __future__ import annotations

import ipaddress

import pytest

from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.language.loader import load_policy
from nftc.language.parser import parse_text


def parse(text: str) -> tuple[m.Statement, ...]:
    return parse_text(text, "test.zfw")


def parse_one(text: str) -> m.Statement:
    (statement,) = parse(text)
    return statement


def net(text: str) -> m.IPNetwork:
    return ipaddress.ip_network(text)


def names(*items: str) -> tuple[m.Name, ...]:
    return tuple(m.Name(item) for item in items)


def tcp(first: int, last: int | None = None) -> m.PortRange:
    return m.PortRange("tcp", first, first if last is None else last)


def udp(first: int, last: int | None = None) -> m.PortRange:
    return m.PortRange("udp", first, first if last is None else last)


# Zones


def test_zone_of_ipv4_and_ipv6_addresses_and_cidrs():
    assert parse_one("zone lan = 192.168.1.0/24, 192.0.2.7, fd00:1::/64, 2001:db8::1\n") == m.Zone("lan", (
        m.AddressSource(net("192.168.1.0/24")),
        m.AddressSource(net("192.0.2.7/32")),
        m.AddressSource(net("fd00:1::/64")),
        m.AddressSource(net("2001:db8::1/128")),
    ))


def test_zone_of_every_address():
    assert parse_one("zone internet = any\n") == m.Zone("internet", (m.AnySource(),))


def test_zone_of_interfaces_with_a_wildcard():
    assert parse_one("zone dmz = iface eth1, iface vlan.20, iface wg*\n") == m.Zone("dmz", (
        m.InterfaceSource("eth1"), m.InterfaceSource("vlan.20"), m.InterfaceSource("wg*"),
    ))


def test_zone_from_an_address_file_is_filled_by_the_loader_not_the_parser():
    assert parse_one('zone blocked = file "lists/blocked.txt"\n') == m.Zone(
        "blocked", (m.FileSource("lists/blocked.txt", ()),))


def test_zone_of_run_time_addresses():
    assert parse_one("zone banned = dynamic\n") == m.Zone("banned", (m.DynamicSource(),))


def test_zone_mixing_every_kind_of_source_keeps_their_order():
    zone = parse_one('zone mixed = 10.0.0.0/8, iface eth2, file "x.txt", any\n')
    assert zone == m.Zone("mixed", (
        m.AddressSource(net("10.0.0.0/8")), m.InterfaceSource("eth2"), m.FileSource("x.txt", ()), m.AnySource(),
    ))


# Services and groups


def test_service_with_one_port():
    assert parse_one("service webdav = tcp 8008\n") == m.Service("webdav", (tcp(8008),))


def test_service_port_list_keeps_its_protocol_until_another_is_named():
    assert parse_one('service media = tcp 8008, 8443, udp 10000-10010, 5060 "voice and video"\n') == m.Service(
        "media", (tcp(8008), tcp(8443), udp(10000, 10010), udp(5060)), "voice and video")


def test_service_with_a_range():
    assert parse_one("service amavis_pool = tcp 10024-10032\n") == m.Service("amavis_pool", (tcp(10024, 10032),))


def test_service_range_of_one_port_equals_the_port():
    assert parse_one("service one = udp 514-514\n") == m.Service("one", (udp(514),))


def test_group_of_built_in_and_user_services():
    assert parse_one('group mail = smtp, zimbra.public, webdav "what users reach"\n') == m.Group(
        "mail", names("smtp", "zimbra.public", "webdav"), "what users reach")


def test_group_without_description():
    assert parse_one("group admin = ssh\n") == m.Group("admin", names("ssh"))


# Rules


@pytest.mark.parametrize("action", ["allow", "deny", "reject"])
def test_rule_with_each_action(action):
    assert parse_one(f"{action} lan -> ssh\n") == m.Rule(action, names("lan"), names("ssh"))


def test_rule_with_several_zones_and_services():
    assert parse_one("allow lan, vpn, localhost -> zimbra.admin, ssh\n") == m.Rule(
        "allow", names("lan", "vpn", "localhost"), names("zimbra.admin", "ssh"))


def test_rule_to_any_port():
    assert parse_one("allow lan -> any\n") == m.Rule("allow", names("lan"), names("any"))


def test_rule_with_a_per_source_limit_and_burst():
    assert parse_one("allow cluster -> zimbra.memcached limit 200/second per source burst 400\n") == m.Rule(
        "allow", names("cluster"), names("zimbra.memcached"),
        limit=m.Limit(m.Rate(200, "second"), per_source=True, burst=400))


def test_rule_limit_without_burst_bursts_at_its_rate():
    rule = parse_one("allow internet -> smtp limit 30/minute\n")
    assert rule.limit == m.Limit(m.Rate(30, "minute"), per_source=False, burst=30)


@pytest.mark.parametrize("unit", ["second", "minute", "hour", "day"])
def test_rate_units(unit):
    assert parse_one(f"allow a -> ssh limit 5/{unit}\n").limit.rate == m.Rate(5, unit)


def test_rule_with_log():
    assert parse_one("deny internet -> zimbra.admin log\n") == m.Rule(
        "deny", names("internet"), names("zimbra.admin"), log=True)


def test_rule_with_limit_and_log():
    assert parse_one("allow a -> ssh limit 3/minute per source log\n") == m.Rule(
        "allow", names("a"), names("ssh"), limit=m.Limit(m.Rate(3, "minute"), True, 3), log=True)


# Assertions


def test_assertion_must_never_reach():
    assert parse_one("assert internet !-> zimbra.admin, zimbra.internal\n") == m.Assertion(
        names("internet"), names("zimbra.admin", "zimbra.internal"), reach=False)


def test_assertion_must_reach():
    assert parse_one("assert lan, internet -> zimbra.public\n") == m.Assertion(
        names("lan", "internet"), names("zimbra.public"), reach=True)


# Settings


def test_log_drops_with_defaults():
    assert parse_one("log drops\n") == m.LogDrops(m.Rate(10, "minute"), 5, "nftc drop: ")


def test_log_drops_with_rate_burst_and_prefix():
    assert parse_one('log drops 5/second burst 10 prefix "zfw drop: "\n') == m.LogDrops(
        m.Rate(5, "second"), 10, "zfw drop: ")


def test_icmp_echo_off():
    assert parse_one("icmp echo off\n") == m.IcmpEcho(False, None, 0)


def test_icmp_echo_on_with_a_rate():
    assert parse_one("icmp echo 5/second burst 10\n") == m.IcmpEcho(True, m.Rate(5, "second"), 10)


def test_icmp_echo_rate_without_burst_bursts_at_its_rate():
    assert parse_one("icmp echo 4/second\n") == m.IcmpEcho(True, m.Rate(4, "second"), 4)


def test_table_name():
    assert parse_one("table zimbra\n") == m.TableName("zimbra")


def test_include():
    assert parse_one('include "common/zones.zfw"\n') == m.Include("common/zones.zfw")


# Layout: comments, blank lines, line endings


POLICY = """\
# a comment on its own line
table zimbra   # and one after a statement

zone lan = 192.168.1.0/24
\t
allow lan -> ssh
"""
EXPECTED = (m.TableName("zimbra"), m.Zone("lan", (m.AddressSource(net("192.168.1.0/24")),)),
            m.Rule("allow", names("lan"), names("ssh")))


def test_comments_and_blank_lines_are_ignored():
    assert parse(POLICY) == EXPECTED


def test_crlf_line_endings_parse_the_same():
    assert parse(POLICY.replace("\n", "\r\n")) == EXPECTED


def test_file_without_a_final_newline():
    assert parse(POLICY.rstrip("\n")) == EXPECTED


def test_file_of_only_comments_and_blank_lines_has_no_statements():
    assert parse("\n# nothing yet\n\n   \n") == ()
    assert parse("") == ()


def test_statements_keep_their_source_order():
    kinds = [type(s) for s in parse("allow a -> ssh\nzone a = any\nlog drops\nservice s = tcp 1\n")]
    assert kinds == [m.Rule, m.Zone, m.LogDrops, m.Service]


def test_a_word_that_is_a_keyword_elsewhere_can_be_a_name():
    assert parse_one("zone service = 10.0.0.0/8\n") == m.Zone("service", (m.AddressSource(net("10.0.0.0/8")),))


# Spans: outside equality, so checked on their own


def test_spans_point_at_names_and_statements():
    zone, rule = parse("zone lan = 10.0.0.0/8\n\n  allow lan -> ssh, smtp\n")
    assert (zone.span.line, zone.span.column, zone.span.end_column) == (1, 6, 9)
    assert (zone.sources[0].span.line, zone.sources[0].span.column) == (1, 12)
    assert (rule.span.line, rule.span.column) == (3, 3)
    assert [(n.span.line, n.span.column) for n in rule.services] == [(3, 16), (3, 21)]
    assert {s.span.file for s in (zone, rule)} == {"test.zfw"}


def test_spans_count_lines_the_same_with_crlf():
    (rule,) = parse("# c\r\n\r\nallow lan -> ssh\r\n")
    assert (rule.span.line, rule.services[0].span.column) == (3, 14)


def test_spans_are_outside_equality():
    assert m.Name("ssh", m.Span("a.zfw", 1, 1)) == m.Name("ssh", m.Span("b.zfw", 9, 9))


# Value errors are collected, not raised one by one


def test_value_errors_of_one_file_are_all_reported():
    with pytest.raises(PolicyError) as raised:
        parse("zone a = 10.0.0.1/8\nservice s = tcp 0, 70000\nservice t = tcp 9-1\n")
    assert [(d.span.line, d.message) for d in raised.value.diagnostics] == [
        (1, "'10.0.0.1/8' has host bits set"),
        (2, "port 0 is out of range (1-65535)"),
        (2, "port 70000 is out of range (1-65535)"),
        (3, "port range 9-1 is reversed"),
    ]


def test_a_syntax_error_stops_at_the_first_one():
    with pytest.raises(PolicyError) as raised:
        parse("allow lan ssh\nallow -> ssh\n")
    (diagnostic,) = raised.value.diagnostics
    assert (diagnostic.span.line, diagnostic.span.column, diagnostic.message) == (1, 11, "missing '->' before 'ssh'")


# The loader: includes and address files


def test_include_is_replaced_by_the_included_statements_in_place(tmp_path):
    (tmp_path / "common").mkdir()
    (tmp_path / "common" / "zones.zfw").write_text("zone lan = 192.168.1.0/24\n")
    (tmp_path / "main.zfw").write_text('include "common/zones.zfw"\nallow lan -> ssh\n')
    sources: dict[str, str] = {}
    policy = load_policy(str(tmp_path / "main.zfw"), sources)
    assert policy.zones == (m.Zone("lan", (m.AddressSource(net("192.168.1.0/24")),)),)
    assert policy.rules == (m.Rule("allow", names("lan"), names("ssh")),)
    assert policy.zones[0].span.file == str(tmp_path / "common" / "zones.zfw")
    assert set(sources) == {str(tmp_path / "main.zfw"), str(tmp_path / "common" / "zones.zfw")}


def test_included_statements_come_where_the_include_stands(tmp_path):
    (tmp_path / "first.zfw").write_text("allow a -> smtp\n")
    (tmp_path / "main.zfw").write_text('zone a = any\nallow a -> ssh\ninclude "first.zfw"\nallow a -> imaps\n')
    policy = load_policy(str(tmp_path / "main.zfw"), {})
    assert [r.services[0].name for r in policy.rules] == ["ssh", "smtp", "imaps"]


def test_address_file_is_read_relative_to_the_policy_with_comments_and_blank_lines(tmp_path):
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "partners.txt").write_text(
        "# partner relays\n\n203.0.113.0/28   # relay A\n  2001:db8::/48\r\n198.51.100.7\n")
    (tmp_path / "p.zfw").write_text('zone partners = file "lists/partners.txt"\n')
    (zone,) = load_policy(str(tmp_path / "p.zfw"), {}).zones
    assert zone == m.Zone("partners", (m.FileSource("lists/partners.txt", m.AddressList(
        (m.pack(net("203.0.113.0/28")), m.pack(net("198.51.100.7/32"))), (m.pack(net("2001:db8::/48")),))),))
    assert list(zone.sources[0].networks) == [net("203.0.113.0/28"), net("198.51.100.7/32"), net("2001:db8::/48")]


def test_policy_without_settings_gets_the_defaults(tmp_path):
    (tmp_path / "p.zfw").write_text("zone lan = any\n")
    policy = load_policy(str(tmp_path / "p.zfw"), {})
    assert (policy.table, policy.log_drops, policy.icmp_echo) == (m.DEFAULT_TABLE, None, m.DEFAULT_ECHO)
