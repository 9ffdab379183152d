"""Command line of `nftc matrix` (who reaches whom on what) and `nftc explain` (the verdict for one source, and the
policy line that decides it). Both compile the policy like `nftc compile` (every host, or --host) and print what
nftc.semantics.matrix computes over each host's policy; no root, nothing loaded."""

from __future__ import annotations

import argparse
import sys

from ..errors import EXIT_OK, EXIT_POLICY
from .common import add_host_option, said_warnings

NO_HOST = "this host"  # the column of a policy without hosts


def _address(text: str):
    from ..semantics.matrix import ExplainError, parse_address
    try:
        return parse_address(text)
    except ExplainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _port(text: str) -> tuple[int, str]:
    from ..semantics.matrix import ExplainError, parse_port
    try:
        return parse_port(text)
    except ExplainError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(commands) -> None:
    matrix_cmd = commands.add_parser("matrix", help="who reaches whom on what: every host and zone against every "
                                                    "host, from the policy (no root)")
    matrix_cmd.add_argument("policy", metavar="FILE")
    matrix_cmd.add_argument("--format", choices=("text", "json"), default="text")
    matrix_cmd.set_defaults(run=_matrix)

    explain_cmd = commands.add_parser("explain", help="what a host does with connections from one address, and the "
                                                      "policy line that decides it (no root)")
    explain_cmd.add_argument("policy", metavar="FILE")
    explain_cmd.add_argument("--from", dest="source", metavar="ADDR", required=True, type=_address,
                             help="the source address")
    explain_cmd.add_argument("--to", dest="port", metavar="PORT/PROTO", type=_port,
                             help="one port, such as 7025/tcp (default: every port open to ADDR)")
    add_host_option(explain_cmd)
    explain_cmd.set_defaults(run=_explain)


def _views(path: str, sources: dict[str, str]):
    """Every host's view (one for a policy without hosts), as `nftc compile --all` compiles them; None after
    printing the policy's errors."""
    from ..compiler import compile_cluster
    from ..language.diagnostics import PolicyError, render_diagnostics
    from ..semantics.matrix import View

    try:
        compilations = compile_cluster(path, sources)
    except PolicyError as exc:
        print(render_diagnostics(exc.diagnostics, sources), file=sys.stderr)
        return None
    said_warnings(tuple(dict.fromkeys(w for c in compilations for w in c.warnings)), sources, strict=False)
    return tuple(View(c.host, c.checked) for c in compilations)


def _check_host(path: str, host: str) -> None:
    """HostError (to `main`) for a host the policy has not, or --host on a policy without hosts: the compiler's
    own message. Called on a policy that compiles."""
    from ..compiler import compile_policy
    compile_policy(path, {}, host=host)


# Printing


def _line_text(span, sources: dict[str, str]) -> str:
    """`file:line:col: the line as written` (control characters shown escaped), or the span alone."""
    text = sources.get(span.file)
    lines = text.split("\n") if text is not None else []
    if not 0 < span.line <= len(lines):
        return str(span)
    line = lines[span.line - 1].rstrip("\r").strip()
    shown = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)
    return f"{span}: {shown}"


def _ports_text(opening) -> str:
    from ..semantics.catalog import format_ports
    from ..semantics.matrix import ANY
    return "every port outside the protected set" if opening.service == ANY else format_ports(opening.ports)


def _opening_text(opening) -> str:
    return f"{opening.service} {_ports_text(opening)}"


def _host_label(host: str | None) -> str:
    return host if host is not None else NO_HOST


def matrix_text(matrix, sources: dict[str, str]) -> str:
    """One block per source (a row of the matrix), one line per host (a column): what it reaches there."""
    hosts = set(matrix.hosts)
    width = max(len(_host_label(h)) for h in matrix.hosts)
    blocks = []
    for source in matrix.sources:
        lines = [f"from {source} ({'host' if source in hosts else 'zone'}):"]
        for host in matrix.hosts:
            cell = matrix.cell(source, host)
            if cell.openings is None:
                continue
            what = ", ".join(_opening_text(o) for o in cell.openings) or "nothing"
            lines.append(f"  to {_host_label(host):<{width}}  {what}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _opening_json(opening, sources: dict[str, str]) -> dict:
    rule = opening.rule
    return {"service": opening.service, "ports": [str(r) for r in opening.ports],
            "line": _line_text(rule.rule.span, sources) if rule and rule.rule.span else None}


def matrix_json(matrix, sources: dict[str, str]) -> str:
    import json  # here: every command imports this module, and only this function needs json

    hosts = set(matrix.hosts)
    return json.dumps({
        "hosts": [_host_label(h) for h in matrix.hosts],
        "sources": [{"name": s, "kind": "host" if s in hosts else "zone"} for s in matrix.sources],
        "matrix": [{"from": c.source, "to": _host_label(c.host),
                    "open": None if c.openings is None else [_opening_json(o, sources) for o in c.openings]}
                   for c in matrix.cells],
    }, indent=2)


def _decision_text(decision, sources: dict[str, str]) -> str:
    if decision.rule is None or decision.rule.rule.span is None:
        return decision.describe()
    return f"by {_line_text(decision.rule.rule.span, sources)}"


def explanation_text(item, port, sources: dict[str, str]) -> str:
    where = f"on {_host_label(item.host)}: {item.address}"
    if item.zone is None:
        return f"{where} is in no zone: every new connection from it is dropped (no rule can match it)"
    head = f"{where} is zone {item.zone}"
    if port is not None:
        decision = item.decision
        return f"{head}\n  {port[0]}/{port[1]}: {decision.verdict}, {_decision_text(decision, sources)}"
    if not item.openings:
        return f"{head}; nothing is open to it"
    lines = [f"{head}; open to it:"]
    width = max(len(_opening_text(o)) for o in item.openings)
    for opening in item.openings:
        reason = _line_text(opening.rule.rule.span, sources) if opening.rule and opening.rule.rule.span \
            else "loopback traffic is accepted"
        lines.append(f"  {_opening_text(opening):<{width}}  {reason}")
    return "\n".join(lines)


# Handlers


def _matrix(args) -> int:
    from ..semantics.matrix import cluster_matrix

    sources: dict[str, str] = {}
    views = _views(args.policy, sources)
    if views is None:
        return EXIT_POLICY
    matrix = cluster_matrix(views)
    print(matrix_json(matrix, sources) if args.format == "json" else matrix_text(matrix, sources))
    return EXIT_OK


def _explain(args) -> int:
    from ..semantics.matrix import explain

    sources: dict[str, str] = {}
    views = _views(args.policy, sources)  # every host's, also with --host: a host's addresses are in its peers'
    if views is None:
        return EXIT_POLICY
    if args.host:
        _check_host(args.policy, args.host)
    found = explain(views, args.source, args.port)
    if args.host:
        found = tuple(item for item in found if item.host == args.host)
    print("\n".join(explanation_text(item, args.port, sources) for item in found))
    return EXIT_OK
