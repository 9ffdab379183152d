"""The one module that talks to libnftables (python3-nftables).

`check_script` validates a ruleset against the running kernel without committing it, inside a fresh network
namespace (and user namespace when not root), so a check can never touch the machine's own firewall.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass

from . import child
from ..errors import NftcError

INSTALL_HINT = (
    "the python3-nftables bindings are missing: install them with 'apt install python3-nftables' "
    "(Debian, Ubuntu) or 'dnf install python3-nftables' (RHEL, Rocky), and make the venv with "
    "--system-site-packages"
)


class KernelError(NftcError):
    """Anything the kernel or libnftables refused, or the privileges that were missing; one line each."""


@dataclass(frozen=True)
class NftResult:
    """What libnftables answered: success, its output, its error text."""

    ok: bool
    output: str
    error: str


def _bindings():
    try:
        import nftables  # python3-nftables, from the distribution
    except ImportError:
        raise KernelError(INSTALL_HINT) from None
    return nftables


def run_script(script: str, dry_run: bool = False, json_output: bool = False) -> NftResult:
    """Run an nft script as one transaction in the current network namespace."""
    return _run(script, dry_run, json_output)


# One libnftables context (one netlink socket) for the whole process, made at the first call: making one costs
# about 0.5 ms, and a small apply makes twenty calls. Its cache is refetched whenever the ruleset's generation
# changed, so a call never reads what another process replaced. It is kept until the process ends: the first
# netlink socket closed after a transaction waits until the kernel has released what the transaction replaced
# (an RCU grace period: 10 to 60 ms measured here), as `nft -f` does when it exits; kept open, that wait overlaps
# with what apply does after the load (recording it, listing the table) instead of coming on top of it.
_CONTEXTS: list = []


def _run(script: str, dry_run: bool = False, json_output: bool = False, terse: bool = False) -> NftResult:
    if not _CONTEXTS:
        _CONTEXTS.append(_bindings().Nftables())
    nft = _CONTEXTS[0]
    nft.set_dry_run(dry_run)
    nft.set_json_output(json_output)
    if hasattr(nft, "set_terse_output"):  # older bindings: the full listing, slower, read the same way
        nft.set_terse_output(terse)
    if not hasattr(nft, "cmd_from_file"):  # old bindings: errors then lack line numbers
        rc, output, error = nft.cmd(script)
        return NftResult(rc == 0, output, error)
    # From a file, libnftables reports `file:line:col` for errors; from a buffer it does not. The file is a memfd:
    # no disk space needed (a rollback on a full /var or /tmp still loads) and no name another user could touch.
    descriptor = os.memfd_create("nftc-script", os.MFD_CLOEXEC)
    try:
        _write_all(descriptor, script.encode())
        rc, output, error = nft.cmd_from_file(f"/proc/self/fd/{descriptor}")
    finally:
        os.close(descriptor)
    return NftResult(rc == 0, output, error)


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


PRIVILEGE_HINT = "permission denied by the kernel: loading or listing nftables needs root (CAP_NET_ADMIN)"


def refused_for_privileges(error: str) -> bool:
    return "Operation not permitted" in error


def _listed(command: str, what: str, json_output: bool = False, terse: bool = False) -> str | None:
    """The output of a `list` command; None when what it names does not exist."""
    result = _run(command, json_output=json_output, terse=terse)
    if result.ok:
        return result.output
    if "No such file or directory" in result.error:
        return None
    raise KernelError(PRIVILEGE_HINT if refused_for_privileges(result.error) else
                      f"cannot list {what}: " + " ".join(result.error.split())[:200])


def list_table(family: str, name: str) -> str | None:
    """The live table as `nft list table` prints it, or None when there is no such table. Every set element is
    fetched (seconds for 10^5 interval elements): the fast way is nftc.system.reader."""
    return _listed(f"list table {family} {name}", "table")


def list_ruleset_terse() -> str:
    """`nft -t list ruleset`: every table without set elements, which libnftables then does not fetch (a few ms
    with 10^5 elements loaded, where `list table`, `list chains` of one table or `list counters` take seconds)."""
    return _listed("list ruleset", "the ruleset", terse=True) or ""


def has_chains(family: str, table: str) -> bool:
    """Whether the table has a chain, from `nft -j list chains` (as fast as the terse listing): JSON, so no
    comment of another table can make it say so."""
    import json

    output = _listed(f"list chains {family}", "chains", json_output=True) or '{"nftables": []}'
    return any(item.get("chain", {}).get("table") == table for item in json.loads(output)["nftables"])


def table_objects(family: str, table: str) -> list[tuple[str, dict]]:
    """(kind, object) of every object of one table (counters with their values, sets and maps without their
    elements, chains, rules...) from `nft -j -t list ruleset`: as fast as the terse text listing, and data, so a
    name another tool gave a counter is one exact string, whatever it holds (status --format json|openmetrics)."""
    import json

    try:
        output = _listed("list ruleset", "the ruleset", json_output=True, terse=True)
    except KernelError:  # another table libnftables cannot print: nftc's alone, the slow way (as reader.py)
        output = _listed(f"list table {family} {table}", "table", json_output=True, terse=True)
    output = output or '{"nftables": []}'
    found = []
    for item in json.loads(output).get("nftables", []):
        for kind, body in item.items() if isinstance(item, dict) else ():
            if isinstance(body, dict) and body.get("family") == family and body.get("table") == table:
                found.append((kind, body))
    return found


def list_set_text(family: str, table: str, kind: str, name: str) -> str | None:
    """One set or map (`kind`) as `nft list set|map` prints it, with its elements; only that set's are fetched."""
    return _listed(f"list {kind} {family} {table} {name}", kind)


