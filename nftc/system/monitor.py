"""What `nftc status --format json|openmetrics` reports, gathered as typed data: the table (loaded, policy, digest,
drift, a pending confirmation), its named counters per zone, service and rule and per drop reason, the size of
every set and map, and the last apply, confirm, rollback, guard action and refresh (records.Event).

Fast at any size: the marker and drift come from the terse text listing (reader.py), the counters and the sets'
definitions from the terse JSON listing (`nft -j -t list ruleset`, milliseconds with 10^5 elements loaded), and
each set's size from a netlink count (setsize.py), never from its elements as text. Everything read from the kernel
is data another tool could have shaped (it may add counters and sets to nftc's table, with any name): names are
kept as the exact strings they are, for the renderers (exposition.py) to escape; a value that is not a count is
left out and counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from . import kernel, live, reader, setsize
from ..backend import names
from .drift import drift
from .records import (EVENT_ACTIONS, PENDING, Event, Target, boot_id, boottime, lists_elements, read_applied,
                      read_event, read_pending_or_none)
from .state import StateDir, StateError


@dataclass(frozen=True)
class RuleCounter:
    """A rule's named counter in a zone, for one service (`ZONE/SERVICE/RULE`), or the loopback accept."""

    counter: str
    zone: str
    service: str
    rule: str
    packets: int
    bytes: int


@dataclass(frozen=True)
class DropCounter:
    """Any other named counter: a drop reason (`drop/echo`, `lan/default-drop`, `r3/over-limit`...)."""

    reason: str
    packets: int
    bytes: int


@dataclass(frozen=True)
class SetSize:
    """A set or map and how many elements it holds (None: it went away while being counted). `role`: dynamic (a
    dynamic zone's run-time addresses), blocklist (a url zone's, replaced by `nftc refresh`), meter (per-source
    limits), static (the policy's)."""

    name: str
    kind: str
    role: str
    elements: int | None


@dataclass(frozen=True)
class TableStatus:
    """The table: loaded or not, and if so what the text status says of it."""

    target: Target
    loaded: bool
    policy: str | None = None
    digest: str | None = None  # None: loaded but not nftc's (no marker)
    applied: str | None = None  # when, if by this state directory
    restored: bool = False
    drift: str | None = None  # none, DRIFT, unknown
    pending: str | None = None  # none, waiting, damaged


@dataclass(frozen=True)
class Status:
    """Everything `status --format json|openmetrics` says, as read at `time`."""

    time: float
    table: TableStatus
    rules: tuple[RuleCounter, ...]
    drops: tuple[DropCounter, ...]
    sets: tuple[SetSize, ...]
    events: tuple[Event, ...]
    notes: tuple[str, ...]  # what could not be read (a damaged event record, a counter that is not a count)


def collect(state: StateDir, table: str | None) -> Status:
    """Everything status reports, for the table the applied record names (or `table`, or zfw)."""
    events, notes = _events(state)
    applied = read_applied(state) if state.exists() else None
    target = Target("inet", table or (applied.target.name if applied else "zfw"))
    current = reader.terse_table(target)
    if current is None:
        return Status(time.time(), TableStatus(target, False), (), (), (), events, tuple(notes))
    objects = kernel.table_objects(target.family, target.name)
    rules, drops = _counters(objects, notes)
    return Status(time.time(), _table(state, target, current, applied), rules, drops, _sets(target, objects),
                  events, tuple(notes))


def _table(state: StateDir, target: Target, current: str, applied) -> TableStatus:
    """The table as the text status tells it: drift against the record of the digest its marker carries."""
    digest = live.digest(current)
    ours = applied is not None and applied.digest == digest
    with_elements = ours and lists_elements(applied.elements)
    found = drift(state, reader.with_static_elements(target, current) if with_elements else current, with_elements)
    return TableStatus(target, True, applied.policy if ours else live.policy_name(current), digest,
                       applied.time if ours else None, ours and applied.restored, found.verdict, _pending(state))


def _pending(state: StateDir) -> str:
    """none, waiting (a guard rolls back at the deadline) or damaged (it rolls back too): a record of an earlier
    boot has no guard behind it."""
    if not state.exists() or state.read_text(PENDING) is None:
        return "none"
    pending = read_pending_or_none(state)
    if pending is None:
        return "damaged"
    return "waiting" if pending.boot_id == boot_id() and pending.deadline > boottime() else "none"


def counters(target: Target) -> tuple[tuple[RuleCounter, ...], tuple[DropCounter, ...]]:
    """The table's named counters as JSON data (the text status reads them here too: in the text listing, a
    counter name holding newlines can forge another counter's lines)."""
    return _counters(kernel.table_objects(target.family, target.name), [])


def shown(name: str) -> str:
    """A name read from the kernel as a terminal line may show it: control characters as escapes."""
    return name if name.isprintable() else name.encode("unicode_escape").decode("ascii")


def _count(value) -> int | None:
    """A packet or byte count as JSON gives it, or None for anything else (a bool is an int to Python)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _counters(objects: list[tuple[str, dict]], notes: list[str]) -> tuple[tuple[RuleCounter, ...],
                                                                          tuple[DropCounter, ...]]:
    """Rule and drop counters, told apart by their names (live.counter_rows, as the text status does)."""
    found, unreadable = [], 0
    for kind, body in objects:
        if kind != "counter":
            continue
        name, packets, size = body.get("name"), _count(body.get("packets")), _count(body.get("bytes"))
        if not isinstance(name, str) or packets is None or size is None:
            unreadable += 1
            continue
        found.append({"name": name, "packets": packets, "bytes": size})
    if unreadable:
        notes.append(f"{unreadable} counters without a name or a count were left out")
    rules, drops = [], []
    for counter in found:
        opened, dropped = live.counter_rows([counter])
        if opened:
            rules.append(RuleCounter(counter["name"], *opened[0]))
        else:
            drops.append(DropCounter(*dropped[0]))
    return tuple(rules), tuple(drops)


def _sets(target: Target, objects: list[tuple[str, dict]]) -> tuple[SetSize, ...]:
    """Every set and map of the table, by name, with its role (from nftc's names, else its flags) and size."""
    found = []
    for kind, body in objects:
        name = body.get("name")
        if kind not in ("set", "map") or not isinstance(name, str):
            continue
        flags = body.get("flags") if isinstance(body.get("flags"), list) else []
        role = ("dynamic" if names.dynamic_set_version(name) else
                "blocklist" if names.parse_blocklist_set(name) else
                "meter" if "dynamic" in flags or "timeout" in flags else "static")
        found.append(SetSize(name, kind, role, _size(target, name)))
    return tuple(sorted(found, key=lambda s: s.name))


def _size(target: Target, name: str) -> int | None:
    """The set's element count; a refused dump is one KernelError line naming the set (escaped by repr)."""
    try:
        return setsize.count_elements(target.family, target.name, name)
    except (OSError, UnicodeError) as exc:
        raise kernel.KernelError(f"cannot count the elements of set {name[:64]!r}: {exc}") from None


def _events(state: StateDir) -> tuple[tuple[Event, ...], list[str]]:
    """The last event of each action; a damaged record is left out and said."""
    events, notes = [], []
    for action in EVENT_ACTIONS:
        try:
            event = read_event(state, action) if state.exists() else None
        except StateError as exc:
            notes.append(str(exc))
            continue
        if event is not None:
            events.append(event)
    return tuple(events), notes
