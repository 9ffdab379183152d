"""What nftc prints when things go wrong, where the wrong thing is not a policy mistake (issue 7, items 14 and 15).

Item 14: a diagnostic about a file that is not a policy or an address list quotes nothing of it. `include
"/etc/shadow"`, `zone z = file "/etc/shadow"` or `/proc/self/environ` as the policy, run through sudo, printed the
secrets. Rule (README, "Errors"): until a file's first statement starts with a keyword (a policy) or its first
entry is an address (an address list), an error in it is reported once, by position, without a source line; in
any file a message quotes at most MAX_QUOTED characters of a token, and a source line is shown at most
MAX_SHOWN_COLUMNS wide.

Item 15: `nftc lab` without root says it needs root (exit 1); a signal stops any command with 128 + its number,
and the lab tears itself down first and says so in one line.
"""

from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from nftc.cli import main as cli
from nftc.lab import session as lab
from nftc.language.diagnostics import MAX_QUOTED

from helpers import readable_nftc, write_files

SECRET = "S3CR3T-h4sh-w0rd"
MB = 1_000_000
BOUND = 2048  # bytes of standard error, whatever the file
ROOT = pathlib.Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "rulesets" / "minimal.zfw"

# Files nftc may be pointed at by mistake or on purpose: each holds SECRET, none is a policy or an address list.
SECRET_FILES = {
    "shadow": f"root:$6$salt${SECRET}:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
              f"mail:{SECRET}:19000:0:99999:7:::\n".encode(),
    "environ": f"PATH=/usr/bin\0TOKEN={SECRET}\0HOME=/root\0".encode(),
    "private-key": f"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk{SECRET}AAAA\n"
                   "-----END OPENSSH PRIVATE KEY-----\n".encode(),
    "config": f"# database\nserver = db.example.org\npassword = {SECRET}\n".encode(),  # 'server' ~ 'service'
    "binary": b"\x7fELF\x02\x01\x01\x00" + SECRET.encode() + b"\xff\xfe\x00\n",
    "one-mb-token": ("x" * (MB // 2) + SECRET + "x" * (MB // 2)).encode(),
    "comments-then-secret": f"# a comment\n\n   # another\n{SECRET}\n".encode(),
    "latin-1-comment": f"# {SECRET} caf\xe9\n".encode("latin-1"),  # no entry at all, and not UTF-8
}
# How a file reaches the compiler: as the policy itself, included by a policy, or as a zone's address file.
PLACEMENTS = {
    "policy": lambda name: {name: None},
    "include": lambda name: {"policy.zfw": f'zone lan = 10.0.0.0/8\ninclude "{name}"\nallow lan -> ssh\n', name: None},
    "address-file": lambda name: {"policy.zfw": f'zone lan = file "{name}"\nallow lan -> ssh\n', name: None},
}


def compile_stderr(files: dict[str, str | bytes], directory: pathlib.Path, capsys, *options: str) -> tuple[int, str]:
    policy = write_files(directory, files)
    code = cli.main(["compile", *options, str(policy)])
    captured = capsys.readouterr()
    assert captured.out == ""
    return code, captured.err


@pytest.mark.parametrize("placement", PLACEMENTS)
@pytest.mark.parametrize("secret_file", SECRET_FILES)
def test_item14_a_file_that_is_not_a_policy_is_never_quoted(secret_file, placement, tmp_path, capsys):
    files = {name: SECRET_FILES[secret_file] if content is None else content
             for name, content in PLACEMENTS[placement]("secret").items()}
    code, stderr = compile_stderr(files, tmp_path, capsys)
    assert code == 2
    assert SECRET not in stderr and SECRET[:8] not in stderr
    assert len(stderr.encode()) < BOUND, stderr[:BOUND]
    assert len(stderr.splitlines()) == 2, "one error, no source line, one hint"
    assert stderr.startswith(f"{tmp_path / 'secret'}:"), stderr


def test_item14_the_whole_message_for_an_included_shadow_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"policy.zfw": 'include "shadow"\n', "shadow": SECRET_FILES["shadow"]})
    assert cli.main(["compile", "policy.zfw"]) == 2
    assert capsys.readouterr().err == (
        "shadow:1:1: error: not a policy: its first statement does not start with a keyword\n"
        "  hint: a statement starts with zone, service, group, allow, deny, reject, assert, include, table, "
        "log drops, icmp echo, rpfilter, host or zimbra (nftc shows nothing of a file that is not a policy)\n")


def test_item14_the_whole_message_for_a_shadow_file_as_addresses(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"policy.zfw": 'zone z = file "shadow"\n', "shadow": SECRET_FILES["shadow"]})
    assert cli.main(["compile", "policy.zfw"]) == 2
    assert capsys.readouterr().err == (
        "shadow:1:1: error: not an address list: its first entry is not an IPv4 or IPv6 address or CIDR\n"
        "  hint: an address file holds one address or CIDR per line, and # comments "
        "(nftc shows nothing of a file that is not an address list)\n")


