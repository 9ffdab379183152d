"""Loading a compiled table into the kernel safely: snapshot, one transaction, confirm or roll back, one at a time.

Every change is one libnftables transaction that replaces only nftc's table (`table T {}` + `delete table T`
+ the table), so other tables (fail2ban, NAT, docker) are never touched and a rejection changes nothing.

`--confirm SECONDS` starts the rollback guard *before* loading: a detached process (`python -m nftc.apply guard`,
its own session, reparented to init) that restores the snapshot at the deadline unless `pending.json` is gone.
Killing the apply process or the SSH session does not stop it. Where systemd is PID 1 a transient timer would do
the same; the detached process works everywhere, so it is the one path.

Test hooks (environment variables; for tests only, documented in docs/apply.md):
  NFTC_TEST_INJECT            text appended to the transaction, e.g. an invalid command to force a rejection
  NFTC_TEST_PAUSE_AFTER_LOAD  seconds to sleep right after the kernel accepted the transaction
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

from . import kernel, live
from .kernel import KernelError
from .state import Lock, Staged, StateDir, StateError, as_json, now_iso

INJECT_VARIABLE = "NFTC_TEST_INJECT"
PAUSE_VARIABLE = "NFTC_TEST_PAUSE_AFTER_LOAD"
GUARD_POLL_SECONDS = 0.2
START_MARGIN_SECONDS = 5.0  # deadline before the load finishes; replaced by load time + SECONDS right after


class ApplyError(Exception):
    """The kernel rejected the transaction, or there was nothing to do; the message says which."""


@dataclass(frozen=True)
class Target:
    """nftc's table: the only one nftc ever creates, replaces or deletes."""

    family: str
    name: str

    def replace_script(self, body: str) -> str:
        return f"table {self.family} {self.name} {{}}\ndelete table {self.family} {self.name}\n{body}"


@dataclass(frozen=True)
class Applied:
    digest: str
    table: str
    confirm_deadline: float | None
    kept_snapshot: bool  # a confirmation was pending: the snapshot is still the last confirmed table
    carried: int  # dynamic elements carried into the new table


def apply_table(state: StateDir, target: Target, script: str, record: dict, confirm_seconds: float | None,
                wait_seconds: float) -> Applied:
    """Snapshot, (start the guard,) load `script` in one transaction, record what was loaded."""
    state.ensure()
    with Lock(state, wait_seconds):
        current = kernel.list_table(target.family, target.name)
        pending = state.read_json("pending.json")
        carried = _declared(live.dynamic_elements(current), script)
        full = script + _element_commands(target, carried) + os.environ.get(INJECT_VARIABLE, "")
        staged = _stage_applied(state, target, record, full)  # a full state dir stops here, before any change
        token = secrets.token_hex(8) if confirm_seconds is not None else None
        try:
            if pending is None:
                _write_snapshot(state, target, current)
            if token:
                _start_guard(state, token, confirm_seconds)
            _load(full, script)
        except BaseException:
            staged.discard()
            if token and (state.read_json("pending.json") or {}).get("token") == token:
                _restore_pending(state, pending)
            raise
        _pause_for_tests()
        staged.commit()
        if token is None:
            state.remove("pending.json")  # applied without --confirm: the admin keeps this table
        deadline = _set_deadline(state, token, confirm_seconds) if token else None
        return Applied(record["digest"], target.name, deadline, pending is not None,
                       sum(len(v) for v in carried.values()))


def _restore_pending(state: StateDir, pending: dict | None) -> None:
    """The load failed: the earlier unconfirmed apply (if any) still needs its guard."""
    if pending is None:
        state.remove("pending.json")
    else:
        state.write_json("pending.json", pending)
        _spawn_guard(state, pending["token"])


def _write_snapshot(state: StateDir, target: Target, current: str | None) -> None:
    if current is None:
        state.remove("snapshot.nft")
    else:
        state.write_text("snapshot.nft", current)
    state.write_json("snapshot.json", {"family": target.family, "table": target.name, "existed": current is not None,
                                       "digest": live.digest(current), "time": now_iso(),
                                       "applied": state.read_json("applied.json")})


