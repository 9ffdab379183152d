"""IR -> nft script text: the replace-my-table-atomically script that `nft -f` and libnftables load.

One small function per IR class, looked up by the node's exact class (sqlglot's generator): `TRANSFORMS` holds
the nodes a rule is made of (the IR's Field, Value and Statement unions), `CONTAINERS` the nodes that have one
fixed place in their parent (a table's chains, a chain's hook...), which the parent renders directly. A class
with no function where it stands raises TypeError: a node the IR gains, or one put where it does not belong, is
a loud bug here and never `str(node)` in a ruleset. Each function renders its node as written on its own (a set
block starts at column 0); the parent indents it.
"""

from __future__ import annotations

import functools
from itertools import chain as iter_chain
from itertools import compress, count, islice, repeat
from operator import is_
from typing import Any, Callable, Iterable

from . import ir

_QUOTED_META = {"iif", "iifname", "oif", "oifname"}


def render_nft(table: ir.Table) -> str:
    """`table {}` + `delete table` + the full table: one transaction that replaces only this table."""
    return "".join((replace_header(table.family, table.name), _table(table), "\n"))  # one copy of 10^5 lines


def replace_header(family: str, name: str) -> str:
    """`table F N {}` then `delete table F N`: create the table if it is missing, then delete it, so what follows
    in the same transaction builds it anew (nothing follows: it is removed), and no other table is touched. The
    one home of these lines: a compiled ruleset, a rollback and an apply that removes nftc's earlier table."""
    return f"table {family} {name} {{}}\ndelete table {family} {name}\n"


def render_node(node: Any, quote: bool = False) -> str:
    """The text of one node of a rule; `quote`: strings are names nft must read as strings (interfaces)."""
    transform = TRANSFORMS.get(type(node))
    if transform is None:
        raise TypeError(f"render_nft: no rule for {type(node).__name__}")
    return transform(node, quote)


# Containers: each has one place in its parent, which calls its function directly.


def _table(table: ir.Table) -> str:
    """`table FAMILY NAME { ... }`: its comment, then counters, limits, sets and chains, a blank line apart."""
    members = [_indent(_counter(c)) for c in table.counters] + [_indent(_limit_object(lo)) for lo in table.limits]
    members += [_indented_set(s) for s in table.sets] + [_indent(_chain(c)) for c in table.chains]
    lines = [f"table {table.family} {table.name} {{"]
    if table.comment:
        lines.append(f"\tcomment {_quote(table.comment)}")
    lines += [part for member in members for part in ("", member)][1:]  # a blank line apart, in the one join
    lines.append("}")
    return "\n".join(lines)


def _indent(block: str) -> str:
    """One tab more before every line of a block (blocks have no empty lines)."""
    return "\t" + block.replace("\n", "\n\t")


def _counter(counter: ir.Counter) -> str:
    comment = [f"\tcomment {_quote(counter.comment)}"] if counter.comment else []
    return "\n".join([f"counter {counter.name} {{", *comment, "}"])


def _limit_object(limit: ir.LimitObject) -> str:
    """A named limit; its comment is not rendered (the output has never carried it)."""
    return f"limit {limit.name} {{\n\t{_rate(limit.limit)}\n}}"


def _set(s: ir.Set, elements: str | None = None) -> str:
    """A set block; `elements`: the text between the braces of its elements, when the caller wrote it already."""
    kind = "map" if s.is_map else "set"
    key_type = f"{s.key_type} : verdict" if s.is_map else s.key_type
    lines = [f"{kind} {s.name} {{", f"\ttype {key_type}"]
    if s.size:
        lines.append(f"\tsize {s.size}")
    flags = [f for f, on in (("dynamic", s.dynamic), ("interval", s.interval), ("timeout", bool(s.timeout))) if on]
    if flags:
        lines.append(f"\tflags {','.join(flags)}")
    if s.timeout:
        lines.append(f"\ttimeout {s.timeout}")
    if s.comment:
        lines.append(f"\tcomment {_quote(s.comment)}")
    if s.elements:
        elements = _elements(s.elements, quote=s.key_type == "ifname") if elements is None else elements
        lines.append("\telements = { " + elements + " }")
    lines.append("}")
    return "\n".join(lines)


