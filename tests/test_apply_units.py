"""The apply side without a kernel: dynamic zones in the language, reading listings, the lockout guard, the lock."""

from __future__ import annotations

import ipaddress

import pytest

from nftc.system import live
from nftc.language import model as m
from nftc.semantics.zones import zone_of
from nftc.system.lockout import EndpointError, from_ssh_connection, lockout_problem, parse_admin_from
from nftc.language.parser import parse_text
from nftc.backend.render_nft import render_nft
from nftc.system.state import Lock, StateDir, StateError

from helpers import compile_text

DYNAMIC = "zone internet = any\nzone blocklist = dynamic\nallow internet -> smtp\n"


def test_dynamic_parses_to_a_dynamic_source():
    zone = next(s for s in parse_text(DYNAMIC, "p.zfw") if isinstance(s, m.Zone) and s.name == "blocklist")
    assert zone == m.Zone("blocklist", (m.DynamicSource(),))
    assert zone.dynamic


def test_a_dynamic_zone_is_looked_up_before_the_zone_maps():
    text = render_nft(compile_text(DYNAMIC).table)
    assert "\tset dyn_blocklist_v4 {" in text and "\tset dyn_blocklist_v6 {" in text
    dynamic = text.index("ip saddr @dyn_blocklist_v4 goto ban_blocklist")  # it allows nothing: a ban (issue 10)
    assert dynamic < text.index("meta nfproto ipv4 goto zone_internet")  # only `any`: no map, the fallback


LISTING = """\
table inet zfw {
	comment "nftc 0.1.0 policy site.zfw sha256:%s"
	counter lan/ssh/r2 {
		comment "site.zfw:5 r2"
		packets 7 bytes 420
	}

	map ports_lan {
		type inet_proto . inet_service : verdict
		flags interval
		elements = { tcp . 22 : goto lan/ssh/r2 }
	}

	set dyn_blocklist_v4 {
		type ipv4_addr
		flags interval
		elements = { 192.0.2.66,
			     198.18.0.0/15 }
	}

	chain zone_lan {
		comment "zone lan"
		meta l4proto . th dport vmap @ports_lan
		counter name "lan/default-drop" drop comment "zone lan: no rule"
	}

	chain lan/ssh/r2 {
		counter name "lan/ssh/r2" accept comment "site.zfw:5 r2"
	}
}
""" % ("ab" * 32)


def test_normalise_drops_counter_values_and_dynamic_elements_only():
    text = live.normalise(LISTING)
    assert "packets 7" not in text and "192.0.2.66" not in text
    assert "elements = { tcp . 22 : goto lan/ssh/r2 }" in text and 'counter name "lan/ssh/r2" accept' in text


def test_listing_readers_find_digest_openings_and_dynamic_elements():
    assert live.digest(LISTING) == "ab" * 32
    assert live.policy_name(LISTING) == "site.zfw"
    assert live.openings(LISTING) == {live.Opening("lan", "ssh", "allow", "r2")}
    assert live.set_elements(LISTING) == {"ports_lan": ("tcp . 22 : goto lan/ssh/r2",)}


def test_policy_changes_name_gained_and_lost_services():
    gained = LISTING.replace("\n}\n", '\n\n\tchain lan/imap/r3 {\n\t\tcounter name "lan/imap/r3" accept\n\t}\n}\n')
    assert "zone lan gains imap (rule r3)" in live.policy_changes(LISTING, gained)
    assert "zone lan loses imap (was allowed)" in live.policy_changes(gained, LISTING)


def test_drift_ignores_counters_and_dynamic_elements_but_not_rules():
    busier = LISTING.replace("packets 7 bytes 420", "packets 9 bytes 900").replace("192.0.2.66", "192.0.2.99")
    assert live.drift(busier, LISTING) == []
    edited = LISTING.replace('\t\tcounter name "lan/default-drop"', '\t\ttcp dport 8080 accept\n'
                             '\t\tcounter name "lan/default-drop"')
    assert live.drift(edited, LISTING) == ["+\t\ttcp dport 8080 accept"]


SITE = "zone internet = any\nzone admin = 198.51.100.0/24\nzone lan = iface lan*\nallow admin -> ssh\n"


def test_the_zone_of_an_address_is_the_one_the_ruleset_dispatches_to():
    checked = compile_text(SITE).checked
    assert zone_of(checked, ipaddress.ip_address("198.51.100.9"), "eth0") == "admin"
    assert zone_of(checked, ipaddress.ip_address("203.0.113.1"), "eth0") == "internet"
    assert zone_of(checked, ipaddress.ip_address("198.51.100.9"), "lan0") == "lan"
    assert zone_of(checked, ipaddress.ip_address("::1"), None) == "localhost"


def test_the_lockout_guard_names_the_zone_and_the_missing_rule():
    checked = compile_text(SITE).checked
    assert lockout_problem(checked, parse_admin_from("198.51.100.9"), None) is None
    problem = lockout_problem(checked, from_ssh_connection("203.0.113.1 40000 192.0.2.1 22"), None)
    assert "zone 'internet'" in problem and "allow internet -> ssh" in problem
    assert "zone 'admin'" in lockout_problem(checked, parse_admin_from("198.51.100.9:2222"), None)


@pytest.mark.parametrize("text,address,port", [("192.0.2.1", "192.0.2.1", 22), ("192.0.2.1:2222", "192.0.2.1", 2222),
                                               ("2001:db8::1", "2001:db8::1", 22), ("[2001:db8::1]:2200",
                                                                                     "2001:db8::1", 2200)])
def test_admin_from_accepts_address_and_optional_port(text, address, port):
    endpoint = parse_admin_from(text)
    assert (str(endpoint.address), endpoint.port) == (address, port)


@pytest.mark.parametrize("text", ["host.example", "192.0.2.1:99999", "192.0.2.1:ssh"])
def test_admin_from_rejects_what_is_not_an_address(text):
    with pytest.raises(EndpointError):
        parse_admin_from(text)


def test_a_held_lock_times_out_naming_the_holder(tmp_path):
    state, host_dir = StateDir(str(tmp_path)), str(tmp_path / "run")  # not the machine's own /run/nftc
    with Lock(state, 0, host_dir=host_dir):
        with pytest.raises(StateError, match=r"pid \d+"):
            with Lock(state, 0.05, host_dir=host_dir):
                pass
    with Lock(state, 0, host_dir=host_dir):
        pass
