"""What the command families share: compiling a policy and printing its diagnostics, --strict, and the exit code
of an interrupted command. It imports no other cli module."""

from __future__ import annotations

import argparse
import math
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


def add_host_option(command: argparse.ArgumentParser) -> None:
    """--host, for every command that compiles a cluster policy (one with `host` lines)."""
    command.add_argument("--host", metavar="NAME", help="the host of a cluster policy whose ruleset this is")


def compiled(path: str, strict: bool = False, sources: dict[str, str] | None = None, feeds=None,
             host: str | None = None, pick_host=None, lists=None):
    """Compile, print warnings; on policy errors (and on warnings, when `strict`) print them all and return None.
    `sources` receives the text of each file read (apply records what it compiled from); `feeds`: the url zones'
    last good lists (nftc.language.loader.Feeds; apply gives the state directory's); `host`, `pick_host`: the
    host of a cluster policy, or what chooses it (nftc.compiler.compile_policy; a HostError goes to `main`);
    `lists`: address files parsed before (nftc.language.loader.ListCache; apply's, in the state directory).

    Policy errors are the one kind of NftcError not left to `main`: they are drawn with their sources (the line
    and a caret), which only this function holds."""
    # imported here, not at the top: commands that compile nothing (catalog, confirm, status) start faster
    from ..compiler import compile_policy
    from ..language.diagnostics import PolicyError, render_diagnostics

    sources = {} if sources is None else sources
    try:
        compilation = compile_policy(path, sources, feeds, host, pick_host, lists)
    except PolicyError as exc:
        print(render_diagnostics(exc.diagnostics, sources), file=sys.stderr)
        return None
    return compilation if said_warnings(compilation.warnings, sources, strict) else None


def said_warnings(warnings, sources, strict: bool) -> bool:
    """Print the warnings (as errors when `strict`); False when `strict` refuses them."""
    from ..language.diagnostics import as_error, render_diagnostics

    if warnings and strict:
        print(render_diagnostics(map(as_error, warnings), sources), file=sys.stderr)
        return False
    if warnings:
        print(render_diagnostics(warnings, sources), file=sys.stderr)
    return True


def compiled_hosts(path: str, strict: bool = False):
    """Every host's compilation of a cluster policy (one for a policy without hosts), its warnings printed once;
    None on errors (of any host, each said once: nftc.compiler.compile_cluster)."""
    from ..compiler import compile_cluster
    from ..language.diagnostics import PolicyError, render_diagnostics

    sources: dict[str, str] = {}
    try:
        compilations = compile_cluster(path, sources)
    except PolicyError as exc:
        print(render_diagnostics(exc.diagnostics, sources), file=sys.stderr)
        return None
    warnings = tuple(dict.fromkeys(w for c in compilations for w in c.warnings))
    return compilations if said_warnings(warnings, sources, strict) else None


def interrupted_exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal, as a shell reports a command a signal stopped: 130 (EXIT_INTERRUPTED) for Ctrl-C, 143 for
    a SIGTERM that a command turned into a KeyboardInterrupt carrying `signum` (the lab does, to tear itself
    down)."""
    import signal  # here: every command imports this module, and only an interrupted one needs signal

    return EXIT_INTERRUPTED - signal.SIGINT + getattr(exc, "signum", signal.SIGINT)
