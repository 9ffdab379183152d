"""Command line of the compile side: compile (print or write the ruleset), check (the kernel validates it, in a
private namespace), catalog (the built-in Zimbra ports), ignoreip (the trusted zones as fail2ban's `ignoreip`).
Prints and chooses exit codes."""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY
from .common import add_strict_option, compiled


def add_commands(commands) -> None:
    compile_cmd = commands.add_parser("compile", help="compile a policy and print the ruleset (dry run)")
    compile_cmd.add_argument("policy", metavar="FILE")
    compile_cmd.add_argument("--format", choices=("nft", "json"), default="nft")
    compile_cmd.add_argument("-o", "--output", metavar="OUT", help="write here instead of standard output")
    compile_cmd.set_defaults(run=_compile)

    check_cmd = commands.add_parser("check", help="compile and have the kernel validate it (commits nothing)")
    check_cmd.add_argument("policy", metavar="FILE")
    check_cmd.set_defaults(run=_check)
    for command in (compile_cmd, check_cmd):
        add_strict_option(command)

    catalog_cmd = commands.add_parser("catalog", help="the built-in Zimbra ports, or one entry by port or name")
    catalog_cmd.add_argument("entry", nargs="?", metavar="PORT|NAME")
    catalog_cmd.set_defaults(run=_catalog)

    ignoreip_cmd = commands.add_parser("ignoreip", help="print fail2ban's ignoreip line: loopback and the trusted "
                                                        "zones' networks")
    ignoreip_cmd.add_argument("policy", metavar="FILE")
    ignoreip_cmd.set_defaults(run=_ignoreip)


# The handlers import the stages they use inside: start-up imports only argparse and the command modules.


def _compile(args) -> int:
    compilation = compiled(args.policy, args.strict)
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
    from ..system.kernel import check_script
    from ..backend.render_nft import render_nft

    compilation = compiled(args.policy, args.strict)
    if compilation is None:
        return EXIT_POLICY
    result = check_script(render_nft(compilation.table))
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


FAIL2BAN_LOOPBACK = ("127.0.0.1/8", "::1")  # fail2ban's own default ignoreip, which a jail's setting replaces


def _ignoreip(args) -> int:
    """One line for a jail (`jail.local`): fail2ban then never bans what nftc would never let a ban take anyway,
    and says so in its log instead of adding an element the kernel ignores."""
    from ..semantics.zones import trusted_networks

    compilation = compiled(args.policy)
    if compilation is None:
        return EXIT_POLICY
    networks = trusted_networks(compilation.checked.policy.zones)
    print(" ".join(("ignoreip =", *FAIL2BAN_LOOPBACK, *map(str, networks))))
    return EXIT_OK
