"""Command line: wires the steps together, prints, and chooses exit codes (0 ok, 2 policy/usage, 1 other)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence

from .. import __version__

EXIT_OK, EXIT_FAILURE, EXIT_POLICY = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 2, as policy errors do
        self.print_usage(sys.stderr)
        self.exit(EXIT_POLICY, f"nftc: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nftc", description="Compile Zimbra firewall policies (.zfw) to nftables.")
    parser.add_argument("--version", action="version", version=f"nftc {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    compile_cmd = commands.add_parser("compile", help="compile a policy and print the ruleset (dry run)")
    compile_cmd.add_argument("policy", metavar="FILE")
    compile_cmd.add_argument("--format", choices=("nft", "json"), default="nft")
    compile_cmd.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")

    check_cmd = commands.add_parser("check", help="compile and have the kernel validate it (commits nothing)")
    check_cmd.add_argument("policy", metavar="FILE")
    for command in (compile_cmd, check_cmd):
        add_strict_option(command)

    catalog_cmd = commands.add_parser("catalog", help="the built-in Zimbra ports, or one entry by port or name")
    catalog_cmd.add_argument("entry", nargs="?", metavar="PORT|NAME")

    from .apply import add_commands
    add_commands(commands)
    from .lab import add_command as add_lab_command
    add_lab_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .apply import handlers
    handler = {"compile": _compile, "check": _check, "catalog": _catalog, **handlers(), "lab": _lab}[args.command]
    try:
        return handler(args)
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


def interrupted_exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a command a signal stopped: 130 for Ctrl-C, 143 for a SIGTERM that a
    command turned into a KeyboardInterrupt carrying `signum` (the lab does, to tear itself down)."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def _lab(args) -> int:
    from .lab import lab
    return lab(args)


def add_strict_option(command: argparse.ArgumentParser) -> None:
    """--strict, for every command that compiles a policy to use it (compile, check, apply, diff)."""
    command.add_argument("--strict", action="store_true",
                         help="treat every warning as an error: print it as one and exit 2 before doing anything")


def _compiled(path: str, strict: bool = False):
    """Compile, print warnings; on policy errors (and on warnings, when `strict`) print them all and return None."""
    from ..compiler import compile_policy
    from ..language.diagnostics import PolicyError, as_error, render_diagnostics

    sources: dict[str, str] = {}
    try:
        compilation = compile_policy(path, sources)
    except PolicyError as exc:
        print(render_diagnostics(exc.diagnostics, sources), file=sys.stderr)
        return None
    if compilation.warnings and strict:
        print(render_diagnostics(map(as_error, compilation.warnings), sources), file=sys.stderr)
        return None
    if compilation.warnings:
        print(render_diagnostics(compilation.warnings, sources), file=sys.stderr)
    return compilation


def _compile(args) -> int:
    compilation = _compiled(args.policy, args.strict)
    if compilation is None:
        return EXIT_POLICY
    if args.format == "json":
        from ..backend.render_json import render_json
        text = render_json(compilation.table)
    else:
        from ..backend.render_nft import render_nft
        text = render_nft(compilation.table)
    if args.output:
        _write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _write_atomically(path: str, text: str) -> None:
    """A reader never sees half a ruleset; a device or pipe (`-o /dev/stdout`) is written as it is."""
    if os.path.exists(path) and not os.path.isfile(path):
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        return
    temporary = f"{path}.tmp{os.getpid()}"
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)


def _check(args) -> int:
    from ..system.kernel import KernelError, check_script
    from ..backend.render_nft import render_nft

    compilation = _compiled(args.policy, args.strict)
    if compilation is None:
        return EXIT_POLICY
    try:
        result = check_script(render_nft(compilation.table))
    except KernelError as exc:
        print(f"nftc: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    if not result.ok:
        print(f"{args.policy}: {result.error}", file=sys.stderr)
        return EXIT_FAILURE
    table = compilation.table
    print(f"{args.policy}: ok: the kernel accepts table {table.family} {table.name} "
          f"({sum(len(c.rules) for c in table.chains)} rules, {len(table.sets)} sets, "
          f"{len(table.counters)} counters)")
    return EXIT_OK


def _catalog(args) -> int:
    from ..semantics import catalog

    if args.entry is None:
        print(catalog.format_table(catalog.ENTRIES))
        return EXIT_OK
    if args.entry.isdigit():
        found = catalog.entries_for_port(int(args.entry))
    else:
        found = tuple(e for e in (catalog.entry(args.entry),) if e)
        group = catalog.group(args.entry)
        if group is not None:
            print(f"{group.name}: {group.description}")
            print(catalog.format_table(catalog.group_entries(group.name)))
            return EXIT_OK
    if not found:
        print(f"nftc: no catalog entry for '{args.entry}'", file=sys.stderr)
        return EXIT_POLICY
    print("\n\n".join(catalog.format_entry(e) for e in found))
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
