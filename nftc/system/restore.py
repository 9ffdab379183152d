"""Putting nftc's tables back as a snapshot recorded them, and the one way nftc loads a transaction.

Shared by `nftc rollback`, the boot rollback and the rollback guard, which must not depend on the apply side: the
kernel is restored first, so a full disk cannot stop a rollback; the records afterwards, and if they cannot be
written they are removed, so no record tells a lie.
"""

from __future__ import annotations

from . import elements, kernel, live, reader, snapshot
from ..backend import names
from ..errors import NftcError
from .kernel import KernelError
from .records import APPLIED, LISTING, PENDING, SCRIPT, Applied, Target
from .state import StateDir, StateError, as_json, now_iso


class ApplyError(NftcError):
    """The kernel rejected the transaction, a table is not nftc's, or there was nothing to do; one message."""


def load(script: str) -> None:
    """One transaction; a rejection is an ApplyError naming the script line and its policy line."""
    result = kernel.run_script(script)
    if result.ok:
        return
    if kernel.refused_for_privileges(result.error):
        raise KernelError(kernel.PRIVILEGE_HINT)
    raise ApplyError(kernel.annotate_errors(result.error, script) + "\nnothing was changed")


def live_elements(target: Target, listing: str | None, skip: tuple[str, ...] = ()) -> tuple[elements.SetElements, ...]:
    """The dynamic sets' elements of a live nftc table (but those in `skip`), read as JSON data."""
    if listing is None:
        return ()
    dynamic = sorted(b.name for b in live.blocks(listing) if b.kind == "set" and names.dynamic_set_version(b.name)
                     and b.name not in skip)
    found = ((name, kernel.list_set(target.family, target.name, name)) for name in dynamic)
    return tuple(elements.from_json(name, data) for name, data in found if data is not None)


def restore(state: StateDir, saved: snapshot.Saved) -> list[str]:
    """Put the snapshot back in one transaction, then record it: the kernel first, so a full disk cannot stop a
    rollback; records afterwards, and if they cannot be written, removed, so no record tells a lie. Returns notes
    for the log (tables left alone, records that could not be written)."""
    listings = {t.target: reader.terse_table(t.target) for t in saved.record.tables}
    kept = snapshot.in_place(saved, listings)
    current = {t: live_elements(t, listing, kept[t].kept.sets if t in kept else ())
               for t, listing in listings.items() if listing is not None and live.digest(listing)}
    script, notes = snapshot.restore_script(saved, listings, current, kept)
    if script:
        try:
            load(script)
        except ApplyError as exc:
            raise ApplyError(f"the snapshot in {state.path} was rejected, nothing was changed: "
                             + " ".join(str(exc).split())[:300]) from None
    state.remove(PENDING)
    return notes + _record_restored(state, saved)


def _record_restored(state: StateDir, saved: snapshot.Saved) -> list[str]:
    previous = saved.record.applied
    try:
        if previous is None or saved.applied_script is None:
            for name in (APPLIED, SCRIPT, LISTING):
                state.remove(name)
            return []
        restored = Applied(previous.policy, previous.digest, previous.target, now_iso(), True, previous.elements,
                           previous.provenance)
        state.stage({APPLIED: as_json(restored.as_dict()), SCRIPT: saved.applied_script}).commit()
    except (StateError, OSError) as exc:
        for name in (APPLIED, SCRIPT, LISTING):
            try:
                state.remove(name)
            except (StateError, OSError):
                pass
        return [f"the rollback could not be recorded ({exc}); the applied record was removed"]
    return _record_restored_listing(state, saved)


def _record_restored_listing(state: StateDir, saved: snapshot.Saved) -> list[str]:
    """The listing drift is told against, as recorded after the restored record's load; without it (or if it
    cannot be written) drift is unknown until the next apply, which says so."""
    try:
        if saved.applied_listing is not None:
            state.write_text(LISTING, saved.applied_listing, durable=False)
        else:
            state.remove(LISTING)
        return []
    except (StateError, OSError) as exc:
        try:
            state.remove(LISTING)
        except (StateError, OSError):
            pass
        return [f"the listing drift is told against could not be written ({exc}); drift is unknown until the "
                "next apply"]
