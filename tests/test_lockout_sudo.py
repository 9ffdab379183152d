"""Issue 7 item 19: the lockout guard finds the admin's SSH client under sudo, `sudo -i` and `su -`.

sudo's `env_reset` (Debian's default), `sudo -i` and `su -` drop $SSH_CONNECTION from the command's environment,
so `sudo nftc apply` (the README's own command) used to run with the guard silently off. sudo and su stay alive
as the command's parents with the caller's environment, which root reads in /proc/PID/environ.

The kernel tests go through the real `sudo` and `su` (scripts/setup.sh installs sudo), inside a namespace of
their own: the ancestors outside it (pytest, the shell that ran it) are never read.
"""

from __future__ import annotations

import os
import pty
import select
import shlex
import shutil
import signal
import subprocess
import sys
import time

import pytest

from apply_helpers import lab, server  # noqa: F401  (fixtures)
from helpers import unavailable
from nftc.system.lockout import Ancestor, ancestors, find_admin

CLIENT = "10.99.0.5 50000 10.99.0.1 22"
ORIGIN = "$SSH_CONNECTION of sudo (pid "
DROPS_IT = "zone internet = any\nzone lan = 10.99.0.0/24\nallow internet -> smtp\nallow lan -> smtp\n"
ALLOWS_IT = "zone internet = any\nzone lan = 10.99.0.0/24\nallow internet -> smtp\nallow lan -> smtp, ssh\n"
GUARD_OFF = "lockout guard is off"


# Without a kernel: where the endpoint is found, and what the message says it came from.


def test_item19_the_nearest_ancestor_with_ssh_connection_wins_and_is_named():
    found = find_admin({"HOME": "/root"}, [Ancestor(41, "bash", b"HOME=/root\0PATH=/bin\0"),
                                           Ancestor(40, "sudo", b"USER=a\0SSH_CONNECTION=" + CLIENT.encode() + b"\0"),
                                           Ancestor(12, "bash", b"SSH_CONNECTION=192.0.2.1 1 192.0.2.2 22\0")])
    assert (str(found.address), found.port, found.origin) == ("10.99.0.5", 22, "$SSH_CONNECTION of sudo (pid 40)")


def test_item19_the_own_environment_comes_first_and_ancestors_are_not_read_then():
    def never():
        raise AssertionError("an ancestor was read although the own environment had the client")
        yield
    found = find_admin({"SSH_CONNECTION": "2001:db8::5 50000 2001:db8::1 2222"}, never())
    assert (str(found.address), found.port, found.origin) == ("2001:db8::5", 2222, "$SSH_CONNECTION")


def test_item19_ssh_client_is_used_where_only_it_is_kept():
    found = find_admin({}, [Ancestor(7, "su", b"SSH_CLIENT=10.99.0.5 50000 2200\0")])
    assert (str(found.address), found.port, found.origin) == ("10.99.0.5", 2200, "$SSH_CLIENT of su (pid 7)")


def test_item19_malformed_or_undecodable_values_are_skipped():
    assert find_admin({"SSH_CONNECTION": "garbage"}, [Ancestor(9, "sudo", b"SSH_CONNECTION=\xff\xfe 1 2 3\0=\0x"),
                                                      Ancestor(8, "sh", b"SSH_CLIENT=10.0.0.1 5\0")]) is None


def _fake_process(proc, pid: int, name: str, ppid: int, namespace: str, environ: bytes) -> None:
    (proc / str(pid) / "ns").mkdir(parents=True)
    (proc / str(pid) / "ns" / "net").symlink_to(namespace)
    (proc / str(pid) / "status").write_text(f"Name:\t{name}\nUmask:\t0022\nPid:\t{pid}\nPPid:\t{ppid}\n")
    (proc / str(pid) / "environ").write_bytes(environ)


def test_item19_the_walk_goes_up_the_parents_and_stops_at_the_network_namespace_edge(tmp_path):
    """An SSH session outside the namespace nftc loads into does not pass through that ruleset."""
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "net").symlink_to("net:[2]")
    _fake_process(proc, 30, "sudo", 20, "net:[2]", b"SSH_CONNECTION=x\0")
    _fake_process(proc, 20, "bash", 10, "net:[2]", b"")
    _fake_process(proc, 10, "sshd", 1, "net:[1]", b"SSH_CONNECTION=" + CLIENT.encode())
    _fake_process(proc, 1, "init", 0, "net:[2]", b"")
    walked = list(ancestors(30, str(proc)))
    assert [(a.pid, a.name, a.environ) for a in walked] == [(30, "sudo", b"SSH_CONNECTION=x\0"), (20, "bash", b"")]


def test_item19_the_walk_is_bounded_even_on_a_cycle(tmp_path):
    proc = tmp_path / "proc"
    (proc / "self" / "ns").mkdir(parents=True)
    (proc / "self" / "ns" / "net").symlink_to("net:[2]")
    _fake_process(proc, 5, "a", 6, "net:[2]", b"")
    _fake_process(proc, 6, "b", 5, "net:[2]", b"")
    assert 0 < len(list(ancestors(5, str(proc)))) <= 64


