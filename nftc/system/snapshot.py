"""The snapshot a rollback restores: every table nftc touched since the last confirmed state, as it was then.

Files in the state directory:
  snapshot.json            which tables (existed or not), the sha256 of snapshot.nft, the applied record they
                           came from, and their dynamic elements as checked data
  snapshot.nft             the listings of the tables that existed, one `table inet NAME { ... }` block each
  snapshot.applied.script  the compiled script of that applied record (loaded at boot if the policy no longer
                           compiles after a rollback)
  snapshot.applied.listing the listing recorded right after that record's load (what drift is told against after a
                           rollback; optional: without it, drift after the rollback is unknown)

A snapshot is loaded only if snapshot.nft has the sha256 nftc recorded, consists of nothing but blocks of the
tables the record names, each carrying nftc's marker, and the applied script has its policy's digest. Elements of
the dynamic sets are stripped from the listings and carried as data (elements.py), each timed one with the
wall-clock second it expires at; a set the apply kept in place has none saved: a rollback takes its live elements.

A table that is exactly its applied record (the marker's digest is the record's, no drift) is saved as the
record's compiled script rather than listed: with 10^5 addresses listing it takes longer than loading it. Its
block is then not copied into snapshot.nft: snapshot.json marks the table `script`, and a rollback takes its block
out of snapshot.applied.script, which holds that script anyway (issue 9: 7.5 MB written once, not twice). The
recorded sha256 covers snapshot.nft followed by those blocks, so such a block is checked as one of snapshot.nft.

A rollback puts a table back in place when it can (transaction.restore_in_place): a dynamic set or a named counter
declared the same in the snapshot as in the live table stays, with its elements (none read, none lost meanwhile)
or its values; everything else is replaced. Otherwise the whole table is, and its counters restart from zero.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

from . import elements, live, records, transaction
from ..backend import names
from .records import Snapshot, TableState, Target
from .state import StateDir, StateError, as_json

JSON_FILE, NFT_FILE, SCRIPT_FILE = "snapshot.json", "snapshot.nft", "snapshot.applied.script"
LISTING_FILE = "snapshot.applied.listing"
# nft reads these at any depth of a block: a rule comment holding a newline and one of them (another tool can write
# such a comment through the netlink API) would make a restore include a file or define variables.
_SCOPE_COMMANDS = ("include", "define", "redefine", "undefine")


def unrestorable(listing: str) -> str | None:
    """Why a live table's listing cannot be saved for a later restore, or None."""
    for number, line in enumerate(listing.splitlines(), 1):
        if line.strip().split(" ", 1)[0] in _SCOPE_COMMANDS:
            return f"line {number} of its listing starts with '{line.strip()[:12]}', which a restore would execute"
    return None


@dataclass(frozen=True)
class Saved:
    """A snapshot read back and checked: ready to restore."""

    record: Snapshot
    listings: dict[Target, str]  # tables that existed, without dynamic elements
    elements: dict[Target, tuple[elements.SetElements, ...]]
    applied_script: str | None
    applied_listing: str | None = None


def files(record: Snapshot, listings: dict[Target, str], carried: dict[Target, tuple[elements.SetElements, ...]],
          applied_script: str | None, applied_listing: str | None = None) -> dict[str, str]:
    """The snapshot's files, to stage: the listings (or scripts) without dynamic elements, the elements as
    data; a table whose listing is `applied_script` itself marked `script`, its block left out of snapshot.nft."""
    tables = tuple(dataclasses.replace(t, script=_is_script(t, listings, record, applied_script))
                   for t in record.tables)
    blocks = {t.target: _block(listings[t.target], t.target) for t in tables if t.existed}
    text = "".join(blocks[t.target] for t in tables if t.existed and not t.script)
    sha256 = records.content_sha256(text, *(blocks[t.target] for t in tables if t.script))
    data = {**dataclasses.replace(record, tables=tables).as_dict(), "sha256": sha256, "elements": [
        {"family": target.family, "table": target.name, "set": s.name, "items": elements.saved_items(s, time.time())}
        for target, sets in sorted(carried.items()) for s in sets]}
    out = {JSON_FILE: as_json(data), NFT_FILE: text}
    if applied_script is not None:
        out[SCRIPT_FILE] = applied_script
    if applied_listing is not None:
        out[LISTING_FILE] = applied_listing
    return out


