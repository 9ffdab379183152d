"""IR -> libnftables JSON: the same transaction as render_nft, as `nft -j -f` and Nftables.json_cmd take it."""

from __future__ import annotations

import json
from typing import Any

from . import ir


def render_json(table: ir.Table) -> str:
    return json.dumps(json_commands(table), indent=1, sort_keys=False) + "\n"


def json_commands(table: ir.Table) -> dict[str, Any]:
    ident = {"family": table.family, "name": table.name}
    commands: list[dict[str, Any]] = [
        {"metainfo": {"json_schema_version": 1}},
        {"add": {"table": dict(ident)}},
        {"delete": {"table": dict(ident)}},
        {"add": {"table": dict(ident, **({"comment": table.comment} if table.comment else {}))}},
    ]
    owner = {"family": table.family, "table": table.name}
    for counter in table.counters:
        commands.append({"add": {"counter": dict(owner, name=counter.name, **_comment(counter.comment))}})
    for limit in table.limits:
        commands.append({"add": {"limit": dict(owner, name=limit.name, **_limit(limit.limit))}})
    for chain in table.chains:  # before the maps, whose elements jump to chains
        commands.append({"add": {"chain": _chain(owner, chain)}})
    for named_set in table.sets:
        commands.append({"add": _set(owner, named_set)})
    for chain in table.chains:
        for rule in chain.rules:
            body = dict(owner, chain=chain.name, expr=[_statement(s) for s in rule.statements])
            body.update(_comment(rule.comment))
            commands.append({"add": {"rule": body}})
    return {"nftables": commands}


def _comment(text: str) -> dict[str, str]:
    return {"comment": text} if text else {}


def _set(owner: dict, s: ir.Set) -> dict[str, Any]:
    key_type = [part.strip() for part in s.key_type.split(".")] if "." in s.key_type else s.key_type
    body: dict[str, Any] = dict(owner, name=s.name, type=key_type)
    if s.is_map:
        body["map"] = "verdict"
    # No "dynamic" flag: libnftables 1.0.6 JSON rejects it, and nft marks a set that rules update by itself.
    flags = [f for f, on in (("interval", s.interval), ("timeout", bool(s.timeout))) if on]
    if flags:
        body["flags"] = flags
    if s.size:
        body["size"] = s.size
    if s.timeout:
        body["timeout"] = _seconds(s.timeout)
    body.update(_comment(s.comment))
    if s.elements:
        body["elem"] = [_element(e) for e in s.elements]
    return {"map" if s.is_map else "set": body}


def _seconds(timeout: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(timeout[:-1]) * units[timeout[-1]]


def _element(element: ir.Element) -> Any:
    key = _value(element.key)
    return [key, _verdict(element.verdict)] if element.verdict else key


def _chain(owner: dict, chain: ir.Chain) -> dict[str, Any]:
    body: dict[str, Any] = dict(owner, name=chain.name)
    if chain.hook:
        body.update(type="filter", hook=chain.hook.hook, prio=chain.hook.priority, policy=chain.hook.policy)
    body.update(_comment(chain.comment))
    return body


def _statement(s: ir.Statement) -> dict[str, Any]:
    if isinstance(s, ir.Match):
        op = "in" if isinstance(s.right, ir.Flags) else ("!=" if s.negate else "==")
        return {"match": {"op": op, "left": _field(s.left), "right": _value(s.right)}}
    if isinstance(s, ir.CounterRef):
        return {"counter": s.name}
    if isinstance(s, ir.Limit):
        return {"limit": _limit(s)}
    if isinstance(s, ir.LimitRef):
        return {"limit": s.name}
    if isinstance(s, ir.Log):
        return {"log": {"prefix": s.prefix}}
    if isinstance(s, ir.SetUpdate):
        return {"set": {"op": "update", "elem": _field(s.key), "set": f"@{s.set_name}",
                        "stmt": [{"limit": _limit(s.limit)}]}}
    if isinstance(s, ir.VerdictMap):
        return {"vmap": {"key": _field(s.key), "data": f"@{s.map_name}"}}
    return _verdict(s)


def _field(f: ir.Field) -> dict[str, Any]:
    if isinstance(f, ir.Concat):
        return {"concat": [_field(part) for part in f.parts]}
    if isinstance(f, ir.Meta):
        return {"meta": {"key": f.key}}
    if isinstance(f, ir.Ct):
        return {"ct": {"key": f.key}}
    if isinstance(f, ir.Fib):
        return {"fib": {"result": f.result, "flags": list(f.flags)}}
    return {"payload": {"protocol": f.protocol, "field": f.field}}


def _value(v: ir.Value) -> Any:
    if isinstance(v, ir.SetRef):
        return f"@{v.name}"
    if isinstance(v, ir.AnonSet):
        return {"set": [_value(x) for x in v.values]}
    if isinstance(v, ir.Prefix):
        return {"prefix": {"addr": v.address, "len": v.length}}
    if isinstance(v, ir.Range):
        return {"range": [v.first, v.last]}
    if isinstance(v, ir.Flags):
        return list(v.values) if len(v.values) > 1 else v.values[0]
    if isinstance(v, ir.Concat):
        return {"concat": [_value(part) for part in v.parts]}
    if isinstance(v, ir.Presence):
        return v.exists  # libnftables-json(5): `fib ... oif missing` is the boolean false
    return v


def _limit(limit: ir.Limit) -> dict[str, Any]:
    body: dict[str, Any] = {"rate": limit.rate, "per": limit.per, "burst": limit.burst}
    if limit.over:
        body["inv"] = True
    return body


def _verdict(v: ir.Verdict) -> dict[str, Any]:
    if v.kind in ("jump", "goto"):
        return {v.kind: {"target": v.target}}
    if v.kind == "reject":
        return {"reject": {"type": "tcp reset"} if v.reject_with else None}
    return {v.kind: None}
