"""Issue 8, "Fail on what you do not know": per-node fixtures, and loud failures on unknown nodes.

- Both renderers dispatch by the node's class (`TRANSFORMS`: the nodes of a rule; `CONTAINERS`: the nodes their
  parent renders at their one place) and raise on a class they have no rule for; the parser's transformer raises
  on a grammar rule it has no method for.
- Per-node fixtures, as nftables' own `tests/py` pairs each rule with its JSON: `tests/nodes/NAME.t` is one IR
  node's nft text and `tests/nodes/NAME.t.json` its libnftables JSON, for every case in `CASES`. A reviewer reads
  ten lines, not a whole-policy golden. Regenerate after an intended change, then review the diff like code:
      .venv/bin/python -m pytest tests/test_nodes.py --update-golden && git diff tests/nodes
- In the kernel (private namespaces), each case placed in a minimal table loads from text and from JSON to the
  same table.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import pathlib
import socket
import typing

import pytest

from nftc.backend import ir, render_json, render_nft
from nftc.language import parser
from nftc.language.zfw_parser import Tree
from nftc.lab.netns import Lab

from test_kernel_check import _listing_without_unsupported_comments  # text and JSON listings, compared alike

NODES = pathlib.Path(__file__).resolve().parent / "nodes"
RENDERERS = (render_nft, render_json)

# Every dataclass of the IR, found by introspection: a class added there is checked here without a list to update.
IR_CLASSES = {c for c in vars(ir).values()
              if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == ir.__name__}
# The nodes of a rule: whatever the IR's unions allow where a field, a value or a statement stands (str and int
# included). The renderers dispatch these by class.
RULE_NODES = {t for union in (ir.Field, ir.Value, ir.Statement) for t in typing.get_args(union)}
# The containers: each stands in one typed place of its parent, which renders it there directly; anywhere else
# it is a node with no rule, and raises.
CONTAINERS = {
    ir.Table: "the root (render_nft, render_json)",
    ir.Counter: "Table.counters",
    ir.LimitObject: "Table.limits",
    ir.Set: "Table.sets",
    ir.Element: "Set.elements",
    ir.AddressIntervals: "Set.elements (instead of a tuple of Element)",
    ir.Chain: "Table.chains",
    ir.Hook: "Chain.hook",
    ir.Rule: "Chain.rules",
}


def _names(classes) -> list[str]:
    return sorted(c.__name__ for c in classes)


# Dispatch: every class has a rule; a stray one raises.


def test_item8_every_ir_class_is_a_rule_node_or_a_documented_container():
    unclassified = IR_CLASSES - RULE_NODES - set(CONTAINERS)
    assert not unclassified, (f"IR classes {_names(unclassified)} are in none of ir.Field, ir.Value, ir.Statement"
                              " and not in CONTAINERS: add each to its union, or document it as a container")
    assert not RULE_NODES & set(CONTAINERS)


@pytest.mark.parametrize("renderer", RENDERERS, ids=lambda r: r.__name__.rsplit(".", 1)[-1])
def test_item8_each_renderer_has_a_rule_for_every_ir_class(renderer):
    assert not RULE_NODES - set(renderer.TRANSFORMS), \
        f"{renderer.__name__} has no rule for {_names(RULE_NODES - set(renderer.TRANSFORMS))}"
    assert set(renderer.TRANSFORMS) == RULE_NODES, "a rule for a class no union allows in a rule"
    assert set(renderer.CONTAINERS) == set(CONTAINERS)


@dataclasses.dataclass(frozen=True)
class Unknown:
    """A node class the renderers were never taught: what a new IR class is until they are."""

    key: str = "x"


def _table_with(statement) -> ir.Table:
    rule = ir.Rule((statement, ir.Verdict("accept")), "r1")
    return ir.Table("inet", "t", "", (), (), (), (ir.Chain("input", (rule,), ir.Hook("input")),))


STRAYS = {
    "unknown-class": (ir.Match(ir.Meta("iif"), Unknown()), "Unknown"),
    "unknown-statement": (Unknown(), "Unknown"),
    "unknown-field": (ir.Match(Unknown(), "lo"), "Unknown"),
    "container-as-value": (ir.Match(ir.Meta("iif"), ir.Hook("x")), "Hook"),  # printed as `Hook(hook='x', ...)`
    "container-as-statement": (ir.Rule(()), "Rule"),
    "bool-as-value": (ir.Match(ir.Payload("tcp", "dport"), True), "bool"),  # not an int: Presence says yes/no
    "unknown-in-anonymous-set": (ir.Match(ir.Payload("tcp", "dport"), ir.AnonSet((22, Unknown()))), "Unknown"),
    "unknown-in-range": (ir.Match(ir.Payload("tcp", "dport"), ir.Range(1, Unknown())), "Unknown"),
    "unknown-in-concat": (ir.VerdictMap(ir.Concat((ir.Meta("l4proto"), Unknown())), "m"), "Unknown"),
}


@pytest.mark.parametrize("renderer", (render_nft.render_nft, render_json.render_json), ids=lambda r: r.__name__)
@pytest.mark.parametrize("stray", STRAYS, ids=str)
def test_item8_a_stray_node_raises_naming_its_class(renderer, stray):
    statement, name = STRAYS[stray]
    with pytest.raises(TypeError) as raised:
        renderer(_table_with(statement))
    assert str(raised.value) == f"{renderer.__name__}: no rule for {name}"


@pytest.mark.parametrize("renderer", (render_nft.render_nft, render_json.render_json), ids=lambda r: r.__name__)
def test_item8_a_negated_flags_match_raises(renderer):
    """`ct state != established,related` compares the whole bitmask in nft text, and JSON op `in` has no negation:
    neither says "in neither state", so both renderers refuse instead of guessing."""
    negated = ir.Match(ir.Ct("state"), ir.Flags(("established", "related")), negate=True)
    with pytest.raises(ValueError, match="negated Flags"):
        renderer(_table_with(negated))


# The parser's transformer: a grammar rule without a method is a bug in nftc, never a statement that vanishes.


def test_item8_transformer_raises_on_a_grammar_rule_without_a_method():
    tree = Tree("start", [Tree("frobnicate", [parser.Token("NAME", "zfw")])])
    with pytest.raises(NotImplementedError, match="grammar rule 'frobnicate' has no method"):
        parser._StatementBuilder("test.zfw").transform(tree)


def test_item8_a_statement_whose_method_is_missing_fails_instead_of_compiling_to_nothing(monkeypatch):
    """As if the grammar gained `include` and the builder did not: parsing must not drop the statement."""
    monkeypatch.delattr(parser._StatementBuilder, "include")
    with pytest.raises(NotImplementedError, match="grammar rule 'include' has no method"):
        parser.parse_text('zone lan = 10.0.0.0/8\ninclude "other.zfw"\n', "test.zfw")


# Per-node fixtures: one small node or rule each, by case id.

GOTO = ir.Verdict("goto", "target")
PORT_KEY = ir.Concat((ir.Meta("l4proto"), ir.Payload("th", "dport")))
CASES: dict[str, typing.Any] = {
    # matches
    "match_meta_quoted": ir.Match(ir.Meta("iif"), "lo"),
    "match_negated": ir.Match(ir.Meta("iif"), "lo", negate=True),
    "match_meta_l4proto": ir.Match(ir.Meta("l4proto"), "tcp"),
    "match_payload_number": ir.Match(ir.Payload("udp", "dport"), 11211),
    "match_prefix": ir.Match(ir.Payload("ip", "saddr"), ir.Prefix("127.0.0.0", 8)),
    "match_range": ir.Match(ir.Payload("tcp", "dport"), ir.Range(8443, 8444)),
    "match_anonymous_set": ir.Match(ir.Payload("icmpv6", "type"),
                                    ir.AnonSet(("nd-neighbor-solicit", "nd-neighbor-advert"))),
    "match_anonymous_set_of_prefixes": ir.Match(ir.Payload("ip6", "saddr"),
                                                ir.AnonSet(("::1", ir.Prefix("::ffff:127.0.0.0", 104)))),
    "match_broad_rule": ir.Match(ir.Meta("l4proto"), ir.AnonSet(("tcp", "udp")), negate=True),
    "match_flags": ir.Match(ir.Ct("state"), ir.Flags(("established", "related"))),
    "match_one_flag": ir.Match(ir.Ct("state"), ir.Flags(("invalid",))),
    "match_set_reference": ir.Match(ir.Payload("ip", "saddr"), ir.SetRef("dyn_admins_v4")),
    "match_rpfilter_strict": ir.Match(ir.Fib(("saddr", "mark", "iif"), "oif"), ir.Presence(False)),
    "match_route_exists": ir.Match(ir.Fib(("saddr", "mark"), "oif"), ir.Presence(True)),
    "match_concat_anonymous_set": ir.Match(PORT_KEY, ir.AnonSet((ir.Concat(("tcp", 22)), ir.Concat(("udp", 53))))),
    # other statements
    "counter_reference": ir.CounterRef("lan/ssh/r1"),
    "limit": ir.Limit(10, "minute", 5),
    "limit_over": ir.Limit(100, "second", 200, over=True),
    "limit_reference": ir.LimitRef("limit_r2"),
    "log": ir.Log("zfw drop: r3 "),
    "set_update_meter": ir.SetUpdate("echo_v4", ir.Payload("ip", "saddr"), ir.Limit(5, "second", 10)),
    "set_update_meter_over": ir.SetUpdate("echo_v4", ir.Payload("ip", "saddr"), ir.Limit(5, "second", 10, over=True)),
    "verdict_accept": ir.Verdict("accept"),
    "verdict_drop": ir.Verdict("drop"),
    "verdict_return": ir.Verdict("return"),
    "verdict_reject": ir.Verdict("reject"),
    "verdict_goto": GOTO,
    "verdict_jump": ir.Verdict("jump", "target"),
    "verdict_map_addresses": ir.VerdictMap(ir.Payload("ip", "saddr"), "zones_v4"),
    "verdict_map_interfaces": ir.VerdictMap(ir.Meta("iifname"), "zones_iface"),
    "verdict_map_ports": ir.VerdictMap(PORT_KEY, "ports_lan"),
    # rules
    "rule_counted_drop": ir.Rule((ir.Match(ir.Payload("udp", "dport"), 11211), ir.CounterRef("drop/memcached-udp"),
                                  ir.Verdict("drop")), "memcached UDP: never outside localhost"),
    "rule_reject_with_tcp_reset": ir.Rule((ir.Match(ir.Meta("l4proto"), "tcp"), ir.CounterRef("lan/ssh/r1"),
                                           ir.Verdict("reject", reject_with="tcp reset")), "site.zfw:7 r3"),
    "rule_accept_log": ir.Rule((ir.Limit(10, "minute", 5), ir.Log("zfw accept: r2 ")), "site.zfw:5"),
    "rule_named_limit": ir.Rule((ir.LimitRef("limit_r2"), GOTO), "site.zfw:4 r2"),
    "rule_without_comment": ir.Rule((ir.CounterRef("drop/no-zone"), ir.Verdict("drop"))),
    # table members
    "counter": ir.Counter("drop/no-zone"),
    "counter_with_comment": ir.Counter("lan/ssh/r1", "site.zfw:7 r1"),
    "limit_object": ir.LimitObject("limit_r2", ir.Limit(100, "second", 200, over=True), "site.zfw:4 r2"),
    "set_ports": ir.Set("protected_tcp", "inet_service", (ir.Element(22), ir.Element(ir.Range(7025, 7026))),
                        interval=True, comment="local-only and admin ports"),
    "set_dynamic_zone": ir.Set("dyn_admins_v4", "ipv4_addr", interval=True, comment="zone admins: added at run time"),
    "set_meter": ir.Set("echo_v4", "ipv4_addr", dynamic=True, size=65535, timeout="1m", comment="per-source meter"),
    "set_empty": ir.Set("plain_v6", "ipv6_addr"),
    "map_addresses": ir.Set("zones_v4", "ipv4_addr", (
        ir.Element(ir.Range("0.0.0.0", "9.255.255.255"), GOTO), ir.Element(ir.Prefix("10.0.0.0", 8), GOTO),
        ir.Element("192.168.1.7", GOTO)), interval=True, is_map=True, comment="source -> most specific zone"),
    "map_address_intervals": ir.Set("zones_v4", "ipv4_addr", ir.AddressIntervals(4, (
        0, 167772160, 3232235783, 3232235785), (167772159, 184549375, 3232235783, 3232235788),
        ("target", "target", "target", "target")), interval=True, is_map=True, comment="source -> most specific zone"),
    "map_address_intervals_v6": ir.Set("zones_v6", "ipv6_addr", ir.AddressIntervals(6, (
        1, (0xffff << 32) + (127 << 24), 0xfd000000000000000000000000000000),
        (1, (0xffff << 32) + (127 << 24) + 255, 0xfd0000000000000000000000000000ff), ("target",) * 3),
        interval=True, is_map=True),
    "map_interfaces": ir.Set("zones_iface", "ifname", (ir.Element("eth9", GOTO), ir.Element("vlan*", GOTO)),
                             interval=True, is_map=True, comment="interface -> zone"),
    "map_ports": ir.Set("ports_lan", "inet_proto . inet_service", (
        ir.Element(ir.Concat(("tcp", 22)), GOTO), ir.Element(ir.Concat(("udp", ir.Range(8000, 8010))), GOTO)),
        interval=True, is_map=True),
    "chain_base": ir.Chain("input", (ir.Rule((ir.Match(ir.Meta("iif"), "lo"), GOTO), "loopback"),),
                           ir.Hook("input", 0, "drop")),
    "chain_priority_after": ir.Chain("output", (ir.Rule((ir.Verdict("accept"),)),), ir.Hook("output", 10)),
    "chain_priority_before": ir.Chain("early", (), ir.Hook("input", -5, "accept")),
    "chain_regular": ir.Chain("zone_lan", (ir.Rule((ir.VerdictMap(PORT_KEY, "ports_lan"),), "per port"),
                                           ir.Rule((ir.CounterRef("drop/no-zone"), ir.Verdict("drop")), "no rule")),
                              comment="zone lan"),
    "table": ir.Table("inet", "small", "compiled by nftc", (ir.Counter("drop/no-zone"),), (),
                      (ir.Set("dyn_admins_v4", "ipv4_addr", interval=True),),
                      (ir.Chain("input", (ir.Rule((ir.Match(ir.Payload("ip", "saddr"), ir.SetRef("dyn_admins_v4")),
                                                   ir.Verdict("accept"))),
                                          ir.Rule((ir.CounterRef("drop/no-zone"), ir.Verdict("drop")))),
                                ir.Hook("input", 0, "drop")),)),
}


def as_elements(intervals: ir.AddressIntervals) -> tuple[ir.Element, ...]:
    """The Elements an AddressIntervals stands for, made the slow way: ipaddress decides address, prefix or
    range, one object per interval; addresses in the C library's text form (::ffff:127.0.0.1, not ::ffff:7f00:1)."""
    kind = ipaddress.IPv4Address if intervals.version == 4 else ipaddress.IPv6Address
    family = socket.AF_INET if intervals.version == 4 else socket.AF_INET6

    def text(value: int) -> str:
        return socket.inet_ntop(family, kind(value).packed)

    elements = []
    for first, last, target in zip(intervals.firsts, intervals.lasts, intervals.targets):
        networks = list(ipaddress.summarize_address_range(kind(first), kind(last)))
        if len(networks) > 1:
            key = ir.Range(text(first), text(last))
        elif networks[0].prefixlen == networks[0].max_prefixlen:
            key = text(first)
        else:
            key = ir.Prefix(text(first), networks[0].prefixlen)
        elements.append(ir.Element(key, ir.Verdict("goto", target)))
    return tuple(elements)


