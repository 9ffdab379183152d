"""IR -> libnftables JSON: the same transaction as render_nft, as `nft -j -f` and Nftables.json_cmd take it.

Dispatch as in render_nft: `TRANSFORMS` for the nodes of a rule, `CONTAINERS` for the nodes their parent renders
at their one place; a class with no function where it stands raises TypeError, never passes through as is. A
table member renders without its owner (`family`, `table`), which the table adds.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from . import ir
from ..language.model import parse_duration


def render_json(table: ir.Table) -> str:
    return json.dumps(json_commands(table), indent=1, sort_keys=False) + "\n"


def json_commands(table: ir.Table) -> dict[str, Any]:
    """`add table` + `delete table` + the full table: one transaction that replaces only this table."""
    ident = {"family": table.family, "name": table.name}
    head = [{"metainfo": {"json_schema_version": 1}}, {"add": {"table": dict(ident)}},
            {"delete": {"table": dict(ident)}}]
    return {"nftables": head + _table(table)}


def render_node(node: Any) -> Any:
    """The JSON of one node of a rule."""
    transform = TRANSFORMS.get(type(node))
    if transform is None:
        raise TypeError(f"render_json: no rule for {type(node).__name__}")
    return transform(node)


# Containers: each has one place in its parent, which calls its function directly.


def _table(table: ir.Table) -> list[dict[str, Any]]:
    """The table's commands: the table, counters, limits, chains before the maps whose elements jump to them,
    sets, then every chain's rules."""
    owner = {"family": table.family, "table": table.name}
    members = [_counter(c) for c in table.counters] + [_limit_object(lo) for lo in table.limits]
    members += [_chain(c) for c in table.chains] + [_set(s) for s in table.sets]
    rules = [{"rule": dict(owner, chain=chain.name, **_rule(rule))} for chain in table.chains for rule in chain.rules]
    commands = [{"table": {"family": table.family, "name": table.name, **_comment(table.comment)}}]
    commands += [{kind: dict(owner, **body) for kind, body in member.items()} for member in members] + rules
    return [{"add": command} for command in commands]


def _comment(text: str) -> dict[str, str]:
    return {"comment": text} if text else {}


def _counter(counter: ir.Counter) -> dict[str, Any]:
    return {"counter": {"name": counter.name, **_comment(counter.comment)}}


def _limit_object(limit: ir.LimitObject) -> dict[str, Any]:
    """A named limit; its comment is not rendered (the output has never carried it)."""
    return {"limit": {"name": limit.name, **_rate(limit.limit)}}


def _set(s: ir.Set) -> dict[str, Any]:
    key_type = [part.strip() for part in s.key_type.split(".")] if "." in s.key_type else s.key_type
    body: dict[str, Any] = {"name": s.name, "type": key_type}
    if s.is_map:
        body["map"] = "verdict"
    # No "dynamic" flag: libnftables 1.0.6 JSON rejects it, and nft marks a set that rules update by itself.
    flags = [f for f, on in (("interval", s.interval), ("timeout", bool(s.timeout))) if on]
    if flags:
        body["flags"] = flags
    if s.size:
        body["size"] = s.size
    if s.timeout:
        body["timeout"] = parse_duration(s.timeout)
    body.update(_comment(s.comment))
    if s.elements:
        body["elem"] = _elements(s.elements)
    return {"map" if s.is_map else "set": body}


def _elements(elements: tuple[ir.Element, ...] | ir.AddressIntervals) -> list[Any]:
    if isinstance(elements, ir.AddressIntervals):
        return _address_intervals(elements)
    return [_element(e) for e in elements]


def _element(element: ir.Element) -> Any:
    key = render_node(element.key)
    return [key, render_node(element.verdict)] if element.verdict else key


def _address_intervals(node: ir.AddressIntervals) -> list[Any]:
    """Each interval as an Element of it renders: an address, an ir.Prefix or an ir.Range, then its goto."""
    lengths = node.prefix_lengths()
    range_ends = node.addresses(last for last, length in zip(node.lasts, lengths) if length is None)
    bits = node.bits
    keys = [first if length == bits else render_node(ir.Prefix(first, length)) if length is not None
            else render_node(ir.Range(first, next(range_ends)))
            for first, length in zip(node.addresses(node.firsts), lengths)]
    if node.targets is None:
        return keys
    verdicts = {target: render_node(ir.Verdict("goto", target)) for target in set(node.targets)}
    return [[key, verdicts[target]] for key, target in zip(keys, node.targets)]