def test_item14_a_misspelled_first_keyword_gets_a_hint_naming_only_the_keyword(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_files(tmp_path, {"policy.zfw": "# my site\nzome lan = 192.168.1.0/24\n"})
    assert cli.main(["compile", "policy.zfw"]) == 2
    assert capsys.readouterr().err == (
        "policy.zfw:2:1: error: not a policy: its first statement does not start with a keyword\n"
        "  hint: did you mean 'zone'? (nftc shows nothing of a file that is not a policy)\n")


# A policy or an address list that shows what it is keeps its full diagnostics, bounded: a 1 MB token in it.
LONG = "b" * MB
BOUNDED = {
    "unexpected-token": {"policy.zfw": f"zone a = any\nallow a -> ssh {LONG}\n"},
    "name": {"policy.zfw": f"zone a = any\nzone {LONG} = 10.0.0.0/8\n"},
    "interface": {"policy.zfw": f"zone a = iface e{LONG}\n"},
    "address": {"policy.zfw": f"zone a = 10.{'1' * MB}\n"},
    "port": {"policy.zfw": f"service web = tcp {'9' * MB}\n"},
    "range": {"policy.zfw": f"service web = tcp 1-{'7' * MB}\n"},
    "rate": {"policy.zfw": f"icmp echo {'0' * MB}/second\n"},
    "burst": {"policy.zfw": f"icmp echo 10/second burst {'5' * MB}\n"},
    "string": {"policy.zfw": f'service web = tcp 80 "{LONG}"\n'},
    "address-file-line": {"policy.zfw": 'zone a = file "list.txt"\n', "list.txt": f"10.0.0.0/8\n10.{LONG}\n"},
    "address-file-scope": {"policy.zfw": 'zone a = file "list.txt"\n', "list.txt": f"10.0.0.0/8\nfe80::1%{LONG}\n"},
}


@pytest.mark.parametrize("case", BOUNDED)
def test_item14_a_one_megabyte_token_gives_a_bounded_message(case, tmp_path, capsys):
    code, stderr = compile_stderr(BOUNDED[case], tmp_path, capsys)
    assert code == 2, stderr[:500]
    assert len(stderr.encode()) < BOUND, stderr[:BOUND]
    assert "internal error" not in stderr
    head = stderr.split("\n", 1)[0]
    assert ": error: " in head and len(head) < len(str(tmp_path)) + 200, head


def test_item14_a_quoted_token_is_cut_after_max_quoted_characters(tmp_path, capsys):
    _, stderr = compile_stderr({"policy.zfw": f"zone a = any\nallow a -> ssh {'c' * 100}\n"}, tmp_path, capsys)
    assert f"unexpected '{'c' * MAX_QUOTED}...'" in stderr


def test_item14_an_address_list_that_shows_it_is_one_keeps_every_error(tmp_path, capsys):
    """The other side of the rule: a real list with typos gets each one, with its line and a caret."""
    _, stderr = compile_stderr({"policy.zfw": 'zone a = file "list.txt"\n',
                                "list.txt": "10.0.0.0/8\nmail.example.org\n10.0.0.300\n"}, tmp_path, capsys)
    assert "list.txt:2:1: error: 'mail.example.org' is not an IPv4 or IPv6 address or CIDR" in stderr
    assert "list.txt:3:1: error: '10.0.0.300' is not" in stderr
    assert "\n  mail.example.org\n  ^~~~" in stderr


# Item 15.


def test_item15_interrupting_any_command_exits_130_with_one_line(monkeypatch, fresh_cli_parser, capsys):
    def interrupted(args):
        raise KeyboardInterrupt
    monkeypatch.setattr("nftc.cli.compile._compile", interrupted)
    assert cli.main(["compile", str(MINIMAL)]) == 130
    assert capsys.readouterr().err == "nftc: compile: interrupted\n"


def _as_unprivileged(command: list[str]) -> list[str]:
    """Root runs it as nobody (the test runs as root in CI); anyone else runs it as they are."""
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]


@pytest.mark.slow  # two child processes under setpriv: 0.3 s
@pytest.mark.parametrize("arguments", [[str(MINIMAL)], ["--down", "nftclab1x0"]], ids=["policy", "down"])
def test_item15_lab_without_root_says_it_needs_root(arguments):
    """nobody runs a world-readable copy of nftc with the distribution's python3: the clone and its venv may live
    where nobody cannot read (/root, as in issue 12's fresh-root run of the quick start)."""
    with readable_nftc(MINIMAL) as (python, path, copies):
        arguments = [str(copies[MINIMAL]) if argument == str(MINIMAL) else argument for argument in arguments]
        result = subprocess.run(_as_unprivileged([python, "-B", "-m", "nftc", "lab", *arguments]), capture_output=True,
                                text=True, timeout=60, cwd="/", env={"PATH": os.environ["PATH"], "HOME": "/nonexistent",
                                                                     "LC_ALL": "C.UTF-8", "PYTHONPATH": path})
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "nftc: lab: needs root (it creates network namespaces); run it with sudo\n"


@pytest.mark.kernel
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")],
                         ids=["ctrl-c", "sigterm"])
def test_item15_a_signal_during_the_lab_tears_it_down_and_says_so_in_one_line(sig, code, word):
    """Ctrl-C is sent to the whole process group, as a terminal does: the lab's children get it too."""
    process = subprocess.Popen([sys.executable, "-m", "nftc", "lab", str(MINIMAL)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    prefix = f"{lab.PREFIX_STEM}{process.pid}x0"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(lab.lab_namespaces(prefix)) < 2 and process.poll() is None:
            time.sleep(0.05)
        assert len(lab.lab_namespaces(prefix)) >= 2, "the lab did not start"
        time.sleep(0.5)  # into the building: wiring, listeners, loading
        os.killpg(process.pid, sig)
        out, err = process.communicate(timeout=60)
        left = lab.lab_namespaces(prefix), [d for d in os.listdir(tempfile.gettempdir()) if d.startswith(f"{prefix}-")]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        lab.tear_down(prefix)  # only if the test failed: the lab had to do it
    assert (process.returncode, out, err) == (code, "", f"nftc: lab: {word}; the lab was torn down\n")
    assert left == ([], [])
