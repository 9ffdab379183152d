"""Issue 8, "One home for each fact": the names nftc gives its objects are built and parsed in nftc.backend.names
(round trip, and the apply side reads back exactly what lower built), the default log prefix is one value, and
the shared text layout."""

from __future__ import annotations

import pathlib
import re

import pytest

from nftc.backend import ir, names
from nftc.backend.render_nft import render_nft
from nftc.language import model as m
from nftc.language.parser import MAX_NAME_LENGTH, parse_text
from nftc.language.text import columns
from nftc.system import live

from helpers import compile_text

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Every kind of object lower names: a dynamic zone, an interface zone, both kinds of limit, a broad rule, logs.
POLICY = """\
table site
zone internet = any
zone lan = 192.168.1.0/24, fd00:1::/64
zone dmz = iface eth9
zone lan_v4 = dynamic
zone blocklist = dynamic
deny blocklist -> any log
allow internet -> smtp limit 100/second burst 200
allow lan -> ssh limit 5/minute per source burst 10
reject lan -> mysql log
allow lan -> any
allow dmz -> smtp
allow lan_v4 -> imap
"""
ZONES = ("a", "_", "lan", "lan_v4", "v4", "dyn_x_v6", "Z9_", "x" * MAX_NAME_LENGTH)


def _grammar_name() -> str:
    """The NAME terminal of grammar/zfw.lark, as written there."""
    found = re.search(r"^NAME: /(.+)/$", (ROOT / "grammar" / "zfw.lark").read_text(encoding="utf-8"), re.M)
    return found.group(1)


@pytest.mark.parametrize("candidate", ["a", "_", "A9_", "x" * MAX_NAME_LENGTH, "x" * (MAX_NAME_LENGTH + 1), "",
                                       "9a", "a-b", "a.b", "a/b", "a b", "é", "a\n"])
def test_item8_names_zone_pattern_is_the_grammars_name(candidate):
    """names parses zone names read back from the kernel with its own pattern (importing the parser would cost the
    apply path its start-up): it must accept exactly the zone names the language accepts."""
    language = re.fullmatch(_grammar_name(), candidate) is not None and len(candidate) <= MAX_NAME_LENGTH
    assert (re.fullmatch(names.ZONE_NAME, candidate) is not None) == language


@pytest.mark.parametrize("zone", ZONES)
def test_item8_names_round_trip(zone):
    for version in (4, 6):
        assert names.parse_dynamic_set(names.dynamic_set(zone, version)) == (zone, version)
        assert names.dynamic_set_version(names.dynamic_set(zone, version)) == version
    for service in ("ssh", "zimbra.public", "any"):
        assert names.parse_action(names.action(zone, service, "r12")) == (zone, service, "r12")
    assert names.is_port_map(names.port_map(zone))


@pytest.mark.parametrize("name", ["dyn_x", "dyn_x_v5", "dyn__v4x", "dyn_9x_v4", "dyn_a b_v4", "dyn_a/b_v4",
                                  f"dyn_{'x' * (MAX_NAME_LENGTH + 1)}_v4", "xdyn_a_v4", "zones_v4", "echo_v4",
                                  "limit_r2_v4"])
def test_item8_names_refuse_what_nftc_never_writes_as_a_dynamic_set(name):
    """A set name read back from a listing or a snapshot goes into nft text only if it is one nftc could write."""
    assert names.parse_dynamic_set(name) is None and names.dynamic_set_version(name) is None


@pytest.mark.parametrize("name", ["drop/no-zone", "lan/default-drop", "r3/over-limit", names.LOCALHOST_ACCEPT,
                                  names.MEMCACHED_REFLECTION, "zone_lan", "a/b/c/d"])
def test_item8_names_only_action_names_parse_as_actions(name):
    assert names.parse_action(name) is None


