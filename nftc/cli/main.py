"""Command line: builds the parser from the command families, dispatches, and is the one place that turns an
error into a message and an exit code (nftc.errors: 0 ok, 2 policy or usage error, 1 anything else)."""

from __future__ import annotations

import argparse
import functools
import gc
import os
import sys
from typing import Sequence

from .. import __version__
from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY, NftcError
from . import apply, cluster, lab, refresh
from . import compile as compile_family  # not `compile`: that is a builtin
from .common import interrupted_exit_code

FAMILIES = (compile_family, apply, refresh, lab, cluster)  # each adds its commands, in this order, and names their handler `run`
# The cyclic garbage collector in a process that runs one command (run): a young collection every GC_THRESHOLD
# allocations instead of every 700. Nearly every object a command makes lives until it exits (modules, classes, the
# parser's tables, the IR), so collecting finds nothing to free and only walks them again: 50 collections and about
# 6 ms of a small apply, which now makes none. The garbage it may hold meanwhile is bounded by the threshold (peak
# memory of an apply with 200,000 addresses unchanged; the compiler pauses the collector anyway: nftc.compiler).
GC_THRESHOLD = 50_000


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2, as policy errors do
        self.print_usage(sys.stderr)
        self.exit(EXIT_POLICY, f"nftc: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nftc", description="Compile Zimbra firewall policies (.zfw) to nftables.")
    parser.add_argument("--version", action="version", version=f"nftc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    for family in FAMILIES:
        family.add_commands(commands)
    _describe(commands)
    return parser


def _describe(commands: argparse._SubParsersAction) -> None:
    """A command without its own description gets its one-line help as one, so `nftc COMMAND --help` (and the man
    page, scripts/generate_manpages.py) always says what the command does; a family may write a longer one."""
    for choice in commands._choices_actions:
        parser = commands.choices[choice.dest]
        if parser.description is None and choice.help:
            parser.description = choice.help[:1].upper() + choice.help[1:].rstrip(".") + "."


@functools.cache
def _parser() -> argparse.ArgumentParser:
    """The parser, built once per process: parsing never changes it, and a process that calls main() many times
    (the tests, a benchmark) would otherwise rebuild about 70 options and their help texts every call."""
    return build_parser()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except NftcError as exc:  # what a user can cause: one line; policy errors were drawn where they were found
        print(f"nftc: {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        print(f"nftc: {args.command}: interrupted", file=sys.stderr)
        return interrupted_exit_code(exc)
    except BrokenPipeError:  # `nftc compile ... | head`: the reader left, nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        print(f"nftc: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # a bug in nftc, not the user's doing: one line, the traceback on request
        if os.environ.get("NFTC_DEBUG"):
            raise
        print(f"nftc: internal error: {type(exc).__name__}: {exc} (a bug in nftc; NFTC_DEBUG=1 shows where)",
              file=sys.stderr)
        return EXIT_FAILURE


def run() -> None:
    """`nftc` as a process (the console script, `python -m nftc`): `main` with fewer garbage collections, then exit
    with its code. What is left is frozen first: the interpreter's collections at exit would otherwise walk every
    object again (about 7 ms of a small apply), and nothing of nftc's needs a finalizer then (files, locks and the
    netlink socket are closed by the kernel with the process). Not in `main`, which tests call many times in one
    process."""
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
