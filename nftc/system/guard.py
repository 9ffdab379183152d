"""The rollback guard of `nftc apply --confirm`: a detached process that restores the snapshot at the deadline.

`apply` starts it *before* loading, in a session of its own with no terminal (so neither a SIGKILL of apply nor
the loss of the SSH session stops it), and loads nothing until the guard has said it is armed: it has read and
checked the pending record and the snapshot it will restore, and keeps the snapshot in memory from then on.

At the deadline (kept on CLOCK_BOOTTIME: no wall-clock step moves it) the guard rolls back unless it knows for
sure that its apply was confirmed (the pending record is gone from its directory) or superseded (a valid record
with another token). Any doubt — a damaged record, a directory that was moved or deleted — means roll back, and
the log says why. The kernel is restored first; the log and the records are written afterwards, best effort, so
a full disk cannot stop a rollback. A table that no longer carries what this apply loaded was replaced by someone
else since (another state directory, a hand `nft -f`): it is left alone, and the log says so loudly.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

from . import child, records
from ..errors import NftcError
from .state import Lock, StateDir, StateError, now_iso

ARM_SECONDS = 20.0  # how long apply waits for the guard to say it is armed
POLL_SECONDS = 0.2
LOCK_WAIT_SECONDS = 3600.0
ARMED = "armed"
GUARD_ENVIRONMENT = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8"}  # nothing inherited


class GuardNotArmed(NftcError):
    """The guard could not arm: apply must not load anything."""


def start_guard(state: StateDir, token: str) -> int:
    """Start the guard for `token` and wait until it is armed; its PID. Raises GuardNotArmed otherwise."""
    read_end, write_end = os.pipe()
    try:
        with state.open_log("guard.log") as log:
            process = subprocess.Popen(
                child.python_module(__name__, state.path, token, str(write_end)), pass_fds=(write_end,),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd=child.CWD,
                env=GUARD_ENVIRONMENT)
        os.close(write_end)
        write_end = -1
        answer = _read_answer(read_end, ARM_SECONDS)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    if answer != ARMED:
        raise GuardNotArmed(f"the rollback guard did not arm ({answer or 'no answer'}); nothing was changed")
    return process.pid


def _read_answer(descriptor: int, seconds: float) -> str:
    ready, _, _ = select.select([descriptor], [], [], seconds)
    if not ready:
        return "it did not answer in time"
    return os.read(descriptor, 512).decode(errors="replace").strip()


def main(path: str, token: str, answer_fd: int) -> int:
    """The guard process: arm (or say why not), then wait for the deadline and roll back unless confirmed."""
    from . import snapshot

    try:
        state = StateDir(path)
        pending = records.read_pending(state)
        if pending is None or pending.token != token:
            raise StateError("no pending record with this guard's token")
        saved = snapshot.read(state)
    except (StateError, OSError) as exc:
        _answer(answer_fd, f"cannot arm: {exc}")
        return 1
    _answer(answer_fd, ARMED)
    _log(f"guard {token}: armed; rolling back at {_wall(pending.deadline_wall)} unless confirmed")
    reason = _wait(state, token, pending)
    if reason is None:
        return 0
    return _roll_back(state, pending, saved, reason)


def _wait(state: StateDir, token: str, pending: records.Pending) -> str | None:
    """Until the deadline: None when confirmed or superseded (logged), else why the rollback happens."""
    deadline, doubt = pending.deadline, None
    while True:
        verdict = _look(state, token)
        if verdict in ("confirmed", "superseded"):
            _log(f"guard {token}: {verdict}, nothing to do")
            return None
        if isinstance(verdict, records.Pending):
            deadline, doubt = verdict.deadline, None
        elif verdict != doubt:
            doubt = verdict
            _log(f"guard {token}: {verdict}: treated as unconfirmed")
        left = deadline - records.boottime()
        if left <= 0:
            return doubt or "not confirmed in time"
        time.sleep(min(POLL_SECONDS, left))


def _look(state: StateDir, token: str):
    """'confirmed', 'superseded', the current Pending record, or a sentence saying why there is doubt."""
    if not state.still_linked():
        return "the state directory was removed"
    try:
        pending = records.read_pending(state)
    except StateError as exc:
        return f"the pending record is unreadable ({exc})"
    if pending is None:
        return "confirmed"
    return pending if pending.token == token else "superseded"


def _roll_back(state: StateDir, pending: records.Pending, saved, reason: str) -> int:
    from . import live, reader, restore

    token = pending.token
    try:
        with Lock(state, LOCK_WAIT_SECONDS):
            verdict = _look(state, token)
            if verdict in ("confirmed", "superseded"):
                _log(f"guard {token}: {verdict} at the last moment, nothing to do")
                return 0
            carried = live.digest(reader.terse_table(pending.target))
            if carried != pending.loaded_digest:
                _log(f"guard {token}: NOT ROLLED BACK: table {pending.target} carries sha256:{str(carried)[:16]}, "
                     f"not sha256:{pending.loaded_digest[:16]} that its apply loaded: something else replaced it "
                     f"since; run 'nftc rollback' if that was not meant")
                _audit(state, pending, "refused", f"not rolled back: table {pending.target} carries "
                                                  f"sha256:{str(carried)[:16]}, not what its apply loaded")
                return 1
            notes = restore.restore(state, saved)
    except Exception as exc:  # the guard is alone: whatever happens is said in its log
        _log(f"guard {token}: ROLLBACK FAILED: {exc}")
        _audit(state, pending, "failed", f"rollback failed: {exc}")
        return 1
    for note in notes:
        _log(f"guard {token}: {note}")
    _log(f"guard {token}: {reason}: snapshot restored")
    _audit(state, pending, "ok", f"{reason}: snapshot restored" + "".join(f"; {note}" for note in notes))
    return 0


def _audit(state: StateDir, pending: records.Pending, result: str, detail: str) -> None:
    """The guard's action, to syslog and the state directory (audit.py); after the kernel, never in its way."""
    try:
        from .audit import record
        record(state, "guard", result, digest=pending.loaded_digest, table=str(pending.target), detail=detail)
    except Exception as exc:  # a guard must end its work whatever its audit does
        _log(f"guard {pending.token}: no audit record: {exc}")


def _answer(descriptor: int, text: str) -> None:
    try:
        os.write(descriptor, (text + "\n").encode())
    finally:
        os.close(descriptor)


def _log(message: str) -> None:
    """Best effort: a full disk must not stop the guard, only its log."""
    try:
        print(f"{now_iso()} {message}", flush=True)
    except OSError:
        pass


def _wall(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


if __name__ == "__main__" and len(sys.argv) == 4:
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
