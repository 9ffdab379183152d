"""The built-in Zimbra catalog: coverage of the article's ports, exposures, groups and the text renderers."""

from __future__ import annotations

import re

import pytest

from nftc.semantics import catalog
from nftc.language.model import PortRange, Service

ARTICLE_PUBLIC = (25, 80, 110, 143, 443, 587, 993, 995, 5222, 5223, 9071)
ARTICLE_INTERNAL = (389, 636, 3310, 5269, 7025, 7047, 7071, 7072, 7073, 7110, 7143, 7171, 7306, 7780, 7993, 7995,
                    8080, 8443, 8735, 8736, 10024, 10025, 10026, 10028, 10029, 10032, 23232, 23233, 11211)
ARTICLE_MULTISERVER = (25, 80, 110, 143, 443, 465, 587, 993, 995, 3443, 5222, 5223, 7071, 9071)
MISSING_FROM_ARTICLE = (22, 53, 514, 7026, 8465, 10027, 10030, 10031, 10663, 8143, 8993, 9443, 7074, 7084, 7085,
                        8081, 8742, 8743, 9980)
PUBLIC_PORTS = (25, 80, 110, 143, 443, 465, 587, 993, 995)


def group_ports(name: str) -> set[int]:
    return {r.first for e in catalog.group_entries(name) for r in e.ports}


def the_entry(name: str) -> catalog.CatalogEntry:
    found = catalog.entry(name)
    assert found is not None, name
    return found


@pytest.mark.parametrize("port", ARTICLE_PUBLIC + ARTICLE_INTERNAL + ARTICLE_MULTISERVER)
def test_every_port_the_article_names_is_in_the_catalog(port):
    assert catalog.entries_for_port(port)


@pytest.mark.parametrize("port", MISSING_FROM_ARTICLE)
def test_ports_the_article_misses_are_in_the_catalog_and_say_so(port):
    found = catalog.entries_for_port(port)
    assert found
    assert all(e.article == catalog.NOT_IN_ARTICLE for e in found)


def test_multiserver_group_is_exactly_the_articles_fourteen_ports():
    entries = catalog.group_entries("zimbra.multiserver")
    assert sorted(r.first for e in entries for r in e.ports) == sorted(ARTICLE_MULTISERVER)


def test_multiserver_group_says_it_is_not_server_to_server_traffic():
    description = catalog.group("zimbra.multiserver").description
    assert "public list plus the admin ports" in description
    assert "not real server-to-server traffic" in description


def test_public_group_has_the_nine_mail_and_web_ports():
    assert group_ports("zimbra.public") == set(PUBLIC_PORTS)


def test_public_group_leaves_out_certauth_chat_and_admin_proxy():
    assert not group_ports("zimbra.public") & {3443, 5222, 5223, 7071, 9071}


def test_internal_group_contains_admin_ldap_memcached_and_lmtp():
    assert {7071, 389, 11211, 7025} <= group_ports("zimbra.internal")


def test_internal_group_contains_no_public_port_and_no_ssh():
    members = {m.name for m in catalog.group("zimbra.internal").members}
    assert not group_ports("zimbra.internal") & set(PUBLIC_PORTS)
    assert "ssh" not in members


def test_internal_group_is_every_cluster_and_localhost_entry():
    expected = {e.name for e in catalog.ENTRIES if e.exposure in ("cluster", "localhost")}
    assert {m.name for m in catalog.group("zimbra.internal").members} == expected
    assert {e.name for e in catalog.internal_entries()} == expected


def test_admin_console_7071_is_not_public():
    admin = the_entry("admin")
    assert admin.ports == (PortRange("tcp", 7071, 7071),)
    assert admin.exposure == "cluster"
    assert "zimbra.public" not in catalog.groups_containing("admin")


def test_admin_proxy_9071_is_for_admin_networks_and_off_by_default():
    admin_proxy = the_entry("admin_proxy")
    assert (admin_proxy.exposure, admin_proxy.default_on) == ("admin", False)


