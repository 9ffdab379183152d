"""Elements of the dynamic sets, carried across an apply or a rollback as data, never as text.

Other tools (fail2ban, an admin's script, anything with CAP_NET_ADMIN) add these elements, and libnftables lets
them attach comments and flags nftc never wrote. nftc reads them as libnftables JSON, keeps only what it
understands (an address, a prefix or a range of the set's IP version, and in a set with timeouts the element's
timeout and the time it has left), checks each with `ipaddress` and as bounded whole seconds, and renders the text
it loads from those checked values alone: nothing another tool wrote reaches the transaction as text.

Time left is carried, never restarted: an element read with 5 minutes left is added back with `expires 300s`
(libnftables lists whole seconds: it may lose the fraction of one). A snapshot keeps the wall-clock time an
element expires at, so a rollback an hour later adds it back with an hour less, or not at all once it has
expired. A timing nftc cannot believe (not a whole number of seconds from 1 to MAX_SECONDS) is not carried: the
element is, and takes its new set's own timeout.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, replace

from . import live
from ..backend.names import dynamic_set_version

MAX_CARRIED = 4_000_000  # elements per set: far above any real blocklist, below what would exhaust memory
MAX_SECONDS = 3650 * 86400  # a timeout or time left beyond ten years is not believed (the kernel takes it)
_TIMEOUT_FLAG = re.compile(r"^\t\tflags (\S+,)*timeout(,\S+)*$")


@dataclass(frozen=True, order=True)
class AddressRange:
    """first..last inclusive, of one IP version; rendered as an address, a prefix or a range."""

    version: int
    first: int
    last: int

    def render(self) -> str:
        kind = ipaddress.IPv4Address if self.version == 4 else ipaddress.IPv6Address
        first, last = kind(self.first), kind(self.last)
        if self.first == self.last:
            return str(first)
        networks = list(ipaddress.summarize_address_range(first, last))
        return str(networks[0]) if len(networks) == 1 else f"{first}-{last}"


@dataclass(frozen=True, order=True)
class Element:
    """One carried element: its addresses and, in a set with timeouts, its timeout and the seconds it had left
    when read (0 and 0: no timing; it takes the set's own timeout, if the set has one)."""

    address: AddressRange
    timeout: int = 0
    expires: int = 0

    def render(self, timeouts: bool) -> str:
        """The element as `add element` takes it; its timing only where the set `timeouts` (else it is refused)."""
        if not (timeouts and self.timeout):
            return self.address.render()
        return f"{self.address.render()} timeout {self.timeout}s expires {self.expires}s"


@dataclass(frozen=True)
class SetElements:
    """The elements nftc carries from one set, and how many it could not read (left behind, and said)."""

    name: str
    elements: tuple[Element, ...]
    unreadable: int
    read_at: int | None = None  # the wall-clock second their time left counts from (a snapshot's, read back:
    # aged() brings it to the load); None: read from the kernel for the transaction being built


def from_json(name: str, set_object: dict) -> SetElements:
    """Read `{"set": {...,"elem": [...]}}` as libnftables lists it; an element of another shape is not carried.
    An element without a timeout of its own has the set's (`timeout` of the set object)."""
    body = set_object.get("set") or {}
    default = _seconds(body.get("timeout")) if isinstance(body, dict) else 0
    items = body.get("elem") if isinstance(body, dict) else None
    return _collect(name, items or [], lambda item: _from_kernel(item, default))


def from_saved(name: str, items, now: float) -> SetElements:
    """Elements nftc saved in snapshot.json (saved_items), read back with the same checks; an element whose time
    ran out by `now` (wall clock) is not carried."""
    if not isinstance(items, list):
        return SetElements(name, (), 1, math.floor(now))
    collected = _collect(name, items, lambda item: _from_saved(item, now))
    return replace(collected, read_at=math.floor(now))


def aged(carried: SetElements, now: float) -> SetElements:
    """A snapshot's elements as they are at `now`, right before the load: each timed one with the time it has
    left then, none whose time ran out. The guard reads the snapshot when it arms and restores it minutes later."""
    if carried.read_at is None:
        return carried
    elapsed = max(0, math.floor(now) - carried.read_at)
    kept = tuple(e if not e.timeout else replace(e, expires=e.expires - elapsed)
                 for e in carried.elements if not e.timeout or e.expires > elapsed)
    return SetElements(carried.name, kept, carried.unreadable, carried.read_at + elapsed)


def saved_items(carried: SetElements, now: float) -> list:
    """What snapshot.json keeps of each element: its text, or with timing its text, timeout and the wall-clock
    second it expires at (time left is relative to when it was read: saved as is, it would restart)."""
    start = math.floor(now) if carried.read_at is None else carried.read_at
    return [e.address.render() if not e.timeout else
            {"val": e.address.render(), "timeout": e.timeout, "expires_at": start + e.expires}
            for e in carried.elements]


def merged(name: str, found) -> SetElements:
    """One set's elements from several readings (the new table's and nftc's earlier one's): one per address."""
    return SetElements(name, _unique(e for sets in found for e in sets.elements), 0)


def takes_timeouts(script: str, name: str) -> bool:
    """Whether set `name` of a script or listing has `flags ...timeout`: only then may an element carry timing."""
    return any(_TIMEOUT_FLAG.match(line) for line in live.set_block_lines(script, name) or [])


def add_command(target, carried: SetElements, timeouts: bool) -> str:
    """One `add element` line built from checked values only (the table and set names are checked nftc names);
    each element's timing too where the set `timeouts`."""
    if not carried.elements:
        return ""
    return f"add element {target} {carried.name} {{ {', '.join(e.render(timeouts) for e in carried.elements)} }}\n"


def _collect(name: str, items: list, read) -> SetElements:
    """`read` gives (address value, timeout, time left) of an item, or None for one whose time ran out."""
    version = dynamic_set_version(name)
    if version is None:
        raise ValueError(f"{name!r} is not a dynamic set's name")
    carried, unreadable = [], 0
    for item in items[:MAX_CARRIED]:
        found = read(item)
        if found is None:
            continue
        value, timeout, left = found
        address = _address(value, version)
        if address is None:
            unreadable += 1
        else:
            carried.append(Element(address, *_timing(timeout, left)))
    return SetElements(name, _unique(carried), unreadable + max(0, len(items) - MAX_CARRIED))


def _unique(carried) -> tuple[Element, ...]:
    """One element per address (the first read), in address order: the kernel refuses an interval twice."""
    by_address: dict[AddressRange, Element] = {}
    for element in carried:
        by_address.setdefault(element.address, element)
    return tuple(sorted(by_address.values()))


def _from_kernel(item, default: int):
    """(address value, timeout, time left) of one element as libnftables lists it; `default`: the set's timeout."""
    if isinstance(item, dict) and set(item) == {"elem"} and isinstance(item["elem"], dict):
        body = item["elem"]  # comments, counters and other fields are not carried
        return body.get("val"), body.get("timeout", default), body.get("expires", 0)
    return item, 0, 0


def _from_saved(item, now: float):
    """(address value, timeout, time left) of one element as saved_items wrote it; None once its time ran out."""
    if isinstance(item, dict) and set(item) == {"val", "timeout", "expires_at"}:
        at = item["expires_at"]
        if isinstance(at, bool) or not isinstance(at, int):
            return item["val"], 0, 0
        left = at - math.floor(now)
        return None if left <= 0 else (item["val"], item["timeout"], left)
    return item, 0, 0


def _timing(timeout, left) -> tuple[int, int]:
    """(timeout, time left) in whole seconds, both believed or neither; left at most the timeout (the kernel
    refuses more). libnftables lists less than a second left as 0: one second is carried."""
    timeout, left = _seconds(timeout), 1 if type(left) is int and left == 0 else _seconds(left)
    if not timeout or not left:
        return 0, 0
    return timeout, min(left, timeout)


def _seconds(value) -> int:
    """A whole number of seconds from 1 to MAX_SECONDS, or 0: anything else is not believed."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SECONDS:
        return 0
    return value


def _address(item, version: int) -> AddressRange | None:
    try:
        if isinstance(item, str) and "-" in item:  # a range as nftc renders it
            return _address({"range": item.split("-", 1)}, version)
        if isinstance(item, str):
            network = ipaddress.ip_network(_text(item), strict=True)
        elif isinstance(item, dict) and set(item) == {"prefix"} and isinstance(item["prefix"], dict):
            prefix = item["prefix"]
            network = ipaddress.ip_network(f"{_text(prefix.get('addr'))}/{_length(prefix.get('len'))}", strict=True)
        elif isinstance(item, dict) and set(item) == {"range"} and isinstance(item["range"], list) \
                and len(item["range"]) == 2:
            first, last = (ipaddress.ip_address(_text(end)) for end in item["range"])
            if first.version != version or last.version != version or int(first) > int(last):
                return None
            return AddressRange(version, int(first), int(last))
        else:
            return None
    except (ValueError, TypeError):
        return None
    if network.version != version:
        return None
    return AddressRange(version, int(network.network_address), int(network.broadcast_address))


def _text(value) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError("not an address")
    return value


def _length(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a prefix length")
    return value
