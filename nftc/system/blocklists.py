"""The url zones' last good blocklists: kept in the state directory, given to the compiler, checked before use.

Per url zone two files, written together (stage, then commit) and only after the kernel took the list:
- `blocklist.ZONE.list`: the list's text as downloaded;
- `blocklist.ZONE.json`: the URL it came from, its sha256, the server's ETag and Last-Modified (for the next
  conditional GET), when it was fetched and how many networks it held.
A list there is data: it is given to the compiler only when its sha256 and URL are the recorded ones, and then
parsed and checked like any address file (nftc.language.loader). Before the kernel gets a new list, `checked`
refuses one that would cover a trusted zone, the machine's own addresses or loopback: a list that bans the admins
or the server itself is a broken or hostile list, and the last good one stays.
"""

from __future__ import annotations

import bisect
import dataclasses
import ipaddress
import json
import time
from dataclasses import dataclass

from ..errors import NftcError
from ..language import model as m
from ..language.diagnostics import Diagnostic, PolicyError
from ..language.loader import Feeds, read_address_list
from .download import MAX_VALIDATOR, Validators
from .records import content_sha256
from .state import StateDir, StateError, as_json, now_iso

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


class ListError(NftcError):
    """A downloaded list nftc will not load (garbage, empty, too many entries, covering what must stay
    reachable); one line."""


@dataclass(frozen=True)
class Kept:
    """The record of a zone's last good list."""

    url: str
    sha256: str
    validators: Validators
    fetched: str  # when it was downloaded (UTC, for people)
    entries: int
    checked: float  # when the server last gave it or said it is current (200 or 304): the next is due after

    def as_dict(self) -> dict:
        return {"url": self.url, "sha256": self.sha256, "etag": self.validators.etag,
                "last_modified": self.validators.last_modified, "fetched": self.fetched, "entries": self.entries,
                "checked": self.checked}


def list_file(zone: str) -> str:
    """The state file of a zone's last good list (zone names are the grammar's NAME: safe as a file name)."""
    return f"blocklist.{zone}.list"


def record_file(zone: str) -> str:
    return f"blocklist.{zone}.json"


def read_kept(state: StateDir, zone: str) -> Kept | None:
    """The record of the zone's last good list; None when there is none or it cannot be read as one."""
    try:
        data = state.read_json(record_file(zone))
    except StateError:
        return None
    if not data:
        return None
    fields = [data.get(k) for k in ("url", "sha256", "etag", "last_modified", "fetched")]
    entries, checked = data.get("entries"), data.get("checked")
    if not all(isinstance(f, str) and len(f) <= 4096 for f in fields) or not isinstance(entries, int) \
            or isinstance(checked, bool) or not isinstance(checked, (int, float)):
        return None
    url, sha256, etag, modified, fetched = fields
    return Kept(url, sha256, Validators(etag[:MAX_VALIDATOR], modified[:MAX_VALIDATOR]), fetched, entries,
                float(checked))


def kept_text(state: StateDir, zone: str, url: str) -> str | None:
    """The zone's last good list, when it is the one recorded (same sha256) and came from `url`."""
    kept = read_kept(state, zone)
    if kept is None or kept.url != url:
        return None
    text = state.read_text(list_file(zone))
    return text if text is not None and content_sha256(text) == kept.sha256 else None


def feeds(state: StateDir) -> Feeds:
    """The compiler's view of the kept lists (nftc.language.loader.Feeds): where a zone's last good list is kept,
    and its text (None: none is kept yet, or not one for this URL; the zone compiles empty)."""
    def feed(zone: str, url: str) -> tuple[str, str | None]:
        return state.file(list_file(zone)), kept_text(state, zone, url) if state.exists() else None
    return feed


def save(state: StateDir, zone: str, text: str, kept: Kept) -> None:
    """Both files, together: after the kernel took the list."""
    state.stage({list_file(zone): text, record_file(zone): as_json(kept.as_dict())}).commit()


def save_record(state: StateDir, zone: str, kept: Kept) -> None:
    """The record alone (a 304: the list kept is still current, checked now)."""
    state.write_text(record_file(zone), as_json(kept.as_dict()))


def kept_record(url: str, text: str, validators: Validators, entries: int) -> Kept:
    return Kept(url, content_sha256(text), validators, now_iso(), entries, time.time())


def rechecked(kept: Kept) -> Kept:
    return dataclasses.replace(kept, checked=time.time())


def decoded(body: bytes) -> str:
    """The body as text; a list that is not UTF-8 (a binary, a compressed file) is garbage."""
    try:
        return body.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ListError(f"not a list of addresses: byte 0x{body[exc.start]:02x} at offset {exc.start} is not "
                        "UTF-8 text") from None


@dataclass(frozen=True)
class Checked:
    """A list fit to load: its networks, and its warnings (host bits cleared)."""

    networks: m.AddressList
    warnings: tuple[Diagnostic, ...]


def checked(text: str, label: str, protected: tuple[m.IPNetwork, ...], limit: int) -> Checked:
    """Parse `text` as an address list (its errors: the first, as one line) and refuse it when it is empty,
    holds more than `limit` networks, or covers any of `protected` (trusted zones, own addresses, loopback)."""
    try:
        found = read_address_list(text, label, limit)
    except PolicyError as exc:
        first = exc.diagnostics[0]
        more = f" (and {len(exc.diagnostics) - 1} more)" if len(exc.diagnostics) > 1 else ""
        raise ListError(f"not a list of addresses: line {first.span.line}: {first.message}{more}") from None
    if found.networks is None:
        raise ListError(f"the list holds more than {limit} entries")
    if not found.networks:
        raise ListError("the list holds no address")
    covered = _covered(found.networks, protected)
    if covered:
        raise ListError(f"the list covers {covered}, which must stay reachable")
    return Checked(found.networks, found.warnings)


def _covered(networks: m.AddressList, protected: tuple[m.IPNetwork, ...]) -> str:
    """The first protected network (with what it is) that a list entry overlaps, or ''."""
    intervals = {v: networks.intervals(v) for v in (4, 6)}
    for network in protected:
        merged = intervals[network.version]
        at = bisect.bisect_right(merged, (int(network.broadcast_address), 1 << 129)) - 1
        if at >= 0 and merged[at][1] >= int(network.network_address):
            return str(network)
    return ""


def own_networks() -> tuple[m.IPNetwork, ...]:
    """The machine's own addresses (as /32 and /128), and loopback: a list must not cover them. Read with
    iproute2's JSON output (the standard library has no portable way)."""
    import subprocess  # here: apply imports this module for `feeds` alone, and starts no process

    try:
        out = subprocess.run(["ip", "-j", "address", "show"], capture_output=True, text=True, timeout=10,
                             check=True).stdout
        interfaces = json.loads(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        raise ListError("cannot read the machine's own addresses (ip -j address show)") from None
    found = []
    for interface in interfaces if isinstance(interfaces, list) else ():
        for info in interface.get("addr_info") or () if isinstance(interface, dict) else ():
            try:
                found.append(ipaddress.ip_network(info.get("local")))
            except (ValueError, TypeError, AttributeError):
                continue
    return LOOPBACK + tuple(n for n in found if not n.is_link_local)
