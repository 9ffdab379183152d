"""The pipeline, the one place that runs every stage in order: load -> resolve -> CHECKS -> lower -> stamp.

- load (`nftc.language.loader`): the policy file, its includes and address files -> the policy model;
- resolve (`nftc.semantics.resolve.check_policy`): names -> meaning (zones, services, the protected ports),
  with every error found on the way (an unknown or duplicate name, overlapping zones): nothing after it can
  work on a name that does not resolve;
- CHECKS: plain functions of the resolved policy, each returning diagnostics; all run, in order, and every
  error is collected before compilation stops, so one run shows the author all of them;
- lower (`nftc.backend.lower`): the checked policy -> the nftables IR;
- stamp: the comments of the table and of its input chain name the policy and the sha256 of the ruleset, so
  apply and status recognise it.

Each stage raises `PolicyError` with all it found; the CLI renders it (docs/architecture.md: the whole flow).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
from dataclasses import dataclass
from typing import Callable, MutableMapping, Sequence

from . import __version__
from .backend import ir, names
from .backend.lower import lower_policy
from .backend.render_nft import render_nft
from .language.diagnostics import Diagnostic, PolicyError
from .language.loader import Feeds, load_policy
from .semantics.reach import failed_assertions, never_matching_rules
from .semantics.resolve import CheckedPolicy, check_policy

Check = Callable[[CheckedPolicy], Sequence[Diagnostic]]

# What must hold before a policy is lowered, in the order their errors are reported. Adding a check is one line.
CHECKS: tuple[Check, ...] = (
    never_matching_rules,  # a rule that earlier rules shadow entirely is dead code, and likely a mistake
    failed_assertions,  # the policy's `assert` lines, proved on the same first-match walk the ruleset makes
)


@dataclass(frozen=True)
class Compilation:
    """What a compile produced: the checked policy (for the lab and the lockout guard), the table, its digest."""

    checked: CheckedPolicy
    table: ir.Table
    digest: str  # sha256 of the ruleset without its comment: identifies what was compiled
    warnings: tuple[Diagnostic, ...] = ()  # resolve's, then the checks', in order


def compile_policy(path: str, sources: MutableMapping[str, str], feeds: Feeds | None = None) -> Compilation:
    """Raise PolicyError with every problem found; `sources` receives the text of each file read; `feeds` gives
    the url zones' last good blocklists (apply reads them from the state directory; none: empty sets)."""
    with _collector_paused():
        return _compile(path, sources, feeds)


@contextlib.contextmanager
def _collector_paused():
    """The compiler makes millions of short-lived objects and no reference cycles worth collecting: the cyclic
    collector alone took two thirds of a 200k-address compile (measured: 9.8 s with it, 3.4 s without)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile(path: str, sources: MutableMapping[str, str], feeds: Feeds | None) -> Compilation:
    checked = check_policy(load_policy(path, sources, feeds))
    found = run_checks(checked)
    errors = tuple(d for d in found if d.severity == "error")
    if errors:
        raise PolicyError(errors)
    table = lower_policy(checked)
    digest = hashlib.sha256(render_nft(_without_blocklists(table)).encode()).hexdigest()
    comment = f"nftc {__version__} policy {_safe_name(checked.policy.source)} sha256:{digest}"
    assert len(comment) <= MAX_COMMENT, comment
    warnings = checked.warnings + tuple(d for d in found if d.severity != "error")
    return Compilation(checked, _stamped(table, comment), digest, warnings)


def _stamped(table: ir.Table, marker: str) -> ir.Table:
    """The marker on the table and on its input chain. The table's comment is set when the table is created and
    the kernel never changes it; the input chain is made anew by every apply, also one that keeps the table and
    its dynamic sets in place (nftc.system.transaction), so apply and status read the digest from the chain."""
    chains = tuple(dataclasses.replace(c, comment=marker) if c.name == names.INPUT_CHAIN else c for c in table.chains)
    return dataclasses.replace(table, comment=marker, chains=chains)


def _without_blocklists(table: ir.Table) -> ir.Table:
    """The table with its url zones' sets empty: what the digest covers. A blocklist is data that `nftc refresh`
    replaces in the live set without touching the rest; the digest (and the marker that carries it) names the
    policy, so a refresh leaves it true (nftc.system.refresh: how a refresh is recorded; live.script_digest
    leaves the same lines out of a recorded script)."""
    if not any(names.parse_blocklist_set(s.name) for s in table.sets):
        return table
    sets = tuple(dataclasses.replace(s, elements=()) if names.parse_blocklist_set(s.name) else s for s in table.sets)
    return dataclasses.replace(table, sets=sets)


def run_checks(checked: CheckedPolicy) -> tuple[Diagnostic, ...]:
    """Every check's diagnostics, in the order of CHECKS (read when called, so a test can add one)."""
    return tuple(d for check in CHECKS for d in check(checked))


MAX_COMMENT = 128  # the kernel's limit for a table comment


def _safe_name(path: str) -> str:
    """The policy's file name, ASCII letters, digits and ._- only, short enough for the table comment."""
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)[:32]
