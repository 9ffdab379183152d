"""The records nftc keeps in its state directory, read back as typed values and checked before use.

state.py makes sure nobody but root can write the directory; this module still reads every record as data that
could be wrong (a damaged disk, a hand edit, an older nftc): a table name read back goes into nft text, so it must
pass the language's own rules; a script is loaded only if its content has the digest nftc recorded for it; a
number must be finite. A record that fails a check is a StateError naming the file.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass

from ..backend.render_nft import replace_header
from .state import StateDir, StateError

FAMILY = "inet"  # the only family nftc writes
PENDING, APPLIED, SCRIPT = "pending.json", "applied.json", "applied.script"  # files of the state directory
_HEX64 = re.compile(r"[0-9a-f]{64}")
_TOKEN = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True, order=True)
class Target:
    """One nftc table: the only kind of table nftc ever creates, replaces or deletes."""

    family: str
    name: str

    def __str__(self) -> str:
        return f"{self.family} {self.name}"

    def replace_header(self) -> str:
        """Create-if-missing then delete: the next lines of the same transaction build it anew."""
        return replace_header(self.family, self.name)


def target_from(data: dict, what: str) -> Target:
    """A (family, table) pair read back from a record, checked with the rules the policy language uses."""
    from ..language.parser import table_name_problem  # the one home of the table-name rules

    family, name = data.get("family"), data.get("table")
    if family != FAMILY:
        raise StateError(f"{what}: family {str(family)[:20]!r} is not {FAMILY}; nftc writes only {FAMILY} tables")
    problem = table_name_problem(name) if isinstance(name, str) else "not a string"
    if problem:
        raise StateError(f"{what}: table name {str(name)[:40]!r} is not one nftc writes ({problem})")
    return Target(family, name)


def boot_id() -> str:
    """Which boot CLOCK_BOOTTIME belongs to: a deadline recorded in another boot means nothing in this one."""
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
        return handle.read().strip()


def boottime() -> float:
    """A clock no wall-clock step moves, which counts suspended time: the guard's deadline is kept on it."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _hex64(value, what: str, field: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise StateError(f"{what}: {field} is not a sha256")
    return value


def _number(value, what: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateError(f"{what}: {field} is not a finite number")
    return float(value)


@dataclass(frozen=True)
class Applied:
    """What the last apply (or rollback) loaded: the policy, its digest, its table, when."""

    policy: str
    digest: str
    target: Target
    time: str
    restored: bool = False

    def as_dict(self) -> dict:
        return {"policy": self.policy, "digest": self.digest, "family": self.target.family,
                "table": self.target.name, "time": self.time, "restored": self.restored}


def applied_from(data: dict, what: str) -> Applied:
    policy, time = data.get("policy"), data.get("time")
    if not isinstance(policy, str) or not isinstance(time, str):
        raise StateError(f"{what}: policy or time is missing")
    return Applied(policy[:4096], _hex64(data.get("digest"), what, "digest"), target_from(data, what), time[:64],
                   data.get("restored") is True)


@dataclass(frozen=True)
class TableState:
    """One table as it was before an apply: its listing is in snapshot.nft when it existed."""

    target: Target
    existed: bool


@dataclass(frozen=True)
class Snapshot:
    """What a rollback restores: every table nftc touched since the last confirmed state, as it was then."""

    tables: tuple[TableState, ...]
    sha256: str  # of snapshot.nft
    time: str
    applied: Applied | None  # the record the tables came from, so drift after a rollback is told against it

    def as_dict(self) -> dict:
        return {"tables": [{"family": t.target.family, "table": t.target.name, "existed": t.existed}
                           for t in self.tables],
                "sha256": self.sha256, "time": self.time,
                "applied": self.applied.as_dict() if self.applied else None}

    def knows(self, target: Target) -> bool:
        return any(t.target == target for t in self.tables)


def snapshot_from(data: dict, what: str) -> Snapshot:
    tables = data.get("tables")
    if not isinstance(tables, list) or not tables or len(tables) > 16:
        raise StateError(f"{what}: no list of tables")
    states = []
    for item in tables:
        if not isinstance(item, dict) or not isinstance(item.get("existed"), bool):
            raise StateError(f"{what}: a table entry is damaged")
        states.append(TableState(target_from(item, what), item["existed"]))
    if len({s.target for s in states}) != len(states):
        raise StateError(f"{what}: a table is listed twice")
    applied = data.get("applied")
    if applied is not None and not isinstance(applied, dict):
        raise StateError(f"{what}: applied is damaged")
    time = data.get("time")
    return Snapshot(tuple(states), _hex64(data.get("sha256"), what, "sha256"), str(time)[:64],
                    applied_from(applied, what) if applied else None)


@dataclass(frozen=True)
class Pending:
    """A `--confirm` apply waiting for `nftc confirm`.

    The deadline is kept on CLOCK_BOOTTIME, which no wall-clock step (NTP, an admin's `date -s`) moves and which
    counts suspended time; the boot id says which boot that clock belongs to. The wall-clock deadline is only for
    people reading `status`.
    """

    token: str
    boot_id: str
    deadline: float  # CLOCK_BOOTTIME seconds
    deadline_wall: float
    target: Target
    loaded_digest: str  # what the apply loads: a guard rolls back only a table that still carries it
    guard_pid: int | None = None

    def as_dict(self) -> dict:
        return {"token": self.token, "boot_id": self.boot_id, "deadline": self.deadline,
                "deadline_wall": self.deadline_wall, "family": self.target.family, "table": self.target.name,
                "loaded_digest": self.loaded_digest, "guard_pid": self.guard_pid}


def pending_from(data: dict, what: str) -> Pending:
    token, boot_id, pid = data.get("token"), data.get("boot_id"), data.get("guard_pid")
    if not isinstance(token, str) or not _TOKEN.fullmatch(token):
        raise StateError(f"{what}: token is damaged")
    if not isinstance(boot_id, str) or not re.fullmatch(r"[0-9a-f-]{1,64}", boot_id):
        raise StateError(f"{what}: boot_id is damaged")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0):
        raise StateError(f"{what}: guard_pid is damaged")
    return Pending(token, boot_id, _number(data.get("deadline"), what, "deadline"),
                   _number(data.get("deadline_wall"), what, "deadline_wall"), target_from(data, what),
                   _hex64(data.get("loaded_digest"), what, "loaded_digest"), pid)


def read_applied(state: StateDir) -> Applied | None:
    data = state.read_json(APPLIED)
    return applied_from(data, state.file(APPLIED)) if data is not None else None


def read_pending(state: StateDir) -> Pending | None:
    data = state.read_json(PENDING)
    return pending_from(data, state.file(PENDING)) if data is not None else None


def read_pending_or_none(state: StateDir) -> Pending | None:
    try:
        return read_pending(state)
    except StateError:
        return None
