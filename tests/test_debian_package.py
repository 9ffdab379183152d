"""Issue 12, "The package": what debian/ says, checked without building (tests/test_freshroot.py builds and installs).

The build itself (scripts/build-deb.sh: dpkg-buildpackage in a temporary copy, then lintian) and the installed
package run in the freshroot tests, under NFTC_FRESHROOT=1; these catch, in the fast loop, a package that would
drift from the tree: another version, a unit or a dependency forgotten.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest

import nftc

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEBIAN = ROOT / "debian"


def control_field(paragraph: int, field: str) -> list[str]:
    """A comma-separated relation field of debian/control's paragraph (0: source, 1: the binary package)."""
    text = re.sub(r"^#.*\n", "", (DEBIAN / "control").read_text(encoding="utf-8"), flags=re.M)
    found = re.search(rf"^{field}:((?:.*\n)(?:[ \t].*\n)*)", text.split("\n\n")[paragraph] + "\n", re.M)
    assert found, f"debian/control has no {field}"
    return [item.split()[0] for item in found.group(1).replace("\n", " ").split(",") if item.strip()]


def test_item_package_version_is_nftcs():
    """debian/changelog's version is nftc.__version__: `nftc --version` and `dpkg -l nftc` say the same."""
    first = (DEBIAN / "changelog").read_text(encoding="utf-8").splitlines()[0]
    assert re.match(r"nftc \(([^)]+)\) ", first)[1] == nftc.__version__


def test_item_package_runtime_dependencies_are_the_distributions_and_not_lark():
    """python3, python3-nftables, nftables at run time; lark only for the build's tests (the parser is generated
    into the package), and nothing of the test extra at run time."""
    depends = control_field(1, "Depends")
    assert {"nftables", "python3-nftables", "${python3:Depends}"} <= set(depends)
    assert not {"python3-lark", "python3-pytest", "python3-hypothesis"} & set(depends)
    assert "python3-lark" in control_field(0, "Build-Depends")


def test_item_package_installs_every_unit_and_enables_none():
    """Each unit of systemd/ is installed into the unit directory and handed to dh_installsystemd with --no-enable
    --no-start: the admin enables nftc.service once /etc/nftc/policy.zfw exists; the package starts nothing."""
    units = sorted(path.name for path in (ROOT / "systemd").iterdir())
    installed = (DEBIAN / "nftc.install").read_text(encoding="utf-8").splitlines()
    assert sorted(line.split()[0].removeprefix("systemd/") for line in installed
                  if line.startswith("systemd/") and line.split()[1] == "lib/systemd/system") == units
    call = next(line for line in (DEBIAN / "rules").read_text(encoding="utf-8").splitlines()
                if line.strip().startswith("dh_installsystemd"))
    assert "--no-enable" in call.split() and "--no-start" in call.split()
    assert sorted(call.split()[3:]) == units


@pytest.mark.slow  # a child pytest collects
def test_item_freshroot_tests_are_deselected_without_the_flag():
    """Without NFTC_FRESHROOT=1 the freshroot tests are deselected (never skipped, which fails under CI=true): the
    suite the README's test command runs inside a fresh root, where the flag is not set, does not recurse."""
    tests = len(re.findall(r"^def test_", (ROOT / "tests/test_freshroot.py").read_text(encoding="utf-8"), re.M))
    environment = {key: value for key, value in os.environ.items() if key != "NFTC_FRESHROOT"}
    run = subprocess.run([sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                          "tests/test_freshroot.py"], cwd=ROOT, env=environment, capture_output=True, text=True,
                         timeout=120)
    assert re.search(rf"\b{tests} deselected\b", run.stdout) and "skipped" not in run.stdout, run.stdout
    flagged = subprocess.run([sys.executable, "-B", "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only",
                              "tests/test_freshroot.py"], cwd=ROOT, env={**environment, "NFTC_FRESHROOT": "1"},
                             capture_output=True, text=True, timeout=120)
    assert re.search(rf"\b{tests} tests? collected\b", flagged.stdout), flagged.stdout
