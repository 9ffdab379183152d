"""Command line of the apply side: apply, confirm, rollback, diff, status. Prints and chooses exit codes; what
decides (what to load, what to roll back, drift) is nftc.system.apply's."""

from __future__ import annotations

import os
import sys
import time

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY, NftcError
from ..language.text import MAX_SHOWN, columns
from .common import add_host_option, add_strict_option, compiled, seconds

DEFAULT_WAIT_SECONDS = 10.0
CONFIRM_SECONDS = (1.0, 86400.0)  # --confirm: at least a second (a guard must have time to arm), at most a day


def add_commands(commands) -> None:
    apply_cmd = commands.add_parser("apply", help="load a policy into the kernel in one transaction (snapshot first)")
    apply_cmd.add_argument("policy", metavar="FILE")
    apply_cmd.add_argument("--confirm", type=seconds(*CONFIRM_SECONDS), metavar="SECONDS",
                           help="roll back after SECONDS (1 to 86400) unless 'nftc confirm' arrives first")
    apply_cmd.add_argument("--boot", action="store_true",
                           help="at boot (the systemd unit): if an apply was still unconfirmed when the machine went "
                                "down, restore the last confirmed state (exit 1); if FILE does not compile, load the "
                                "last applied ruleset (exit 2)")
    apply_cmd.add_argument("--admin-from", metavar="ADDR[:PORT]",
                           help="refuse if the policy would drop this admin source (default: $SSH_CONNECTION, here or of sudo/su)")
    apply_cmd.add_argument("--force", action="store_true", help="apply even if it would lock the admin out")
    for name, text in (("confirm", "keep the table loaded with --confirm (stops the rollback)"),
                       ("rollback", "restore the table as it was before the last apply, now")):
        commands.add_parser(name, help=text)
    diff_cmd = commands.add_parser("diff", help="what applying FILE would change in the live table; drift")
    diff_cmd.add_argument("policy", metavar="FILE")
    diff_cmd.add_argument("--exit-code", action="store_true",
                          help="exit 1 when applying FILE would change the live table (or fix drift), 0 when not, "
                               "2 on any error (as git diff --exit-code)")
    apply_cmd.add_argument("--format", choices=("text", "json"), default="text",
                           help="json: one JSON object on standard output ({\"changed\": ..., \"result\": ...}; "
                                "Ansible reads it), the human lines on standard error")
    for command in (apply_cmd, diff_cmd):
        add_strict_option(command)
        add_host_option(command)  # without it, a cluster policy's host is the one with this machine's addresses
    status_cmd = commands.add_parser("status", help="the live table: policy, digest, drift, counters")
    status_cmd.add_argument("--table", default=None, help="table name when the state dir has no record (zfw)")
    status_cmd.add_argument("--format", choices=("text", "json", "openmetrics"), default="text",
                            help="text (default); json; openmetrics (node_exporter's textfile collector): counters, "
                                 "set sizes, last apply/confirm/rollback/guard/refresh")
    handlers = {"apply": _audited("apply", _apply), "confirm": _audited("confirm", _confirm),
                "rollback": _audited("rollback", _rollback), "diff": _diff_command, "status": _status}
    for name, handler in handlers.items():
        sub = commands.choices[name]
        sub.set_defaults(run=handler)
        sub.add_argument("--state-dir", metavar="DIR", help="default $NFTC_STATE_DIR or /var/lib/nftc")
        if name in ("apply", "confirm", "rollback"):
            sub.add_argument("--wait", type=seconds(0.0, 86400.0), default=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                             help="how long to wait for another nftc holding the lock (default 10)")


# The handlers import the system modules inside: start-up imports only argparse and the command modules.
# Errors a user can cause (StateError, KernelError, ApplyError, EndpointError) go to `main`, which says them.


def _state(args):
    from ..system.state import StateDir, state_dir_path
    return StateDir(state_dir_path(args.state_dir))


