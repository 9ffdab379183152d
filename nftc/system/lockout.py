"""The lockout guard: would the new policy drop the admin's own connection (from $SSH_CONNECTION or --admin-from)?

Answers with the compiler's semantics: the zone an address falls in (interface zones first, as the ruleset
dispatches, then the most specific address zone) and `reach.decide` for the verdict on that port.

The admin's SSH client is found in this process's environment, else in its parents' (`ancestors`): sudo's
`env_reset`, `sudo -i` and `su -` drop $SSH_CONNECTION from the command they run, but sudo and su stay alive as
its parents with the caller's environment, which root can read in /proc/PID/environ.
"""

from __future__ import annotations

import ipaddress
import itertools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping

from ..errors import EXIT_POLICY, NftcError

if TYPE_CHECKING:
    from ..semantics.resolve import CheckedPolicy

DEFAULT_ADMIN_PORT = 22
MAX_ANCESTORS = 64  # bounds the walk up the parents; sshd, shell, sudo, su, shell is a handful
MAX_ENVIRON_BYTES = 1 << 20  # a bound on what is read; environments are far smaller


@dataclass(frozen=True)
class AdminEndpoint:
    """Where the admin connects from, the server port they connect to, and what told us."""

    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    port: int
    origin: str


class EndpointError(NftcError):
    """--admin-from that is not ADDR, ADDR:PORT or [ADDR6]:PORT: a usage error."""

    exit_code = EXIT_POLICY


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


def from_ssh_connection(value: str | None, origin: str = "$SSH_CONNECTION") -> AdminEndpoint | None:
    """$SSH_CONNECTION is 'client-address client-port server-address server-port'."""
    fields = (value or "").split()
    return _endpoint(fields[0], fields[3], origin) if len(fields) == 4 else None


def from_ssh_client(value: str | None, origin: str = "$SSH_CLIENT") -> AdminEndpoint | None:
    """$SSH_CLIENT is 'client-address client-port server-port' (older, but some env_keep lists keep only it)."""
    fields = (value or "").split()
    return _endpoint(fields[0], fields[2], origin) if len(fields) == 3 else None


def _endpoint(address: str, port: str, origin: str) -> AdminEndpoint | None:
    try:
        endpoint = AdminEndpoint(ipaddress.ip_address(address.split("%")[0]), int(port), origin)
    except ValueError:
        return None
    return endpoint if 0 < endpoint.port < 65536 else None


def from_environment(variables: Mapping[str, str], owner: str = "") -> AdminEndpoint | None:
    """The SSH client named in one environment; `owner` ('sudo (pid 4)') goes into the origin the message shows."""
    suffix = f" of {owner}" if owner else ""
    return (from_ssh_connection(variables.get("SSH_CONNECTION"), f"$SSH_CONNECTION{suffix}")
            or from_ssh_client(variables.get("SSH_CLIENT"), f"$SSH_CLIENT{suffix}"))


@dataclass(frozen=True)
class Ancestor:
    """A parent process: its pid, its name, and its environment as it was started (/proc/PID/environ)."""

    pid: int
    name: str
    environ: bytes


def parse_environ(data: bytes) -> dict[str, str]:
    """NUL-separated NAME=value pairs; bytes that are not UTF-8 are replaced (an address never has them)."""
    pairs = (item.partition(b"=") for item in data.split(b"\0") if b"=" in item)
    return {name.decode(errors="replace"): value.decode(errors="replace") for name, _, value in pairs}


def find_admin(own: Mapping[str, str], parents: Iterable[Ancestor]) -> AdminEndpoint | None:
    """The admin's SSH client: from our own environment, else from the nearest parent that has one.

    `parents` is consumed lazily: no parent is read once an environment has named the client.
    """
    found = itertools.chain(
        (from_environment(own),),
        (from_environment(parse_environ(parent.environ), f"{parent.name} (pid {parent.pid})") for parent in parents))
    return next((endpoint for endpoint in found if endpoint), None)


def ancestors(pid: int | None = None, proc: str = "/proc") -> Iterator[Ancestor]:
    """`pid` (default: our parent) and its parents, nearest first, while they share our network namespace.

    An SSH session that arrived in another network namespace (`sudo ip netns exec NS nftc apply` typed on the
    host) does not pass through the ruleset being loaded into NS, so the walk stops at the namespace's edge. It
    also stops at a process it cannot read (gone, or we are not root) and after MAX_ANCESTORS steps.
    """
    try:
        namespace = os.readlink(f"{proc}/self/ns/net")
    except OSError:
        return
    pid = os.getppid() if pid is None else pid
    for _ in range(MAX_ANCESTORS):
        try:
            if pid < 1 or os.readlink(f"{proc}/{pid}/ns/net") != namespace:
                return
            status = _status(f"{proc}/{pid}/status")
            with open(f"{proc}/{pid}/environ", "rb") as file:
                environ = file.read(MAX_ENVIRON_BYTES)
            parent = int(status.get("PPid", "0"))
        except (OSError, ValueError):
            return
        yield Ancestor(pid, status.get("Name", "?"), environ)
        pid = parent


def _status(path: str) -> dict[str, str]:
    """/proc/PID/status as 'Key: value' pairs (Name, PPid...)."""
    with open(path, encoding="utf-8", errors="replace") as file:
        return {key: value.strip() for key, _, value in (line.partition(":") for line in file)}


def ingress_interface(address) -> str | None:
    """The interface a packet from `address` arrives on (the route back to it), from `ip route get`."""
    import subprocess

    try:
        output = subprocess.run(["ip", "-o", "route", "get", str(address)], capture_output=True, text=True,
                                timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = output.split()
    return words[words.index("dev") + 1] if "dev" in words[:-1] else None


def lockout_problem(checked: CheckedPolicy, endpoint: AdminEndpoint, interface: str | None) -> str | None:
    """Why the new policy would drop the admin's connection (zone, missing rule); None when it lets it in."""
    # here, not at the top: finding the admin's address (an apply of an unchanged policy) needs no semantics
    from ..semantics import catalog
    from ..semantics.reach import decide, zone_segments
    from ..semantics.zones import zone_of

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
