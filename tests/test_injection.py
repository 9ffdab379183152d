"""Hostile text in every place a policy carries text: refused with a positioned message, or emitted as meant.

Each payload (quote, semicolon, braces, newline, NUL, '#', backslash, escape sequences, 10k characters, non-ASCII)
goes into each slot (zone, service, group and table names, descriptions, the log prefix, `file` and `include`
paths, address-file contents, comments, the policy file's own name). Either `nftc compile` exits 2 with
`FILE:LINE:COL: error:` on the payload's line and no control character reaches the terminal, or it exits 0 and
the nft text is sound (two `table` statements, every string printable ASCII within the kernel's limits) and
says what the policy means.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Callable

import pytest

from nftc.system.kernel import check_script

from helpers import compile_files, first_error, run_cli
from strategies import control_characters, nft_text_problems

PAYLOADS = {
    "quote": '"',
    "semicolon": ";",
    "open-brace": "{",
    "close-brace": "}",
    "newline": "\n",
    "nul": "\0",
    "hash": "#",
    "backslash": "\\",
    "nft-statement": '"; flush ruleset; "',
    "escape-sequence": "\x1b[2J",
    "right-to-left-override": "\u202e",
    "non-ascii": "é→🔥",
    "long": "x" * 10_000,
}
BASE = "zone ok = 10.0.0.0/8\nallow ok -> ssh\n"


@dataclass(frozen=True)
class Slot:
    """Where a payload goes: `files(payload)` -> {name: text}; the payload sits in `file` at line `line`."""

    files: Callable[[str], dict[str, str]]
    file: str = "policy.zfw"
    line: int = 1
    means: Callable[[str, str], bool] = field(default=lambda text, payload: True)


def _path_files(payload: str, kind: str) -> dict[str, str]:
    """A `file`/`include` naming `a<payload>.txt`, and that file on disk when such a name can exist."""
    name = f"a{payload}.{kind}"
    statement = f'zone ok = file "{name}"\n' if kind == "txt" else f'zone ok = 10.0.0.0/8\ninclude "{name}"\n'
    files = {"policy.zfw": statement + "allow ok -> ssh\n"}
    if "\0" not in payload and "/" not in payload and len(name.encode()) < 255:
        files[name] = "10.0.0.0/8\n" if kind == "txt" else "allow ok -> smtp\n"
    return files


SLOTS = {
    "zone-name": Slot(lambda p: {"policy.zfw": f"zone lan{p} = 10.1.0.0/16\n" + BASE}),
    "service-name": Slot(lambda p: {"policy.zfw": f"service web{p} = tcp 8080\n" + BASE}),
    "group-name": Slot(lambda p: {"policy.zfw": f"group mail{p} = smtp, submission\n" + BASE}),
    "table-name": Slot(lambda p: {"policy.zfw": f"table t{p}\n" + BASE}),
    "service-description": Slot(lambda p: {"policy.zfw": f'service web = tcp 8080 "web {p} site"\n' + BASE}),
    "group-description": Slot(lambda p: {"policy.zfw": f'group mail = smtp, submission "mail {p} flow"\n' + BASE}),
    "log-prefix": Slot(lambda p: {"policy.zfw": f'log drops prefix "drop{p}: "\n' + BASE},
                       means=lambda text, p: f'log prefix "drop{p}: ok/default ' in text),
    "file-path": Slot(lambda p: _path_files(p, "txt"),
                      means=lambda text, p: "10.0.0.0/8 : goto zone_ok" in text),
    "include-path": Slot(lambda p: _path_files(p, "zfw"), line=2,
                         means=lambda text, p: 'counter name "ok/smtp/' in text),
    "address-entry": Slot(lambda p: {"policy.zfw": 'zone ok = file "a.txt"\nallow ok -> ssh\n',
                                     "a.txt": f"10.0.0.0/8{p}\n"}, file="a.txt",
                          means=lambda text, p: "10.0.0.0/8 : goto zone_ok" in text),
    "address-line": Slot(lambda p: {"policy.zfw": 'zone ok = file "a.txt"\nallow ok -> ssh\n',
                                    "a.txt": f"192.0.2.0/24\n{p}\n10.0.0.0/8\n"}, file="a.txt", line=2,
                         means=lambda text, p: "10.0.0.0/8 : goto zone_ok" in text),
    "address-comment": Slot(lambda p: {"policy.zfw": 'zone ok = file "a.txt"\nallow ok -> ssh\n',
                                       "a.txt": f"# {p}\n10.0.0.0/8\n"}, file="a.txt",
                            means=lambda text, p: "10.0.0.0/8 : goto zone_ok" in text),
    "policy-comment": Slot(lambda p: {"policy.zfw": f"# {p}\n" + BASE},
                           means=lambda text, p: 'counter name "ok/ssh/r1"' in text),
}
CASES = [pytest.param(slot, payload, id=f"{slot}-{payload}") for slot in SLOTS for payload in PAYLOADS]


def table_of(text: str) -> str:
    return next(line.split()[2] for line in text.split("\n") if line.startswith("table inet "))


@pytest.mark.parametrize("slot_name, payload_name", CASES)
def test_hostile_text_is_refused_with_a_position_or_emitted_as_meant(slot_name, payload_name, tmp_path):
    slot, payload = SLOTS[slot_name], PAYLOADS[payload_name]
    result = compile_files(slot.files(payload), directory=tmp_path)
    assert "Traceback" not in result.err
    assert control_characters(result.err) == [], result.err[:400]
    if result.code == 0:
        assert nft_text_problems(result.out, table_of(result.out)) == []
        assert slot.means(result.out, payload), result.out[:2000]
        return
    assert result.code == 2, result.err[:400]
    where = first_error(result.err)
    assert where, result.err[:300]
    assert pathlib.Path(where["file"]).name == slot.file, result.err[:300]
    assert slot.line <= int(where["line"]) <= slot.line + payload.count("\n"), result.err[:300]


@pytest.mark.kernel
def test_hostile_text_that_compiles_is_accepted_by_the_kernel(tmp_path):
    """Every payload the compiler accepts (the refused ones reach no kernel) is a ruleset the kernel accepts."""
    rejected = {}
    for index, (slot_name, payload_name) in enumerate((s, p) for s in SLOTS for p in PAYLOADS):
        directory = tmp_path / str(index)
        directory.mkdir()
        compiled = compile_files(SLOTS[slot_name].files(PAYLOADS[payload_name]), directory=directory)
        if compiled.code == 0:
            result = check_script(compiled.out)
            if not result.ok:
                rejected[(slot_name, payload_name)] = result.error
    assert rejected == {}


FILE_NAMES = {
    "quote": 'a"b.zfw',
    "space": "a b.zfw",
    "non-ascii": "é ü→.zfw",
    "nft-syntax": "a;b{c}#d.zfw",
    "backslash": "a\\b.zfw",
    "newline": "a\nb.zfw",
    "escape-sequence": "\x1b[31mred.zfw",
    "right-to-left-override": "\u202egpj.zfw",
    "long": "p" * 200 + ".zfw",
}


@pytest.mark.parametrize("file_name", FILE_NAMES.values(), ids=FILE_NAMES.keys())
def test_a_hostile_policy_file_name_leaves_the_provenance_comments_sound(file_name, tmp_path):
    compiled = compile_files({file_name: BASE}, directory=tmp_path)
    assert compiled.code == 0, compiled.err
    assert nft_text_problems(compiled.out, "zfw") == []


@pytest.mark.kernel
@pytest.mark.parametrize("file_name", FILE_NAMES.values(), ids=FILE_NAMES.keys())
def test_a_hostile_policy_file_name_compiles_to_what_the_kernel_accepts(file_name, tmp_path):
    compiled = compile_files({file_name: BASE}, directory=tmp_path)
    assert compiled.code == 0, compiled.err
    result = check_script(compiled.out)
    assert result.ok, result.error


@pytest.mark.parametrize("file_name", FILE_NAMES.values(), ids=FILE_NAMES.keys())
def test_a_hostile_policy_file_name_keeps_the_diagnostic_on_one_safe_line(file_name, tmp_path):
    result = compile_files({file_name: "zone ok = 10.0.0.0/8\nallow ok -> nosuch\n"}, directory=tmp_path)
    assert result.code == 2
    assert first_error(result.err), result.err[:300]
    assert "unknown service 'nosuch'" in result.err.split("\n", 1)[0]
    assert control_characters(result.err) == [], result.err[:300]


def test_errors_about_the_policy_file_itself_are_one_clear_line(tmp_path):
    (tmp_path / "folder.zfw").mkdir()
    for path in (tmp_path / "missing.zfw", tmp_path / "folder.zfw"):
        result = run_cli("compile", str(path))
        first = result.err.split("\n", 1)[0]
        assert result.code == 2
        assert first.startswith(("error: ", f"{path}:")), first
        assert path.name in first


@pytest.mark.slow  # a child nftc
def test_an_address_file_that_is_a_fifo_fails_fast_with_a_position(tmp_path):
    """A FIFO (or a device) named by `file` must not block the compiler forever."""
    os.mkfifo(tmp_path / "blocklist.txt")
    (tmp_path / "policy.zfw").write_text('zone banned = file "blocklist.txt"\nzone ok = 10.0.0.0/8\n'
                                         "allow ok -> ssh\n")
    try:
        process = subprocess.run([sys.executable, "-B", "-m", "nftc", "compile", str(tmp_path / "policy.zfw")],
                                 capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("nftc compile still reading a FIFO after 10 s")
    assert process.returncode == 2, process.stderr
    assert first_error(process.stderr), process.stderr[:300]
