"""Issue 8: nothing the suite runs writes into the checkout.

The writers (`nftc compile -o`, `nftc lab`; the benchmark in tests/test_bench_smoke.py) run from a copy of the
checkout, with that copy's nftc, as a parent that writes no bytecode (`python -B`): afterwards no file or folder of
the copy is created, changed (even rewritten with the same bytes, as the benchmark once rewrote
rulesets/zimbra-single.nft) or deleted, and no `__pycache__` appeared, so every child nftc starts honours -B
(`python -I` ignores PYTHONDONTWRITEBYTECODE). A copy, not the real checkout: others may edit that meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import copy_checkout, tree_changes, tree_state


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return copy_checkout(tmp_path_factory.mktemp("copy"))


def nftc_from(checkout, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python -B -m nftc ARGS` in the copy, so the copy's nftc runs (and starts its children)."""
    return subprocess.run([sys.executable, "-B", "-m", "nftc", *args], cwd=checkout, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow  # copies the checkout: 0.6 s
def test_item8_compile_to_a_file_writes_nothing_into_the_checkout(checkout, tmp_path):
    before = tree_state(checkout)
    result = nftc_from(checkout, "compile", "rulesets/zimbra-single.zfw", "-o", str(tmp_path / "out.nft"))
    assert result.returncode == 0, result.stderr
    assert tree_changes(before, tree_state(checkout)) == []
    assert "table inet zimbra" in (tmp_path / "out.nft").read_text()
    found = subprocess.run([sys.executable, "-B", "-c", "import nftc; print(nftc.__file__)"], cwd=checkout,
                           capture_output=True, text=True, check=True).stdout
    assert found.startswith(str(checkout / "nftc")), f"the copy runs another nftc: {found}"


@pytest.mark.kernel
def test_item8_the_lab_writes_nothing_into_the_checkout(checkout):
    before = tree_state(checkout)
    result = nftc_from(checkout, "lab", "--json", "rulesets/minimal.zfw")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"]
    assert tree_changes(before, tree_state(checkout)) == []


@pytest.mark.slow
def test_item8_the_fast_loop_writes_nothing_into_the_checkout(checkout):
    """The test process and what it starts: with -B, no bytecode anywhere, hypothesis's cache outside the checkout;
    pytest's own cache (.pytest_cache) is left out with -p no:cacheprovider. Left out too: the test that runs the
    installed `nftc` as nobody, who cannot read this private copy."""
    before = tree_state(checkout)
    run = subprocess.run([sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
                          "not kernel and not slow", "--ignore", "tests/test_checkout_clean.py",
                          "--deselect", "tests/test_messages.py::test_item15_lab_without_root_says_it_needs_root"],
                         cwd=checkout, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:]
    assert tree_changes(before, tree_state(checkout)) == []