def test_only_ssh_and_admin_proxy_have_admin_exposure():
    assert {e.name for e in catalog.ENTRIES if e.exposure == "admin"} == {"ssh", "admin_proxy"}


def test_admin_group_is_7071_and_9071():
    assert group_ports("zimbra.admin") == {7071, 9071}


def test_chat_group_is_xmpp_and_xmpps_on_8_7_6_to_9():
    assert group_ports("zimbra.chat") == {5222, 5223}
    assert all(e.versions == "8.7.6-9.x" for e in catalog.group_entries("zimbra.chat"))


def test_memcached_is_tcp_only():
    assert {r.protocol for r in the_entry("memcached").ports} == {"tcp"}


def test_memcached_description_says_udp_is_always_dropped():
    description = the_entry("memcached").description
    assert "UDP 11211" in description and "CVE-2018-1000115" in description


def test_memcached_is_reachable_by_the_cluster_not_localhost_only():
    assert the_entry("memcached").exposure == "cluster"


def test_dnscache_listens_on_tcp_and_udp_53():
    assert set(the_entry("dnscache").ports) == {PortRange("tcp", 53, 53), PortRange("udp", 53, 53)}


def test_syslog_is_udp_514():
    assert the_entry("syslog").ports == (PortRange("udp", 514, 514),)


def test_http_and_https_are_separate_services():
    assert [e.name for e in catalog.entries_for_port(80)] == ["http"]
    assert [e.name for e in catalog.entries_for_port(443)] == ["https"]


@pytest.mark.parametrize("port", [10024, 10025, 10026, 10027, 10028, 10029, 10030, 10031, 10032])
def test_each_mta_internal_listener_is_its_own_local_entry(port):
    (found,) = catalog.entries_for_port(port)
    assert found.ports == (PortRange("tcp", port, port),)
    assert found.exposure == "localhost"


def test_article_descriptions_of_10025_and_10028_are_flagged_wrong():
    assert the_entry("postfix_return").article.startswith("wrong")
    assert the_entry("postfix_reinject").article.startswith("wrong")


@pytest.mark.parametrize("name, expected", [
    ("zimbra.ldap", {389, 636}),
    ("zimbra.memcached", {11211}),
    ("zimbra.logger", {514}),
    ("zimbra.spell", {7780}),
    ("zimbra.mta", {25}),
    ("zimbra.mailbox", {7025, 7071, 7072, 7073, 7110, 7143, 7993, 7995, 8080, 8443}),
    ("zimbra.proxy", {80, 110, 143, 443, 993, 995}),
])
def test_role_groups_hold_what_other_servers_reach(name, expected):
    assert group_ports(name) == expected


def test_every_group_member_names_an_existing_entry():
    for g in catalog.GROUPS:
        assert g.name.startswith("zimbra.")
        for member in g.members:
            assert catalog.entry(member.name) is not None, (g.name, member)


def test_no_two_entries_or_groups_share_a_name():
    names = [e.name for e in catalog.ENTRIES]
    groups = [g.name for g in catalog.GROUPS]
    assert len(names) == len(set(names))
    assert len(groups) == len(set(groups))


def test_entries_name_a_role_and_tcp_or_udp_ranges():
    """What CatalogEntry.__post_init__ does not check (it refuses bad names, exposures, unknown roles and no ports)."""
    for e in catalog.ENTRIES:
        assert e.roles, e.name
        assert all(r.protocol in ("tcp", "udp") and 1 <= r.first <= r.last <= 65535 for r in e.ports), e.name


def test_entries_are_sorted_by_first_port_then_name():
    keys = [(e.ports[0].first, e.name) for e in catalog.ENTRIES]
    assert keys == sorted(keys)


def test_no_port_and_protocol_belongs_to_two_entries():
    seen = [(r.protocol, r.first) for e in catalog.ENTRIES for r in e.ports]
    assert len(seen) == len(set(seen))


