"""IR -> nft script text: the replace-my-table-atomically script that `nft -f` and libnftables load."""

from __future__ import annotations

from . import ir

_QUOTED_META = {"iif", "iifname", "oif", "oifname"}


def render_nft(table: ir.Table) -> str:
    """`table {}` + `delete table` + the full table: one transaction that replaces only this table."""
    head = f"{table.family} {table.name}"
    lines = [f"table {head} {{}}", f"delete table {head}", f"table {head} {{"]
    if table.comment:
        lines.append(f"\tcomment {_quote(table.comment)}")
    for counter in table.counters:
        lines += [f"\tcounter {counter.name} {{"]
        lines += [f"\t\tcomment {_quote(counter.comment)}"] if counter.comment else []
        lines += ["\t}", ""]
    for limit in table.limits:
        lines += [f"\tlimit {limit.name} {{", f"\t\t{_rate(limit.limit)}", "\t}", ""]
    for named_set in table.sets:
        lines += _set_lines(named_set) + [""]
    for chain in table.chains:
        lines += _chain_lines(chain) + [""]
    if lines[-1] == "":
        lines.pop()
    lines.append("}")
    return "\n".join(lines) + "\n"


def _set_lines(s: ir.Set) -> list[str]:
    kind = "map" if s.is_map else "set"
    key_type = f"{s.key_type} : verdict" if s.is_map else s.key_type
    lines = [f"\t{kind} {s.name} {{", f"\t\ttype {key_type}"]
    if s.size:
        lines.append(f"\t\tsize {s.size}")
    flags = [f for f, on in (("dynamic", s.dynamic), ("interval", s.interval), ("timeout", bool(s.timeout))) if on]
    if flags:
        lines.append(f"\t\tflags {','.join(flags)}")
    if s.timeout:
        lines.append(f"\t\ttimeout {s.timeout}")
    if s.comment:
        lines.append(f"\t\tcomment {_quote(s.comment)}")
    if s.elements:
        quote = s.key_type == "ifname"
        items = [_element(e, quote) for e in s.elements]
        lines.append("\t\telements = { " + ",\n\t\t\t     ".join(items) + " }")
    lines.append("\t}")
    return lines


def _element(element: ir.Element, quote: bool) -> str:
    key = _value(element.key, quote)
    return f"{key} : {_verdict(element.verdict)}" if element.verdict else key


def _chain_lines(chain: ir.Chain) -> list[str]:
    lines = [f"\tchain {chain.name} {{"]
    if chain.comment:
        lines.append(f"\t\tcomment {_quote(chain.comment)}")
    if chain.hook:
        hook = chain.hook
        lines.append(f"\t\ttype filter hook {hook.hook} priority {_priority(hook.priority)}; policy {hook.policy};")
    lines += [f"\t\t{render_rule(rule)}" for rule in chain.rules]
    lines.append("\t}")
    return lines


def _priority(priority: int) -> str:
    if priority == 0:
        return "filter"
    return f"filter {'+' if priority > 0 else '-'} {abs(priority)}"


def render_rule(rule: ir.Rule) -> str:
    parts = [_statement(s) for s in rule.statements]
    if rule.comment:
        parts.append(f"comment {_quote(rule.comment)}")
    return " ".join(parts)


def _statement(s: ir.Statement) -> str:
    if isinstance(s, ir.Match):
        quote = isinstance(s.left, ir.Meta) and s.left.key in _QUOTED_META
        return f"{_field(s.left)} {'!= ' if s.negate else ''}{_value(s.right, quote)}"
    if isinstance(s, ir.CounterRef):
        return f'counter name "{s.name}"'
    if isinstance(s, ir.Limit):
        return _limit(s)
    if isinstance(s, ir.LimitRef):
        return f'limit name "{s.name}"'
    if isinstance(s, ir.Log):
        return f"log prefix {_quote(s.prefix)}"
    if isinstance(s, ir.SetUpdate):
        return f"update @{s.set_name} {{ {_field(s.key)} {_limit(s.limit)} }}"
    if isinstance(s, ir.VerdictMap):
        return f"{_field(s.key)} vmap @{s.map_name}"
    return _verdict(s)


def _field(f: ir.Field) -> str:
    if isinstance(f, ir.Concat):
        return " . ".join(_field(part) for part in f.parts)
    if isinstance(f, ir.Meta):
        return f"meta {f.key}" if f.key in ("l4proto", "nfproto") else f.key
    if isinstance(f, ir.Ct):
        return f"ct {f.key}"
    if isinstance(f, ir.Fib):
        return f"fib {' . '.join(f.flags)} {f.result}"
    return f"{f.protocol} {f.field}"


def _value(v: ir.Value, quote: bool = False) -> str:
    if isinstance(v, ir.SetRef):
        return f"@{v.name}"
    if isinstance(v, ir.AnonSet):
        return "{ " + ", ".join(_value(x, quote) for x in v.values) + " }"
    if isinstance(v, ir.Prefix):
        return f"{v.address}/{v.length}"
    if isinstance(v, ir.Range):
        return f"{v.first}-{v.last}"
    if isinstance(v, ir.Flags):
        return ",".join(v.values)
    if isinstance(v, ir.Concat):
        return " . ".join(_value(part, quote) for part in v.parts)
    if isinstance(v, ir.Presence):
        return "exists" if v.exists else "missing"
    if isinstance(v, str) and quote:
        return _quote(v)
    return str(v)


def _limit(limit: ir.Limit) -> str:
    return f"limit {_rate(limit)}"


def _rate(limit: ir.Limit) -> str:
    """`rate [over] N/unit burst B packets`: the body of a named limit, and of a limit statement."""
    over = "over " if limit.over else ""
    return f"rate {over}{limit.rate}/{limit.per} burst {limit.burst} packets"


def _verdict(v: ir.Verdict) -> str:
    if v.kind in ("jump", "goto"):
        return f"{v.kind} {v.target}"
    if v.kind == "reject" and v.reject_with:
        return f"reject with {v.reject_with}"
    return v.kind


def _quote(text: str) -> str:
    if any(c in text for c in '"\\\n$'):  # no escapes in nft strings, and "$x" expands a variable
        raise ValueError(f"unsafe text for an nft string: {text!r}")
    return f'"{text}"'