def _declared(elements: dict[str, tuple[str, ...]], script: str) -> dict[str, tuple[str, ...]]:
    """Only the dynamic sets the new table also declares: adding to others would fail the transaction."""
    return {name: items for name, items in elements.items() if f"\tset {name} {{" in script}


def _element_commands(target: Target, elements: dict[str, tuple[str, ...]]) -> str:
    return "".join(f"add element {target.family} {target.name} {name} {{ {', '.join(items)} }}\n"
                   for name, items in sorted(elements.items()))


def _load(full: str, script: str) -> None:
    result = kernel.run_script(full)
    if result.ok:
        return
    if kernel.refused_for_privileges(result.error):
        raise KernelError(kernel.PRIVILEGE_HINT)
    raise ApplyError(kernel.annotate_errors(result.error, full) + "\nnothing was changed")


def _pause_for_tests() -> None:
    pause = os.environ.get(PAUSE_VARIABLE)
    if pause:
        time.sleep(float(pause))


def _stage_applied(state: StateDir, target: Target, record: dict, script: str) -> Staged:
    """Keep the script that was loaded, not a listing of the result: listing a large table again would double the
    cost of an apply; `status` and `diff` list the script in a private namespace when they need to (drift).
    Written before the load and renamed into place after it, so a full state dir fails before anything changes."""
    return state.stage({"applied.script": script, "applied.json": as_json(
        {**record, "family": target.family, "table": target.name, "time": now_iso()})})


# Confirm and the rollback guard.


def _start_guard(state: StateDir, token: str, seconds: float) -> None:
    state.write_json("pending.json", {"token": token, "deadline": time.time() + seconds + START_MARGIN_SECONDS,
                                      "guard_pid": None})
    _spawn_guard(state, token)


def _spawn_guard(state: StateDir, token: str) -> None:
    """A new session, no terminal, output to guard.log: survives SIGKILL of the apply and of its session."""
    with open(state.file("guard.log"), "a", encoding="utf-8") as log:
        process = subprocess.Popen([sys.executable, "-m", "nftc.apply", "guard", state.path, token],
                                   stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                   cwd="/", env=_guard_environment())
    pending = state.read_json("pending.json") or {}
    try:
        state.write_json("pending.json", {**pending, "guard_pid": process.pid})
    except StateError:
        pass  # the PID is for people reading the file; the guard works from the token


def _guard_environment() -> dict[str, str]:
    keep = ("PATH", "PYTHONPATH", "LANG", "LC_ALL")
    return {key: os.environ[key] for key in keep if key in os.environ}


def _set_deadline(state: StateDir, token: str, seconds: float) -> float:
    deadline = time.time() + seconds
    pending = state.read_json("pending.json") or {"token": token}
    try:
        state.write_json("pending.json", {**pending, "deadline": deadline})
    except StateError:  # no room to move it: the guard keeps the deadline set before the load, a little later
        return pending.get("deadline", deadline)
    return deadline


def confirm(state: StateDir, wait_seconds: float) -> dict:
    """Keep the loaded table: remove the pending file, so the guard exits without rolling back."""
    if not os.path.isdir(state.path):
        raise ApplyError(f"no apply is waiting for confirmation: there is no state directory {state.path}")
    with Lock(state, wait_seconds):
        pending = state.read_json("pending.json")
        if pending is None:
            raise ApplyError("no apply is waiting for confirmation (already confirmed, or already rolled back: "
                             f"see {state.file('guard.log')})")
        if time.time() > pending["deadline"]:
            raise ApplyError("too late: the confirmation deadline has passed and the rollback is due")
        state.remove("pending.json")
        return state.read_json("applied.json") or {}


def rollback(state: StateDir, wait_seconds: float) -> dict:
    if not os.path.isdir(state.path):
        raise ApplyError(f"no snapshot in {state.path} (no such directory): nothing to roll back to")
    with Lock(state, wait_seconds):
        return _restore_snapshot(state)