def _chain(chain: ir.Chain) -> dict[str, Any]:
    """The chain itself; its rules are commands of their own, after every set (rendered by the table)."""
    body: dict[str, Any] = {"name": chain.name}
    if chain.hook:
        body.update(_hook(chain.hook))
    body.update(_comment(chain.comment))
    return {"chain": body}


def _hook(hook: ir.Hook) -> dict[str, Any]:
    return {"type": "filter", "hook": hook.hook, "prio": hook.priority, "policy": hook.policy}


def _rule(rule: ir.Rule) -> dict[str, Any]:
    return {"expr": [render_node(s) for s in rule.statements], **_comment(rule.comment)}


# The nodes of a rule: statements, and the fields and values they match.


def _match(match: ir.Match) -> dict[str, Any]:
    if match.negate and isinstance(match.right, ir.Flags):
        raise ValueError("render_json: no rule for a negated Flags match (nft compares the whole bitmask)")
    op = "in" if isinstance(match.right, ir.Flags) else ("!=" if match.negate else "==")
    return {"match": {"op": op, "left": render_node(match.left), "right": render_node(match.right)}}


def _rate(limit: ir.Limit) -> dict[str, Any]:
    """`rate`, `per`, `burst` (and `inv` for over): the body of a named limit, and of a limit statement."""
    body: dict[str, Any] = {"rate": limit.rate, "per": limit.per, "burst": limit.burst}
    if limit.over:
        body["inv"] = True
    return body


def _set_update(update: ir.SetUpdate) -> dict[str, Any]:
    return {"set": {"op": "update", "elem": render_node(update.key), "set": f"@{update.set_name}",
                    "stmt": [render_node(update.limit)]}}


def _verdict(verdict: ir.Verdict) -> dict[str, Any]:
    if verdict.kind in ("jump", "goto"):
        return {verdict.kind: {"target": verdict.target}}
    if verdict.kind == "reject":
        return {"reject": {"type": "tcp reset"} if verdict.reject_with else None}
    return {verdict.kind: None}


def _flags(flags: ir.Flags) -> Any:
    return list(flags.values) if len(flags.values) > 1 else flags.values[0]


TRANSFORMS: dict[type, Callable[[Any], Any]] = {
    # statements
    ir.Match: _match,
    ir.CounterRef: lambda ref: {"counter": ref.name},
    ir.Limit: lambda limit: {"limit": _rate(limit)},
    ir.LimitRef: lambda ref: {"limit": ref.name},
    ir.Log: lambda log: {"log": {"prefix": log.prefix}},
    ir.SetUpdate: _set_update,
    ir.Verdict: _verdict,
    ir.VerdictMap: lambda vmap: {"vmap": {"key": render_node(vmap.key), "data": f"@{vmap.map_name}"}},
    # fields
    ir.Meta: lambda meta: {"meta": {"key": meta.key}},
    ir.Payload: lambda payload: {"payload": {"protocol": payload.protocol, "field": payload.field}},
    ir.Ct: lambda ct: {"ct": {"key": ct.key}},
    ir.Fib: lambda fib: {"fib": {"result": fib.result, "flags": list(fib.flags)}},
    ir.Concat: lambda concat: {"concat": [render_node(part) for part in concat.parts]},
    # values
    ir.SetRef: lambda ref: f"@{ref.name}",
    ir.AnonSet: lambda anon: {"set": [render_node(x) for x in anon.values]},
    ir.Prefix: lambda prefix: {"prefix": {"addr": prefix.address, "len": prefix.length}},
    ir.Range: lambda r: {"range": [render_node(r.first), render_node(r.last)]},
    ir.Flags: _flags,
    ir.Presence: lambda presence: presence.exists,  # libnftables-json(5): `fib ... oif missing` is false
    str: lambda text: text,
    int: lambda number: number,
}

CONTAINERS: dict[type, Callable[[Any], Any]] = {
    ir.Table: _table,
    ir.Counter: _counter,
    ir.LimitObject: _limit_object,
    ir.Set: _set,
    ir.Element: _element,
    ir.AddressIntervals: _address_intervals,
    ir.Chain: _chain,
    ir.Hook: _hook,
    ir.Rule: _rule,
}