def _audit(args, action: str, result: str, **fields) -> None:
    """One audit line to syslog and the action's last event in the state directory (nftc.system.audit)."""
    from ..system.audit import record
    record(_state(args), action, result, **fields)


def _audited(action: str, handler):
    """`handler`, with what it raises recorded before `main` says it. What it returns it records itself: only it
    knows the policy and digest it loaded, kept or refused."""
    def run(args) -> int:
        policy = os.path.abspath(args.policy) if getattr(args, "policy", None) else None
        try:
            return handler(args)
        except NftcError as exc:
            _audit(args, action, "refused" if exc.exit_code == EXIT_POLICY else "failed", policy=policy,
                   detail=str(exc))
            raise
        except BaseException as exc:  # interrupted, a file system error, a bug: `main` says which
            _audit(args, action, "failed", policy=policy, detail=f"{type(exc).__name__}: {exc}")
            raise
    return run


def _apply(args) -> int:
    """Compile and load; or, when nothing the policy was compiled from changed, load the recorded script without
    compiling (unless the lockout guard has an address to check), or nothing at all when the live table already
    is it (README, "Applying a policy"; nftc.system.reapply)."""
    state = _state(args)
    admin_from = _admin_from(args.admin_from) if args.admin_from else None  # a usage error before anything
    if args.boot and _rolled_back_at_boot(args, state):
        _audit(args, "apply", "failed", policy=os.path.abspath(args.policy),
               detail="not loaded: an unconfirmed apply was rolled back at boot instead")
        return EXIT_FAILURE
    policy = os.path.abspath(args.policy)
    recorded = _recorded(state, policy, args.strict, _wanted_host(args, state, policy))
    quiet = not (args.confirm or args.force or admin_from)  # --admin-from: a check was asked for; it compiles
    if recorded and quiet and _said_unchanged(args, state, recorded[0], args.policy):
        return EXIT_OK
    lists = _address_lists(state)
    fresh = None if recorded else _compiled_fresh(args, state, policy, lists.cache())
    if isinstance(fresh, int):
        return fresh
    endpoint = admin_from or _admin_in_environment()
    if fresh is None and endpoint is not None:  # the lockout guard needs the checked policy: compile after all
        fresh = _compiled_fresh(args, state, policy, lists.cache())
        if isinstance(fresh, int):
            return fresh
    if fresh is None:  # the recorded script is what the compile would give, and the guard has nothing to check
        from ..system.apply import recorded_compiled
        return _report(args, state, _load(state, recorded_compiled(*recorded), args), args.policy)
    refusal = _lockout(args, fresh[0].checked, endpoint)
    if refusal:
        print(f"nftc: apply: refusing: {refusal} (or use --force)", file=sys.stderr)
        _audit(args, "apply", "refused", policy=policy, digest=fresh[0].digest, detail=f"lockout: {refusal}")
        return EXIT_POLICY
    outcome = _load(state, _to_load(args, policy, *fresh), args)
    lists.store()  # after the load: the address files this compile read, for the next one (none: nothing kept)
    return _report(args, state, outcome, args.policy)


def _admin_from(text: str):
    from ..system.lockout import parse_admin_from
    return parse_admin_from(text)


def _to_load(args, policy: str, compilation, sources):
    """What apply loads of a fresh compilation, with what it was compiled from (the next apply may skip it)."""
    from ..system.apply import compiled_from
    from ..system.reapply import provenance
    return compiled_from(compilation, policy, provenance(sources, args.strict, len(compilation.warnings),
                                                         compilation.host))


def _compiled_fresh(args, state, policy: str, lists=None):
    """(compilation, sources read), or the exit code when the policy does not compile (at boot: the last applied
    ruleset is loaded instead). `lists`: the address files parsed before (_address_lists)."""
    from ..compiler import HostError
    sources: dict[str, str] = {}
    try:
        compilation = compiled(args.policy, args.strict, sources, _kept_lists(state),  # the last good blocklists
                               args.host, _host_picker(args, state), lists)
    except HostError as exc:  # no host to compile for: at boot, as a policy that does not compile
        if not args.boot:
            raise
        print(f"nftc: apply: {exc}", file=sys.stderr)
        compilation = None
    if compilation is None and args.boot:
        return _apply_last(args, state)
    if compilation is None:
        _audit(args, "apply", "refused", policy=policy, detail="the policy does not compile (see its errors)")
        return EXIT_POLICY
    return compilation, sources


