"""The pipeline, the one place that runs every stage in order: load -> host -> resolve -> CHECKS -> lower -> stamp.

- load (`nftc.language.loader`): the policy file, its includes and address files -> the policy model;
- host (`nftc.semantics.cluster`, issue 11): a cluster policy's statements are checked (`check_cluster`), then
  the policy one host enforces is made (`host_policy`: a policy without hosts), for the host asked (--host) or
  picked (apply: by the machine's addresses); a policy without hosts goes on as it is;
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
from .errors import EXIT_POLICY, NftcError
from .language import model as m
from .language.diagnostics import Diagnostic, PolicyError, did_you_mean
from .language.loader import Feeds, ListCache, load_policy
from .semantics.cluster import check_cluster, host_names, host_policy
from .semantics.reach import NEVER_MATCHES, failed_assertions, never_matching_rules
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
    host: str | None = None  # the cluster host whose ruleset this is (None: a policy without hosts)


class HostError(NftcError):
    """A host that cannot be chosen: none given for a cluster policy, one unknown, one given to a policy without
    hosts, none or several of them on this machine. One line; the input (or --host) must change."""

    exit_code = EXIT_POLICY


# Chooses the host of a cluster policy when none is given (apply and diff: by the machine's own addresses).
HostPicker = Callable[[m.Policy], str]


def compile_policy(path: str, sources: MutableMapping[str, str], feeds: Feeds | None = None,
                   host: str | None = None, pick_host: HostPicker | None = None,
                   lists: ListCache | None = None) -> Compilation:
    """Raise PolicyError with every problem found; `sources` receives the text of each file read; `feeds` gives
    the url zones' last good blocklists (apply reads them from the state directory; none: empty sets); `lists`:
    address files parsed before (apply keeps them there too; none: each is parsed). A policy with hosts compiles
    the ruleset of `host` (or of the host `pick_host` chooses); HostError without one."""
    with _collector_paused():
        policy = _load(path, sources, feeds, lists)
        if policy.hosts and host is None and pick_host is not None:
            host = pick_host(policy)
        return _compile(_for_host(policy, path, host), host if policy.hosts else None)


def compile_cluster(path: str, sources: MutableMapping[str, str], feeds: Feeds | None = None,
                    lists: ListCache | None = None) -> tuple[Compilation, ...]:
    """Every host's compilation, in host order (one for a policy without hosts); PolicyError with the errors of
    every host, each said once and prefixed by the hosts it concerns (`host mbox1:`, `hosts ldap1, mta1:`)."""
    with _collector_paused():
        policy = _load(path, sources, feeds, lists)
        if not policy.hosts:
            return (_compile(policy, None),)
        done, failed = [], {}
        for name in host_names(policy):
            try:
                done.append(_compile(host_policy(policy, name), name))
            except PolicyError as exc:
                for diagnostic in dict.fromkeys(exc.diagnostics):
                    failed.setdefault(diagnostic, []).append(name)
        if failed:
            raise PolicyError(_prefixed(d, names, len(policy.hosts)) for d, names in failed.items())
        return tuple(done)


def _prefixed(diagnostic: Diagnostic, hosts: list[str], every: int) -> Diagnostic:
    who = "every host" if len(hosts) == every > 1 else f"host {hosts[0]}" if len(hosts) == 1 \
        else f"hosts {', '.join(hosts)}"
    return dataclasses.replace(diagnostic, message=f"{who}: {diagnostic.message}")


def _load(path: str, sources: MutableMapping[str, str], feeds: Feeds | None,
          lists: ListCache | None = None) -> m.Policy:
    """The policy, its cluster statements checked (their errors before any host's)."""
    policy = load_policy(path, sources, feeds, lists)
    found = check_cluster(policy)
    errors = [d for d in found if d.severity == "error"]
    if errors:
        raise PolicyError(errors)
    warnings = tuple(d for d in found if d.severity != "error")
    return dataclasses.replace(policy, warnings=policy.warnings + warnings) if warnings else policy


def _for_host(policy: m.Policy, path: str, host: str | None) -> m.Policy:
    """The policy `host` enforces; HostError when the choice does not fit the policy."""
    names = host_names(policy)
    if not names:
        if host is not None:
            raise HostError(f"{path} declares no hosts: --host {host} is for a cluster policy "
                            "(host NAME = ADDRESS, ... roles ROLE, ...)")
        return policy
    if host is None:
        raise HostError(f"{path} declares hosts {', '.join(names)}: choose one with --host NAME (or --all -o DIR)")
    if host not in names:
        raise HostError(f"{path} has no host '{host}'; " + (did_you_mean(host, names) or f"hosts: {', '.join(names)}"))
    return host_policy(policy, host)


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


def _compile(policy: m.Policy, host: str | None) -> Compilation:
    checked = check_policy(policy)
    found = _lines_dead_on_every_rule(checked, run_checks(checked))
    errors = tuple(d for d in found if d.severity == "error")
    if errors:
        raise PolicyError(errors)
    table = lower_policy(checked)
    digest = hashlib.sha256(render_nft(_without_blocklists(table)).encode()).hexdigest()
    comment = f"nftc {__version__} policy {_safe_name(checked.policy.source)} sha256:{digest}"
    assert len(comment) <= MAX_COMMENT, comment
    warnings = checked.warnings + tuple(d for d in found if d.severity != "error")
    return Compilation(checked, _stamped(table, comment), digest, warnings, host)


def _lines_dead_on_every_rule(checked: CheckedPolicy, found: tuple[Diagnostic, ...]) -> tuple[Diagnostic, ...]:
    """A policy line that made several rules (`allow cluster -> zimbra.roles`: one per peer) is dead code only
    when every one of them is: a peer whose calls an earlier line already allows is no mistake of the author."""
    made: dict[m.Span | None, int] = {}
    for rule in checked.rules:
        made[rule.rule.span] = made.get(rule.rule.span, 0) + 1
    dead = [d.span for d in found if d.message == NEVER_MATCHES]
    kept = [d for d in found if d.message != NEVER_MATCHES or dead.count(d.span) == made.get(d.span, 1)]
    return tuple(dict.fromkeys(kept))  # a dead line made of several rules: said once


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