@pytest.mark.parametrize("case", [c for c in CASES if isinstance(getattr(CASES[c], "elements", ()),
                                                                  ir.AddressIntervals)])
@pytest.mark.parametrize("renderer", (render_nft.render_nft, render_json.render_json), ids=lambda r: r.__name__)
def test_issue9_address_intervals_render_as_the_elements_they_stand_for(case, renderer):
    """Issue 9: a zone map is one node of integer tuples, not one Element per interval; each renderer writes it
    as it would write those Elements."""
    node = CASES[case]
    slow = dataclasses.replace(node, elements=as_elements(node.elements))
    assert renderer(placed(node)) == renderer(placed(slow))


def nft_text(node) -> str:
    return render_nft.CONTAINERS.get(type(node), render_nft.render_node)(node) + "\n"


def json_text(node) -> str:
    return json.dumps(render_json.CONTAINERS.get(type(node), render_json.render_node)(node), indent=1) + "\n"


def _classes_in(node) -> set[type]:
    """The class of `node` and of every node inside it."""
    if isinstance(node, tuple):
        return set().union(*(_classes_in(item) for item in node))
    if not dataclasses.is_dataclass(node):
        return {type(node)}
    return {type(node)}.union(*(_classes_in(getattr(node, f.name)) for f in dataclasses.fields(node)))


