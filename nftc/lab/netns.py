"""Throwaway network namespaces for the lab and the kernel tests: unique names, wired only to each other, always deleted.

Nothing here touches the machine's own namespace: every command runs under `ip netns exec NAME`.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from dataclasses import dataclass, field

_counter = itertools.count()

# Every namespace nftc's lab, benchmarks and tests make is named STEM<pid>x<n><role>, <pid> the process that made
# it; no role starts with a digit, so the prefix STEM<pid>x<n> reads back exactly (nftct12x1 is not nftct12x10).
LAB_STEM = "nftclab"  # `nftc lab`: nftclab<pid>x<n>-server, -c0...
BENCH_STEM = "nftcbench"  # bench/run.py
TEST_STEM = "nftct"  # a Lab made without a prefix: the kernel tests
_PREFIX = re.compile(rf"(?:{LAB_STEM}|{BENCH_STEM}|{TEST_STEM})(?P<pid>\d+)x\d+")


def run(*args: str, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=input, timeout=timeout)


def host_prefix(address: str) -> str:
    """The address as a one-host prefix: /32 or /128."""
    return f"{address}/128" if ":" in address else f"{address}/32"


def without_admin_session() -> dict[str, str]:
    """This environment without $SSH_CONNECTION and $SSH_CLIENT, for an `nftc apply` inside a namespace: its lockout
    guard must not judge the session of whoever runs the lab or the benchmark."""
    return {k: v for k, v in os.environ.items() if k not in ("SSH_CONNECTION", "SSH_CLIENT")}


def unique_prefix(stem: str) -> str:
    """`STEM<pid>x<n>`: recognisable in `ip netns list`, and unique among the labs of this process."""
    return f"{stem}{os.getpid()}x{next(_counter)}"


def prefix_of(name: str) -> str | None:
    """The STEM<pid>x<n> a namespace of nftc's lab, benchmarks or tests starts with; None for any other name."""
    found = _PREFIX.match(name)
    return found.group(0) if found else None


def listed() -> list[str]:
    """Every network namespace `ip netns` knows, by name."""
    return [line.split()[0] for line in run("ip", "netns", "list").stdout.splitlines() if line.strip()]


def namespaces(prefix: str) -> list[str]:
    """The namespaces made under exactly this prefix."""
    return [name for name in listed() if prefix_of(name) == prefix]


def orphaned_prefixes() -> list[str]:
    """Prefixes whose maker is no longer running: what a run killed half way (SIGKILL, a crash) left behind. A
    prefix whose process is alive belongs to a run in progress, maybe another user's, and is never listed."""
    prefixes = {prefix_of(name) for name in listed()} - {None}
    return sorted(p for p in prefixes if not _running(int(_PREFIX.fullmatch(p)["pid"])))


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


@dataclass
class Lab:
    """A set of namespaces; use as a context manager so they are deleted also on failure."""

    prefix: str = field(default_factory=lambda: unique_prefix(TEST_STEM))
    namespaces: list[str] = field(default_factory=list)

    def namespace(self, role: str) -> str:
        name = f"{self.prefix}{role}"[:60]
        run("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.exec(name, "ip", "link", "set", "lo", "up")
        return name

    def exec(self, namespace: str, *args: str, check: bool = True, input: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", namespace, *args, check=check, input=input, timeout=timeout)

    def wire(self, left: str, right: str, left_addresses: tuple[str, ...], right_addresses: tuple[str, ...],
             left_if: str = "eth0", right_if: str = "eth0") -> None:
        """A veth pair between two namespaces; IPv6 addresses are added with nodad."""
        temp_left, temp_right = f"v{next(_counter)}a{os.getpid() % 10000}", f"v{next(_counter)}b{os.getpid() % 10000}"
        run("ip", "link", "add", temp_left[:15], "netns", left, "type", "veth", "peer", "name", temp_right[:15],
            "netns", right)
        for namespace, temp, final, addresses in ((left, temp_left, left_if, left_addresses),
                                                  (right, temp_right, right_if, right_addresses)):
            self.exec(namespace, "ip", "link", "set", temp[:15], "name", final)
            for address in addresses:
                extra = ("nodad",) if ":" in address else ()
                self.exec(namespace, "ip", "addr", "add", address, "dev", final, *extra)
            self.exec(namespace, "ip", "link", "set", final, "up")

    def wire_hosts(self, left: str, right: str, left_addresses: dict[int, str], right_addresses: dict[int, str],
                   left_if: str = "eth0") -> None:
        """A veth pair with host addresses (/32, /128) and one host route each way per IP version `right` has:
        the two ends reach each other and nothing else (no default route, no bridge). Versions map to addresses."""
        ours = {version: left_addresses[version] for version in right_addresses}
        self.wire(left, right, tuple(map(host_prefix, ours.values())),
                  tuple(map(host_prefix, right_addresses.values())), left_if=left_if)
        for version, address in right_addresses.items():
            flag = f"-{version}"
            self.exec(left, "ip", flag, "route", "add", host_prefix(address), "dev", left_if, "src", ours[version])
            self.exec(right, "ip", flag, "route", "add", host_prefix(ours[version]), "dev", "eth0", "src", address)

    def flush_neighbours(self) -> None:
        for namespace in self.namespaces:
            self.exec(namespace, "ip", "neigh", "flush", "all", check=False)

    def close(self) -> None:
        for namespace in reversed(self.namespaces):
            run("ip", "netns", "del", namespace, check=False)
        self.namespaces.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