def list_set(family: str, table: str, name: str) -> dict | None:
    """One set as libnftables JSON (`{"set": {...}}`), or None when there is no such set: data, never text."""
    import json

    output = _listed(f"list set {family} {table} {name}", "set", json_output=True)
    if output is None:
        return None
    return next((item for item in json.loads(output)["nftables"] if "set" in item), None)


def listing_in_private_namespace(script: str, family: str, name: str) -> str:
    """Load `script` in a throwaway network namespace and list the table the way the kernel prints it."""
    process = _in_private_namespace(["list", family, name], script)
    if process.returncode != 0:
        raise KernelError(annotate_errors(process.stdout, script) or process.stderr.strip()[-300:])
    return process.stdout


def _in_private_namespace(mode: list[str], script: str):
    import shutil
    import subprocess

    _bindings()
    unshare = shutil.which("unshare")
    if unshare is None:
        raise KernelError("'unshare' (util-linux) is needed to load or check a ruleset in a private namespace")
    flags = ["--net"] if os.geteuid() == 0 else ["--user", "--map-root-user", "--net"]
    return subprocess.run([unshare, *flags, "--", *child.python_module(__name__, *mode)],
                          input=script, capture_output=True, text=True, timeout=120, cwd=child.CWD)


def check_script(script: str) -> NftResult:
    """Dry-run `script` in a throwaway network namespace; errors name the policy line where they can."""
    process = _in_private_namespace(["check"], script)
    if process.returncode < 0:
        raise KernelError(f"libnftables crashed (signal {-process.returncode}) while checking the ruleset")
    if process.returncode == 3:
        raise KernelError(f"cannot check in a private namespace: {process.stderr.strip()}")
    if process.returncode not in (0, 1):
        message = process.stderr.strip().splitlines()
        raise KernelError(
            "cannot create a private network namespace for the check"
            + (f": {message[-1]}" if message else "")
            + " (run as root, or enable unprivileged user namespaces)"
        )
    return NftResult(process.returncode == 0, "", annotate_errors(process.stdout, script))


_SCRIPT_POSITION = re.compile(r"^[^:\n]*:(\d+):\d+(?:-\d+)?: Error: (.*)$", re.MULTILINE)
_COMMENT = re.compile(r'comment "([^"]*)"\s*$')


def annotate_errors(error: str, script: str) -> str:
    """libnftables reports script lines; add the policy line from that rule's provenance comment."""
    lines = script.splitlines()
    out = []
    for match in _SCRIPT_POSITION.finditer(error):
        number, message = int(match.group(1)), match.group(2)
        source = lines[number - 1].strip() if 0 < number <= len(lines) else ""
        comment = _COMMENT.search(source)
        where = f" (from {comment.group(1)})" if comment else ""
        out.append(f"kernel rejected ruleset line {number}{where}: {message}: {source[:160]}")
    if not out and error.strip():
        out.append("kernel rejected the ruleset: " + " ".join(error.split())[:300])
    return "\n".join(out)


def _check_main() -> int:
    """Runs inside the private namespace: exit 0 valid, 1 rejected, 3 libnftables unusable."""
    try:
        result = run_script(sys.stdin.read(), dry_run=True)
    except KernelError as exc:
        print(exc, file=sys.stderr)
        return 3
    sys.stdout.write(result.error)
    return 0 if result.ok else 1


def _list_main(family: str, name: str) -> int:
    """Runs inside the private namespace: load the script from stdin, print the table's listing."""
    script = sys.stdin.read()
    loaded = run_script(script)
    if not loaded.ok:
        sys.stdout.write(loaded.error)
        return 1
    sys.stdout.write(list_table(family, name) or "")
    return 0


if __name__ == "__main__" and sys.argv[1:] == ["check"]:
    sys.exit(_check_main())
if __name__ == "__main__" and sys.argv[1:2] == ["list"] and len(sys.argv) == 4:
    sys.exit(_list_main(sys.argv[2], sys.argv[3]))
