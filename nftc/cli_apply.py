"""Command line of the apply side: apply, confirm, rollback, diff, status. Prints and chooses exit codes."""

from __future__ import annotations

import argparse
import os
import sys
import time

from .cli import EXIT_FAILURE, EXIT_OK, EXIT_POLICY
from .kernel import KernelError
from .state import StateDir, StateError, state_dir_path
DEFAULT_WAIT_SECONDS = 10.0


def add_commands(commands) -> None:
    apply_cmd = commands.add_parser("apply", help="load a policy into the kernel in one transaction (snapshot first)")
    apply_cmd.add_argument("policy", metavar="FILE")
    apply_cmd.add_argument("--confirm", type=_positive_seconds, metavar="SECONDS",
                           help="roll back after SECONDS unless 'nftc confirm' arrives first")
    apply_cmd.add_argument("--admin-from", metavar="ADDR[:PORT]",
                           help="refuse if the policy would drop this admin source (default: $SSH_CONNECTION)")
    apply_cmd.add_argument("--force", action="store_true", help="apply even if it would lock the admin out")
    for name, text in (("confirm", "keep the table loaded with --confirm (stops the rollback)"),
                       ("rollback", "restore the table as it was before the last apply, now")):
        commands.add_parser(name, help=text)
    diff_cmd = commands.add_parser("diff", help="what applying FILE would change in the live table; drift")
    diff_cmd.add_argument("policy", metavar="FILE")
    status_cmd = commands.add_parser("status", help="the live table: policy, digest, drift, counters")
    status_cmd.add_argument("--table", default=None, help="table name when the state dir has no record (zfw)")
    for name in ("apply", "confirm", "rollback", "diff", "status"):
        sub = commands.choices[name]
        sub.add_argument("--state-dir", metavar="DIR", help="default $NFTC_STATE_DIR or /var/lib/nftc")
        if name in ("apply", "confirm", "rollback"):
            sub.add_argument("--wait", type=float, default=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                             help="how long to wait for another nftc holding the lock (default 10)")