def _kept_lists(state):
    """The url zones' last good lists (nftc.system.blocklists.feeds), that module imported when the compiler first
    asks for one: a policy without url zones imports neither it nor nftc.system.download (issue 9: start-up)."""
    def feed(zone: str, url: str):
        from ..system.blocklists import feeds
        return feeds(state)(zone, url)
    return feed


def _address_lists(state):
    """The address files an earlier apply parsed, kept in the state directory (nftc.system.addresslists)."""
    from ..system.addresslists import AddressLists
    return AddressLists(state)


def _load(state, compiled, args):
    from ..system.apply import apply_table
    return apply_table(state, compiled, args.confirm, args.wait)


def _recorded(state, policy: str, strict: bool, host):
    """The applied record and script when compiling `policy` now would give them (no compile: reapply.py)."""
    from ..system.reapply import recorded
    return recorded(state, policy, strict, host)


def _host_picker(args, state):
    """What chooses a cluster policy's host when --host is not given: this machine's addresses; at boot
    (`apply --boot`) the host last applied, still a host of the policy, first: the network may not be up yet, and
    a boot that loads nothing leaves the machine open."""
    from ..system.hostpick import pick_host

    if not getattr(args, "boot", False):
        return pick_host

    def at_boot(policy) -> str:
        from ..semantics.cluster import host_names
        from ..system.records import read_applied

        applied = read_applied(state) if state.exists() else None
        kept = applied.provenance.host if applied is not None and applied.provenance is not None else None
        return kept if kept in host_names(policy) else pick_host(policy)
    return at_boot


def _wanted_host(args, state, policy: str):
    """recorded host -> the host a compile now would be for: --host, else none for a record without one (the
    policy declared no hosts, and its files did not change), else the host this machine is, by the policy now
    (None when that cannot be said: apply then compiles, and says why)."""
    def wanted(kept: str | None) -> str | None:
        if args.host is not None or kept is None:
            return args.host
        from ..language.loader import load_policy
        try:
            return _host_picker(args, state)(load_policy(policy, {}))
        except NftcError:
            return None
    return wanted


def _said_unchanged(args, state, applied, policy: str) -> bool:
    """The live table already is this policy, untouched: say so, load nothing. The lockout guard has nothing to
    check either: the admin is connected through this very table."""
    from ..system.drift import Drift, elements_note
    from ..system.reapply import unchanged

    same = unchanged(state, applied)
    if same is None:
        return False
    print(f"unchanged: table {applied.target} sha256:{applied.digest[:16]} ({policy})"
          + ("" if same.elements_checked else f"; {elements_note(Drift('none', (), False, applied.elements))}"),
          file=_human(args))
    from ..system.audit import record
    _document(args, record(state, "apply", "unchanged", policy=applied.policy, digest=applied.digest,
                           table=str(applied.target)))
    return True


def _rolled_back_at_boot(args, state) -> bool:
    """Says what `roll_back_unconfirmed` restored at boot, if it did."""
    from ..system.apply import roll_back_unconfirmed

    done = roll_back_unconfirmed(state, args.wait)
    if done is None:
        return False
    for note in done.notes:
        print(f"nftc: apply: warning: {note}", file=sys.stderr)
    print(f"nftc: apply: {done.reason}: restored the last confirmed state ({_tables(done.saved)}) instead of "
          f"loading {args.policy}; apply it again with --confirm when ready", file=sys.stderr)
    _audit(args, "rollback", "ok", table=_targets(done.saved), detail=f"at boot: {done.reason}")
    return True