_ELEMENT_SEPARATOR = ",\n\t\t     "  # one element a line, aligned under the first
_INDENTED_SEPARATOR = _ELEMENT_SEPARATOR.replace("\n", "\n\t")  # the same, in a block indented by `_indent`
_ELEMENTS_MARK = "\0"  # where an address set's elements go in its indented block (nft text holds no NUL)
# A compile renders each address node twice: zones_v4/_v6 and bans_v4/_v6, and two sets per url zone, must all
# stay cached between the two renders, or each is written again (a policy with more than two url zones renders
# some twice).
ADDRESS_NODES_CACHED = 8


def _indented_set(s: ir.Set) -> str:
    """A set block as it stands in its table."""
    return _indented_address_set(s) if isinstance(s.elements, ir.AddressIntervals) else _indent(_set(s))


@functools.lru_cache(maxsize=ADDRESS_NODES_CACHED)
def _indented_address_set(s: ir.Set) -> str:
    """An address set's block, indented, cached as `_address_intervals` is: a compile renders its table twice. Its
    elements are written indented, not indented afterwards, which would copy 10^5 lines again."""
    if not s.elements:
        return _indent(_set(s))
    head, _, tail = _indent(_set(s, elements=_ELEMENTS_MARK)).rpartition(_ELEMENTS_MARK)  # the last line but "}"
    return "".join((head, _address_text(s.elements, _INDENTED_SEPARATOR), tail))


def set_elements(s: ir.Set) -> str:
    """A set's elements as they stand between the braces of `elements = { ... }` or `add element ... { ... }`:
    nftc refresh replaces a blocklist's elements with these, written as the compiled table writes them."""
    return _elements(s.elements, quote=s.key_type == "ifname")


def _elements(elements: tuple[ir.Element, ...] | ir.AddressIntervals, quote: bool) -> str:
    if isinstance(elements, ir.AddressIntervals):
        return _address_intervals(elements)
    return _ELEMENT_SEPARATOR.join(_element(e, quote) for e in elements)


def _element(element: ir.Element, quote: bool = False) -> str:
    key = render_node(element.key, quote)
    return f"{key} : {render_node(element.verdict)}" if element.verdict else key


@functools.lru_cache(maxsize=ADDRESS_NODES_CACHED)
def _address_intervals(node: ir.AddressIntervals) -> str:
    """Each interval as an Element of it renders: its key as an address, an ir.Prefix or an ir.Range is written
    (tests/test_nodes.py compares the two), then its goto; without an object per interval. Cached: a compile
    renders its table twice (for its digest, then to print or load it), and 10^5 intervals take 0.1 s."""
    return _address_text(node, _ELEMENT_SEPARATOR)


def _address_text(node: ir.AddressIntervals, separator: str) -> str:
    """`_address_intervals` with `separator` between elements, joined from three pieces per element (its first
    address; its prefix length, or `-` and its last address; its verdict and the separator) and no string made
    per element but its address (and a range's end): 15-20 % faster than joining elements made first."""
    if not node:
        return ""
    lengths = node.prefix_lengths()
    suffixes = {length: "" if length == node.bits else f"/{length}" for length in range(node.bits + 1)}
    suffixes[None] = "-"  # a range: its last address follows
    tails = list(map(suffixes.__getitem__, lengths))
    ranges = list(compress(count(), map(is_, lengths, repeat(None))))
    for index, last in zip(ranges, node.addresses(node.lasts[i] for i in ranges)):
        tails[index] += last
    if node.targets is None:
        ends: Iterable[str] = iter_chain(repeat(separator, len(node) - 1), ("",))
    else:
        verdicts = {target: f" : {render_node(ir.Verdict('goto', target))}" for target in set(node.targets)}
        between = {target: verdict + separator for target, verdict in verdicts.items()}
        ends = iter_chain(map(between.__getitem__, islice(node.targets, len(node) - 1)),
                          (verdicts[node.targets[-1]],))
    return "".join(iter_chain.from_iterable(zip(node.addresses(node.firsts), tails, ends)))


def _chain(chain: ir.Chain) -> str:
    lines = [f"chain {chain.name} {{"]
    if chain.comment:
        lines.append(f"\tcomment {_quote(chain.comment)}")
    if chain.hook:
        lines.append(f"\t{_hook(chain.hook)}")
    lines += [f"\t{render_rule(rule)}" for rule in chain.rules]
    lines.append("}")
    return "\n".join(lines)


def _hook(hook: ir.Hook) -> str:
    return f"type filter hook {hook.hook} priority {_priority(hook.priority)}; policy {hook.policy};"


