"""What each zone reaches: first match in file order, protected ports, memcached UDP, loopback."""

from __future__ import annotations

import pathlib

import pytest

from nftc.compiler import compile_policy
from nftc.language.diagnostics import PolicyError
from nftc.semantics.reach import decide, zone_segments

from helpers import compile_text

ROOT = pathlib.Path(__file__).resolve().parent.parent


def verdict(compilation, zone: str, protocol: str, port: int) -> str:
    return decide(zone_segments(compilation.checked, zone), protocol, port).verdict


@pytest.mark.parametrize("zone, protocol, port, expected", [
    ("internet", "tcp", 443, "accept"),
    ("internet", "tcp", 25, "accept"),
    ("internet", "tcp", 7071, "drop"),
    ("internet", "tcp", 9071, "drop"),
    ("internet", "tcp", 22, "drop"),
    ("internet", "tcp", 11211, "drop"),
    ("internet", "udp", 11211, "drop"),
    ("lan", "tcp", 7071, "accept"),
    ("lan", "tcp", 22, "accept"),
    ("lan", "tcp", 389, "drop"),
    ("lan", "tcp", 11211, "drop"),
    ("localhost", "tcp", 389, "accept"),
    ("localhost", "tcp", 11211, "accept"),
    ("localhost", "udp", 11211, "accept"),
    ("localhost", "tcp", 40000, "accept"),
])
def test_single_server_policy_decisions(zone, protocol, port, expected):
    compilation = compile_policy(str(ROOT / "rulesets" / "zimbra-single.zfw"), {})
    assert verdict(compilation, zone, protocol, port) == expected


def test_broad_allow_does_not_open_protected_ports_and_warns():
    compilation = compile_text("zone lan = 10.0.0.0/8\nallow lan -> any\n")
    assert verdict(compilation, "lan", "tcp", 8000) == "accept"
    assert verdict(compilation, "lan", "tcp", 389) == "drop"
    assert verdict(compilation, "lan", "tcp", 7071) == "drop"
    assert verdict(compilation, "lan", "tcp", 11211) == "drop"
    assert any("protected" in w.message for w in compilation.warnings)


def test_a_rule_naming_a_protected_service_opens_it():
    compilation = compile_text("zone lan = 10.0.0.0/8\nallow lan -> ldap\nallow lan -> any\n")
    assert verdict(compilation, "lan", "tcp", 389) == "accept"
    assert verdict(compilation, "lan", "tcp", 636) == "drop"


def test_first_matching_rule_wins():
    compilation = compile_text("zone lan = 10.0.0.0/8\ndeny lan -> ssh\nallow lan -> ssh, smtp\n")
    assert verdict(compilation, "lan", "tcp", 22) == "drop"
    assert verdict(compilation, "lan", "tcp", 25) == "accept"


def test_reject_and_deny_on_localhost_override_the_loopback_default():
    compilation = compile_text("reject localhost -> mysql\n")
    assert verdict(compilation, "localhost", "tcp", 7306) == "reject"
    assert verdict(compilation, "localhost", "tcp", 7307) == "accept"


def test_limit_still_counts_as_reaching():
    compilation = compile_text("zone c = 10.0.0.0/8\nallow c -> memcached limit 5/second per source\n"
                               "assert c -> memcached\n")
    decision = decide(zone_segments(compilation.checked, "c"), "tcp", 11211)
    assert decision.verdict == "accept" and decision.limited


def test_failed_assertion_names_the_rule_that_breaks_it():
    with pytest.raises(PolicyError) as caught:
        compile_text("zone internet = any\nallow internet -> zimbra.admin\nassert internet !-> zimbra.admin\n")
    diagnostic = caught.value.diagnostics[0]
    assert "assertion fails: internet !-> zimbra.admin" in diagnostic.message
    assert "rule r1" in diagnostic.hint and "policy.zfw:2" in diagnostic.hint
