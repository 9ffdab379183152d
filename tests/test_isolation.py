"""Issue 7 item 1: every child interpreter nftc starts imports nftc's own package only.

nftc runs as root and starts child Pythons (the private-namespace check and listing, the rollback guard, the
lab's listener, probers and `nftc apply`). Started as `python -m nftc...`, a child would import an `nftc/`
folder from the working directory first, or one from $PYTHONPATH or a user site: whoever can create a folder
where root stands (`cd /tmp`) would run code as root, and `check` printed "ok" without validating anything.

Each test plants a hostile `nftc` package, owned by another user, that records its import in a marker file, and
runs the installed console script from inside that folder. The state-changing commands run inside a namespace
made for the test; `lab` makes its own.
"""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import nftc
from nftc.system import child
from nftc.lab.netns import Lab

from apply_helpers import MINIMAL, wait_until

ROOT = pathlib.Path(__file__).resolve().parent.parent
CONSOLE_SCRIPT = pathlib.Path(sys.executable).parent / "nftc"
PLANTED_MODULES = ("__init__", "__main__", "kernel", "probe", "apply", "cli", "lab", "parser")
PLANTED_CODE = """\
import sys
with open({marker!r}, "a") as log:
    log.write(f"{{__name__}} {{sys.argv!r}}\\n")
if __name__ == "__main__":
    sys.exit(0)  # what a planted nftc.kernel did: `check` then printed "ok: the kernel accepts"
"""
USER_SITE = f"lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages"


def _plant(directory: pathlib.Path, marker: pathlib.Path) -> None:
    package = directory / "nftc"
    package.mkdir(parents=True)
    for name in PLANTED_MODULES:
        (package / f"{name}.py").write_text(PLANTED_CODE.format(marker=str(marker)))


@pytest.fixture
def planted(tmp_path):
    """(folder holding a hostile nftc/ and a hostile user site, owned by nobody when we are root; marker file)."""
    marker = tmp_path / "imported.log"
    folder = tmp_path / "planted"
    _plant(folder, marker)
    _plant(folder / "userbase" / USER_SITE, marker)
    (folder / "startup.py").write_text(PLANTED_CODE.format(marker=str(marker)))
    if os.geteuid() == 0:
        subprocess.run(["chown", "-R", "nobody:", str(folder)], check=True)
    return folder, marker


def _environment() -> dict[str, str]:
    """This one, without the SSH variables (the lockout guard must not judge the test's own session)."""
    return {k: v for k, v in os.environ.items() if k not in ("SSH_CONNECTION", "SSH_CLIENT")}


def _hostile_environment(folder: pathlib.Path) -> dict[str, str]:
    """What root's environment may carry after `su` without `-`: every variable points into the planted folder."""
    return {**_environment(), "PYTHONPATH": str(folder), "PYTHONUSERBASE": str(folder / "userbase"),
            "PYTHONSTARTUP": str(folder / "startup.py")}


def _invocation(mode: str, folder: pathlib.Path) -> tuple[list[str], dict[str, str]]:
    """How the top-level nftc starts, and its environment.

    "cwd": the console script as root runs it, from inside the planted folder. "environment": the same, with
    the hostile variables; the top-level interpreter itself is started with -I here, because what root's own
    Python does with root's environment is the admin's choice (sudo removes these variables, `su` keeps them):
    the test is that nftc's children ignore them although they inherit them."""
    if mode == "cwd":
        return [str(CONSOLE_SCRIPT)], _environment()
    return [sys.executable, "-I", "-B", str(CONSOLE_SCRIPT)], _hostile_environment(folder)


def _imports(marker: pathlib.Path) -> str:
    return marker.read_text() if marker.exists() else ""