def _targets(saved) -> str:
    """The tables a rollback restored, for the audit line: `inet zfw, inet old`."""
    return ", ".join(str(t.target) for t in saved.record.tables)


def _tables(saved) -> str:
    return ", ".join(f"table {t.target}" + ("" if t.existed else " removed") for t in saved.record.tables)


def _apply_last(args, state) -> int:
    """Boot with a policy that no longer compiles: load the last applied ruleset, and fail loudly all the same."""
    from ..system.apply import last_applied

    last = last_applied(state)
    if last is None:
        print(f"nftc: apply: {args.policy} does not compile, and {state.path} holds no applied ruleset to load "
              "instead: nothing was loaded", file=sys.stderr)
        _audit(args, "apply", "refused", policy=os.path.abspath(args.policy),
               detail="the policy does not compile, and there is no applied ruleset to load instead")
        return EXIT_POLICY
    _report(args, state, _load(state, last, args), last.policy, "refused",
            f"{os.path.abspath(args.policy)} does not compile: loaded the last applied ruleset instead")
    print(f"nftc: apply: {args.policy} does not compile: loaded the last applied ruleset instead (policy "
          f"{last.policy}, sha256:{last.digest[:16]}); fix the policy", file=sys.stderr)
    return EXIT_POLICY


def _report(args, state, outcome, policy: str, result: str = "ok", detail: str = "") -> int:
    from ..system.drift import elements_note

    for target in outcome.removed:
        print(f"removed nftc's earlier table {target} (the policy now names table {outcome.target})",
              file=_human(args))
    if outcome.discarded:
        print(f"nftc: apply: warning: discarded {len(outcome.discarded)} hand-edited lines of table "
              f"{outcome.target} (drift):", file=sys.stderr)
        for line in outcome.discarded[:MAX_SHOWN]:
            print(f"  {line}", file=sys.stderr)
    if outcome.drift is not None and not outcome.drift.elements_checked:
        print(f"nftc: apply: note: hand edits of table {outcome.target} were looked for in its rules and sets' "
              f"definitions; {elements_note(outcome.drift)}", file=sys.stderr)
    if outcome.left_behind:
        print(f"nftc: apply: warning: {outcome.left_behind} dynamic elements were not addresses nftc can read "
              "and were not carried over", file=sys.stderr)
    for note in outcome.notes:
        print(f"nftc: apply: warning: {note}", file=sys.stderr)
    print(f"applied {policy}: table {outcome.target} sha256:{outcome.digest[:16]}"
          + (f", {outcome.carried} dynamic elements carried over" if outcome.carried else "")
          + (f", dynamic sets kept in place with their elements: {', '.join(outcome.kept)}" if outcome.kept else ""),
          file=_human(args))
    if outcome.confirm_deadline is not None:
        when = time.strftime("%H:%M:%S", time.localtime(outcome.confirm_deadline))
        print(f"rolling back at {when} unless confirmed: nftc confirm{_state_option(args, state)}"
              + (" (the snapshot is still the last confirmed state)" if outcome.kept_snapshot else ""),
              file=_human(args))
        detail = detail or f"--confirm: rolls back at {when} unless confirmed"
    from ..system.audit import record
    _document(args, record(state, "apply", result, policy=os.path.abspath(policy), digest=outcome.digest,
                           table=str(outcome.target), detail=detail), outcome.confirm_deadline)
    return EXIT_OK


def _human(args):
    """Where apply's lines for people go: standard output, or standard error when it is the JSON document's."""
    return sys.stderr if getattr(args, "format", "text") == "json" else sys.stdout


def _document(args, event, confirm_deadline: float | None = None) -> None:
    """apply --format json: what the audit recorded, as one JSON object on standard output. `changed` is false
    only when nothing was loaded (result "unchanged"); `confirm_deadline` is the epoch time of the rollback."""
    if getattr(args, "format", "text") != "json":
        return
    import json
    document = {"changed": event.result != "unchanged", "result": event.result, "policy": event.policy,
                "table": event.table, "digest": event.digest, "confirm_deadline": confirm_deadline}
    print(json.dumps(document, sort_keys=True))


