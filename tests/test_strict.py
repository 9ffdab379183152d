"""Issue 7, item 21: `--strict` (compile, check, apply, diff) turns every warning into an error.

Opening the admin console or memcached to a zone that holds `any` is the mistake nftc exists to stop: it is a
warning, and under --strict it fails (exit 2) before anything touches a kernel. The shipped unit uses --strict.
"""

from __future__ import annotations

import pathlib
import re

import pytest

from nftc.system import apply, kernel
from nftc.cli import main as cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTECTED_HINT = "open admin and internal ports to admin networks or cluster peers only"
STRICT = " (an error because of --strict)"


def _opened(line: int, column: int, rule: str, ports: str, zone: str = "internet") -> tuple[str, str]:
    """A protected-port warning: (the policy line, its whole rendered message without the severity)."""
    return rule, (f"policy.zfw:{line}:{column}: SEVERITY: opens protected {ports} to zone '{zone}', which holds "
                  f"every address\n  {rule}\n  {' ' * (column - 1)}^{'~' * (len(rule) - column)}\n"
                  f"  hint: {PROTECTED_HINT}HINT\n")


# (policy lines after the zones, the whole message with SEVERITY and HINT to fill in)
CASES = {
    "admin-console-to-any": _opened(3, 19, "allow internet -> zimbra.admin", "ports 7071/tcp 9071/tcp"),
    "memcached-to-any": _opened(3, 19, "allow internet -> memcached", "port 11211/tcp"),
    "memcached-group-to-any": _opened(3, 19, "allow internet -> zimbra.memcached", "port 11211/tcp"),
    "own-service-on-11211": _opened(3, 19, "allow internet -> cache", "port 11211/tcp"),
    "ldap-to-a-zone-with-any-and-more": _opened(3, 19, "allow internet -> ldap", "port 389/tcp"),
}
ZONES = {
    "ldap-to-a-zone-with-any-and-more": "zone internet = any, 10.0.0.0/8\nzone lan = 192.168.1.0/24\n",
    "own-service-on-11211": "zone internet = any\nservice cache = tcp 11211\n",
}


def _policy(case: str) -> str:
    rule, _ = CASES[case]
    return ZONES.get(case, "zone internet = any\nzone lan = 192.168.1.0/24\n") + rule + "\n"


def _compile(tmp_path, monkeypatch, capsys, case: str, *options: str) -> tuple[int, str, str]:
    (tmp_path / "policy.zfw").write_text(_policy(case))
    monkeypatch.chdir(tmp_path)
    code = cli.main(["compile", *options, "policy.zfw"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("case", CASES)
def test_item21_without_strict_it_is_a_warning_and_compiles(case, tmp_path, monkeypatch, capsys):
    code, out, err = _compile(tmp_path, monkeypatch, capsys, case)
    assert (code, err) == (0, CASES[case][1].replace("SEVERITY", "warning").replace("HINT", ""))
    assert out.startswith("table inet zfw {}")


@pytest.mark.parametrize("case", CASES)
def test_item21_with_strict_it_is_an_error_and_exits_2(case, tmp_path, monkeypatch, capsys):
    code, out, err = _compile(tmp_path, monkeypatch, capsys, case, "--strict")
    assert (code, out, err) == (2, "", CASES[case][1].replace("SEVERITY", "error").replace("HINT", STRICT))


def test_item21_every_warning_is_an_error_under_strict(tmp_path, monkeypatch, capsys):
    """The 'any' warning too: --strict makes no exception."""
    (tmp_path / "policy.zfw").write_text("zone lan = 192.168.1.0/24\nallow lan -> any\n")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["compile", "--strict", "policy.zfw"]) == 2
    head, _, _, hint = capsys.readouterr().err.splitlines()
    assert head == "policy.zfw:2:14: error: 'any' does not open the protected local-only ports of zimbra.internal " \
                   "and zimbra.admin"
    assert hint.startswith("  hint: still closed: ") and hint.endswith(STRICT)


def test_item21_a_policy_without_warnings_compiles_the_same_under_strict(capsys):
    outputs = []
    for options in ((), ("--strict",)):
        assert cli.main(["compile", *options, str(ROOT / "rulesets" / "zimbra-single.zfw")]) == 0
        outputs.append(capsys.readouterr())
    assert outputs[0] == outputs[1] and outputs[0].err == ""


@pytest.mark.parametrize("command", ["check", "apply", "diff"])
def test_item21_strict_stops_before_anything_touches_a_kernel(command, tmp_path, monkeypatch, capsys):
    def touched(*args, **kwargs):
        raise AssertionError(f"{command} --strict went on to the kernel")
    for module, name in ((kernel, "check_script"), (kernel, "list_table"), (kernel, "listing_in_private_namespace"),
                         (apply, "apply_table")):
        monkeypatch.setattr(module, name, touched)
    (tmp_path / "policy.zfw").write_text(_policy("admin-console-to-any"))
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "state"
    extra = ("--state-dir", str(state)) if command != "check" else ()
    assert cli.main([command, "--strict", *extra, "policy.zfw"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("policy.zfw:3:19: error: opens protected ports 7071/tcp 9071/tcp")
    assert not state.exists() or list(state.iterdir()) == []


@pytest.mark.parametrize("command", ["catalog", "status", "confirm", "rollback", "lab"])
def test_item21_strict_belongs_to_the_commands_that_compile(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.build_parser().parse_args([command, "--strict"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --strict" in capsys.readouterr().err


def test_item21_the_shipped_unit_applies_in_strict_mode():
    unit = (ROOT / "systemd" / "nftc.service").read_text()
    commands = re.findall(r"^(ExecStart|ExecReload)=(.*)$", unit, flags=re.MULTILINE)
    assert {key for key, _ in commands} == {"ExecStart", "ExecReload"}
    for _, command in commands:
        assert re.search(r"\bnftc apply\b.* --strict\b", command), command
