"""The bad-input table: every `tests/bad/*.zfw` fails to compile with exactly the message in its `.err` file.

Convention (see tests/bad/README.md): `tests/bad/NAME.zfw` is one bad policy, its first line a comment saying
what is wrong; `tests/bad/NAME.err` is the whole expected standard error of `nftc compile NAME.zfw` run from
tests/bad: `FILE:LINE:COL: error: message`, the source line, the caret line, and `hint: ...` where one helps.
Data files the cases need sit next to them (`*.txt` address files, `*.inc` fragments, `directory.zfw/`).

Regenerate after an intended change of wording, then review the diff like code:
    .venv/bin/python -m pytest tests/test_bad_input.py --update-golden && git diff tests/bad
"""

from __future__ import annotations

import pathlib
import re

import pytest

from nftc.cli.main import main

from helpers import POSITIONED

BAD = pathlib.Path(__file__).resolve().parent / "bad"
CASES = sorted(p for p in BAD.glob("*.zfw") if p.is_file())

# The mistakes the issue names: each must keep a case in the table.
REQUIRED = {
    "syntax_missing_arrow", "syntax_missing_zone_list", "syntax_garbage_token", "syntax_unterminated_string",
    "syntax_misspelled_keyword", "unknown_zone", "unknown_service", "duplicate_zone", "duplicate_service",
    "duplicate_group", "service_named_like_builtin", "zones_equal_prefix", "cidr_bad_prefix_length",
    "cidr_host_bits", "ipv6_garbage", "port_zero", "port_65536", "port_range_reversed", "include_self",
    "include_loop_two_files", "include_missing_file", "include_directory", "zone_empty_address_file",
    "zone_never_matches", "rule_never_matches", "assert_must_reach_fails", "assert_must_not_reach_fails",
    "limit_on_deny", "limit_on_any", "any_mixed_with_services", "memcached_udp_opened", "string_with_quote",
    "string_with_backslash", "string_non_ascii", "string_with_newline", "name_too_long", "name_with_semicolon",
    "name_with_quote", "nul_byte", "not_utf8", "zone_localhost_redefined", "zone_interface_lo", "table_twice",
    "log_drops_twice", "group_cycle", "address_file_bad_line", "assert_unknown_zone",
}


_RUNS: dict[pathlib.Path, tuple[int, str]] = {}  # case -> (exit code, stderr): the tests of one case share its run


def compile_errors(case: pathlib.Path, capsys, monkeypatch) -> tuple[int, str]:
    """Run `nftc compile` from tests/bad on the case, so the file names in messages are short and stable. Once
    per case and session: the tests below judge the same run from different sides (a compile's output depends
    on its input only, tests/test_properties.py checks it), and two runs of every case were 0.6 s a fast loop."""
    if case not in _RUNS:
        monkeypatch.chdir(BAD)
        code = main(["compile", case.name])
        captured = capsys.readouterr()
        assert captured.out == "", "a failed compile prints no ruleset"
        _RUNS[case] = code, captured.err
    return _RUNS[case]


def first_error(stderr: str) -> re.Match:
    match = POSITIONED.match(stderr.splitlines()[0])
    assert match, f"first line is not FILE:LINE:COL: error: ...: {stderr.splitlines()[0]!r}"
    return match


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_policy_fails_with_its_expected_message(case, capsys, monkeypatch, update_golden):
    code, stderr = compile_errors(case, capsys, monkeypatch)
    expected = case.with_suffix(".err")
    if update_golden:
        expected.write_text(stderr)
    assert code == 2
    assert expected.exists(), f"no expected output {expected.name}: run with --update-golden and review it"
    assert stderr == expected.read_text()


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.stem)
def test_bad_policy_error_shows_the_line_with_a_caret_under_the_column(case, capsys, monkeypatch):
    code, stderr = compile_errors(case, capsys, monkeypatch)
    head = first_error(stderr)
    lines = stderr.splitlines()
    source = (BAD / head["file"]).read_bytes().decode("utf-8", errors="replace").split("\n")
    line, column = int(head["line"]), int(head["column"])
    assert code == 2
    assert 1 <= line <= len(source)
    assert lines[1].startswith("  ") and lines[1][2:].rstrip() == _shown(source[line - 1]).rstrip()
    caret = re.fullmatch(r"  ( *)\^~*", lines[2])
    assert caret, f"no caret line under the source line: {lines[2]!r}"
    assert len(caret.group(1)) == column - 1
    assert "Traceback" not in stderr


