"""What the command families share: compiling a policy and printing its diagnostics, --strict, and the exit code
of an interrupted command. It imports no other cli module."""

from __future__ import annotations

import argparse
import math
import signal
import sys

from ..errors import EXIT_INTERRUPTED


def seconds(low: float, high: float):
    """argparse type: a number of seconds from `low` to `high`; nan, inf and 1e308 are usage errors before
    anything changes."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"'{text[:20]}' is not a number of seconds from {low:g} to {high:g}")
        return value
    return parse


def add_strict_option(command: argparse.ArgumentParser) -> None:
    """--strict, for every command that compiles a policy to use it (compile, check, apply, diff)."""
    command.add_argument("--strict", action="store_true",
                         help="treat every warning as an error: print it as one and exit 2 before doing anything")


def compiled(path: str, strict: bool = False, sources: dict[str, str] | None = None, feeds=None):
    """Compile, print warnings; on policy errors (and on warnings, when `strict`) print them all and return None.
    `sources` receives the text of each file read (apply records what it compiled from); `feeds`: the url zones'
    last good lists (nftc.language.loader.Feeds; apply gives the state directory's).

    Policy errors are the one kind of NftcError not left to `main`: they are drawn with their sources (the line
    and a caret), which only this function holds."""
    # imported here, not at the top: commands that compile nothing (catalog, confirm, status) start faster
    from ..compiler import compile_policy
    from ..language.diagnostics import PolicyError, as_error, render_diagnostics

    sources = {} if sources is None else sources
    try:
        compilation = compile_policy(path, sources, feeds)
    except PolicyError as exc:
        print(render_diagnostics(exc.diagnostics, sources), file=sys.stderr)
        return None
    if compilation.warnings and strict:
        print(render_diagnostics(map(as_error, compilation.warnings), sources), file=sys.stderr)
        return None
    if compilation.warnings:
        print(render_diagnostics(compilation.warnings, sources), file=sys.stderr)
    return compilation


def interrupted_exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a command a signal stopped: 130 (EXIT_INTERRUPTED) for Ctrl-C, 143 for
    a SIGTERM that a command turned into a KeyboardInterrupt carrying `signum` (the lab does, to tear itself
    down)."""
    return EXIT_INTERRUPTED - signal.SIGINT + getattr(exc, "signum", signal.SIGINT)
