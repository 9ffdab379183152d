"""Loading a compiled table into the kernel safely: snapshot, one transaction, confirm or roll back, one at a time.

Three promises, each kept here and tested on the kernel:
- nftc only ever touches its own tables: a table is replaced or deleted only if it carries nftc's marker (the
  comments the compiler writes); another tool's table of the same name is refused, whatever a record says.
- an unconfirmed apply always rolls back: the guard (guard.py) is armed *before* the load, and apply does not
  load unless the guard said it is armed; the guard restores every table nftc touched since the last confirmed
  state.
- every change is one libnftables transaction, so a rejection changes nothing.

The live table is read the fast way (reader.py): with 10^5 addresses, listing it whole takes longer than loading
it. Dynamic elements are read as JSON and carried as checked data (elements.py), never pasted as text; a dynamic
set whose definition did not change stays in place with its elements, and so does a named counter with its values
(transaction.py). Right after the load, the table as the kernel lists it is recorded: drift is told against that,
without an extra process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import elements, live, reader, records, snapshot, transaction
from ..backend import names
from .drift import Drift, drift
from .kernel import KernelError
from .records import (APPLIED, LISTING, PENDING, SCRIPT, Applied, Pending, Provenance, Target, boot_id, boottime,
                      lists_elements, read_applied, read_pending, read_pending_or_none)
from .restore import ApplyError, live_elements, load, restore
from .state import Lock, StateDir, StateError, as_json, now_iso

START_MARGIN_SECONDS = 5.0  # deadline before the load finishes; replaced by load time + SECONDS right after


@dataclass(frozen=True)
class Compiled:
    """What apply needs of a compilation: the table, its script, its digest, its dynamic sets, the policy; how
    many static set elements it has (drift lists them up to records.LISTED_ELEMENTS) and what it was compiled
    from (the next apply of an unchanged policy needs no compile: reapply.py)."""

    target: Target
    script: str
    digest: str
    dynamic_sets: tuple[str, ...]
    policy: str
    elements: int | None = None
    provenance: Provenance | None = None


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
    kept: tuple[str, ...] = ()  # dynamic sets left in place with their elements
    drift: Drift | None = None  # of the table replaced, against its record (None: it was not nftc's recorded one)
    notes: tuple[str, ...] = ()  # what could not be recorded after the load


def apply_table(state: StateDir, compiled: Compiled, confirm_seconds: float | None, wait_seconds: float) -> Outcome:
    """Snapshot, (arm the guard,) load in one transaction, record what was loaded."""
    state.ensure()
    with Lock(state, wait_seconds):
        plan = _plan(state, compiled)
        saved = state.stage(_snapshot_files(state, plan))
        staged = state.stage(_record_files(compiled, plan))
        token = _token() if confirm_seconds is not None else None
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
        notes = _record_listing(state, compiled)
        if token is None:
            state.remove(PENDING)  # applied without --confirm: the admin keeps this table
        deadline = _set_deadline(state, token, confirm_seconds) if token else None
        main = plan.found[compiled.target]
        return Outcome(compiled.digest, compiled.target, deadline, plan.pending is not None, plan.carried,
                       sum(s.unreadable for sets in plan.elements.values() for s in sets),
                       main.drift.lines if main.drift and main.drift.verdict == "DRIFT" else (), plan.removed,
                       plan.kept.sets, main.drift, notes)


def _token() -> str:
    """The pending confirmation's token (its module imported here: only an apply with --confirm needs one)."""
    import secrets

    return secrets.token_hex(8)


def _record_files(compiled: Compiled, plan: "_Plan") -> dict[str, str]:
    """applied.json, and applied.script unless the state directory holds that very script already."""
    applied = Applied(compiled.policy, compiled.digest, compiled.target, now_iso(), False, compiled.elements,
                      compiled.provenance)
    files = {APPLIED: as_json(applied.as_dict())}
    if plan.recorded_script is None or plan.applied.digest != compiled.digest:
        files[SCRIPT] = compiled.script
    return files