def test_item1_a_child_python_imports_the_running_nftc_not_the_planted_one(planted):
    """child.python_module from inside the planted folder, with every hostile variable set (no root needed)."""
    folder, marker = planted
    result = subprocess.run(child.python_module("nftc", "--version"), cwd=folder, env=_hostile_environment(folder),
                            capture_output=True, text=True, timeout=60)
    assert _imports(marker) == ""
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"nftc \S+\n", result.stdout)


def test_item1_a_child_runs_the_nftc_its_parent_runs(tmp_path):
    """Not whichever nftc an isolated interpreter would find: the package the parent itself was imported from
    (a checkout or a copy on PYTHONPATH too, as in test_check_works_for_an_unprivileged_user)."""
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / "nftc", copy / "nftc", ignore=shutil.ignore_patterns("__pycache__"))
    init = copy / "nftc" / "__init__.py"
    init.write_text(init.read_text().replace(f'"{nftc.__version__}"', '"0.0.copy"'))
    code = ("import subprocess, sys; sys.path.insert(0, sys.argv[1]); from nftc.system import child; "
            "sys.exit(subprocess.run(child.python_module('nftc', '--version'), cwd=child.CWD).returncode)")
    result = subprocess.run([sys.executable, "-I", "-B", "-c", code, str(copy)], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout == "nftc 0.0.copy\n", result.stderr


def test_item1_no_child_python_is_started_outside_nftc_child():
    """Every place nftc and bench/ start an interpreter goes through nftc/child.py (sys.executable nowhere else)."""
    offenders = [f"{path.relative_to(ROOT)}:{number}"
                 for folder in ("nftc", "bench") for path in sorted((ROOT / folder).glob("*.py"))
                 if path.name != "child.py"
                 for number, line in enumerate(path.read_text().splitlines(), 1) if "sys.executable" in line]
    assert offenders == []


def _run(top: list[str], environment: dict[str, str], folder: pathlib.Path, namespace: str | None,
         *args: str) -> subprocess.CompletedProcess:
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    return subprocess.run([*prefix, *top, *args], cwd=folder, env=environment, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["cwd", "environment"])
def test_item1_no_command_imports_a_planted_nftc(planted, tmp_path, mode):
    """compile, check, apply --confirm (its rollback guard), diff, status, confirm: in a namespace of the test."""
    folder, marker = planted
    top, environment = _invocation(mode, folder)
    state = str(tmp_path / "state")
    with Lab() as lab:
        namespace = lab.namespace("iso")

        def nftc(*args: str) -> subprocess.CompletedProcess:
            result = _run(top, environment, folder, namespace, *args)
            assert _imports(marker) == "", f"nftc {args[0]} imported the planted package"
            assert result.returncode == 0, f"nftc {' '.join(args)}: {result.stderr}"
            return result

        assert "table inet zfw" in nftc("compile", str(MINIMAL)).stdout
        assert "ok: the kernel accepts" in nftc("check", str(MINIMAL)).stdout
        nftc("apply", str(MINIMAL), "--confirm", "30", "--state-dir", state)
        assert "drift: none" in nftc("diff", str(MINIMAL), "--state-dir", state).stdout
        assert re.search(r"^drift: +none", nftc("status", "--state-dir", state).stdout, re.MULTILINE)
        nftc("confirm", "--state-dir", state)
        guard_log = pathlib.Path(state, "guard.log")
        assert wait_until(lambda: "nothing to do" in guard_log.read_text()), guard_log.read_text()
    assert _imports(marker) == ""


@pytest.mark.kernel
@pytest.mark.parametrize("mode", ["cwd", "environment"])
def test_item1_lab_children_do_not_import_a_planted_nftc(planted, mode):
    """`nftc lab`: its listener, its probers and the `nftc apply` it runs in the server namespace."""
    folder, marker = planted
    top, environment = _invocation(mode, folder)
    result = _run(top, environment, folder, None, "lab", str(MINIMAL))
    assert _imports(marker) == ""
    assert result.returncode == 0, result.stderr
    assert " 0 mismatches" in result.stdout