def _is_script(table: TableState, listings: dict[Target, str], record: Snapshot, applied_script: str | None) -> bool:
    """Whether the table is saved as the applied record's script (then read back from snapshot.applied.script)."""
    return table.existed and applied_script is not None and record.applied is not None and \
        record.applied.target == table.target and listings[table.target] == applied_script


def _block(listing: str, target: Target) -> str:
    """One table's block of snapshot.nft: a listing normalised, or a compiled script's table (no counter values,
    no dynamic elements: nothing to normalise)."""
    if listing.startswith(f"table {target} {{\n"):
        return live.normalise(listing)
    return live.table_block(listing, target) or ""


def read(state: StateDir) -> Saved:
    """The snapshot, checked; a StateError naming the file otherwise (nothing is loaded from a doubtful one)."""
    what = state.file(JSON_FILE)
    data = state.read_json(JSON_FILE)
    if data is None:
        raise StateError(f"no snapshot in {state.path}: nothing to roll back to")
    record = records.snapshot_from(data, what)
    text = state.read_text(NFT_FILE)
    if text is None:
        text = ""
    applied_script = _applied_script(state, record)  # there when a table is marked (records.snapshot_from)
    from_script = {t.target: _script_block(applied_script, t.target, state.file(SCRIPT_FILE))
                   for t in record.tables if t.script}
    if records.content_sha256(text, *from_script.values()) != record.sha256:
        raise StateError(f"{state.file(NFT_FILE)} is corrupt: it is not the snapshot nftc saved (sha256 differs)")
    listings = {**_blocks(text, record, state.file(NFT_FILE)), **from_script}
    return Saved(record, listings, _saved_elements(data, record, what), applied_script,
                 _applied_listing(state, record))


def _script_block(script: str, target: Target, path: str) -> str:
    """The table's block out of the applied script (its digest checked): what `files` left out of snapshot.nft."""
    try:
        block = live.table_block(script, target)
    except live.Ambiguous:
        block = None
    if block is None or unrestorable(block) is not None or live.digest(block) is None:
        raise StateError(f"{path} is corrupt: it does not hold table {target} as nftc saved it")
    return block


def _blocks(text: str, record: Snapshot, path: str) -> dict[Target, str]:
    """Split snapshot.nft into its table blocks; anything but the recorded tables' blocks is refused."""
    expected = {t.target for t in record.tables if t.existed and not t.script}
    found: dict[Target, str] = {}
    current: list[str] | None = None
    for line in text.splitlines(keepends=True):
        if current is None:
            target = _header(line, expected)
            if target is None or target in found:
                raise StateError(f"{path} is corrupt: it holds something other than nftc's recorded tables")
            current, found[target] = [line], ""
        elif line == "}\n":
            found[target] = "".join(current + [line])
            current = None
        elif (line.startswith("\t") or line == "\n") and unrestorable(line) is None:
            current.append(line)
        else:
            raise StateError(f"{path} is corrupt: a line outside a table block")
    if current is not None or set(found) != expected:
        raise StateError(f"{path} is corrupt: a recorded table is missing or cut short")
    for target, block in found.items():
        if live.digest(block) is None:
            raise StateError(f"{path} is corrupt: table {target} does not carry nftc's marker")
    return found


def _header(line: str, expected: set[Target]) -> Target | None:
    return next((t for t in expected if line == f"table {t} {{\n"), None)


def _saved_elements(data: dict, record: Snapshot, what: str) -> dict[Target, tuple[elements.SetElements, ...]]:
    items = data.get("elements", [])
    if not isinstance(items, list):
        raise StateError(f"{what}: elements are damaged")
    out: dict[Target, list[elements.SetElements]] = {}
    for item in items:
        if not isinstance(item, dict):
            raise StateError(f"{what}: elements are damaged")
        target = records.target_from(item, what)
        name = item.get("set")
        if not record.knows(target) or not isinstance(name, str) or names.dynamic_set_version(name) is None:
            raise StateError(f"{what}: elements name a set nftc does not own")
        out.setdefault(target, []).append(elements.from_saved(name, item.get("items"), time.time()))
    return {target: tuple(sets) for target, sets in out.items()}


