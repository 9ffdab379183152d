"""The transaction an apply loads: the whole table replaced, or everything in it replaced but the dynamic sets and
the named counters.

Whole: `table T {}` + `delete table T` + the new table, then the dynamic elements read before (as data) added back.
An element fail2ban adds between that reading and the load is lost, and every element is sent again: with 10^5 of
them, reading and re-sending them was most of a reload. Every counter starts again from zero.

In place, whenever the live table is exactly what the last apply loaded (its digest, no drift): every chain is
flushed and deleted, every other set, map, counter and limit deleted, and the new table added over what is left.
What stays is what is declared the same in the new script as in the recorded one: a dynamic set (the kernel leaves
it and its elements alone: none is read, none re-sent, none added meanwhile lost) and a named counter (it keeps
counting: rates read from it do not reset at every apply). The kept objects are declared again by the new table,
unchanged, and the kernel leaves an existing object as it is. A counter whose declaration changed (its comment
names the policy line of its rule, and that line moved) is made anew, from zero: the table is then exactly the
compiled one. A dynamic set whose definition changed (a `timeout` added) is made anew and its elements carried as
data, each with the time it had left (elements.py). The table itself stays, and with it the comment it was created
with: the input chain, made anew, carries the new digest (nftc.compiler stamps both). One transaction either way:
the kernel applies all of it or none.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import live
from ..backend import names
from .records import Target

# Names nftc gives (nftc.backend.names): a name read back from a listing goes into the transaction's text.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")
_DELETE_ORDER = ("map", "set", "chain", "counter", "limit")  # maps hold gotos to chains; rules were flushed first
# nftc.backend.render_nft writes the counters first in the table: they are read from the script's head only.
_AFTER_COUNTERS = re.compile(r"\n\t(?:limit|set|map|chain) ")


@dataclass(frozen=True)
class Kept:
    """What an in-place apply leaves in the kernel: dynamic sets (with their elements) and named counters."""

    sets: tuple[str, ...] = ()
    counters: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.sets or self.counters)


def kept(dynamic_sets: tuple[str, ...], new_script: str, recorded_script: str, listing: str) -> Kept:
    """The dynamic sets and named counters of the new table that can stay in place: live now, declared the same in
    both scripts."""
    found = live.blocks(listing)
    live_sets = {b.name for b in found if b.kind == "set"}
    live_counters = {b.name for b in found if b.kind == "counter"}
    sets = tuple(name for name in dynamic_sets if name in live_sets
                 and live.set_block_lines(new_script, name) == live.set_block_lines(recorded_script, name))
    before = counter_declarations(recorded_script)
    counters = tuple(name for name, lines in counter_declarations(new_script).items()
                     if name in live_counters and before.get(name) == lines)
    return Kept(sets, counters)


def counter_declarations(script: str) -> dict[str, tuple[str, ...]]:
    """Each named counter of a compiled script and the lines of its declaration (its comment), read from the head
    of the script only: a script with 10^5 addresses is megabytes, its counters its first kilobytes (one search that
    stops at the first block after them: a kind of block the script lacks is never looked for to its end)."""
    end = _AFTER_COUNTERS.search(script)
    head = script[:end.start() + 1] if end else script
    return {b.name: b.lines for b in live.blocks(head) if b.kind == "counter"}


def in_place(target: Target, listing: str, kept: Kept, new_script: str) -> str | None:
    """The transaction that replaces everything in the live table (`listing`) but the `kept` sets and counters;
    None if a name in the listing is not one nftc could have given, or the table holds an object this would not
    delete (a quota, a flowtable: then the whole table is replaced)."""
    members = [b for b in live.blocks(listing) if not (b.kind == "set" and b.name in kept.sets)
               and not (b.kind == "counter" and b.name in kept.counters)]
    if not all(_SAFE_NAME.fullmatch(b.name) for b in members) or _unknown_objects(listing):
        return None
    lines = [f"flush chain {target} {b.name}" for b in members if b.kind == "chain"]
    lines += [f"delete {kind} {target} {b.name}" for kind in _DELETE_ORDER for b in members if b.kind == kind]
    return "\n".join(lines) + "\n" + live.table_block(new_script, target)


def _unknown_objects(listing: str) -> bool:
    """Whether a line at the table's level is neither the opening of a block live.blocks knows, nor its end, nor
    the table's comment."""
    return any(line.startswith("\t") and not line.startswith("\t\t") and line != "\t}"
               and not live.opens_block(line) and not line.startswith('\tcomment "')
               for line in listing.splitlines())


@dataclass(frozen=True)
class Restore:
    """A rollback in place: what stays, and the transaction."""

    kept: Kept
    body: str


def restore_in_place(target: Target, restored: str, listing: str) -> Restore | None:
    """A rollback to `restored` (a snapshot's listing or script of the table) that keeps in place the dynamic sets
    and named counters declared the same there as in the live table (`listing`, listed without set elements);
    None when nothing can stay (then the whole table is replaced)."""
    now = _declarations(listing)
    before = _declarations(restored)
    dynamic = [name for (kind, name) in before if kind == "set" and names.dynamic_set_version(name)]
    keep = Kept(tuple(name for name in dynamic if now.get(("set", name)) == before[("set", name)]),
                tuple(name for (kind, name), lines in before.items() if kind == "counter"
                      and now.get((kind, name)) == lines))
    body = in_place(target, listing, keep, restored) if keep else None
    return Restore(keep, body) if body is not None else None


def _declarations(text: str) -> dict[tuple[str, str], tuple[str, ...]]:
    """The sets and counters of a listing or script, each with its lines but counter values."""
    return {(b.kind, b.name): tuple(line for line in b.lines if not live.counter_values(line))
            for b in live.blocks(text) if b.kind in ("set", "counter")}
