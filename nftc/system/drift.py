"""Drift: what in a live nftc table differs from what its policy compiled to (a hand edit).

Told against the compiled script of the policy whose digest the table's marker carries, as recorded in the
state directory, both sides listed by the kernel the same way.
"""

from __future__ import annotations

from . import kernel, live
from .records import SCRIPT, read_applied
from .state import StateDir


def drift(state: StateDir, listing: str, reference: str | None = None) -> tuple[str, list[str]]:
    """('none'|'DRIFT'|'unknown', lines): the live table against the compiled script of the policy whose digest
    its marker carries — the applied record's, or `reference` (a listing of the same digest). After a rollback the
    record is the one the snapshot came from, so hand edits the snapshot carried are shown, not hidden."""
    digest = live.digest(listing)
    applied = read_applied(state) if state.exists() else None
    script = state.read_text(SCRIPT) if applied is not None and applied.digest == digest else None
    if script is not None and live.script_digest(script) == digest:
        target = applied.target
        recorded = kernel.listing_in_private_namespace(script, target.family, target.name)
        lines = live.drift(listing, recorded)
    elif reference is not None and live.digest(reference) == digest:
        lines = live.drift(listing, reference)
    else:
        return "unknown", [f"no record of sha256:{digest} in {state.path}; cannot tell hand edits"]
    return ("DRIFT" if lines else "none"), lines