def _positive_seconds(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of seconds")
    return value


def handlers() -> dict:
    return {"apply": _guarded(_apply), "confirm": _guarded(_confirm), "rollback": _guarded(_rollback),
            "diff": _guarded(_diff), "status": _guarded(_status)}


def _guarded(handler):
    """Errors a user can cause are one line and exit 1; the kernel was left as it was."""
    from .apply import ApplyError

    def run(args) -> int:
        try:
            return handler(args, StateDir(state_dir_path(args.state_dir)))
        except (KernelError, StateError, ApplyError) as exc:
            print(f"nftc: {args.command}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    return run


def _apply(args, state: StateDir) -> int:
    from .apply import Target, apply_table
    from .cli import _compiled
    from .render_nft import render_nft

    compilation = _compiled(args.policy)
    if compilation is None:
        return EXIT_POLICY
    from .lockout import EndpointError
    try:
        refusal = _lockout(args, compilation.checked)
    except EndpointError as exc:
        print(f"nftc: apply: {exc}", file=sys.stderr)
        return EXIT_POLICY
    if refusal:
        print(f"nftc: apply: refusing: {refusal} (or use --force)", file=sys.stderr)
        return EXIT_POLICY
    table = compilation.table
    record = {"policy": os.path.abspath(args.policy), "digest": compilation.digest}
    applied = apply_table(state, Target(table.family, table.name), render_nft(table), record, args.confirm,
                          args.wait)
    print(f"applied {args.policy}: table {table.family} {table.name} sha256:{applied.digest[:16]}"
          + (f", {applied.carried} dynamic elements carried over" if applied.carried else ""))
    if applied.confirm_deadline is not None:
        when = time.strftime("%H:%M:%S", time.localtime(applied.confirm_deadline))
        print(f"rolling back at {when} unless confirmed: nftc confirm{_state_option(args)}"
              + (" (the snapshot is still the last confirmed table)" if applied.kept_snapshot else ""))
    return EXIT_OK


def _state_option(args) -> str:
    return f" --state-dir {args.state_dir}" if args.state_dir else ""


def _lockout(args, checked) -> str | None:
    from .lockout import from_ssh_connection, ingress_interface, lockout_problem, parse_admin_from
    from .zones import interfaces

    endpoint = parse_admin_from(args.admin_from) if args.admin_from else \
        from_ssh_connection(os.environ.get("SSH_CONNECTION"))
    if endpoint is None:
        return None
    uses_interfaces = any(interfaces(zone) for zone in checked.zones)
    problem = lockout_problem(checked, endpoint, ingress_interface(endpoint.address) if uses_interfaces else None)
    if problem and args.force:
        print(f"nftc: apply: warning: --force: {problem}", file=sys.stderr)
        return None
    return problem


def _confirm(args, state: StateDir) -> int:
    from .apply import confirm

    record = confirm(state, args.wait)
    print(f"confirmed: table {record.get('table', '?')} from {record.get('policy', '?')} stays loaded")
    return EXIT_OK


def _rollback(args, state: StateDir) -> int:
    from .apply import rollback

    meta = rollback(state, args.wait)
    previous = meta.get("applied") or {}
    if meta["existed"]:
        print(f"rolled back: table {meta['family']} {meta['table']} as it was at {meta['time']}"
              + (f" ({previous.get('policy')})" if previous else ""))
    else:
        print(f"rolled back: there was no table {meta['family']} {meta['table']} before; deleted it")
    return EXIT_OK


def _drift(state: StateDir, live_listing: str, reference: str | None = None) -> tuple[str, list[str]]:
    """('none'|'DRIFT'|'unknown', lines): the live table vs what was loaded for the digest in its comment."""
    from . import live

    digest = live.digest(live_listing)
    applied = state.read_json("applied.json") or {}
    script = state.read_text("applied.script")
    if script is not None and applied.get("digest") == digest:
        from . import kernel
        recorded = kernel.listing_in_private_namespace(script, applied["family"], applied["table"])
        lines = live.drift(live_listing, recorded)
    elif reference is not None and live.digest(reference) == digest:
        lines = live.drift(live_listing, reference)
    else:
        return "unknown", [f"no record of sha256:{digest} in {state.path}; cannot tell hand edits"]
    return ("DRIFT" if lines else "none"), lines


def _diff(args, state: StateDir) -> int:
    from . import kernel, live
    from .cli import _compiled
    from .render_nft import render_nft

    compilation = _compiled(args.policy)
    if compilation is None:
        return EXIT_POLICY
    table = compilation.table
    current = kernel.list_table(table.family, table.name)
    new = kernel.listing_in_private_namespace(render_nft(table), table.family, table.name)
    print("live: " + (f"table {table.family} {table.name} sha256:{live.digest(current)} "
                       f"(policy {live.policy_name(current)})" if current else f"no table {table.family} {table.name}"))
    print(f"new:  sha256:{compilation.digest} ({args.policy})")
    _section("policy changes", live.policy_changes(current, new))
    _section("nft rules (- live, + new)", live.rule_changes(current, new))
    if current is not None:
        verdict, lines = _drift(state, current, new)
        if verdict == "none":
            print("drift: none (the live table is what was applied)")
        else:
            _section(f"drift: {verdict}", lines)
    return EXIT_OK


def _section(title: str, lines: list[str]) -> None:
    print(f"{title}:" if lines else f"{title}: none")
    for line in lines:
        print(f"  {line}")


def _status(args, state: StateDir) -> int:
    from . import kernel, live

    applied = state.read_json("applied.json") or {}
    family, name = applied.get("family", "inet"), args.table or applied.get("table", "zfw")
    current = kernel.list_table(family, name)
    if current is None:
        print(f"table {family} {name}: not loaded")
        return EXIT_FAILURE
    digest = live.digest(current)
    print(f"table {family} {name}: loaded")
    ours = applied.get("digest") == digest
    print(f"policy:  {applied.get('policy') if ours else live.policy_name(current)}")
    print(f"sha256:  {digest}")
    print(f"applied: {applied.get('time', 'unknown') if ours else 'unknown (not by this state dir)'}")
    verdict, lines = _drift(state, current)
    print(f"drift:   {verdict}" + (f" ({len(lines)} lines differ; see nftc diff)" if verdict == "DRIFT" else ""))
    pending = state.read_json("pending.json")
    if pending:
        print(f"pending: rollback in {max(0, round(pending['deadline'] - time.time()))} s unless nftc confirm")
    opened, dropped = live.counter_rows(kernel.list_counters(family, name))
    print()
    print(live.format_rows(("ZONE", "SERVICE", "RULE", "PACKETS", "BYTES"), opened))
    print()
    print(live.format_rows(("DROP REASON", "PACKETS", "BYTES"), dropped))
    return EXIT_OK