def test_item8_fixtures_cover_every_ir_class():
    covered = set().union(*(_classes_in(node) for node in CASES.values()))
    assert not (IR_CLASSES | RULE_NODES) - covered, f"no fixture has a {_names((IR_CLASSES | RULE_NODES) - covered)}"


@pytest.mark.parametrize("case", CASES)
def test_item8_node_renders_as_its_fixture(case, update_golden):
    node = CASES[case]
    for path, text in ((NODES / f"{case}.t", nft_text(node)), (NODES / f"{case}.t.json", json_text(node))):
        if update_golden:
            NODES.mkdir(exist_ok=True)
            path.write_text(text)
        assert path.exists(), f"no fixture {path.name}: run with --update-golden"
        assert text == path.read_text(), f"{path.name} differs: run with --update-golden and review the diff"


def test_item8_every_fixture_file_has_its_case():
    expected = {name for case in CASES for name in (f"{case}.t", f"{case}.t.json")}
    assert {p.name for p in NODES.iterdir()} == expected


# In the kernel: each case, placed in a minimal table with what it refers to, loads from text and from JSON alike.

HOST = "host"  # the base chain a statement or rule case goes into: input hook, where fib and reject are allowed
SUPPORT = ir.Table("inet", "nodes", "", (ir.Counter("lan/ssh/r1"), ir.Counter("drop/memcached-udp"),
                                         ir.Counter("drop/no-zone")),
                   (ir.LimitObject("limit_r2", ir.Limit(100, "second", 200, over=True)),),
                   (ir.Set("dyn_admins_v4", "ipv4_addr", interval=True),
                    ir.Set("echo_v4", "ipv4_addr", dynamic=True, size=65535, timeout="1m"),
                    ir.Set("zones_v4", "ipv4_addr", interval=True, is_map=True),
                    ir.Set("zones_v6", "ipv6_addr", interval=True, is_map=True),
                    ir.Set("zones_iface", "ifname", interval=True, is_map=True),
                    ir.Set("ports_lan", "inet_proto . inet_service", interval=True, is_map=True)),
                   # a rule updates the meter, so nft marks it dynamic from text and from JSON alike
                   (ir.Chain("target", ()), ir.Chain("meters", (ir.Rule((CASES["set_update_meter"],)),))))