@dataclass(frozen=True)
class _Table:
    """One nftc table as an apply found it."""

    target: Target
    listing: str | None  # as read (with or without its static sets' elements); None: there is no such table
    digest: str | None  # None: not nftc's
    drift: Drift | None  # against the applied record; None when it is not the recorded table
    saved: str | None  # what the snapshot keeps: a listing with every static element, or the recorded script


@dataclass(frozen=True)
class _Plan:
    """What an apply found in the kernel and the state directory, and the transaction it will load."""

    applied: Applied | None
    recorded_script: str | None  # the applied record's script, checked against its digest
    pending: Pending | str | None  # "damaged": a record that cannot be read still counts as pending
    targets: tuple[Target, ...]  # the policy's table, then nftc's earlier one if the policy renamed it
    found: dict[Target, _Table]
    removed: tuple[Target, ...]
    kept: transaction.Kept
    elements: dict[Target, tuple[elements.SetElements, ...]]
    script: str
    carried: int


def _plan(state: StateDir, compiled: Compiled) -> _Plan:
    applied = read_applied(state)
    pending = _pending_of_this_boot(state)
    recorded = _recorded_script(state, applied)
    targets = (compiled.target,) + ((applied.target,) if applied and applied.target != compiled.target else ())
    found = {t: _found(state, t, applied, recorded) for t in targets}
    main = found[compiled.target]
    _refuse_foreign(compiled.target, main)
    removed = tuple(t for t in targets[1:] if found[t].listing is not None and found[t].digest)
    for target in (compiled.target, *removed):
        if found[target].saved is not recorded:  # the recorded script is nftc's own compile (digest checked)
            _refuse_unrestorable(target, found[target].saved)
    kept = _kept(compiled, main, recorded)
    body = transaction.in_place(compiled.target, main.listing, kept, compiled.script) if kept else None
    kept = kept if body is not None else transaction.Kept()
    read = {t: live_elements(t, found[t].listing, kept.sets if t == compiled.target else ())
            for t in (compiled.target, *removed)}
    carried = _carried(compiled.dynamic_sets, read)
    script = (body or compiled.script) + "".join(t.replace_header() for t in removed) + "".join(
        elements.add_command(compiled.target, s, elements.takes_timeouts(compiled.script, s.name)) for s in carried)
    return _Plan(applied, recorded, pending, targets, found, removed, kept, read, script,
                 sum(len(s.elements) for s in carried))


def _recorded_script(state: StateDir, applied: Applied | None) -> str | None:
    script = state.read_text(SCRIPT) if applied else None
    return script if script is not None and live.script_digest(script) == applied.digest else None


def _found(state: StateDir, target: Target, applied: Applied | None, recorded: str | None) -> _Table:
    """The table as it is: read without set elements first (milliseconds at any size); with them when drift
    compares them, or when the snapshot needs them (a table that is not exactly its record)."""
    terse = reader.terse_table(target)
    digest = live.digest(terse)
    if terse is None or digest is None:
        return _Table(target, terse, digest, None, None)
    ours = applied is not None and recorded is not None and applied.target == target and applied.digest == digest
    if ours and not lists_elements(applied.elements):
        found = drift(state, terse, with_elements=False)
        saved = recorded if found.verdict == "none" else reader.with_static_elements(target, terse)
        return _Table(target, terse, digest, found, saved)
    listing = reader.with_static_elements(target, terse)
    return _Table(target, listing, digest, drift(state, listing, with_elements=True) if ours else None, listing)


def _kept(compiled: Compiled, main: _Table, recorded: str | None) -> transaction.Kept:
    """The dynamic sets and named counters that stay in place: only in the very table the record describes, with
    no drift."""
    if main.drift is None or main.drift.verdict != "none" or recorded is None:
        return transaction.Kept()
    return transaction.kept(compiled.dynamic_sets, compiled.script, recorded, main.listing)


