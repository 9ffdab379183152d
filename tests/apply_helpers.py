"""Shared by the apply kernel tests: a namespace with nftc run inside it, and bounded polling.

Every nftc command runs as `ip netns exec NS python -m nftc ...` (the way the lab calls it); the state dir is
a temporary directory.
"""

from __future__ import annotations

import copy
import pathlib
import re
import subprocess
import sys
import time

import pytest

from nftc.lab.netns import Lab

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "rulesets" / "minimal.zfw"
FAULTY = ROOT / "tests" / "faulty_nftc.py"

SITE = """\
zone internet  = any
zone lan       = 10.99.0.0/24, fd99::/64
zone blocklist = dynamic
allow internet -> smtp
allow lan      -> smtp, ssh
"""


class Server:
    """One namespace, a state dir, and nftc run inside the namespace."""

    def __init__(self, lab: Lab, tmp_path: pathlib.Path):
        self.lab, self.ns, self.state = lab, lab.namespace("srv"), tmp_path / "state"
        self.dir = tmp_path

    def policy(self, name: str, text: str) -> str:
        path = self.dir / name
        path.write_text(text)
        return str(path)

    def nftc(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        pairs = [f"{k}={v}" for k, v in (env or {}).items()]  # no SSH_CONNECTION unless a test sets it
        return self.lab.exec(self.ns, "env", "-u", "SSH_CONNECTION", *pairs, sys.executable, "-m", "nftc", *args,
                             "--state-dir", str(self.state), check=False, timeout=120)

    def with_state_dir(self, path: pathlib.Path) -> "Server":
        """The same namespace, driven through another state directory (a second admin or tool)."""
        other = copy.copy(self)
        other.state = path
        return other

    def faulty(self, faults: tuple[str, ...], *args: str) -> subprocess.CompletedProcess:
        """nftc with a fault injected by tests/faulty_nftc.py (the installed tool obeys no fault variable)."""
        return self.lab.exec(self.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-I", "-B", str(FAULTY), *faults, "--",
                             *args, "--state-dir", str(self.state), check=False, timeout=120)

    def nft(self, *args: str, input: str | None = None) -> str:
        return self.lab.exec(self.ns, "nft", *args, input=input).stdout

    def ruleset(self) -> str:
        """`nft list ruleset`, each table's objects in name order (in_name_order)."""
        return in_name_order(self.nft("list", "ruleset"))

    def digest(self) -> str | None:
        """The digest nftc's marker carries: the input chain's comment (the table's keeps the digest of the apply
        that created the table, when later applies kept it and its dynamic sets in place)."""
        from nftc.system import live

        return live.digest(self.lab.exec(self.ns, "nft", "list", "table", "inet", "zfw", check=False).stdout)


_OBJECT = re.compile(r"^\t\S[^\n]* \{\n(?:\t\t[^\n]*\n|\n)*?\t\}\n\n?", re.MULTILINE)


def in_name_order(ruleset: str) -> str:
    """A ruleset listing with the named objects of each table (sets, chains, counters...) sorted, the rest in place,
    and without nftc's marker on a table: an apply or a rollback in place keeps some objects (dynamic sets,
    counters) and makes the others anew after them, so the kernel lists the same table in another order (issue
    10), and the table keeps the comment of the apply that created it (the input chain's marker says what is
    loaded: compared with the rest). Every other line is still compared."""
    out, start = [], 0
    for table in re.finditer(r"^table [^\n]*\{\n.*?^\}\n", ruleset, re.MULTILINE | re.DOTALL):
        objects = sorted(found.group(0).rstrip("\n") + "\n" for found in _OBJECT.finditer(table.group(0)))
        rest = re.sub(r'^\tcomment "nftc [^\n]*\n', "", _OBJECT.sub("", table.group(0)), count=1, flags=re.MULTILINE)
        out += [ruleset[start:table.start()], rest, *objects]
        start = table.end()
    return "".join(out + [ruleset[start:]])


@pytest.fixture
def lab():
    with Lab() as created:
        yield created


@pytest.fixture
def server(lab, tmp_path):
    return Server(lab, tmp_path)


def compiled_digest(policy: str) -> str:
    from nftc.compiler import compile_policy
    return compile_policy(policy, {}).digest


def wait_until(predicate, seconds: float = 20.0) -> bool:
    """Poll `predicate` until it holds or `seconds` pass (a bound, not a timing assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return predicate()