def test_public_entries_are_exactly_the_external_list_without_9071():
    public = {r.first for e in catalog.ENTRIES if e.exposure == "public" for r in e.ports}
    assert public == set(PUBLIC_PORTS) | {3443, 5222, 5223}


def test_public_entries_the_article_gets_wrong_or_leaves_out_say_so_and_only_those():
    noted = {r.first for e in catalog.ENTRIES if e.exposure == "public" and e.article for r in e.ports}
    assert noted == {465, 587, 3443, 5222, 5223}


@pytest.mark.parametrize("port", [465, 3443])
def test_article_note_says_it_omits_465_and_3443_from_its_public_list(port):
    (found,) = catalog.entries_for_port(port)
    assert "omitted" in found.article
    assert "up to 12" in found.article


def test_ports_that_are_off_by_default():
    off = {r.first for e in catalog.ENTRIES if not e.default_on for r in e.ports}
    assert {9071, 3443, 7026, 10031, 9443} <= off
    assert {5223, 8143, 8993, 7047, 7084, 7085, 8081, 8742, 8743, 9980} <= off  # issue 11: optional or NE
    assert not off & set(PUBLIC_PORTS)


def test_entries_for_port_matches_a_range_on_any_protocol():
    assert [e.name for e in catalog.entries_for_port(53)] == ["dnscache"]
    assert [e.name for e in catalog.entries_for_port(7085)] == ["onlyoffice"]
    assert catalog.entries_for_port(1) == ()


def test_services_are_model_services_without_a_span():
    services = catalog.services()
    assert len(services) == len(catalog.ENTRIES)
    assert all(s.span is None for s in services)
    assert Service("smtp", (PortRange("tcp", 25, 25),), the_entry("smtp").description) in services


def test_entry_of_unknown_name_is_none():
    assert catalog.entry("nope") is None
    assert catalog.group_entries("zimbra.nope") == ()


@pytest.mark.parametrize("name, ports, roles, exposure, bind, refusal", [
    ("Bad-Name", (PortRange("tcp", 1, 1),), ("all",), "public", "all", "is not [a-z][a-z0-9_]*"),
    ("fine", (PortRange("tcp", 1, 1),), ("all",), "world", "all", "unknown exposure 'world'"),
    ("fine", (PortRange("tcp", 1, 1),), ("webmail",), "public", "all", "needs ports and known roles"),
    ("fine", (), ("all",), "public", "all", "needs ports and known roles"),
    ("fine", (PortRange("tcp", 1, 1),), ("all",), "public", "lan", "unknown bind 'lan'"),
], ids=["name", "exposure", "role", "no-ports", "bind"])
def test_a_bad_entry_is_refused_when_the_catalog_is_built(name, ports, roles, exposure, bind, refusal):
    """CatalogEntry checks itself, so no test repeats those checks over the entries (issue 8; bind: issue 11)."""
    with pytest.raises(ValueError, match=re.escape(refusal)):
        catalog.CatalogEntry(name, ports, "", roles, "all", exposure, True, "", bind)


def test_format_entry_for_7071_says_the_article_opens_it_to_the_world():
    (admin,) = catalog.entries_for_port(7071)
    text = catalog.format_entry(admin)
    assert text.startswith("admin: ")
    assert "7071/tcp" in text
    assert "article:" in text and "to the world" in text
    assert "zimbra.admin" in text and "zimbra.internal" in text and "zimbra.multiserver" in text


def test_format_entry_says_off_by_default():
    assert "off by default" in catalog.format_entry(the_entry("admin_proxy"))


def test_format_table_has_a_header_and_one_aligned_row_per_entry():
    lines = catalog.format_table(catalog.ENTRIES).splitlines()
    assert lines[0].split() == ["PORTS", "NAME", "EXPOSURE", "ROLES", "VERSIONS", "DESCRIPTION"]
    assert len(lines) == len(catalog.ENTRIES) + 1
    name_column = lines[0].index("NAME")
    assert all(line[name_column - 2:name_column] == "  " for line in lines)
    assert "53/tcp 53/udp" in catalog.format_table([the_entry("dnscache")])