def _record_listing(state: StateDir, compiled: Compiled) -> tuple[str, ...]:
    """Right after the load: the table as the kernel lists it, what drift is told against from now on. The same
    script lists the same way, so a listing already recorded for this digest is kept. Not written to disk at
    once: lost in a crash, drift is unknown until the next apply records it again."""
    try:
        current = state.read_text(LISTING)
        if current is not None and live.digest(current) == compiled.digest and not live.has_blocklists(compiled.script):
            return ()  # (a url zone's elements may differ under one digest: nftc.system.refresh)
        listing = reader.read_table(compiled.target, lists_elements(compiled.elements))
        if listing is None or live.digest(listing) != compiled.digest:
            state.remove(LISTING)
            return ("the table changed right after the load; drift is unknown until the next apply",)
        state.write_text(LISTING, live.normalise(listing), durable=False)
    except (KernelError, StateError) as exc:
        return (f"the listing drift is told against was not recorded ({exc}); drift is unknown until the next "
                "apply",)
    return ()


def dynamic_sets(set_names) -> tuple[str, ...]:
    """The names among `set_names` that are dynamic zones' sets: the ones whose elements an apply carries (for a
    script read back; a compilation's IR says so itself)."""
    return tuple(name for name in set_names if names.dynamic_set_version(name))


def compiled_from(compilation, policy: str, provenance: Provenance | None = None) -> Compiled:
    """What apply loads for a fresh compilation (nftc.compiler.Compilation) of `policy`: its nft text, its digest,
    its dynamic zones' sets (whose elements the new table carries over), its static set elements' count."""
    from ..backend.render_nft import render_nft  # here: confirm, rollback and status need no renderer

    table = compilation.table
    return Compiled(Target(table.family, table.name), render_nft(table), compilation.digest,
                    tuple(s.name for s in table.sets if s.dynamic_zone), policy,
                    sum(len(s.elements) for s in table.sets), provenance)


def recorded_compiled(applied: Applied, script: str) -> Compiled:
    """The applied record's script as apply loads it (its digest checked by the caller)."""
    return Compiled(applied.target, script, applied.digest, dynamic_sets(live.set_names(script)), applied.policy,
                    applied.elements, applied.provenance)


def last_applied(state: StateDir) -> Compiled | None:
    """The last applied ruleset, for a boot whose policy no longer compiles: None unless the state directory holds
    the applied record and its script, and the script still has the recorded digest."""
    applied = read_applied(state) if state.exists() else None
    script = _recorded_script(state, applied)
    return recorded_compiled(applied, script) if script is not None else None


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


def _refuse_foreign(target: Target, found: _Table) -> None:
    if found.listing is not None and found.digest is None:
        raise ApplyError(f"table {target} exists and is not nftc's (its comment has no nftc marker): nftc never "
                         f"replaces another tool's table; give the policy another 'table' name")


def _refuse_unrestorable(target: Target, saved: str | None) -> None:
    problem = snapshot.unrestorable(saved) if saved else None
    if problem:
        raise ApplyError(f"table {target} cannot be saved for a rollback: {problem}; remove that rule first")


def _carried(declared: tuple[str, ...], found: dict[Target, tuple[elements.SetElements, ...]]):
    """The elements to add, per set the new table declares (adding to others would fail the transaction)."""
    by_name: dict[str, list[elements.SetElements]] = {}
    for sets in found.values():
        for s in sets:
            if s.name in declared:
                by_name.setdefault(s.name, []).append(s)
    return [elements.merged(name, sets) for name, sets in sorted(by_name.items())]


def _snapshot_files(state: StateDir, plan: _Plan) -> dict[str, str]:
    """A fresh snapshot of the tables this apply touches; while a confirmation is pending, the pending snapshot
    (the last confirmed state) plus any table it does not know yet, as it is now, so a rollback removes or
    restores that one too."""
    ours = [t for t in plan.targets if plan.found[t].listing is None or plan.found[t].digest]
    if plan.pending is not None:
        saved = snapshot.read(state)
        added = {t: (plan.found[t].saved, plan.elements.get(t, ())) for t in ours if not saved.record.knows(t)}
        return snapshot.extended(saved, added) if added else {}
    applied = plan.applied if plan.recorded_script is not None else None
    listing = state.read_text(LISTING) if applied else None
    record = records.Snapshot(tuple(records.TableState(t, plan.found[t].listing is not None) for t in ours), "",
                              now_iso(), applied)
    return snapshot.files(record, {t: plan.found[t].saved for t in ours if plan.found[t].listing is not None},
                          plan.elements, plan.recorded_script,
                          listing if listing is not None and live.digest(listing) == applied.digest else None)


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


