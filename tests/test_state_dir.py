"""Issue 7, items 4, 5, 6 and 12: the state directory is checked, never trusted blindly.

Item 4: the directory, every directory on the way to it and every file in it must belong to the user running nftc
(root in production) and not be writable by others; links are never followed; names read back must pass the
language's own rules. Item 5: a relative state dir is made absolute first. Item 6: one lock per network
namespace, under /run/nftc, serialises every nftc that changes the kernel. Item 12: temporaries a killed apply
left are removed at the next run.

The unit tests run as any user (the owner they expect is whoever runs them) with the host lock in tmp_path; the
kernel tests run nftc as root inside a namespace of their own and check the ruleset is left byte-identical.
"""

from __future__ import annotations

import json
import os
import pathlib
import stat
import subprocess
import sys
import threading

import pytest

from apply_helpers import MINIMAL, SITE, Server, lab, server, wait_until  # noqa: F401 (fixtures)
from nftc.lab.netns import Lab
from nftc.language.reserved import table_name_problem
from nftc.system.state import Lock, StateDir, StateError, host_lock_path, state_dir_path

NOBODY = 65534
VICTIM_TEXT = "precious: nftc must never write here\n"


@pytest.fixture
def host_dir(tmp_path) -> str:
    return str(tmp_path / "run")


@pytest.fixture
def victim(tmp_path) -> pathlib.Path:
    path = tmp_path / "victim"
    path.write_text(VICTIM_TEXT)
    return path


def made_state(tmp_path) -> StateDir:
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    return state


def refusal(call) -> str:
    """The one-line message of the StateError `call` raises."""
    with pytest.raises(StateError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


# Item 5: absolute paths.


def test_item5_the_state_dir_is_absolute_whatever_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NFTC_STATE_DIR", raising=False)
    assert state_dir_path("state") == str(tmp_path / "state")
    assert state_dir_path("a/../state/") == str(tmp_path / "state")
    monkeypatch.setenv("NFTC_STATE_DIR", "from-env")
    assert state_dir_path(None) == str(tmp_path / "from-env")


# Item 4: owner and mode of the directory and of the directories on the way.


def test_item4_a_new_state_dir_is_0700_and_its_files_0600(tmp_path):
    state = StateDir(str(tmp_path / "deep" / "er" / "state"))
    state.ensure()
    state.write_json("applied.json", {"table": "zfw"})
    assert stat.S_IMODE(os.stat(state.path).st_mode) == 0o700
    assert not stat.S_IMODE(os.stat(tmp_path / "deep").st_mode) & 0o022
    assert stat.S_IMODE(os.stat(state.file("applied.json")).st_mode) == 0o600
    assert os.listdir(state.path) == ["applied.json"]
    assert state.read_json("applied.json") == {"table": "zfw"}


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777], ids=oct)
def test_item4_a_state_dir_others_can_write_is_one_line_naming_it_and_the_fix(tmp_path, mode):
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(mode)
    message = refusal(StateDir(str(path)).ensure)
    assert f"state directory {path} is writable by group or others (mode {mode:04o})" in message
    assert f"chmod 700 {path}" in message
    assert refusal(lambda: StateDir(str(path)).read_json("applied.json")) == message  # status and diff too


