"""Drift: what in a live nftc table differs from what its policy compiled to (a hand edit).

Told against the listing apply recorded right after its load (`applied.listing`: the table as the kernel printed
it then), both sides read the same way, so no extra process is needed. After a rollback the record is the one the
snapshot came from, with its listing, so hand edits the snapshot carried are shown, not hidden. `nftc diff` may
also list the recorded script in a private namespace (a record without a listing), or give a listing of the same
digest it made itself.

Up to `records.LISTED_ELEMENTS` static set elements, everything but counter values and dynamic elements is
compared; above it, the sets' elements are not (listing them would cost seconds): rules, chains and the sets'
definitions are, and the verdict says so.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import kernel, live
from .records import LISTING, SCRIPT, lists_elements, read_applied
from .state import StateDir


@dataclass(frozen=True)
class Drift:
    """'none', 'DRIFT' or 'unknown'; the differing lines (or why unknown); whether set elements were compared."""

    verdict: str
    lines: tuple[str, ...]
    elements_checked: bool = True
    elements: int | None = None  # static set elements of the recorded table, for the message when not checked


def drift(state: StateDir, listing: str, with_elements: bool, reference: str | None = None,
          private: bool = False) -> Drift:
    """The live table (`listing`, read with or without its static sets' elements) against the record of the
    policy whose digest its marker carries, or `reference` (a listing of the same digest, with elements).
    `private`: with no recorded listing, list the recorded script in a private namespace (for `nftc diff`)."""
    digest = live.digest(listing)
    if reference is not None and live.digest(reference) == digest:
        return _compared(listing, reference, with_elements, None)
    applied = read_applied(state) if state.exists() else None
    if applied is None or applied.digest != digest:
        return Drift("unknown", (f"no record of sha256:{str(digest)[:16]} in {state.path}; cannot tell hand edits",))
    recorded = state.read_text(LISTING)
    complete = lists_elements(applied.elements)  # the recorded listing has the static sets' elements
    if recorded is not None and live.digest(recorded) == digest and (complete or not (private and with_elements)):
        return _compared(listing, recorded, with_elements and complete, applied.elements)
    script = state.read_text(SCRIPT) if private else None
    if script is not None and live.script_digest(script) == digest:
        reference = kernel.listing_in_private_namespace(script, applied.target.family, applied.target.name)
        return _compared(listing, reference, with_elements, applied.elements)
    return Drift("unknown", (f"no listing of sha256:{digest[:16]} recorded in {state.path} (nftc diff tells)",))


def _compared(listing: str, reference: str, with_elements: bool, elements: int | None) -> Drift:
    lines = tuple(live.drift(listing, reference, with_elements))
    return Drift("DRIFT" if lines else "none", lines, with_elements, elements)


def elements_note(found: Drift) -> str:
    """What a verdict without the sets' elements did not compare, for status and apply."""
    count = f"{found.elements:,} elements" if found.elements is not None else "many elements"
    return f"set elements not compared at this size ({count}; nftc diff compares them)"