def _state_option(args, state) -> str:
    """The state directory as the guard sees it (absolute): a confirm from another directory must find it."""
    import shlex  # here: only --confirm says it

    return f" --state-dir {shlex.quote(state.path)}" if args.state_dir else ""


def _admin_in_environment():
    """The admin's SSH client from this process's environment or its parents' (None: the guard is off, and said
    so on a terminal)."""
    from ..system.lockout import ancestors, find_admin

    endpoint = find_admin(os.environ, ancestors())
    if endpoint is None and (os.isatty(0) or os.isatty(2)):  # silent when nobody watches: README, docs/apply.md
        print("nftc: apply: warning: lockout guard is off: no SSH client found (not in the environment, nor in "
              "a parent's such as sudo's or su's); give --admin-from ADDR[:PORT] to check the address you "
              "connect from", file=sys.stderr)
    return endpoint


def _lockout(args, checked, endpoint) -> str | None:
    from ..system.lockout import ingress_interface, lockout_problem
    from ..semantics.zones import interfaces

    if endpoint is None:
        return None
    uses_interfaces = any(interfaces(zone) for zone in checked.policy.zones)
    problem = lockout_problem(checked, endpoint, ingress_interface(endpoint.address) if uses_interfaces else None)
    if problem and args.force:
        print(f"nftc: apply: warning: --force: {problem}", file=sys.stderr)
        return None
    return problem


def _confirm(args) -> int:
    from ..system.apply import confirm

    applied = confirm(_state(args), args.wait)
    print(f"confirmed: table {applied.target if applied else '?'} from {applied.policy if applied else '?'} "
          "stays loaded")
    _audit(args, "confirm", "ok", policy=applied.policy if applied else None,
           digest=applied.digest if applied else None, table=str(applied.target) if applied else None)
    return EXIT_OK


def _rollback(args) -> int:
    from ..system.apply import rollback

    saved, notes = rollback(_state(args), args.wait)
    for table in saved.record.tables:
        print(f"rolled back: table {table.target} as it was at {saved.record.time}"
              + (f" ({saved.record.applied.policy})" if saved.record.applied else "") if table.existed else
              f"rolled back: there was no table {table.target} before; deleted it")
    for note in notes:
        print(f"nftc: rollback: warning: {note}", file=sys.stderr)
    applied = saved.record.applied
    _audit(args, "rollback", "ok", policy=applied.policy if applied else None,
           digest=applied.digest if applied else None, table=_targets(saved), detail="; ".join(notes))
    return EXIT_OK


