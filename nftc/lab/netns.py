"""Throwaway network namespaces for the lab and the kernel tests: unique names, wired only to each other, always deleted.

Nothing here touches the machine's own namespace: every command runs under `ip netns exec NAME`.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from dataclasses import dataclass, field

_counter = itertools.count()


def run(*args: str, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, text=True, input=input, timeout=timeout)


def unique_prefix(stem: str) -> str:
    """`STEM<pid>x<n>`: recognisable in `ip netns list`, and unique among the labs of this process."""
    return f"{stem}{os.getpid()}x{next(_counter)}"


@dataclass
class Lab:
    """A set of namespaces; use as a context manager so they are deleted also on failure."""

    prefix: str = field(default_factory=lambda: f"nftct{os.getpid()}x{next(_counter)}")
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
