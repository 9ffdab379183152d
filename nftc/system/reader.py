"""Reading nftc's table from the kernel without fetching what is not needed.

libnftables 1.0.6 fetches every element of every set in a table for `nft list table`, `list chain`, `list
counters` or `-j list tables`: about 9 s with 200,000 addresses loaded, more than loading them takes. Two commands
fetch little: `nft -t list ruleset` (terse: every table, no set elements; 8 ms there) and `nft list set|map T NAME`
(that one set's elements). So nftc's table is read as its block of the terse ruleset listing and, where the caller
wants them, the elements of its static sets, listed one set at a time and put back in place. The elements of
dynamic sets (fail2ban's, and meters) are never read as text here; apply and rollback read them as JSON data
(elements.py). Other tables appear in the ruleset listing; only nftc's block is kept, and when it cannot be told
apart (another table's comment holding newlines can forge its header: a second one, or one with no chain behind
it in the JSON chain listing), the table is listed on its own, the slow way.
"""

from __future__ import annotations

from . import kernel, live
from .kernel import KernelError
from .records import Target


def read_table(target: Target, with_elements: bool = False) -> str | None:
    """The table as `nft list table` prints it, without the elements of dynamic sets, and without any set's
    elements unless `with_elements`; None when there is no such table."""
    block = terse_table(target)
    return with_static_elements(target, block) if block is not None and with_elements else block


def terse_table(target: Target) -> str | None:
    """The table without set elements (`nft -t`); None when there is no such table."""
    try:
        block = live.table_block(kernel.list_ruleset_terse(), target)
        if block is not None and not kernel.has_chains(target.family, target.name):
            raise live.Ambiguous(f"table {target} is listed but has no chain: another table's comment made it")
        return block
    except (live.Ambiguous, KernelError):  # or another table libnftables cannot print: then nftc's alone
        return kernel.list_table(target.family, target.name)


def with_static_elements(target: Target, listing: str) -> str:
    """`listing` with the elements of every static set and map, each listed on its own."""
    static = [b for b in live.blocks(listing) if b.kind in ("set", "map") and not b.dynamic]
    return live.with_sets(listing, {b.name: _set_lines(target, b) for b in static})


def _set_lines(target: Target, block: live.Block) -> list[str]:
    listing = kernel.list_set_text(target.family, target.name, block.kind, block.name)
    lines = live.set_block_lines(listing, block.name) if listing is not None else None
    if lines is None:
        raise KernelError(f"table {target} changed while nftc read it ({block.kind} {block.name} is gone): try again")
    return lines