def _diff_command(args) -> int:
    """diff; with --exit-code, every error exits 2 (1 means "differs"): a policy or usage error is 2 already, the
    others (kernel, state directory, a file) are said as `main` says them and mapped to 2."""
    if not args.exit_code:
        return _diff(args)
    try:
        return _diff(args)
    except NftcError as exc:
        exc.exit_code = EXIT_POLICY
        raise
    except OSError as exc:
        print(f"nftc: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_POLICY


def _diff(args) -> int:
    from ..system import kernel, live
    from ..system.drift import drift
    from ..backend.render_nft import render_nft

    state = _state(args)
    compilation = compiled(args.policy, args.strict, None, _kept_lists(state),  # what apply would load, blocklists too
                           args.host, _host_picker(args, state), _address_lists(state).cache())
    if compilation is None:
        return EXIT_POLICY
    table = compilation.table
    current = kernel.list_table(table.family, table.name)  # every element: diff compares them all
    new = kernel.listing_in_private_namespace(render_nft(table), table.family, table.name)
    print("live: " + (f"table {table.family} {table.name} sha256:{live.digest(current)} "
                       f"(policy {live.policy_name(current)})" if current else f"no table {table.family} {table.name}"))
    print(f"new:  sha256:{compilation.digest} ({args.policy})")
    changes = live.policy_changes(current, new), live.rule_changes(current, new)
    _section("policy changes", changes[0])
    _section("nft rules (- live, + new)", changes[1])
    drifted = False
    if current is not None:
        found = drift(state, current, True, new, private=True)
        drifted = found.verdict != "none"
        if not drifted:
            print("drift: none (the live table is what was applied)")
        else:
            _section(f"drift: {found.verdict}", list(found.lines))
    differs = current is None or live.digest(current) != compilation.digest or drifted or any(changes)
    return EXIT_FAILURE if args.exit_code and differs else EXIT_OK


def _section(title: str, lines: list[str]) -> None:
    print(f"{title}:" if lines else f"{title}: none")
    for line in lines:
        print(f"  {line}")


def _status(args) -> int:
    from ..system import live, monitor, reader
    from ..system.drift import drift
    from ..system.records import Target, lists_elements, read_applied

    state = _state(args)
    if args.format != "text":
        return _status_document(args, state)
    applied = read_applied(state) if state.exists() else None
    target = Target("inet", args.table or (applied.target.name if applied else "zfw"))
    current = reader.terse_table(target)
    if current is None:
        print(f"table {target}: not loaded")
        return EXIT_FAILURE
    digest = live.digest(current)
    print(f"table {target}: loaded")
    ours = applied is not None and applied.digest == digest
    print(f"policy:  {applied.policy if ours else live.policy_name(current)}")
    print(f"sha256:  {digest}")
    print(f"applied: {(applied.time + (' (restored by a rollback)' if applied.restored else '')) if ours else 'unknown (not by this state dir)'}")
    with_elements = ours and lists_elements(applied.elements)
    found = drift(state, reader.with_static_elements(target, current) if with_elements else current, with_elements)
    print(f"drift:   {found.verdict}{_drift_detail(found)}")
    if state.exists():
        _pending_line(state)
    rules, drops = monitor.counters(target)
    opened = [tuple(map(monitor.shown, (r.zone, r.service, r.rule))) + (r.packets, r.bytes) for r in rules]
    dropped = [(monitor.shown(d.reason), d.packets, d.bytes) for d in drops]
    print()
    print(columns([("ZONE", "SERVICE", "RULE", "PACKETS", "BYTES"), *opened]))
    print()
    print(columns([("DROP REASON", "PACKETS", "BYTES"), *dropped]))
    return EXIT_OK


def _status_document(args, state) -> int:
    """status --format json|openmetrics: the whole document, exit 0 also when the table is not loaded (the
    document says so: a textfile collector must get `nftc_table_loaded 0`, not a stale file); written as UTF-8
    whatever the locale (a cron job's may be C)."""
    from ..system import exposition, monitor

    status = monitor.collect(state, args.table)
    render = exposition.render_json if args.format == "json" else exposition.render_openmetrics
    sys.stdout.flush()
    sys.stdout.buffer.write(render(status).encode("utf-8"))
    sys.stdout.buffer.flush()
    return EXIT_OK


def _drift_detail(found) -> str:
    """What follows the verdict: how much differs, or what was not compared."""
    from ..system.drift import elements_note

    if found.verdict == "DRIFT":
        return f" ({len(found.lines)} lines differ; see nftc diff)"
    if found.verdict == "none" and not found.elements_checked:
        return f" in rules and sets' definitions; {elements_note(found)}"
    return ""


def _pending_line(state) -> None:
    from ..system.records import PENDING, read_pending_or_none
    from ..system.records import boot_id, boottime

    if state.read_text(PENDING) is None:
        return
    pending = read_pending_or_none(state)
    if pending is None:
        print("pending: DAMAGED record: the guard rolls back at the deadline (nftc confirm or nftc rollback now)")
    elif pending.boot_id != boot_id():
        print("pending: a record from an earlier boot (no guard survives a reboot): ignored")
    else:
        print(f"pending: rollback in {max(0, round(pending.deadline - boottime()))} s unless nftc confirm")