def test_item4_a_directory_on_the_way_others_can_write_is_refused_unless_sticky(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    state = StateDir(str(shared / "state"))
    message = refusal(state.ensure)
    assert f"{shared} is writable by group or others (mode 0777)" in message
    assert f"chmod go-w {shared}" in message and not (shared / "state").exists()
    shared.chmod(0o1777)  # like /tmp: others may add entries, not replace ours
    state.ensure()
    assert state.exists()


def test_item4_exists_checks_without_creating(tmp_path):
    state = StateDir(str(tmp_path / "missing"))
    assert not state.exists()
    assert state.read_json("applied.json") is None and not state.remove("pending.json")
    assert not (tmp_path / "missing").exists()


# Item 4: files are never followed through links, are regular, single-linked, ours and not writable by others.


def test_item4_a_symlink_in_the_state_dir_is_refused_and_its_target_untouched(tmp_path, victim, host_dir):
    state = made_state(tmp_path)
    for name in ("applied.json", "lock", "guard.log"):
        os.symlink(victim, state.file(name))
    assert "symbolic link" in refusal(lambda: state.read_json("applied.json"))

    def take_lock():
        with Lock(state, 0, host_dir=host_dir):
            pass
    assert f"{state.file('lock')} is a symbolic link" in refusal(take_lock)
    assert f"{state.file('guard.log')} is a symbolic link" in refusal(lambda: state.open_log("guard.log"))
    assert victim.read_text() == VICTIM_TEXT


def test_item4_a_planted_temporary_name_is_not_followed_when_writing(tmp_path, victim):
    state = made_state(tmp_path)
    os.symlink(victim, state.file(f".applied.json.tmp{os.getpid()}"))
    state.write_json("applied.json", {"table": "zfw"})
    assert victim.read_text() == VICTIM_TEXT
    assert state.read_json("applied.json") == {"table": "zfw"}
    assert not os.path.lexists(state.file(f".applied.json.tmp{os.getpid()}"))


def test_item4_a_hard_link_to_another_file_is_refused(tmp_path, victim):
    state = made_state(tmp_path)
    os.link(victim, state.file("applied.json"))
    assert "hard links" in refusal(lambda: state.read_json("applied.json"))


def test_item4_a_file_others_can_write_is_one_line_naming_it_and_the_fix(tmp_path):
    state = made_state(tmp_path)
    state.write_json("applied.json", {})
    os.chmod(state.file("applied.json"), 0o666)
    message = refusal(lambda: state.read_json("applied.json"))
    assert message.startswith(f"{state.file('applied.json')} is writable by group or others (mode 0666)")
    assert f"chmod 600 {state.file('applied.json')}" in message


def test_item4_a_fifo_or_directory_where_a_file_belongs_is_refused_without_hanging(tmp_path):
    state = made_state(tmp_path)
    os.mkfifo(state.file("applied.json"))
    os.mkdir(state.file("pending.json"))
    outcomes = []
    reader = threading.Thread(target=lambda: outcomes.extend(
        refusal(lambda: state.read_json(name)) for name in ("applied.json", "pending.json")), daemon=True)
    reader.start()
    reader.join(timeout=10)  # a blocking open of the FIFO would hang here
    assert [o.endswith("is not a regular file: remove it") for o in outcomes] == [True, True]


def test_item4_table_names_read_back_follow_the_language_rules():
    """One rule for the `table` statement and for every name read back from the state directory."""
    assert table_name_problem("zfw") is None
    assert table_name_problem("office_fw") is None
    for forged in ("nat", "filter", "ip", "INET", "zfw\ndelete table ip nat", "zfw;", "", "9x", "x" * 33):
        assert table_name_problem(forged), forged


# Item 12: stale temporaries.


def test_item12_temporaries_other_processes_left_go_when_the_lock_is_taken(tmp_path, victim, host_dir):
    state = made_state(tmp_path)
    stale, ours, linked = ".applied.json.tmp99999", f".pending.json.tmp{os.getpid()}", ".snapshot.nft.tmp99998"
    for name in (stale, ours, "notes.tmp1"):
        pathlib.Path(state.file(name)).write_text("partial")
    os.symlink(victim, state.file(linked))
    with Lock(state, 0, host_dir=host_dir):
        left = sorted(os.listdir(state.path))
    assert left == sorted([ours, linked, "notes.tmp1", "lock"])
    assert victim.read_text() == VICTIM_TEXT


# Item 6: the host lock.


def test_item6_the_host_lock_is_taken_first_and_names_its_holder(tmp_path, host_dir):
    one, other = StateDir(str(tmp_path / "one")), StateDir(str(tmp_path / "other"))
    one.ensure()
    other.ensure()

    def take_other():
        with Lock(other, 0.05, host_dir=host_dir):
            pass
    with Lock(one, 0, host_dir=host_dir):
        message = refusal(take_other)
    assert message.startswith(f"another nftc process (pid {os.getpid()}) holds {host_lock_path(host_dir)}; gave up")
    assert host_lock_path(host_dir).endswith(f"/netns-{os.stat('/proc/self/ns/net').st_ino}.lock")
    take_other()
    assert stat.S_IMODE(os.stat(host_dir).st_mode) == 0o700


# Kernel tests: nftc itself, as root in a namespace, against the attacks of the issue.


def ruleset(server: Server) -> str:
    return server.nft("list", "ruleset")


def one_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def applied_twice(server: Server) -> str:
    """SITE then MINIMAL applied (a snapshot of SITE on disk); the ruleset that leaves."""
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    return ruleset(server)


UNTRUSTED_DIRECTORIES = {
    "owned-by-nobody": lambda state: os.chown(state, NOBODY, NOBODY),
    "group-writable": lambda state: os.chmod(state, 0o770),
    "parent-world-writable": lambda state: os.chmod(state.parent, 0o777),
}


@pytest.mark.kernel
@pytest.mark.parametrize("case", sorted(UNTRUSTED_DIRECTORIES))
def test_item4_an_untrusted_state_dir_is_one_line_naming_the_fix_and_the_kernel_is_untouched(server, tmp_path,
                                                                                               case):
    server.state = tmp_path / "parent" / "state"
    before = applied_twice(server)
    UNTRUSTED_DIRECTORIES[case](server.state)
    for command in (("apply", server.policy("site.zfw", SITE)), ("rollback",), ("status",)):
        line = one_line(server.nftc(*command))
        assert "state directory" in line and str(server.state) in line and "fix with" in line, line
    assert ruleset(server) == before


UNTRUSTED_FILES = {  # file: (damage, the command that must refuse it)
    "lock": (lambda path: os.chown(path, NOBODY, NOBODY), "apply"),
    "applied.json": (lambda path: os.chown(path, NOBODY, NOBODY), "status"),
    "snapshot.json": (lambda path: os.chmod(path, 0o666), "rollback"),
}


@pytest.mark.kernel
@pytest.mark.parametrize("name", sorted(UNTRUSTED_FILES))
def test_item4_a_file_owned_by_nobody_or_writable_by_others_is_refused(server, name):
    before = applied_twice(server)
    damage, command = UNTRUSTED_FILES[name]
    damage(server.state / name)
    args = (command, server.policy("site.zfw", SITE)) if command == "apply" else (command,)
    line = one_line(server.nftc(*args))
    assert str(server.state / name) in line and "fix with" in line, line
    assert ruleset(server) == before


@pytest.mark.kernel
@pytest.mark.parametrize("name, args", [("lock", ("apply",)), ("guard.log", ("apply", "--confirm", "1"))],
                         ids=["lock", "guard-log"])
def test_item4_a_symlink_in_the_state_dir_leaves_its_target_and_the_kernel_alone(server, victim, name, args):
    before = applied_twice(server)
    link = server.state / name
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    line = one_line(server.nftc(*args[:1], server.policy("site.zfw", SITE), *args[1:]))
    assert f"{link} is a symbolic link" in line, line
    assert victim.read_text() == VICTIM_TEXT
    assert ruleset(server) == before


FOREIGN = """\
table ip nat {
\tchain postrouting {
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip saddr 10.99.0.0/24 masquerade
\t}
}
table inet nat {
\tchain c {
\t}
}
"""
FORGERIES = {"family-ip": ("ip", "nat"), "common-name": ("inet", "nat"), "keyword": ("inet", "ip"),
             "newline": ("inet", "zfw {}\ndelete table ip nat\ntable inet zfw")}


def forged(data, family: str, table: str):
    """Every family and table in a record (at any depth, whatever its layout) replaced."""
    if isinstance(data, dict):
        return {key: family if key == "family" else table if key == "table" else forged(value, family, table)
                for key, value in data.items()}
    if isinstance(data, list):
        return [forged(item, family, table) for item in data]
    return data


@pytest.mark.kernel
@pytest.mark.parametrize("case", sorted(FORGERIES))
def test_item4_forged_names_in_the_records_are_refused_and_foreign_tables_stay_byte_identical(server, case):
    server.nft("-f", "-", input=FOREIGN)
    foreign = server.nft("list", "table", "ip", "nat") + server.nft("list", "table", "inet", "nat")
    assert server.nftc("apply", str(MINIMAL)).returncode == 0  # the snapshot says: no zfw table before
    before = ruleset(server)
    family, table = FORGERIES[case]
    for name in ("snapshot.json", "applied.json"):
        path = server.state / name
        path.write_text(json.dumps(forged(json.loads(path.read_text()), family, table)))
    rollback = one_line(server.nftc("rollback"))
    assert "snapshot.json" in rollback or "applied.json" in rollback, rollback
    status = server.nftc("status")
    assert str(server.state / "applied.json") in one_line(status) and "nat" not in status.stdout
    assert server.nft("list", "table", "ip", "nat") + server.nft("list", "table", "inet", "nat") == foreign
    assert ruleset(server) == before


@pytest.mark.kernel
@pytest.mark.parametrize("how", ["option", "variable"])
def test_item5_a_relative_state_dir_given_from_another_directory_is_rolled_back_by_the_guard(server, tmp_path, how):
    work = tmp_path / "work"
    work.mkdir()
    relative = ["--state-dir", "state"] if how == "option" else []
    variable = ["NFTC_STATE_DIR=state"] if how == "variable" else []
    applied = server.lab.exec(server.ns, "env", "-C", str(work), "-u", "SSH_CONNECTION", *variable, sys.executable,
                              "-m", "nftc", "apply", str(MINIMAL), "--confirm", "1", *relative, check=False,
                              timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert server.digest() is not None and (work / "state" / "pending.json").exists()
    assert wait_until(lambda: server.digest() is None), (work / "state" / "guard.log").read_text()


HOLD_HOST_LOCK = """\
import fcntl, os, sys, time
from nftc.system.state import host_lock_path
path = host_lock_path()
os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, b"%d\\n" % os.getpid())
print(os.getpid(), path, flush=True)
time.sleep(60)
"""


@pytest.mark.kernel
def test_item6_one_lock_per_network_namespace_serialises_two_state_dirs(server, tmp_path):
    holder = subprocess.Popen(["ip", "netns", "exec", server.ns, sys.executable, "-c", HOLD_HOST_LOCK],
                              stdout=subprocess.PIPE, text=True)
    try:
        pid, path = holder.stdout.readline().split()
        server.state = tmp_path / "another-state-dir"
        blocked = server.nftc("apply", str(MINIMAL), "--wait", "0.5")
        assert f"another nftc process (pid {pid}) holds {path}" in one_line(blocked)
        assert server.digest() is None
        with Lab() as other_lab:  # another namespace: another lock, not held
            elsewhere = Server(other_lab, tmp_path / "elsewhere")
            assert elsewhere.nftc("apply", str(MINIMAL), "--wait", "0.5").returncode == 0
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert server.nftc("apply", str(MINIMAL), "--wait", "0.5").returncode == 0


@pytest.mark.kernel
def test_item12_a_temporary_a_killed_apply_left_is_gone_after_the_next_apply(server):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    stale = server.state / ".applied.json.tmp99999"
    stale.write_text("half a record")
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    assert not stale.exists() and (server.state / "applied.json").exists()