def _shown(line: str) -> str:
    return "".join(c if c.isprintable() else " " if c == "\t" else "?" for c in line.rstrip("\r"))


def test_every_mistake_the_issue_names_has_a_case():
    assert REQUIRED <= {case.stem for case in CASES}, REQUIRED - {case.stem for case in CASES}


def test_every_case_says_in_its_first_line_what_is_wrong():
    for case in CASES:
        assert case.read_bytes().startswith(b"# bad: "), case.name


def test_every_expected_output_belongs_to_a_case():
    assert {p.stem for p in BAD.glob("*.err")} == {case.stem for case in CASES}


@pytest.mark.parametrize("case, hint", [
    ("unknown_zone", "hint: did you mean 'lan'?"),
    ("unknown_service", "hint: did you mean 'zimbra.public'?"),
    ("syntax_misspelled_keyword", "hint: did you mean 'zone'?"),
    ("cidr_host_bits", "hint: did you mean 192.168.1.0/24?"),
    ("port_range_reversed", "hint: write 10024-10032"),
])
def test_a_likely_fix_is_offered_as_a_hint(case, hint, capsys, monkeypatch):
    _, stderr = compile_errors(BAD / f"{case}.zfw", capsys, monkeypatch)
    assert f"  {hint}" in stderr.splitlines()


@pytest.mark.parametrize("case, where", [
    ("address_file_bad_line", "bad_line.txt:5:1"),
    ("include_loop_two_files", "loop_partner.inc:3:9"),
])
def test_an_error_in_another_file_points_into_that_file(case, where, capsys, monkeypatch):
    _, stderr = compile_errors(BAD / f"{case}.zfw", capsys, monkeypatch)
    assert stderr.startswith(f"{where}: error: ")


def test_every_value_error_of_a_file_is_reported_in_one_run(tmp_path, capsys, monkeypatch):
    (tmp_path / "many.zfw").write_text("zone lan = 10.0.0.1/8\nservice a = tcp 0\nallow lna -> shh\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "many.zfw"]) == 2
    heads = [line for line in capsys.readouterr().err.splitlines() if POSITIONED.match(line)]
    assert [h.split(": error:")[0] for h in heads] == ["many.zfw:1:12", "many.zfw:2:17"]


def test_broad_rule_warns_that_the_protected_ports_stay_closed(tmp_path, capsys, monkeypatch):
    (tmp_path / "broad.zfw").write_text("zone lan = 192.168.1.0/24\nallow lan -> any\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "broad.zfw"]) == 0
    captured = capsys.readouterr()
    warning, source, caret, hint = captured.err.splitlines()
    assert warning.startswith("broad.zfw:2:14: warning: 'any' does not open the protected local-only ports")
    assert caret == "  " + " " * 13 + "^~~"
    for port in ("389/tcp", "7071-7074/tcp", "9071/tcp", "11211/tcp", "7306/tcp"):
        assert f" {port} " in hint
    assert "table inet zfw" in captured.out


def test_a_very_long_line_is_shown_around_the_error(tmp_path, capsys, monkeypatch):
    addresses = ", ".join(f"10.0.0.{i}" for i in range(1, 200))
    (tmp_path / "long.zfw").write_text(f"zone lan = {addresses}, 10.0.0.300, 10.0.1.1  # {'x' * 300}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "long.zfw"]) == 2
    head, source, caret, _hint = capsys.readouterr().err.splitlines()
    assert head.startswith("long.zfw:1:") and "'10.0.0.300'" in head
    assert len(source) <= 2 + 160
    assert source[caret.index("^"):].startswith("10.0.0.300,")


def test_a_byte_order_mark_is_not_part_of_the_policy(tmp_path, capsys, monkeypatch):
    (tmp_path / "bom.zfw").write_bytes(b"\xef\xbb\xbfzone lan = any\nallow lan -> shh\n")
    monkeypatch.chdir(tmp_path)
    assert main(["compile", "bom.zfw"]) == 2
    assert capsys.readouterr().err.startswith("bom.zfw:2:14: error: unknown service 'shh'")