def _applied_script(state: StateDir, record: Snapshot) -> str | None:
    if record.applied is None:
        return None
    script = state.read_text(SCRIPT_FILE)
    if script is None or live.script_digest(script) != record.applied.digest:
        raise StateError(f"{state.file(SCRIPT_FILE)} is missing or is not the script of "
                         f"sha256:{record.applied.digest[:16]}")
    return script


def _applied_listing(state: StateDir, record: Snapshot) -> str | None:
    """Only ever compared, never loaded: one that does not carry the record's digest is ignored, not an error."""
    listing = state.read_text(LISTING_FILE) if record.applied is not None else None
    return listing if listing is not None and live.digest(listing) == record.applied.digest else None


def extended(saved: Saved, added: dict[Target, tuple[str | None, tuple[elements.SetElements, ...]]]) -> dict[str, str]:
    """The snapshot's files with more tables, each as it is now (listing None: it does not exist)."""
    record = Snapshot(saved.record.tables + tuple(TableState(t, listing is not None)
                                                  for t, (listing, _) in sorted(added.items())),
                      saved.record.sha256, saved.record.time, saved.record.applied)
    listings = {**saved.listings, **{t: listing for t, (listing, _) in added.items() if listing is not None}}
    carried = {**saved.elements, **{t: sets for t, (_, sets) in added.items()}}
    return files(record, listings, carried, saved.applied_script, saved.applied_listing)


def in_place(saved: Saved, live_listings: dict[Target, str | None]) -> dict[Target, transaction.Restore]:
    """The recorded tables that can be put back in place (transaction.restore_in_place): live, nftc's, with a
    dynamic set or a counter declared the same in the snapshot and now."""
    out = {}
    for state in saved.record.tables:
        current = live_listings.get(state.target)
        if state.existed and current is not None and live.digest(current) is not None:
            found = transaction.restore_in_place(state.target, saved.listings[state.target], current)
            if found is not None:
                out[state.target] = found
    return out


def restore_script(saved: Saved, live_listings: dict[Target, str | None],
                   live_elements: dict[Target, tuple[elements.SetElements, ...]],
                   kept: dict[Target, transaction.Restore] | None = None) -> tuple[str, list[str]]:
    """One transaction that puts every recorded table back (or removes it), and what had to be left alone.

    A live table without nftc's marker is another tool's now: it is neither replaced nor deleted. A table in
    `kept` (in_place) is put back around its kept dynamic sets and counters, which keep their elements and
    values; any other is replaced whole. Dynamic elements of the sets not kept: the live ones where the set still
    exists (fail2ban's latest word, read by the caller without the kept sets), the saved ones otherwise.
    """
    script, skipped, kept = [], [], kept or {}
    for state in saved.record.tables:
        target, current = state.target, live_listings.get(state.target)
        if current is not None and live.digest(current) is None:
            skipped.append(f"table {target} is not nftc's any more; left alone")
            continue
        if state.existed:
            here = kept.get(target)
            script.append(here.body if here else target.replace_header() + saved.listings[target])
            script += _element_lines(target, saved.listings[target], saved.elements.get(target, ()),
                                     live_elements.get(target, ()), here.kept.sets if here else ())
        elif current is not None:
            script.append(target.replace_header())
    return "".join(script), skipped


def _element_lines(target: Target, listing: str, saved: tuple[elements.SetElements, ...],
                   current: tuple[elements.SetElements, ...], kept: tuple[str, ...]) -> list[str]:
    declared = {b.name for b in live.blocks(listing) if b.kind == "set" and b.name not in kept}
    chosen = {s.name: elements.aged(s, time.time()) for s in saved}
    chosen.update({s.name: s for s in current})
    return [elements.add_command(target, s, elements.takes_timeouts(listing, name))
            for name, s in sorted(chosen.items()) if name in declared]
