"""Issue 11, "the README's multi-server section rewritten around rulesets/zimbra-cluster.zfw": what that section
shows cannot drift from the code. The role matrix and feature tables are generated from nftc/semantics/roles.py
by scripts/roles_table.py; the mbox1 excerpt is checked against the golden ruleset, which tests/test_golden.py
checks against the compiler. Fast: no compile, no child process.
"""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

from nftc.semantics import roles

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
EXCERPT = ("<!-- mbox1 excerpt -->", "<!-- /mbox1 excerpt -->")


def _script():
    """scripts/roles_table.py as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("roles_table", ROOT / "scripts" / "roles_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return _script()


def _between(text: str, begin: str, end: str) -> str:
    start, stop = text.find(begin), text.find(end)
    assert 0 <= start < stop, f"README.md lacks {begin} ... {end}"
    return text[start:stop + len(end)]


@pytest.mark.parametrize("name", ["role matrix", "features"])
def test_issue11_readme_tables_are_generated_from_roles_py(script, name):
    """Issue 11 (README's role matrix): the table in the README is exactly what roles.py says today; after a
    change to roles.py, `python3 -B scripts/roles_table.py --write` brings it back."""
    begin, end = script.markers(name)
    assert _between(README.read_text(encoding="utf-8"), begin, end) == script.block(name)


def test_issue11_the_role_table_has_a_row_per_call_and_names_each_service(script):
    """Issue 11: one row per call of roles.CALLS, each naming every service of its call with the catalog's ports,
    so a call added to roles.py shows in the README (and the table test above fails until it is written)."""
    rows = script.calls_table().splitlines()[2:]
    assert len(rows) == len(roles.CALLS)
    lmtp = rows[[c.services for c in roles.CALLS].index(("lmtp",))]
    assert lmtp.startswith("| mta | mailbox | lmtp 7025/tcp | always |")


def test_issue11_replacing_needs_the_markers(script):
    """Issue 11: `--write` on a README without the markers stops with one line, it never appends a table."""
    with pytest.raises(SystemExit, match="has no <!-- role matrix"):
        script.replaced("# README without tables\n")


def test_issue11_readme_mbox1_excerpt_is_in_the_golden_ruleset():
    """Issue 11 ("on mbox1, 7025 from mta1 and not from proxy1; 7072 from proxy1 and not from mta1"): every line
    of the README's excerpt is a line of mbox1's compiled ruleset (whitespace aside), and the excerpt shows that
    split."""
    block = _between(README.read_text(encoding="utf-8"), *EXCERPT)
    shown = [" ".join(line.split()) for line in block.splitlines()[2:-2]]
    golden = (ROOT / "tests" / "golden" / "zimbra-cluster.mbox1.nft").read_text(encoding="utf-8")
    compiled = {" ".join(line.split()) for line in golden.splitlines()}
    assert shown and [line for line in shown if line not in compiled] == []
    mta1 = "\n".join(shown[:shown.index("map ports_proxy1 {")])
    proxy1 = "\n".join(shown[shown.index("map ports_proxy1 {"):])
    assert "tcp . 7025" in mta1 and "tcp . 7072" not in mta1
    assert "tcp . 7072" in proxy1 and "tcp . 7025" not in proxy1
