"""`bench/run.py --quick` runs every workload end to end (no timing is asserted: figures are the script's job).

It runs from a copy of the checkout (issue 8, as in tests/test_checkout_clean.py): the benchmark writes its
document to a temporary file and nothing into the checkout, not even the compiled rulesets it loads (it once wrote
rulesets/zimbra-single.nft on every run) or bytecode.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from nftc.lab import netns

from helpers import copy_checkout, tree_changes, tree_state

HEADINGS = ("## 1. Compile time and peak memory", "## 2. Rules a packet traverses", "## 3. Apply, whole process",
            "## 4. The article's ufw recipe", "## 5. Reload with", "## 6. New-connection rate")

pytestmark = pytest.mark.kernel


def test_quick_benchmark_runs_every_workload_writes_the_document_and_nothing_else(tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    output = tmp_path / "benchmarks.md"
    before = tree_state(checkout)
    process = subprocess.Popen([sys.executable, "-B", "bench/run.py", "--quick", "--output", str(output)],
                               cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    for heading in HEADINGS:
        assert heading in stdout
        assert heading in output.read_text()
    assert not [n for n in netns.listed() if n.startswith(f"{netns.BENCH_STEM}{process.pid}x")]  # its own, removed
    assert tree_changes(before, tree_state(checkout)) == []
