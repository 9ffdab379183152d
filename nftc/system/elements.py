"""Elements of the dynamic sets, carried across an apply or a rollback as data, never as text.

Other tools (fail2ban, an admin's script, anything with CAP_NET_ADMIN) add these elements, and libnftables lets
them attach comments and flags nftc never wrote. nftc reads them as libnftables JSON, keeps only what it
understands (an address, a prefix or a range of the set's IP version), checks each with `ipaddress`, and renders
the text it loads from those checked values alone: nothing another tool wrote reaches the transaction as text.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ..backend.names import dynamic_set_version

MAX_CARRIED = 4_000_000  # elements per set: far above any real blocklist, below what would exhaust memory


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


@dataclass(frozen=True)
class SetElements:
    """The elements nftc carries from one set, and how many it could not read (left behind, and said)."""

    name: str
    elements: tuple[AddressRange, ...]
    unreadable: int


def from_json(name: str, set_object: dict) -> SetElements:
    """Read `{"set": {...,"elem": [...]}}` as libnftables lists it; an element of another shape is not carried."""
    return _collect(name, (set_object.get("set") or {}).get("elem") or [])


def from_saved(name: str, items) -> SetElements:
    """Elements nftc saved in snapshot.json as rendered text, read back with the same checks."""
    if not isinstance(items, list):
        return SetElements(name, (), 1)
    return _collect(name, items)


def _collect(name: str, items: list) -> SetElements:
    version = dynamic_set_version(name)
    if version is None:
        raise ValueError(f"{name!r} is not a dynamic set's name")
    carried, unreadable = [], 0
    for item in items[:MAX_CARRIED]:
        element = _element(item, version)
        if element is None:
            unreadable += 1
        else:
            carried.append(element)
    return SetElements(name, tuple(sorted(set(carried))), unreadable + max(0, len(items) - MAX_CARRIED))


def _element(item, version: int) -> AddressRange | None:
    if isinstance(item, dict) and set(item) == {"elem"} and isinstance(item["elem"], dict):
        item = item["elem"].get("val")  # comments, timeouts and other fields are not carried
    try:
        if isinstance(item, str) and "-" in item:  # a range as nftc renders it
            return _element({"range": item.split("-", 1)}, version)
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


def add_command(target, carried: SetElements) -> str:
    """One `add element` line built from checked values only (the table and set names are checked nftc names)."""
    if not carried.elements:
        return ""
    return f"add element {target} {carried.name} {{ {', '.join(e.render() for e in carried.elements)} }}\n"


def rendered(carried: SetElements) -> list[str]:
    return [element.render() for element in carried.elements]
