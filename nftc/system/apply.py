"""Loading a compiled table into the kernel safely: snapshot, one transaction, confirm or roll back, one at a time.

Three promises, each kept here and tested on the kernel:
- nftc only ever touches its own tables: a table is replaced or deleted only if it carries nftc's marker (the
  table comment the compiler writes); another tool's table of the same name is refused, whatever a record says.
- an unconfirmed apply always rolls back: the guard (guard.py) is armed *before* the load, and apply does not
  load unless the guard said it is armed; the guard restores every table nftc touched since the last confirmed
  state.
- every change is one libnftables transaction, so a rejection changes nothing.

Dynamic elements are read as JSON and carried as checked data (elements.py), never pasted as text.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

from . import elements, kernel, live, records, snapshot
from ..backend import names
from .drift import drift
from .kernel import KernelError
from .records import (APPLIED, PENDING, SCRIPT, Applied, Pending, Target, boot_id, boottime, read_applied,
                      read_pending, read_pending_or_none)
from .restore import ApplyError, live_elements, load, restore
from .state import Lock, StateDir, StateError, as_json, now_iso

START_MARGIN_SECONDS = 5.0  # deadline before the load finishes; replaced by load time + SECONDS right after


@dataclass(frozen=True)
class Compiled:
    """What apply needs of a compilation: the table, its script, its digest, its dynamic sets, the policy."""

    target: Target
    script: str
    digest: str
    dynamic_sets: tuple[str, ...]
    policy: str


@dataclass(frozen=True)
class Outcome:
    """What an apply did, for the CLI to say."""

    digest: str
    target: Target
    confirm_deadline: float | None  # wall clock, for people
    kept_snapshot: bool  # a confirmation was pending: the snapshot is still the last confirmed state
    carried: int  # dynamic elements carried into the new table
    left_behind: int  # dynamic elements nftc could not read as addresses (not carried)
    discarded: tuple[str, ...]  # hand edits (drift) the new table replaced
    removed: tuple[Target, ...]  # nftc's earlier table under another name, removed in the same transaction


def apply_table(state: StateDir, compiled: Compiled, confirm_seconds: float | None, wait_seconds: float) -> Outcome:
    """Snapshot, (arm the guard,) load in one transaction, record what was loaded."""
    state.ensure()
    with Lock(state, wait_seconds):
        plan = _plan(state, compiled)
        saved = state.stage(_snapshot_files(state, plan))
        staged = state.stage({APPLIED: as_json(Applied(compiled.policy, compiled.digest, compiled.target,
                                                       now_iso()).as_dict()), SCRIPT: compiled.script})
        token = secrets.token_hex(8) if confirm_seconds is not None else None
        try:
            saved.commit()  # before the guard reads it; it describes the tables as they still are
            if token:
                _arm_guard(state, Pending(token, boot_id(), boottime() + confirm_seconds + START_MARGIN_SECONDS,
                                          time.time() + confirm_seconds + START_MARGIN_SECONDS, compiled.target,
                                          compiled.digest))
            load(plan.script)
        except BaseException:
            saved.discard()
            staged.discard()
            if token:
                _restore_pending(state, token, plan.pending)
            raise
        staged.commit()
        if token is None:
            state.remove(PENDING)  # applied without --confirm: the admin keeps this table
        deadline = _set_deadline(state, token, confirm_seconds) if token else None
        return Outcome(compiled.digest, compiled.target, deadline, plan.pending is not None, plan.carried,
                       sum(s.unreadable for sets in plan.elements.values() for s in sets), plan.discarded,
                       plan.removed)


@dataclass(frozen=True)
class _Plan:
    """What an apply found in the kernel and the state directory, and the transaction it will load."""

    applied: Applied | None
    pending: Pending | str | None  # "damaged": a record that cannot be read still counts as pending
    targets: tuple[Target, ...]  # the policy's table, then nftc's earlier one if the policy renamed it
    listings: dict[Target, str | None]
    removed: tuple[Target, ...]
    elements: dict[Target, tuple[elements.SetElements, ...]]
    discarded: tuple[str, ...]
    script: str
    carried: int


def _plan(state: StateDir, compiled: Compiled) -> _Plan:
    applied = read_applied(state)
    pending = _pending_of_this_boot(state)
    targets = (compiled.target,) + ((applied.target,) if applied and applied.target != compiled.target else ())
    listings = {t: kernel.list_table(t.family, t.name) for t in targets}
    _refuse_foreign(compiled.target, listings[compiled.target])
    removed = tuple(t for t in targets[1:] if listings[t] is not None and live.digest(listings[t]))
    for target in (compiled.target, *removed):
        _refuse_unrestorable(target, listings[target])
    found = {t: live_elements(t, listings[t]) for t in (compiled.target, *removed)}
    carried = _carried(compiled.dynamic_sets, found)
    script = compiled.script + "".join(t.replace_header() for t in removed) + "".join(
        elements.add_command(compiled.target, s) for s in carried)
    return _Plan(applied, pending, targets, listings, removed, found,
                 _discarded_edits(state, listings[compiled.target]), script, sum(len(s.elements) for s in carried))


def dynamic_sets(set_names) -> tuple[str, ...]:
    """The names among `set_names` that are dynamic zones' sets: the ones whose elements an apply carries (for a
    script read back; a compilation's IR says so itself)."""
    return tuple(name for name in set_names if names.dynamic_set_version(name))