_MEMBERS = {ir.Counter: "counters", ir.LimitObject: "limits", ir.Set: "sets", ir.Chain: "chains"}


def placed(node) -> ir.Table:
    """`node` in the support table: a member replaces the support's member of its name, a rule or a statement
    goes into the input chain `host`, and a table stands alone."""
    if isinstance(node, ir.Table):
        return node
    if type(node) in _MEMBERS:
        field = _MEMBERS[type(node)]
        others = tuple(m for m in getattr(SUPPORT, field) if m.name != node.name)
        return dataclasses.replace(SUPPORT, **{field: others + (node,)})
    rule = node if isinstance(node, ir.Rule) else ir.Rule((node,))
    return dataclasses.replace(SUPPORT, chains=SUPPORT.chains + (ir.Chain(HOST, (rule,), ir.Hook("input")),))


@pytest.fixture(scope="module")
def text_and_json_namespaces():
    with Lab() as lab:
        yield lab, lab.namespace("t"), lab.namespace("j")


def _load_and_list(lab, namespace: str, loader: tuple[str, ...], script: pathlib.Path, table: ir.Table) -> list:
    loaded = lab.exec(namespace, *loader, str(script), check=False)
    assert loaded.returncode == 0, f"{' '.join(loader)} refused it:\n{loaded.stderr}\n{script.read_text()}"
    listing = lab.exec(namespace, "nft", "-j", "list", "table", table.family, table.name).stdout
    return _listing_without_unsupported_comments(listing)


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES)
def test_item8_node_text_and_json_load_to_the_same_kernel_table(case, text_and_json_namespaces, tmp_path):
    lab, from_text, from_json = text_and_json_namespaces
    table = placed(CASES[case])
    text, document = tmp_path / "node.nft", tmp_path / "node.json"
    text.write_text(render_nft.render_nft(table))
    document.write_text(render_json.render_json(table))
    listed_text = _load_and_list(lab, from_text, ("nft", "-f"), text, table)
    listed_json = _load_and_list(lab, from_json, ("nft", "-j", "-f"), document, table)
    assert listed_text == listed_json
