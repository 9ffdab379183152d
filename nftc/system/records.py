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

from ..language.reserved import MAX_NAME_LENGTH, NAME, table_name_problem
from .state import StateDir, StateError

FAMILY = "inet"  # the only family nftc writes
PENDING, APPLIED, SCRIPT = "pending.json", "applied.json", "applied.script"  # files of the state directory
LISTING = "applied.listing"  # the table as the kernel listed it right after the load: what drift is told against
MAX_INPUTS = 10_000  # files one compile read: far above any policy, below what would make a check slow
# Drift compares the elements of the static sets only up to this many (in the compiled table): listing 20,000
# interval elements took 0.3 s here (0.7 of loading them), 200,000 took 9 s (2.5 times the load). Above it, drift
# compares everything else (rules, chains, the sets' definitions): `nft -t list ruleset` lists that in milliseconds.
LISTED_ELEMENTS = 10_000
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
        from ..backend.render_nft import replace_header  # here: the unchanged check needs no renderer

        return replace_header(self.family, self.name)


def target_from(data: dict, what: str) -> Target:
    """A (family, table) pair read back from a record, checked with the rules the policy language uses."""

    family, name = data.get("family"), data.get("table")
    if family != FAMILY:
        raise StateError(f"{what}: family {str(family)[:20]!r} is not {FAMILY}; nftc writes only {FAMILY} tables")
    problem = table_name_problem(name) if isinstance(name, str) else "not a string"
    if problem:
        raise StateError(f"{what}: table name {str(name)[:40]!r} is not one nftc writes ({problem})")
    return Target(family, name)


def lists_elements(elements: int | None) -> bool:
    """Whether drift reads the static sets' elements of a table with `elements` of them (None: unknown, yes)."""
    return elements is None or elements <= LISTED_ELEMENTS


def boot_id() -> str:
    """Which boot CLOCK_BOOTTIME belongs to: a deadline recorded in another boot means nothing in this one."""
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
        return handle.read().strip()