def compiled_from(compilation, policy: str) -> Compiled:
    """What apply loads for a fresh compilation (nftc.compiler.Compilation) of `policy`: its nft text, its digest,
    and its dynamic zones' sets, whose elements the new table carries over."""
    from ..backend.render_nft import render_nft  # here: confirm, rollback and status need no renderer

    table = compilation.table
    return Compiled(Target(table.family, table.name), render_nft(table), compilation.digest,
                    tuple(s.name for s in table.sets if s.dynamic_zone), policy)


def last_applied(state: StateDir) -> Compiled | None:
    """The last applied ruleset, for a boot whose policy no longer compiles: None unless the state directory holds
    the applied record and its script, and the script still has the recorded digest."""
    applied = read_applied(state) if state.exists() else None
    script = state.read_text(SCRIPT) if applied else None
    if script is None or live.script_digest(script) != applied.digest:
        return None
    return Compiled(applied.target, script, applied.digest,
                    dynamic_sets(b.name for b in live.blocks(script) if b.kind == "set"), applied.policy)


def _pending_of_this_boot(state: StateDir) -> Pending | str | None:
    """The pending confirmation, 'damaged' when it cannot be read (kept as pending: the guard rolls back), None."""
    try:
        pending = read_pending(state)
    except StateError:
        return "damaged"
    if pending is not None and pending.boot_id != boot_id():
        state.remove(PENDING)  # a guard does not outlive a reboot; the boot loaded the table anew
        return None
    return pending


def unconfirmed_before_boot(state: StateDir) -> str | None:
    """Why the snapshot must be restored at boot (a pending record of an earlier boot, or one that cannot be read:
    the guard died with the machine before it could roll back), or None."""
    if not state.exists() or state.read_text(PENDING) is None:
        return None
    try:
        pending = read_pending(state)
    except StateError:
        return "the pending confirmation record is damaged"
    if pending is None or pending.boot_id == boot_id():
        return None
    return "an apply was still waiting for confirmation when the machine went down"


@dataclass(frozen=True)
class BootRollback:
    """An apply left unconfirmed by a crash or reboot, rolled back at boot: why, what was restored, and notes."""

    reason: str
    saved: snapshot.Saved
    notes: tuple[str, ...]


def roll_back_unconfirmed(state: StateDir, wait_seconds: float) -> BootRollback | None:
    """At boot: an apply never confirmed before the machine went down is rolled back now, as its guard would have
    done; None when there is nothing to roll back."""
    reason = unconfirmed_before_boot(state)
    if reason is None:
        return None
    saved, notes = rollback(state, wait_seconds)
    return BootRollback(reason, saved, tuple(notes))


def _refuse_foreign(target: Target, listing: str | None) -> None:
    if listing is not None and live.digest(listing) is None:
        raise ApplyError(f"table {target} exists and is not nftc's (its comment has no nftc marker): nftc never "
                         f"replaces another tool's table; give the policy another 'table' name")


def _refuse_unrestorable(target: Target, listing: str | None) -> None:
    problem = snapshot.unrestorable(listing) if listing else None
    if problem:
        raise ApplyError(f"table {target} cannot be saved for a rollback: {problem}; remove that rule first")


def _carried(declared: tuple[str, ...], found: dict[Target, tuple[elements.SetElements, ...]]):
    """The elements to add, per set the new table declares (adding to others would fail the transaction)."""
    merged: dict[str, set] = {}
    for sets in found.values():
        for s in sets:
            if s.name in declared:
                merged.setdefault(s.name, set()).update(s.elements)
    return [elements.SetElements(name, tuple(sorted(items)), 0) for name, items in sorted(merged.items())]


