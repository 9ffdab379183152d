"""The transaction an apply loads: the whole table replaced, or everything in it replaced but the dynamic sets.

Whole: `table T {}` + `delete table T` + the new table, then the dynamic elements read before (as data) added back.
An element fail2ban adds between that reading and the load is lost, and every element is sent again: with 10^5 of
them, reading and re-sending them was most of a reload.

In place, when the live table is exactly what the last apply loaded (its digest, no drift) and a dynamic set's
definition is the same in the new script as in the recorded one: every chain is flushed and deleted, every other
set, map, counter and limit deleted, and the new table added over what is left. The kept sets are declared again
by the new table, unchanged, so the kernel leaves them and their elements alone: none is read, none re-sent, none
added meanwhile lost. The table itself stays, and with it the comment it was created with: the input chain, made
anew, carries the new digest (nftc.compiler stamps both). One transaction either way: the kernel applies all of
it or none.
"""

from __future__ import annotations

import re

from . import live
from .records import Target

# Names nftc gives (nftc.backend.names): a name read back from a listing goes into the transaction's text.
_SAFE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")
_DELETE_ORDER = ("map", "set", "chain", "counter", "limit")  # maps hold gotos to chains; rules were flushed first


def kept_sets(dynamic_sets: tuple[str, ...], new_script: str, recorded_script: str, listing: str) -> tuple[str, ...]:
    """The dynamic sets of the new table that can stay in place: live now, declared the same in both scripts."""
    live_sets = {b.name for b in live.blocks(listing) if b.kind == "set"}
    return tuple(name for name in dynamic_sets if name in live_sets
                 and live.set_block_lines(new_script, name) == live.set_block_lines(recorded_script, name))


def in_place(target: Target, listing: str, kept: tuple[str, ...], new_script: str) -> str | None:
    """The transaction that replaces everything in the live table (`listing`) but the `kept` sets; None if a
    name in the listing is not one nftc could have given (then the whole table is replaced)."""
    members = [b for b in live.blocks(listing) if not (b.kind == "set" and b.name in kept)]
    if not all(_SAFE_NAME.fullmatch(b.name) for b in members):
        return None
    lines = [f"flush chain {target} {b.name}" for b in members if b.kind == "chain"]
    lines += [f"delete {kind} {target} {b.name}" for kind in _DELETE_ORDER for b in members if b.kind == kind]
    return "\n".join(lines) + "\n" + live.table_block(new_script, target)