# Through the real sudo and su, in a namespace.


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        unavailable(f"{tool} is not installed (scripts/setup.sh test installs it)")
    return path


def _apply(server, policy: str) -> list[str]:
    return [sys.executable, "-I", "-B", "-m", "nftc", "apply", policy, "--state-dir", str(server.state)]


def _run(server, *command: str) -> subprocess.CompletedProcess:
    """In the namespace, with no terminal (stdin /dev/null, output captured)."""
    return subprocess.run(["ip", "netns", "exec", server.ns, *command], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120)


def _as_root_via(via: str, command: list[str]) -> list[str]:
    """The ways an admin becomes root that drop $SSH_CONNECTION from the command's environment."""
    return {"sudo": [_need("sudo"), *command],
            "sudo -i": [_need("sudo"), "-i", *command],
            "su -": [_need("su"), "-", "root", "-c", shlex.join(command)]}[via]


@pytest.mark.kernel
def test_item19_sudo_here_drops_ssh_connection_from_the_command(server):
    """The premise of the tests below: without it they would pass with the guard reading its own environment."""
    seen = _run(server, "env", f"SSH_CONNECTION={CLIENT}", _need("sudo"), "env")
    assert seen.returncode == 0, seen.stderr
    assert "SSH_CONNECTION" not in seen.stdout


@pytest.mark.kernel
@pytest.mark.parametrize("via,origin", [("sudo", ORIGIN), ("sudo -i", ORIGIN), ("su -", "$SSH_CONNECTION of su (pid ")])
def test_item19_a_policy_that_drops_the_admin_is_refused_through(server, via, origin):
    policy = server.policy("drops.zfw", DROPS_IT)
    refused = _run(server, "env", f"SSH_CONNECTION={CLIENT}", *_as_root_via(via, _apply(server, policy)))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "refusing: the admin connection from 10.99.0.5 to tcp port 22" in refused.stderr
    assert origin in refused.stderr and "zone 'lan'" in refused.stderr
    assert server.digest() is None


@pytest.mark.kernel
@pytest.mark.parametrize("via", ["sudo", "sudo -i", "su -"])
def test_item19_a_policy_that_lets_the_admin_in_is_applied_through(server, via):
    policy = server.policy("allows.zfw", ALLOWS_IT)
    applied = _run(server, "env", f"SSH_CONNECTION={CLIENT}", *_as_root_via(via, _apply(server, policy)))
    assert applied.returncode == 0, applied.stderr
    assert server.digest() is not None and GUARD_OFF not in applied.stderr


@pytest.mark.kernel
def test_item19_an_ssh_session_outside_the_namespace_is_not_checked(server):
    """`sudo ip netns exec NS nftc apply` from an SSH session: that session does not cross NS's ruleset."""
    policy = server.policy("drops.zfw", DROPS_IT)
    applied = subprocess.run(["env", f"SSH_CONNECTION={CLIENT}", _need("sudo"), "ip", "netns", "exec", server.ns,
                              *_apply(server, policy)], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=120)
    assert applied.returncode == 0, applied.stderr
    assert server.digest() is not None


def _on_terminal(command: list[str], seconds: float = 60) -> tuple[int, str]:
    """Run `command` with a pseudo-terminal as its stdin, stdout, stderr and controlling terminal."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(command[0], command)
        finally:
            os._exit(127)
    output, deadline = b"", time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: every copy of the terminal's other end is closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(fd)
    return _reap(pid, deadline), output.decode(errors="replace")


def _reap(pid: int, deadline: float) -> int:
    """The exit code of `pid`, killing it if it outlives the deadline."""
    while True:
        reaped, status = os.waitpid(pid, os.WNOHANG)
        if reaped:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        time.sleep(0.05)


@pytest.mark.kernel
def test_item19_on_a_terminal_without_any_ssh_client_the_guard_says_it_is_off(server):
    policy = server.policy("drops.zfw", DROPS_IT)
    code, output = _on_terminal(["/usr/bin/env", "ip", "netns", "exec", server.ns, "env", "-u", "SSH_CONNECTION",
                                 "-u", "SSH_CLIENT", _need("sudo"), *_apply(server, policy)])
    assert code == 0, output
    assert f"nftc: apply: warning: {GUARD_OFF}: no SSH client found" in output
    assert "--admin-from ADDR[:PORT]" in output


@pytest.mark.kernel
def test_item19_without_a_terminal_the_guard_off_is_not_printed(server):
    """systemd at boot, Ansible, cron: nobody reads a warning on every run; the README and docs/apply.md say so."""
    policy = server.policy("drops.zfw", DROPS_IT)
    applied = _run(server, "env", "-u", "SSH_CONNECTION", "-u", "SSH_CLIENT", _need("sudo"), *_apply(server, policy))
    assert applied.returncode == 0, applied.stderr
    assert GUARD_OFF not in applied.stderr and server.digest() is not None