def _snapshot_files(state: StateDir, plan: _Plan) -> dict[str, str]:
    """A fresh snapshot of the tables this apply touches; while a confirmation is pending, the pending snapshot
    (the last confirmed state) plus any table it does not know yet, as it is now, so a rollback removes or
    restores that one too."""
    ours = [t for t in plan.targets if plan.listings[t] is None or live.digest(plan.listings[t])]
    if plan.pending is not None:
        saved = snapshot.read(state)
        added = {t: (plan.listings[t], plan.elements.get(t, ())) for t in ours if not saved.record.knows(t)}
        return snapshot.extended(saved, added) if added else {}
    script = state.read_text(SCRIPT) if plan.applied else None
    if script is not None and live.script_digest(script) != plan.applied.digest:
        script = None
    record = records.Snapshot(tuple(records.TableState(t, plan.listings[t] is not None) for t in ours), "",
                              now_iso(), plan.applied if script is not None else None)
    return snapshot.files(record, {t: plan.listings[t] for t in ours if plan.listings[t] is not None},
                          plan.elements, script)


def _discarded_edits(state: StateDir, listing: str | None) -> tuple[str, ...]:
    """The hand edits in the live table that the new one replaces, so apply can say what it discards."""
    if listing is None:
        return ()
    try:
        verdict, lines = drift(state, listing)
    except KernelError as exc:
        return (f"(cannot tell hand edits: {exc})",)
    return tuple(lines) if verdict == "DRIFT" else ()


# Confirm and the rollback guard.


def _arm_guard(state: StateDir, pending: Pending) -> None:
    from .guard import GuardNotArmed, start_guard

    state.write_json(PENDING, pending.as_dict())
    try:
        pid = start_guard(state, pending.token)
    except GuardNotArmed as exc:
        raise ApplyError(str(exc)) from None
    try:
        state.write_json(PENDING, {**pending.as_dict(), "guard_pid": pid})
    except StateError:
        pass  # the PID is for people reading the file; the guard works from the token


def _restore_pending(state: StateDir, token: str, pending) -> None:
    """The load failed after our guard was armed: put the earlier pending record back (its guard, if any, is
    still waiting for it, or a new one is started), or remove ours so our guard exits."""
    current = read_pending_or_none(state)
    if current is None or current.token != token:
        return
    if isinstance(pending, Pending):
        state.write_json(PENDING, pending.as_dict())
        from .guard import start_guard
        start_guard(state, pending.token)
    else:
        state.remove(PENDING)


def _set_deadline(state: StateDir, token: str, seconds: float) -> float:
    """Right after the load: the deadline is SECONDS from now (it was set with a margin before the load)."""
    current = read_pending_or_none(state)
    if current is None or current.token != token:
        return time.time() + seconds
    moved = Pending(current.token, current.boot_id, boottime() + seconds, time.time() + seconds, current.target,
                    current.loaded_digest, current.guard_pid)
    try:
        state.write_json(PENDING, moved.as_dict())
    except StateError:  # no room to move it: the guard keeps the deadline set before the load, a little later
        return current.deadline_wall
    return moved.deadline_wall


def confirm(state: StateDir, wait_seconds: float) -> Applied | None:
    """Keep the loaded table: remove the pending record, so the guard exits without rolling back."""
    if not state.exists():
        raise ApplyError(f"no apply is waiting for confirmation: there is no state directory {state.path}")
    with Lock(state, wait_seconds):
        try:
            pending = read_pending(state)
        except StateError:
            if not state.remove(PENDING):  # damaged: the admin's confirm is the one clear word there is
                raise
            return read_applied(state)
        if pending is None:
            raise ApplyError("no apply is waiting for confirmation (already confirmed, or already rolled back: "
                             f"see {state.file('guard.log')})")
        if pending.boot_id == boot_id() and boottime() > pending.deadline:
            raise ApplyError("too late: the confirmation deadline has passed and the rollback is due")
        state.remove(PENDING)
        return read_applied(state)


def rollback(state: StateDir, wait_seconds: float) -> tuple[snapshot.Saved, list[str]]:
    if not state.exists():
        raise ApplyError(f"no snapshot in {state.path} (no such directory): nothing to roll back to")
    with Lock(state, wait_seconds):
        saved = snapshot.read(state)
        return saved, restore(state, saved)


