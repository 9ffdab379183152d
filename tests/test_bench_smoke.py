"""The benchmark harness (bench/): `bench/run.py --quick` end to end, and the parts issue 9 added to it.

The quick run starts from a copy of the checkout (issue 8, as in tests/test_checkout_clean.py): the benchmark writes
its document to a temporary file and nothing into the checkout, not even the compiled rulesets it loads (it once
wrote rulesets/zimbra-single.nft on every run), the build of the nftc it installs, or bytecode. No timing is
asserted: figures are the script's job.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from nftc.lab import netns
from nftc.system import child

from helpers import copy_checkout, tree_changes, tree_state

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is a folder of the checkout, not an installed package

from bench import installed, measure, namespaces, workloads  # noqa: E402

HEADINGS = ("## Targets (issue 9)", "## 1. Compile time and peak memory", "## 2. Rules a packet traverses",
            "## 3. Apply, whole process", "## 4. The article's ufw recipe", "## 5. Reload keeping dynamic",
            "## 6. New-connection rate")
ISSUE9_TARGETS = ("compile, ", "kernel elements for a zone", "apply, zimbra-single.zfw, whole process",
                  "re-apply of an unchanged policy, zimbra-single.zfw", "re-apply of an unchanged policy, 1,000",
                  "reload keeping", "new connections, nftc's cost")


def _targets(document: str) -> list[list[str]]:
    """The rows of the document's table of targets."""
    table = document.split("## Targets (issue 9)", 1)[1].split("\n\n")[1]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


@pytest.mark.kernel
def test_quick_benchmark_runs_every_workload_writes_the_document_and_nothing_else(tmp_path):
    """Also issue 9: the document says nftc ran as installed (bytecode compiled) from the run's temporary folder,
    and shows every target of the issue with MET or MISSED."""
    checkout = copy_checkout(tmp_path / "checkout")
    output = tmp_path / "benchmarks.md"
    before = tree_state(checkout)
    process = subprocess.Popen([sys.executable, "-B", "bench/run.py", "--quick", "--output", str(output)],
                               cwd=checkout, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-2000:]
    document = output.read_text()
    for heading in HEADINGS:
        assert heading in document
        assert heading in stdout or heading == "## Targets (issue 9)"  # the table of targets is the document's
    assert "- nftc as installed (bytecode compiled) from /" in document
    imported = stdout.split("a benchmark child imports ", 1)[1].split()[0]
    assert imported.endswith("/installed/nftc/__init__.py") and not imported.startswith(str(checkout))
    rows = _targets(document)
    assert rows and all(row[-1] in ("MET", "MISSED") for row in rows), rows
    assert all(any(row[0].startswith(name) for row in rows) for name in ISSUE9_TARGETS), rows
    assert not [n for n in netns.listed() if n.startswith(f"{netns.BENCH_STEM}{process.pid}x")]  # its own, removed
    assert tree_changes(before, tree_state(checkout)) == []


def _sources(destination: pathlib.Path) -> pathlib.Path:
    """What installing nftc reads (bench/installed.py's SOURCES) and bench/, copied without git (the fast loop also
    runs from a copy that has no .git: tests/test_checkout_clean.py)."""
    destination.mkdir()
    for name in (*installed.SOURCES, "bench"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, destination / name)
    return destination


