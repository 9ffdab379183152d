"""Write the README's role matrix and feature tables from `nftc.semantics.roles` (issue 11): `python3 -B
scripts/roles_table.py` prints them, `--write` replaces each in README.md between its markers.

The matrix has one home, roles.py; the README shows it, and `tests/test_readme_roles.py` fails when the two
differ, so the tables cannot go stale. Ports come from the catalog, the one home of each service's ports.
"""

from __future__ import annotations

import argparse
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's nftc, whatever is installed

from nftc.semantics import catalog, roles  # noqa: E402

README = ROOT / "README.md"
_CALLS_HEADER = ("| from | to | services (ports) | when | why | source |", "|---|---|---|---|---|---|")
_FEATURES_HEADER = ("| feature | releases | edition | what it adds |", "|---|---|---|---|")


def _role(name: str) -> str:
    return "every server" if name == roles.EVERY_HOST else name


def _services(call: roles.Call) -> str:
    """`lmtp 7025/tcp, mta_auth 7073/tcp`: each service with its catalog ports."""
    return ", ".join(f"{name} {catalog.format_ports(catalog.entry(name).ports)}" for name in call.services)


def _when(call: roles.Call) -> str:
    """The condition of a call, as the policy states it: feature, release, proxy; `always` when none."""
    parts = []
    if call.feature:
        parts.append(f"feature `{call.feature}`")
    if call.unless:
        parts.append(f"without `{call.unless}`")
    if call.since:
        parts.append(f"{roles.version_text(call.since)} on")
    if call.before:
        parts.append(f"before {roles.version_text(call.before)}")
    if call.proxied is not None:
        parts.append("a host is a proxy" if call.proxied else "no host is a proxy")
    return ", ".join(parts) or "always"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def _call_row(call: roles.Call) -> str:
    return _row(", ".join(map(_role, call.callers)), _role(call.callee), _services(call), _when(call), call.why,
                call.source)


def _feature_row(feature: roles.Feature) -> str:
    edition = f"{feature.edition} only" if feature.edition else "both"
    return _row(f"`{feature.name}`", feature.span_text(), edition, feature.what)


def calls_table() -> str:
    """The Markdown table of roles.CALLS, in their order."""
    return "\n".join((*_CALLS_HEADER, *(_call_row(call) for call in roles.CALLS)))


def features_table() -> str:
    """The Markdown table of roles.FEATURES, in their order."""
    return "\n".join((*_FEATURES_HEADER, *(_feature_row(feature) for feature in roles.FEATURES)))


TABLES = {"role matrix": calls_table, "features": features_table}  # marker name -> what goes between


def markers(name: str) -> tuple[str, str]:
    """The comments around a generated table in the README."""
    return f"<!-- {name}: scripts/roles_table.py --write -->", f"<!-- /{name} -->"


def block(name: str) -> str:
    """A table with its markers, as the README holds it."""
    begin, end = markers(name)
    return "\n".join((begin, TABLES[name](), end))


def replaced(text: str) -> str:
    """`text` (the README) with each table between its markers replaced; missing markers are an error."""
    for name in TABLES:
        begin, end = markers(name)
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start:
            raise SystemExit(f"roles_table: {README} has no {begin} ... {end} markers")
        text = text[:start] + block(name) + text[stop + len(end):]
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="replace the table in README.md")
    args = parser.parse_args(argv)
    if args.write:
        README.write_text(replaced(README.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print("\n\n".join(block(name) for name in TABLES))
    return 0


if __name__ == "__main__":
    sys.exit(main())
