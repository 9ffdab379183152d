"""Command line of the compile side: compile (print or write the ruleset), check (the kernel validates it, in a
private namespace), catalog (the built-in Zimbra ports), ignoreip (the trusted zones as fail2ban's `ignoreip`).
Prints and chooses exit codes."""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY
from ..errors import NftcError
from .common import add_host_option, add_strict_option, compiled, compiled_hosts


class OutputError(NftcError):
    """`compile --all -o DIR`: DIR cannot take the rulesets (missing, a symlink, not a directory, not writable)."""

    exit_code = EXIT_POLICY


def add_commands(commands) -> None:
    compile_cmd = commands.add_parser("compile", help="compile a policy and print the ruleset (dry run)")
    compile_cmd.add_argument("policy", metavar="FILE")
    compile_cmd.add_argument("--format", choices=("nft", "json"), default="nft")
    compile_cmd.add_argument("-o", "--output", metavar="OUT",
                             help="write here instead of standard output (with --all: the directory)")
    compile_cmd.add_argument("--all", action="store_true",
                             help="a cluster policy: write every host's ruleset, OUT/HOST.nft (or .json)")
    compile_cmd.set_defaults(run=_compile)

    check_cmd = commands.add_parser("check", help="compile and have the kernel validate it (commits nothing); "
                                                  "every host of a cluster policy, or --host")
    check_cmd.add_argument("policy", metavar="FILE")
    check_cmd.set_defaults(run=_check)
    for command in (compile_cmd, check_cmd):
        add_strict_option(command)
        add_host_option(command)

    catalog_cmd = commands.add_parser("catalog", help="the built-in Zimbra ports, or one entry by port or name")
    what = catalog_cmd.add_mutually_exclusive_group()
    what.add_argument("entry", nargs="?", metavar="PORT|NAME", help="a port, a service or a group (zimbra.public)")
    what.add_argument("--groups", action="store_true", help="list the groups: name, ports and use")
    catalog_cmd.set_defaults(run=_catalog)

    ignoreip_cmd = commands.add_parser("ignoreip", help="print fail2ban's ignoreip line: loopback and the trusted "
                                                        "zones' networks")
    ignoreip_cmd.add_argument("policy", metavar="FILE")
    ignoreip_cmd.set_defaults(run=_ignoreip)


# The handlers import the stages they use inside: start-up imports only argparse and the command modules.


def _compile(args) -> int:
    if args.all:
        return _compile_all(args)
    compilation = compiled(args.policy, args.strict, host=args.host)
    if compilation is None:
        return EXIT_POLICY
    text = _rendered(compilation, args.format)
    if args.output:
        _write_atomically(args.output, text)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def _rendered(compilation, fmt: str) -> str:
    if fmt == "json":
        from ..backend.render_json import render_json
        return render_json(compilation.table)
    from ..backend.render_nft import render_nft
    return render_nft(compilation.table)


def _compile_all(args) -> int:
    """Every host's ruleset into OUT/HOST.nft (or .json): all compiled before the first is written."""
    if args.host:
        raise OutputError("--all compiles every host: give --host or --all, not both")
    if not args.output:
        raise OutputError("--all needs -o DIR, the directory to write HOST.nft into")
    _check_output_directory(args.output)
    compilations = compiled_hosts(args.policy, args.strict)
    if compilations is None:
        return EXIT_POLICY
    if compilations[0].host is None:
        raise OutputError(f"{args.policy} declares no hosts: --all is for a cluster policy; compile it without")
    for compilation in compilations:
        path = os.path.join(args.output, f"{compilation.host}.{args.format}")
        _write_atomically(path, _rendered(compilation, args.format))
        print(f"wrote {path}")
    return EXIT_OK


def _check_output_directory(path: str) -> None:
    """The author's output directory, as given: an existing directory, not a symlink, writable by us."""
    if os.path.islink(path):
        raise OutputError(f"-o {path} is a symlink: give the directory itself")
    if not os.path.isdir(path):
        raise OutputError(f"-o {path} is not a directory" + ("" if os.path.exists(path) else " (create it first)"))
    if not os.access(path, os.W_OK | os.X_OK):
        raise OutputError(f"-o {path}: cannot write into it")


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
    """One policy, one host of a cluster (--host), or every host: each ruleset validated by the kernel."""
    from ..system.kernel import check_script
    from ..backend.render_nft import render_nft

    if args.host:
        compilation = compiled(args.policy, args.strict, host=args.host)
        compilations = None if compilation is None else (compilation,)
    else:
        compilations = compiled_hosts(args.policy, args.strict)
    if compilations is None:
        return EXIT_POLICY
    failed = False
    for compilation in compilations:
        where = args.policy + (f" (host {compilation.host})" if compilation.host else "")
        result = check_script(render_nft(compilation.table))
        if not result.ok:
            print(f"{where}: {result.error}", file=sys.stderr)
            failed = True
            continue
        table = compilation.table
        print(f"{where}: ok: the kernel accepts table {table.family} {table.name} "
              f"({sum(len(c.rules) for c in table.chains)} rules, {len(table.sets)} sets, "
              f"{len(table.counters)} counters)")
    return EXIT_FAILURE if failed else EXIT_OK


def _catalog(args) -> int:
    from ..semantics import catalog

    if args.groups:
        print(catalog.format_groups(catalog.GROUPS))
        return EXIT_OK
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
        print(f"nftc: catalog: {_no_entry(catalog, args.entry)}", file=sys.stderr)
        return EXIT_POLICY
    print("\n\n".join(catalog.format_entry(e) for e in found))
    return EXIT_OK


def _no_entry(catalog, wanted: str) -> str:
    """No entry, port or group is named so: the closest service or group name, when one is close."""
    from ..language.diagnostics import did_you_mean

    names = [e.name for e in catalog.ENTRIES] + [g.name for g in catalog.GROUPS]
    hint = "" if wanted.isdigit() else did_you_mean(wanted, names)
    return f"no catalog entry for '{wanted[:48]}'" + (f" ({hint})" if hint else " (nftc catalog lists them, "
                                                                          "nftc catalog --groups the groups)")


FAIL2BAN_LOOPBACK = ("127.0.0.1/8", "::1")  # fail2ban's own default ignoreip, which a jail's setting replaces


def _ignoreip(args) -> int:
    """One line for a jail (`jail.local`): fail2ban then never bans what nftc would never let a ban take anyway,
    and says so in its log instead of adding an element the kernel ignores."""
    from ..semantics.zones import trusted_networks

    compilations = compiled_hosts(args.policy)  # a cluster policy: every host's, its peers (trusted) included
    if compilations is None:
        return EXIT_POLICY
    networks = trusted_networks(tuple(z for c in compilations for z in c.checked.policy.zones))
    print(" ".join(("ignoreip =", *FAIL2BAN_LOOPBACK, *map(str, networks))))
    return EXIT_OK