def _install_and_verify(checkout: pathlib.Path, run: pathlib.Path, *, stale: str = "") -> subprocess.CompletedProcess:
    """bench/installed.py from `checkout` into `run`, in a process of its own as bench/run.py does it (-B, as
    this machine's PYTHONDONTWRITEBYTECODE); `stale`: a module whose source is touched after the compile."""
    script = ("import os, sys, time; sys.path.insert(0, os.getcwd()); from bench import installed; "
              "nftc = installed.install(os.getcwd(), sys.argv[1]); "
              "stale = sys.argv[2] and os.path.join(nftc.parent, 'nftc', sys.argv[2]); "
              "stale and os.utime(stale, ns=(time.time_ns(), time.time_ns() + 10**10)); "
              "print(installed.verify(nftc))")
    return subprocess.run(child.python("-B", "-c", script, str(run), stale), cwd=checkout, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.slow  # installs and byte-compiles a copy of nftc: seconds
def test_item_measure_what_users_run_children_import_the_installed_compiled_nftc(tmp_path):
    """Issue 9, "measure what users run": nftc is pip-installed into the run's folder and bytecode compiled; a
    child started as the workloads start theirs imports that copy, every module from its .pyc; the checkout gets
    nothing (a build writes build/ and nftc.egg-info next to its sources)."""
    checkout = _sources(tmp_path / "checkout")
    before = tree_state(checkout)
    result = _install_and_verify(checkout, tmp_path / "run")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == f"{tmp_path / 'run' / 'installed' / 'nftc' / '__init__.py'}\n"
    assert tree_changes(before, tree_state(checkout)) == []


@pytest.mark.slow  # installs and byte-compiles a copy of nftc: seconds
def test_item_measure_what_users_run_a_module_compiled_again_in_every_process_is_refused(tmp_path):
    """Issue 9: a source newer than its bytecode is recompiled by every process that imports it (and never
    rewritten under -B), which is what the benchmark must not time: verify() says so."""
    result = _install_and_verify(_sources(tmp_path / "checkout"), tmp_path / "run", stale="cli/main.py")
    assert result.returncode != 0
    assert "does not run the installed, compiled nftc" in result.stderr and "cli/main.py" in result.stderr


def test_item_changed_apply_measures_a_change_an_unchanged_one_fails_the_run():
    """Issue 9: a timed job's output is watched for "unchanged"; an apply timed as a change that says it stops the
    benchmark (it skipped its transaction and measured nothing)."""
    said = measure.run_timed(child.python("-c", "print('nftc: apply: unchanged')"), watch=workloads.UNCHANGED)
    quiet = measure.run_timed(child.python("-c", "print('applied x.zfw')"), watch=workloads.UNCHANGED)
    unwatched = measure.run_timed(child.python("-c", "print('unchanged')"))
    assert (said.said, quiet.said, unwatched.said) == (True, False, None)
    workloads._never_unchanged({"nftc0": [quiet], "nft0": [unwatched]}, "policy")
    with pytest.raises(RuntimeError, match="said 'unchanged' after another policy was loaded"):
        workloads._never_unchanged({"nftc0": [quiet], "nftc1": [quiet, said]}, "policy")


def test_item_changed_apply_a_policy_variant_differs_in_its_lan_only(tmp_path):
    """Issue 9: the changed applies alternate a policy and its variant; the variant moves the LAN and nothing else."""
    from bench import generate

    policy = generate.zone_policy(str(tmp_path), 8)
    variant = generate.variant(policy, str(tmp_path))
    assert os.path.dirname(variant) == str(tmp_path) and variant != policy
    original, moved = pathlib.Path(policy).read_text(), pathlib.Path(variant).read_text()
    assert moved != original and moved == original.replace(generate.LAN_V4, generate.OTHER_LAN_V4)
    with pytest.raises(ValueError, match="has no LAN"):
        generate.variant(variant, str(tmp_path / ".."))


@pytest.mark.kernel
def test_item_reapply_transactions_are_counted_by_the_generation_id():
    """Issue 9, "no transaction": the namespace's nftables generation id grows with a commit, not with a listing."""
    with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
        namespace = lab.namespace("-gen")
        first = namespaces.generation(namespace)
        namespaces.in_namespace(namespace, "nft", "list", "ruleset")
        listed = namespaces.generation(namespace)
        namespaces.in_namespace(namespace, "nft", "add", "table", "inet", "bench")
        added = namespaces.generation(namespace)
    assert (listed, added) == (first, first + 1)