def _restore_snapshot(state: StateDir) -> dict:
    """Put the snapshot back in one transaction (no snapshot table: delete nftc's table); dynamic elements kept."""
    meta = _snapshot_meta(state)
    target = Target(meta["family"], meta["table"])
    snapshot = _snapshot_table(state, meta, target)
    current = kernel.list_table(target.family, target.name)
    if snapshot is None:
        script = f"table {target.family} {target.name} {{}}\ndelete table {target.family} {target.name}\n"
    else:
        elements = {**live.dynamic_elements(snapshot), **live.dynamic_elements(current)}
        body = live.normalise(snapshot)
        script = target.replace_script(body) + _element_commands(target, _declared(elements, body))
    staged = _stage_restored(state, meta.get("applied"), script if snapshot is not None else None)
    try:
        _load(script, script)
    except ApplyError as exc:
        staged.discard()
        raise ApplyError(f"the snapshot in {state.path} was rejected, nothing was changed: "
                         + " ".join(str(exc).split())[:300]) from None
    except BaseException:
        staged.discard()
        raise
    state.remove("pending.json")
    staged.commit()
    if snapshot is None or meta.get("applied") is None:
        state.remove("applied.json")
        state.remove("applied.script")
    return meta


def _snapshot_meta(state: StateDir) -> dict:
    meta = state.read_json("snapshot.json")
    if meta is None:
        raise ApplyError(f"no snapshot in {state.path}: nothing to roll back to")
    fields = {"family": str, "table": str, "existed": bool}
    if any(not isinstance(meta.get(key), kind) for key, kind in fields.items()):
        raise StateError(f"{state.file('snapshot.json')} is corrupt (missing family, table or existed)")
    return meta


def _snapshot_table(state: StateDir, meta: dict, target: Target) -> str | None:
    """The snapshot's listing, checked to be the whole table it claims to be (None: there was no table)."""
    if not meta["existed"]:
        return None
    path = state.file("snapshot.nft")
    snapshot = state.read_text("snapshot.nft")
    if snapshot is None:
        raise StateError(f"{path} is missing although {state.file('snapshot.json')} says the table existed")
    header = f"table {target.family} {target.name} {{\n"
    if not snapshot.startswith(header) or not snapshot.endswith("}\n") or \
            live.digest(snapshot) != meta.get("digest"):
        raise StateError(f"{path} is corrupt: it is not the table {target.family} {target.name} that was saved")
    return snapshot


def _stage_restored(state: StateDir, applied: dict | None, script: str | None) -> Staged:
    if applied is None or script is None:
        return state.stage({})
    return state.stage({"applied.script": script,
                        "applied.json": as_json({**applied, "time": now_iso(), "restored": True})})


def guard(state: StateDir, token: str) -> int:
    """The detached rollback guard: wait for the deadline; if our apply is still unconfirmed, restore."""
    while True:
        pending = state.read_json("pending.json")
        if pending is None or pending.get("token") != token:
            _log(f"guard {token}: confirmed or superseded, nothing to do")
            return 0
        if time.time() >= pending["deadline"]:
            break
        time.sleep(min(GUARD_POLL_SECONDS, max(0.0, pending["deadline"] - time.time())))
    with Lock(state, wait_seconds=3600):
        pending = state.read_json("pending.json")
        if pending is None or pending.get("token") != token:
            _log(f"guard {token}: confirmed at the last moment, nothing to do")
            return 0
        try:
            _restore_snapshot(state)
        except (ApplyError, KernelError, StateError) as exc:
            _log(f"guard {token}: ROLLBACK FAILED: {exc}")
            return 1
    _log(f"guard {token}: not confirmed in time: snapshot restored")
    return 0


def _log(message: str) -> None:
    print(f"{now_iso()} {message}", flush=True)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "guard":
    sys.exit(guard(StateDir(sys.argv[2]), sys.argv[3]))
