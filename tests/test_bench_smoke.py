"""`bench/run.py --quick` runs every workload end to end (no timing is asserted: figures are the script's job)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADINGS = ("## 1. Compile time and peak memory", "## 2. Rules a packet traverses", "## 3. Apply, whole process",
            "## 4. The article's ufw recipe", "## 5. Reload with", "## 6. New-connection rate")

pytestmark = pytest.mark.kernel


def test_quick_benchmark_runs_every_workload_and_writes_the_document(tmp_path):
    output = tmp_path / "benchmarks.md"
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "run.py"), "--quick", "--output",
                                str(output)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    for heading in HEADINGS:
        assert heading in stdout
        assert heading in output.read_text()
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert f"nftcbench{process.pid}x" not in namespaces  # the run removed its own namespaces
