"""Issue 9 (performance), "apply, zimbra-single, whole process <= 3x nft -f": what `nftc compile` and `nftc apply`
import. Imports were most of a small apply (~90 of ~145 ms as installed), so what only some policies or paths
need is imported where it is needed: the url zones' blocklists and downloads, difflib (a drift, a misspelt name),
and the parser carries no `logging` (scripts/generate_parser.py). Each test runs nftc in a fresh interpreter that
prints, after `main`, which of those modules it imported.
"""

from __future__ import annotations

import pathlib
import subprocess

import pytest

from apply_helpers import ROOT, Server, lab, server  # noqa: F401 (fixtures)
from nftc.system import child

ZIMBRA_SINGLE = str(ROOT / "rulesets" / "zimbra-single.zfw")  # no url zone, no host, no misspelt name
NOT_NEEDED = ("logging", "difflib", "nftc.system.blocklists", "nftc.system.download", "nftc.lab")
PROBE = ("import sys\nfrom nftc.cli.main import main\ncode = main(sys.argv[1:])\n"
         f"print('imported:', *sorted(set({NOT_NEEDED!r}) & set(sys.modules)))\nsys.exit(code)\n")


def _imported(stdout: str) -> list[str]:
    """The probe's last line: the modules of NOT_NEEDED that nftc imported."""
    last = stdout.splitlines()[-1]
    assert last.startswith("imported:"), stdout
    return last.split()[1:]


@pytest.mark.slow  # a fresh interpreter
def test_issue9_compile_of_a_policy_without_url_zones_imports_only_what_it_needs():
    result = subprocess.run(child.python("-B", "-c", PROBE, "compile", ZIMBRA_SINGLE), capture_output=True, text=True,
                            cwd=child.CWD, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("table inet zimbra {")
    assert _imported(result.stdout) == []


def probe(server: Server, *args: str) -> subprocess.CompletedProcess:
    """nftc apply in the namespace (no SSH client: the lockout guard is off), in a fresh interpreter."""
    return server.lab.exec(server.ns, "env", "-u", "SSH_CONNECTION", *child.python("-B", "-c", PROBE, *args),
                           "--state-dir", str(server.state), check=False, timeout=120)


@pytest.mark.kernel
def test_issue9_apply_of_a_policy_without_url_zones_imports_no_blocklists_downloads_or_difflib(server):
    """The first apply creates the table; the second, of a changed policy, replaces it and finds no drift."""
    first = probe(server, "apply", ZIMBRA_SINGLE)
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(f"applied {ZIMBRA_SINGLE}: table inet zimbra ") and _imported(first.stdout) == []
    changed = server.policy("changed.zfw", pathlib.Path(ZIMBRA_SINGLE).read_text()
                            + "zone office = 10.7.0.0/24\nallow office -> ssh\n")
    second = probe(server, "apply", changed)
    assert second.returncode == 0, second.stderr
    assert second.stdout.startswith(f"applied {changed}: table inet zimbra ") and _imported(second.stdout) == []


@pytest.mark.kernel
def test_issue9_apply_of_a_policy_with_a_url_zone_reads_its_last_good_list(server):
    """The other side of the test above: a url zone asks for its kept list, and that imports the blocklists."""
    policy = server.policy("url.zfw", 'zone internet = any\nzone drop = url "https://lists.example/drop.txt"\n'
                                      "allow internet -> smtp\n")
    result = probe(server, "apply", policy)
    assert result.returncode == 0, result.stderr
    assert "nftc.system.blocklists" in _imported(result.stdout)