def _priority(priority: int) -> str:
    if priority == 0:
        return "filter"
    return f"filter {'+' if priority > 0 else '-'} {abs(priority)}"


def render_rule(rule: ir.Rule) -> str:
    """One rule on one line, as in a chain (and as tests read the rules of a chain)."""
    parts = [render_node(s) for s in rule.statements]
    if rule.comment:
        parts.append(f"comment {_quote(rule.comment)}")
    return " ".join(parts)


# The nodes of a rule: statements, and the fields and values they match.


def _match(match: ir.Match, quote: bool) -> str:
    if match.negate and isinstance(match.right, ir.Flags):
        raise ValueError("render_nft: no rule for a negated Flags match (nft compares the whole bitmask)")
    quoted = isinstance(match.left, ir.Meta) and match.left.key in _QUOTED_META
    return f"{render_node(match.left)} {'!= ' if match.negate else ''}{render_node(match.right, quoted)}"


def _limit(limit: ir.Limit, quote: bool) -> str:
    return f"limit {_rate(limit)}"


def _rate(limit: ir.Limit) -> str:
    """`rate [over] N/unit burst B packets`: the body of a named limit, and of a limit statement."""
    over = "over " if limit.over else ""
    return f"rate {over}{limit.rate}/{limit.per} burst {limit.burst} packets"


def _set_update(update: ir.SetUpdate, quote: bool) -> str:
    return f"update @{update.set_name} {{ {render_node(update.key)} {render_node(update.limit)} }}"


def _verdict(verdict: ir.Verdict, quote: bool) -> str:
    if verdict.kind in ("jump", "goto"):
        return f"{verdict.kind} {verdict.target}"
    if verdict.kind == "reject" and verdict.reject_with:
        return f"reject with {verdict.reject_with}"
    return verdict.kind


def _meta(meta: ir.Meta, quote: bool) -> str:
    return f"meta {meta.key}" if meta.key in ("l4proto", "nfproto") else meta.key


def _anon_set(anon: ir.AnonSet, quote: bool) -> str:
    return "{ " + ", ".join(render_node(x, quote) for x in anon.values) + " }"


def _concat(concat: ir.Concat, quote: bool) -> str:
    return " . ".join(render_node(part, quote) for part in concat.parts)


def _str(text: str, quote: bool) -> str:
    return _quote(text) if quote else text


def _quote(text: str) -> str:
    if any(c in text for c in '"\\\n$'):  # no escapes in nft strings, and "$x" expands a variable
        raise ValueError(f"unsafe text for an nft string: {text!r}")
    return f'"{text}"'


TRANSFORMS: dict[type, Callable[[Any, bool], str]] = {
    # statements
    ir.Match: _match,
    ir.CounterRef: lambda ref, quote: f'counter name "{ref.name}"',
    ir.Limit: _limit,
    ir.LimitRef: lambda ref, quote: f'limit name "{ref.name}"',
    ir.Log: lambda log, quote: f"log prefix {_quote(log.prefix)}",
    ir.SetUpdate: _set_update,
    ir.Verdict: _verdict,
    ir.VerdictMap: lambda vmap, quote: f"{render_node(vmap.key)} vmap @{vmap.map_name}",
    # fields
    ir.Meta: _meta,
    ir.Payload: lambda payload, quote: f"{payload.protocol} {payload.field}",
    ir.Ct: lambda ct, quote: f"ct {ct.key}",
    ir.Fib: lambda fib, quote: f"fib {' . '.join(fib.flags)} {fib.result}",
    ir.Concat: _concat,
    # values
    ir.SetRef: lambda ref, quote: f"@{ref.name}",
    ir.AnonSet: _anon_set,
    ir.Prefix: lambda prefix, quote: f"{prefix.address}/{prefix.length}",
    ir.Range: lambda r, quote: f"{render_node(r.first)}-{render_node(r.last)}",
    ir.Flags: lambda flags, quote: ",".join(flags.values),
    ir.Presence: lambda presence, quote: "exists" if presence.exists else "missing",
    str: _str,
    int: lambda number, quote: str(number),
}

CONTAINERS: dict[type, Callable[[Any], str]] = {
    ir.Table: _table,
    ir.Counter: _counter,
    ir.LimitObject: _limit_object,
    ir.Set: _set,
    ir.Element: _element,
    ir.AddressIntervals: _address_intervals,
    ir.Chain: _chain,
    ir.Hook: _hook,
    ir.Rule: render_rule,
}
