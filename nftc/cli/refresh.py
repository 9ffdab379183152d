"""Command line of `nftc refresh`: download the url zones' blocklists into their sets (nftc.system.refresh).

One line per zone; exit 0 when every zone considered was loaded or is current, 1 when one kept its last good list
(its line says why), 2 for a policy or usage error. Each zone's outcome is one audit line (nftc.system.audit)."""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY, NftcError
from .common import compiled, seconds

DEFAULT_WAIT_SECONDS = 60.0  # a timer's refresh may wait for an apply in progress
_SIZE_UNITS = {"k": 1 << 10, "m": 1 << 20}


def add_commands(commands) -> None:
    command = commands.add_parser("refresh", help="download the url zones' blocklists into their sets (no reload)")
    command.add_argument("policy", metavar="FILE", nargs="?",
                         help="the policy (default: the one the state directory records as applied)")
    command.add_argument("--zone", action="append", default=[], metavar="NAME",
                         help="only this url zone (repeatable; default: every url zone that is due)")
    command.add_argument("--force", action="store_true", help="fetch even when a zone's refresh interval has not passed")
    # Defaults None: the download's own (nftc.system.download), which this module does not import (urllib and ssl
    # would slow every command); tests/test_blocklists.py checks that the help says them.
    command.add_argument("--timeout", type=seconds(1.0, 600.0), metavar="SECONDS",
                         help="for each whole download (default 30)")
    command.add_argument("--max-size", type=_size, metavar="BYTES",
                         help="largest list accepted, such as 16m or 500k (default 16m)")
    command.add_argument("--state-dir", metavar="DIR", help="default $NFTC_STATE_DIR or /var/lib/nftc")
    command.add_argument("--wait", type=seconds(0.0, 86400.0), default=DEFAULT_WAIT_SECONDS, metavar="SECONDS",
                         help="how long to wait for another nftc holding the lock (default 60)")
    command.set_defaults(run=_refresh)


def _size(text: str) -> int:
    import argparse

    unit = _SIZE_UNITS.get(text[-1:].lower(), 1)
    digits = text[:-1] if unit != 1 else text
    if not digits.isdigit() or not 1 <= int(digits) * unit <= 1 << 30:
        raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a size from 1 byte to 1024m")
    return int(digits) * unit


def _refresh(args) -> int:
    from ..language.diagnostics import PolicyError
    from ..system.audit import record
    from ..system.records import read_applied
    from ..system.refresh import Options, applied_host, refresh
    from ..system.state import StateDir, state_dir_path

    state = StateDir(state_dir_path(args.state_dir))
    policy = args.policy or _applied_policy(state, read_applied)
    given = {"timeout": args.timeout, "max_bytes": args.max_size}
    options = Options(force=args.force, zones=tuple(args.zone), **{k: v for k, v in given.items() if v is not None})
    try:
        compilation, results = refresh(state, os.path.abspath(policy), options, args.wait)
    except PolicyError:
        # drawn again with their lines, for the host refresh compiled (issue 11); if that compiles, a kept list failed
        if compiled(policy, host=applied_host(state)) is not None:
            print(f"nftc: refresh: a kept blocklist in {state.path} does not read as a list", file=sys.stderr)
        record(state, "refresh", "refused", policy=os.path.abspath(policy), detail="the policy does not compile")
        return EXIT_POLICY
    except NftcError as exc:
        record(state, "refresh", "refused" if exc.exit_code == EXIT_POLICY else "failed",
               policy=os.path.abspath(policy), detail=str(exc))
        raise
    for r in results:
        record(state, "refresh", r.result, policy=os.path.abspath(policy), digest=compilation.digest,
               table=compilation.table.name, detail=f"zone {r.zone} {r.url}: {r.detail}")
        line = f"zone {r.zone}: {r.result}: {r.detail}"
        print(line if r.result != "failed" else f"nftc: refresh: {line}", file=sys.stderr if r.result == "failed"
              else sys.stdout)
    return EXIT_FAILURE if any(r.result == "failed" for r in results) else EXIT_OK


def _applied_policy(state, read_applied) -> str:
    from ..system.refresh import RefreshError

    applied = read_applied(state) if state.exists() else None
    if applied is None:
        raise RefreshError(f"no policy given and none applied in {state.path}")
    return applied.policy