def test_format_ports_groups_ports_per_protocol():
    assert catalog.format_ports(the_entry("backends_mail").ports) == "7110,7143,7993,7995/tcp"


# Issue 11 item "catalog corrections": binds, versions and the entries the role matrix needs
# (docs/research/zimbra-roles.md sections 2 and 3).

LOOPBACK_PORTS = {53, 3310, 7026, 7171, 7306, 8465, 10024, 10025, 10026, 10027, 10028, 10029, 10030, 10031, 10032,
                  10663, 23232, 23233}


def test_item_catalog_loopback_binds_are_the_researched_ones():
    """Research section 2: these listeners bind 127.0.0.1/::1 in a real Zimbra; every other binds all addresses."""
    loopback = {r.first for e in catalog.ENTRIES if e.bind == "loopback" for r in e.ports}
    assert loopback == LOOPBACK_PORTS
    assert {e.bind for e in catalog.ENTRIES} == set(catalog.BINDS)


def test_item_catalog_localhost_exposure_is_exactly_a_loopback_bind():
    """What nftc keeps local is what Zimbra binds to loopback: nothing the cluster needs is loopback-bound."""
    for e in catalog.ENTRIES:
        assert (e.exposure == "localhost") == (e.bind == "loopback"), e.name


def test_item_catalog_ldap_memcached_lmtp_and_7071_to_7073_bind_all_addresses():
    """The ports README says are really exposed to a LAN by a blanket ufw rule."""
    for port in (389, 11211, 7025, 7071, 7072, 7073):
        (found,) = catalog.entries_for_port(port)
        assert found.bind == "all", port


@pytest.mark.parametrize("name, ports, role, versions, default_on", [
    ("docs_callback", (7074,), "mailbox", "10.0+", True),
    ("onlyoffice", (7084, 7085), "onlyoffice", "10.0+ NE", False),
    ("ng_proxy", (8742, 8743), "mailbox", "8.8.10-9.x", False),
    ("zimbra_docs", (9980,), "docs", "8.8.9-9.x", False),
    ("license_daemon", (8081,), "license", "10.1+ NE", False),
    ("convertd", (7047,), "mailbox", "6.0+ NE", False),
])
def test_item_catalog_cluster_entries_of_the_role_matrix(name, ports, role, versions, default_on):
    found = the_entry(name)
    assert tuple(r.first for r in found.ports) == ports and {r.protocol for r in found.ports} == {"tcp"}
    assert (found.exposure, found.bind, found.roles, found.versions, found.default_on) == (
        "cluster", "all", (role,), versions, default_on)


def test_item_catalog_7074_is_renamed_docs_callback():
    assert catalog.entry("docs") is None
    assert [e.name for e in catalog.entries_for_port(7074)] == ["docs_callback"]


def test_item_catalog_clamd_is_local_and_not_an_mta_cluster_port():
    clamd = the_entry("clamd")
    assert (clamd.exposure, clamd.bind) == ("localhost", "loopback")
    assert "zimbra.mta" not in catalog.groups_containing("clamd")


@pytest.mark.parametrize("name, versions", [
    ("admin_proxy", "8.0+"), ("certauth", "7.1.1+"), ("milter", "7.0+"), ("dnscache", "8.5+"),
    ("cbpolicyd", "8.5+"), ("mta_auth", "8.7+"), ("imapd", "8.8.1+"),
])
def test_item_catalog_version_ranges(name, versions):
    assert the_entry(name).versions == versions


def test_item_catalog_every_service_of_the_role_matrix_is_in_the_catalog():
    from nftc.semantics import roles
    assert [name for name in roles.SERVICES if catalog.entry(name) is None] == []
    assert set(catalog.ROLES) == set(roles.ROLES) | {"all"}


def test_item_catalog_entry_text_says_where_it_binds():
    assert "  bind:     loopback only, 127.0.0.1/::1" in catalog.format_entry(the_entry("mysql"))
    assert "  bind:     all addresses" in catalog.format_entry(the_entry("lmtp"))