def boottime() -> float:
    """A clock no wall-clock step moves, which counts suspended time: the guard's deadline is kept on it."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def content_sha256(text: str, *more: str) -> str:
    """The sha256 of `text` followed by `more` (hashed in turn: no copy of them joined)."""
    digest = hashlib.sha256(text.encode())
    for part in more:
        digest.update(part.encode())
    return digest.hexdigest()


def _hex64(value, what: str, field: str) -> str:
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise StateError(f"{what}: {field} is not a sha256")
    return value


def _number(value, what: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateError(f"{what}: {field} is not a finite number")
    return float(value)


@dataclass(frozen=True)
class Input:
    """One file a compile read: where, where that led (an include that now resolves to another file is a change),
    and the sha256 of its bytes as the compiler read them (without a UTF-8 byte order mark)."""

    path: str
    real: str
    sha256: str

    def as_dict(self) -> dict:
        return {"path": self.path, "real": self.real, "sha256": self.sha256}


@dataclass(frozen=True)
class Provenance:
    """What a compiled script was made from: enough to know, without compiling, that a compile now would give the
    same script (nftc.system.reapply): the nftc version and the sha256 of its compiler's sources, the files read,
    and whether the compile warned (then it compiles again, to say the warnings, and for --strict to refuse)."""

    nftc: str
    code: str
    strict: bool
    warnings: int
    inputs: tuple[Input, ...]
    host: str | None = None  # the host of a cluster policy whose ruleset it is (issue 11); None: no hosts

    def as_dict(self) -> dict:
        return {"nftc": self.nftc, "code": self.code, "strict": self.strict, "warnings": self.warnings,
                "inputs": [i.as_dict() for i in self.inputs], "host": self.host}


@dataclass(frozen=True)
class Applied:
    """What the last apply (or rollback) loaded: the policy, its digest, its table, when; how many static set
    elements it has (whether drift lists them) and what it was compiled from (None: unknown, an older record)."""

    policy: str
    digest: str
    target: Target
    time: str
    restored: bool = False
    elements: int | None = None
    provenance: Provenance | None = None

    def as_dict(self) -> dict:
        return {"policy": self.policy, "digest": self.digest, "family": self.target.family,
                "table": self.target.name, "time": self.time, "restored": self.restored, "elements": self.elements,
                "provenance": self.provenance.as_dict() if self.provenance else None}


def applied_from(data: dict, what: str) -> Applied:
    policy, time, elements = data.get("policy"), data.get("time"), data.get("elements")
    if not isinstance(policy, str) or not isinstance(time, str):
        raise StateError(f"{what}: policy or time is missing")
    if elements is not None and (isinstance(elements, bool) or not isinstance(elements, int) or elements < 0):
        raise StateError(f"{what}: elements is not a count")
    provenance = data.get("provenance")
    return Applied(policy[:4096], _hex64(data.get("digest"), what, "digest"), target_from(data, what), time[:64],
                   data.get("restored") is True, elements,
                   provenance_from(provenance, what) if provenance is not None else None)


def provenance_from(data, what: str) -> Provenance:
    if not isinstance(data, dict) or not isinstance(data.get("inputs"), list) or \
            len(data["inputs"]) > MAX_INPUTS:
        raise StateError(f"{what}: provenance is damaged")
    nftc, code, strict, warnings = data.get("nftc"), data.get("code"), data.get("strict"), data.get("warnings")
    if not isinstance(nftc, str) or not isinstance(strict, bool) or isinstance(warnings, bool) or \
            not isinstance(warnings, int):
        raise StateError(f"{what}: provenance is damaged")
    host = data.get("host")
    if host is not None and (not isinstance(host, str) or not NAME.fullmatch(host)
                             or len(host) > MAX_NAME_LENGTH):
        raise StateError(f"{what}: provenance is damaged")
    return Provenance(nftc[:64], _hex64(code, what, "code"), strict, warnings,
                      tuple(_input_from(item, what) for item in data["inputs"]), host)


def _input_from(item, what: str) -> Input:
    """A file path read back: only ever opened to be hashed, never loaded; absolute, one line, no NUL."""
    if not isinstance(item, dict):
        raise StateError(f"{what}: an input is damaged")
    paths = (item.get("path"), item.get("real"))
    if not all(isinstance(p, str) and p.startswith("/") and len(p) <= 4096 and "\0" not in p for p in paths):
        raise StateError(f"{what}: an input's path is damaged")
    return Input(*paths, _hex64(item.get("sha256"), what, "an input's sha256"))


@dataclass(frozen=True)
class TableState:
    """One table as it was before an apply: its listing is in snapshot.nft when it existed, or, `script`, it was
    exactly its applied record and is that record's compiled script's table block (nftc.system.snapshot)."""

    target: Target
    existed: bool
    script: bool = False


@dataclass(frozen=True)
class Snapshot:
    """What a rollback restores: every table nftc touched since the last confirmed state, as it was then."""

    tables: tuple[TableState, ...]
    sha256: str  # of snapshot.nft, followed by the script tables' blocks (nftc.system.snapshot)
    time: str
    applied: Applied | None  # the record the tables came from, so drift after a rollback is told against it

    def as_dict(self) -> dict:
        return {"tables": [{"family": t.target.family, "table": t.target.name, "existed": t.existed,
                            "script": t.script} for t in self.tables],
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
        if not isinstance(item, dict) or not isinstance(item.get("existed"), bool) or \
                not isinstance(item.get("script", False), bool):
            raise StateError(f"{what}: a table entry is damaged")
        states.append(TableState(target_from(item, what), item["existed"], item.get("script", False)))
    if len({s.target for s in states}) != len(states):
        raise StateError(f"{what}: a table is listed twice")
    applied = data.get("applied")
    if applied is not None and not isinstance(applied, dict):
        raise StateError(f"{what}: applied is damaged")
    time = data.get("time")
    record = Snapshot(tuple(states), _hex64(data.get("sha256"), what, "sha256"), str(time)[:64],
                      applied_from(applied, what) if applied else None)
    if any(s.script and not (s.existed and record.applied and s.target == record.applied.target) for s in states):
        raise StateError(f"{what}: a table saved as the applied script is not the applied record's table")
    return record


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


# The last event of each action (status --format json|openmetrics): one file per action, `last-ACTION.json`,
# replaced whole (state.py's atomic rename), so two nftc processes never merge one file and no lock is needed.
EVENT_ACTIONS = ("apply", "confirm", "rollback", "guard", "refresh")
EVENT_RESULTS = ("ok", "unchanged", "refused", "failed")  # refused: exit 2 (policy, usage, lockout); failed: 1
MAX_DETAIL = 400  # characters of a message kept in a record or an audit line


def event_file(action: str) -> str:
    return f"last-{action}.json"


@dataclass(frozen=True)
class Event:
    """One apply, confirm, rollback, guard action or refresh: what, how it ended, when (wall clock, UTC), the
    policy and digest it concerned where known, who ran it (audit.py's `who`), and its message."""

    action: str
    result: str
    time: float  # seconds since the epoch
    policy: str | None = None
    digest: str | None = None
    table: str | None = None  # "inet zfw"
    who: str = ""
    detail: str = ""

    def as_dict(self) -> dict:
        return {"action": self.action, "result": self.result, "time": self.time, "policy": self.policy,
                "digest": self.digest, "table": self.table, "who": self.who, "detail": self.detail}


def event_from(data: dict, what: str) -> Event:
    """An event read back: action and result from the fixed lists, a finite time, bounded strings."""
    action, result = data.get("action"), data.get("result")
    if action not in EVENT_ACTIONS or result not in EVENT_RESULTS:
        raise StateError(f"{what}: action or result is damaged")
    digest = data.get("digest")
    texts = [data.get(key) for key in ("policy", "table", "who", "detail")]
    if not all(text is None or isinstance(text, str) for text in texts):
        raise StateError(f"{what}: a text field is damaged")
    policy, table, who, detail = (text[:4096] if text is not None else None for text in texts)
    return Event(action, result, _number(data.get("time"), what, "time"), policy,
                 _hex64(digest, what, "digest") if digest is not None else None, table, who or "",
                 (detail or "")[:MAX_DETAIL])


def read_event(state: StateDir, action: str) -> Event | None:
    data = state.read_json(event_file(action))
    return event_from(data, state.file(event_file(action))) if data is not None else None