def _goto_targets(table: ir.Table) -> set[str]:
    """The chains a zone's port map or broad rule sends packets to: the rules' actions, as lower meant them."""
    targets = {e.verdict.target for s in table.sets if names.is_port_map(s.name) for e in s.elements}
    zone_chains = {names.zone_chain(z) for z in ("internet", "lan", "dmz", "lan_v4", "blocklist", "localhost")}
    for chain in (c for c in table.chains if c.name in zone_chains):
        targets |= {st.target for rule in chain.rules for st in rule.statements
                    if isinstance(st, ir.Verdict) and st.kind == "goto"}
    return targets


def test_item8_the_apply_side_reads_back_exactly_what_lower_named():
    table = compile_text(POLICY).table
    chains = {c.name for c in table.chains}
    assert {n for n in chains if names.parse_action(n)} == _goto_targets(table)
    counters = [c.name for c in table.counters]
    assert {n for n in counters if names.parse_action(n)} == {n for n in chains if names.parse_action(n)}
    listing = render_nft(table)
    assert {(o.zone, o.service, o.rule) for o in live.openings(listing)} == {
        names.parse_action(n) for n in chains if names.parse_action(n)}
    opened, dropped = live.counter_rows([{"name": n} for n in counters])
    assert len(opened) + len(dropped) == len(counters)
    assert {row[0] for row in opened} <= {"internet", "lan", "dmz", "lan_v4", "blocklist", "localhost"}


def test_item8_the_ir_says_which_sets_are_a_dynamic_zones():
    """apply carries the elements of the sets the IR marks, and a set name parses as dynamic exactly then: the zone
    `lan_v4` (whose sets are named dyn_lan_v4_v4 and dyn_lan_v4_v6) is not mistaken for a version."""
    table = compile_text(POLICY).table
    marked = {s.name: s for s in table.sets if s.dynamic_zone}
    assert set(marked) == {"dyn_lan_v4_v4", "dyn_lan_v4_v6", "dyn_blocklist_v4", "dyn_blocklist_v6"}
    assert {s.name for s in table.sets if names.dynamic_set_version(s.name)} == set(marked)
    for name, s in marked.items():
        version = {"ipv4_addr": 4, "ipv6_addr": 6}[s.key_type]
        assert names.parse_dynamic_set(name) == (s.dynamic_zone, version)


def test_item8_the_default_log_prefix_is_one_value():
    """`log drops` without a prefix, and a rule's own `log` in a policy without `log drops`, log with the same
    default prefix (it was `nftc drop: ` in the parser and README but `TABLE drop: ` in lower)."""
    prefix = m.DEFAULT_LOG_DROPS.prefix
    statement = next(s for s in parse_text("log drops\n", "p.zfw") if isinstance(s, m.LogDrops))
    assert statement.prefix == prefix
    table = compile_text("table site\nzone internet = any\ndeny internet -> ssh log\n").table
    logs = [st.prefix for c in table.chains for r in c.rules for st in r.statements if isinstance(st, ir.Log)]
    assert logs == [f"{prefix}r1 "]
    assert f"(default `{prefix}`)" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_item8_columns_align_and_end_without_spaces():
    text = columns([("ZONE", "PACKETS", ""), ("internet", 7, "x"), ("lan", 1234567, "")])
    assert text.splitlines() == ["ZONE      PACKETS", "internet  7        x", "lan       1234567"]


def test_item8_accepted_connections_log_with_one_prefix_whatever_the_table():
    """A rule's `log` on `allow` used `TABLE accept: `, next to the default `nftc drop: `: one constant now."""
    table = compile_text("table site\nzone internet = any\nallow internet -> ssh log\n").table
    logs = [st.prefix for c in table.chains for r in c.rules for st in r.statements if isinstance(st, ir.Log)]
    assert logs == [f"{m.ACCEPT_LOG_PREFIX}r1 "]
    assert f"`{m.ACCEPT_LOG_PREFIX}`" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_item8_the_table_name_rule_reads_names_as_the_grammar_does():
    """nftc.language.reserved keeps its own copy of NAME so that status and rollback need no parser: it must be
    the grammar's."""
    from nftc.language import reserved
    assert reserved.NAME.pattern == _grammar_name()
