"""The lockout guard: would the new policy drop the admin's own connection (from $SSH_CONNECTION or --admin-from)?

Answers with the compiler's semantics: the zone an address falls in (interface zones first, as the ruleset
dispatches, then the most specific address zone) and `reach.decide` for the verdict on that port.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import subprocess
from dataclasses import dataclass

from . import catalog
from .reach import decide, zone_segments
from .resolve import LOCALHOST, CheckedPolicy
from .zones import interfaces

DEFAULT_ADMIN_PORT = 22


@dataclass(frozen=True)
class AdminEndpoint:
    """Where the admin connects from, the server port they connect to, and what told us."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    origin: str


class EndpointError(ValueError):
    """--admin-from that is not ADDR, ADDR:PORT or [ADDR6]:PORT."""


def parse_admin_from(text: str) -> AdminEndpoint:
    address_text, port_text = text, str(DEFAULT_ADMIN_PORT)
    if text.startswith("["):
        address_text, _, rest = text[1:].partition("]")
        port_text = rest.removeprefix(":") or port_text
    elif text.count(":") == 1:
        address_text, port_text = text.split(":")
    try:
        address = ipaddress.ip_address(address_text)
        port = int(port_text)
    except ValueError:
        raise EndpointError(f"--admin-from '{text}' is not ADDR, ADDR:PORT or [IPV6]:PORT") from None
    if not 0 < port < 65536:
        raise EndpointError(f"--admin-from '{text}': port {port} is out of range")
    return AdminEndpoint(address, port, "--admin-from")


def from_ssh_connection(value: str | None) -> AdminEndpoint | None:
    """$SSH_CONNECTION is 'client-address client-port server-address server-port'."""
    fields = (value or "").split()
    if len(fields) != 4:
        return None
    try:
        return AdminEndpoint(ipaddress.ip_address(fields[0].split("%")[0]), int(fields[3]), "$SSH_CONNECTION")
    except ValueError:
        return None


def ingress_interface(address) -> str | None:
    """The interface a packet from `address` arrives on (the route back to it), from `ip route get`."""
    try:
        output = subprocess.run(["ip", "-o", "route", "get", str(address)], capture_output=True, text=True,
                                timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = output.split()
    return words[words.index("dev") + 1] if "dev" in words[:-1] else None


def zone_of(checked: CheckedPolicy, address, interface: str | None) -> str | None:
    """The zone the ruleset sends a packet from `address` on `interface` to; None: no zone (dropped)."""
    if address.is_loopback or interface == "lo":
        return LOCALHOST
    for zone in checked.zones:
        if interface and any(fnmatch.fnmatchcase(interface, pattern) for pattern in interfaces(zone)):
            return zone.name
    value = int(address)
    for interval in checked.intervals:
        if interval.version == address.version and interval.first <= value <= interval.last:
            return interval.zone
    return None


def lockout_problem(checked: CheckedPolicy, endpoint: AdminEndpoint, interface: str | None) -> str | None:
    """Why the new policy would drop the admin's connection (zone, missing rule); None when it lets it in."""
    zone = zone_of(checked, endpoint.address, interface)
    who = f"the admin connection from {endpoint.address} to tcp port {endpoint.port} ({endpoint.origin})"
    if zone is None:
        return f"{who} falls in no zone, so the new policy drops it (drop/no-zone); add a zone that contains it"
    decision = decide(zone_segments(checked, zone), "tcp", endpoint.port)
    if decision.verdict == "accept":
        return None
    names = [e.name for e in catalog.entries_for_port(endpoint.port)] or [f"a service with tcp {endpoint.port}"]
    return (f"{who} falls in zone '{zone}', and the new policy does not let it in: {decision.describe()}; "
            f"missing: a rule like 'allow {zone} -> {names[0]}'")
