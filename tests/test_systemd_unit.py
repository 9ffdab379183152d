"""Issue 7 item 22: systemd/nftc.service is a valid unit, and one firewall at a time at boot.

Nothing is started here (there is no booting systemd in a test): `systemd-analyze verify` checks the shipped
file, and the file itself is read for the dependencies that keep other firewalls from wiping or doubling nftc's.
"""

from __future__ import annotations

import pathlib
import shlex
import shutil
import subprocess
import sys

import pytest

from helpers import man_pages, unavailable
from nftc.cli.main import build_parser

UNIT = pathlib.Path(__file__).resolve().parent.parent / "systemd" / "nftc.service"
OTHER_FIREWALLS = ("nftables.service", "firewalld.service", "ufw.service")


def directives(text: str) -> dict[tuple[str, str], list[str]]:
    """(section, key) -> every value given, in order: systemd units may repeat a key, and lists add up."""
    found: dict[tuple[str, str], list[str]] = {}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            found.setdefault((section, key.strip()), []).append(value.strip())
    return found


def words(unit: dict, section: str, key: str) -> set[str]:
    return {word for value in unit.get((section, key), []) for word in value.split()}


@pytest.mark.slow  # systemd-analyze, a child process
def test_item22_systemd_analyze_verifies_the_shipped_unit(tmp_path):
    """The shipped bytes, verified under --root: the unit at /etc/systemd/system and the nftc it runs at
    /usr/sbin, as the Debian package (debian/) installs them. Warnings (an unknown key, a bad value, a man page that
    does not exist) leave the exit code 0, so the output must be empty too."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        unavailable("systemd-analyze is not installed (Debian: the systemd package; scripts/setup.sh test)")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copyfile(UNIT, root / "etc/systemd/system/nftc.service")
    for command in _exec_commands(directives(UNIT.read_text())):
        binary = root / command[0].lstrip("/")
        binary.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pathlib.Path(sys.executable).with_name("nftc"), binary)
    result = subprocess.run([analyze, "verify", f"--root={root}", "nftc.service"], capture_output=True, text=True,
                            timeout=120, env=man_pages(root / "usr/share/man"))  # Documentation=man:nftc(8)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_item22_the_unit_is_the_only_firewall_and_comes_before_fail2ban():
    """Conflicts: nftables.service flushes the whole ruleset on start, reload and stop (nftc's table with it);
    firewalld and ufw are default-drop firewalls that would filter on top of nftc's. Conflicts= orders nothing,
    so each of them is also ordered (Before=): systemd then finishes stopping it before nftc loads. fail2ban
    starts after nftc, whose dynamic sets it fills. No ExecStop: stopping the unit must not open the host."""
    unit = directives(UNIT.read_text())
    assert set(OTHER_FIREWALLS) <= words(unit, "Unit", "Conflicts")
    assert set(OTHER_FIREWALLS) | {"fail2ban.service", "network-pre.target"} <= words(unit, "Unit", "Before")
    assert "network-pre.target" in words(unit, "Unit", "Wants")
    assert not words(unit, "Unit", "After") & {*OTHER_FIREWALLS, "fail2ban.service"}
    assert ("Service", "ExecStop") not in unit


def test_item22_the_unit_runs_nftc_apply_with_options_nftc_accepts():
    """A typo in ExecStart= only shows at boot, as a failed unit: parse it with nftc's own command line."""
    commands = _exec_commands(directives(UNIT.read_text()))
    assert commands and all(command[0] == "/usr/sbin/nftc" for command in commands)
    for command in commands:
        args = build_parser().parse_args(command[1:])
        assert (args.command, args.policy) == ("apply", "/etc/nftc/policy.zfw")


def _exec_commands(unit: dict) -> list[list[str]]:
    return [shlex.split(value.lstrip("-@:+!")) for key in ("ExecStart", "ExecReload")
            for value in unit.get(("Service", key), [])]


@pytest.mark.slow  # systemd-analyze, a child process each
@pytest.mark.parametrize("section,broken", [("Unit", "Befor=fail2ban.service"), ("Service", "Type=oneshoot"),
                                            ("Unit", "Documentation=man:nftc-none(8)")])
def test_item22_the_verify_test_sees_a_broken_directive(tmp_path, monkeypatch, section, broken):
    """The verify test above can fail: the same check on a copy with one broken line reports it."""
    copy = tmp_path / "nftc.service"
    copy.write_text(UNIT.read_text().replace(f"[{section}]\n", f"[{section}]\n{broken}\n", 1))
    monkeypatch.setattr(sys.modules[__name__], "UNIT", copy)
    with pytest.raises(AssertionError):
        test_item22_systemd_analyze_verifies_the_shipped_unit(tmp_path / "run")
