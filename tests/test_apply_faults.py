"""Faults during apply and rollback: each leaves the live ruleset byte-identical (or, for a kill, exactly the old or
exactly the new table) and ends in one clear line and a non-zero exit.

Covered elsewhere (tests/test_apply.py): the kernel rejecting the transaction, a lock held by a dead process, a
plain file where the state directory should be, missing python3-nftables bindings.

Every nftc command runs inside its own network namespace; mounts (a full tmpfs, a read-only bind) are made
inside `unshare --mount` of that one command, so they vanish with it and never reach the host's mount namespace.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from apply_helpers import FAULTY, MINIMAL, SITE, Server, lab, server, wait_until  # noqa: F401 (fixtures)
from nftc.lab.netns import Lab

pytestmark = pytest.mark.kernel

KILL_DELAYS = (0.0, 0.02, 0.05, 0.1, 0.2)  # seconds after start; an apply of these policies takes ~0.15 s
SHARES_OF_AN_APPLY = (0.5, 0.7, 0.8, 0.9, 0.95)  # of the measured duration: around the load, on any machine
CONFIRM_SECONDS = "2"


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def ruleset(server: Server) -> str:
    return server.ruleset()  # in name order: an apply in place lists the same table in another order


def old_and_new(server: Server) -> tuple[str, str]:
    """The ruleset with SITE loaded, then with MINIMAL loaded (left live): the two a killed apply may leave."""
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    new = ruleset(server)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    return ruleset(server), new


def start_apply(server: Server, policy: str, *options: str, faults: tuple[str, ...] = ()) -> subprocess.Popen:
    """`nftc apply` in the namespace, in a session of its own so one killpg reaches every process of it."""
    program = [str(FAULTY), *faults, "--"] if faults else ["-m", "nftc"]
    return subprocess.Popen(["ip", "netns", "exec", server.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-I", "-B",
                             *program, "apply", policy, *options, "--state-dir", str(server.state)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def kill_session(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def kill_after(server: Server, policy: str, delay: float, *options: str) -> None:
    process = start_apply(server, policy, *options)
    try:
        time.sleep(delay)
    finally:
        kill_session(process)


def apply_duration(server: Server, policy: str) -> float:
    """How long one uninterrupted apply takes here: the kill points are spread over it."""
    started = time.monotonic()
    process = start_apply(server, policy)
    assert process.wait(timeout=60) == 0
    return time.monotonic() - started


def kill_points(server: Server, policy: str) -> list[float]:
    duration = apply_duration(server, policy)
    return sorted(set(KILL_DELAYS) | {round(share * duration, 3) for share in SHARES_OF_AN_APPLY})


def test_apply_killed_at_any_point_leaves_the_old_or_the_new_table_and_frees_the_lock(server):
    old, new = old_and_new(server)
    site = server.policy("site.zfw", SITE)
    points = kill_points(server, site)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    for delay in points:
        kill_after(server, site, delay)
        assert ruleset(server) in (old, new), f"half a table after a kill at {delay} s"
        again = server.nftc("apply", str(MINIMAL), "--wait", "2")
        assert again.returncode == 0, (delay, again.stderr)
        assert ruleset(server) == old


def test_apply_killed_right_after_the_load_leaves_the_new_table_and_frees_the_lock(server):
    old, new = old_and_new(server)
    site = server.policy("site.zfw", SITE)
    process = start_apply(server, site, faults=("--pause-after-load", "30"))
    try:
        assert wait_until(lambda: ruleset(server) != old)
    finally:
        kill_session(process)
    assert ruleset(server) == new
    again = server.nftc("apply", str(MINIMAL), "--wait", "2")
    assert again.returncode == 0, again.stderr
    assert ruleset(server) == old


def guard_finished(server: Server) -> bool:
    """No rollback guard is left to act: no pending confirmation, or its guard never started or has exited."""
    pending = server.state / "pending.json"
    if not pending.exists():
        return True
    import json
    pid = json.loads(pending.read_text()).get("guard_pid")
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_confirm_apply_killed_at_any_point_is_back_to_the_old_table_after_the_deadline(tmp_path):
    """One namespace per kill point, so the deadlines run out together."""
    with contextlib.ExitStack() as stack:
        first = Server(stack.enter_context(Lab()), tmp_path / "measure")
        first.dir.mkdir()
        points = kill_points(first, first.policy("site.zfw", SITE))
        servers = []
        for index, delay in enumerate(points):
            server = Server(stack.enter_context(Lab()), tmp_path / f"point{index}")
            server.dir.mkdir()
            old, new = old_and_new(server)
            kill_after(server, server.policy("site.zfw", SITE), delay, "--confirm", CONFIRM_SECONDS)
            assert ruleset(server) in (old, new), f"half a table after a kill at {delay} s"
            servers.append((delay, server, old))
        for delay, server, old in servers:
            assert wait_until(lambda: guard_finished(server), seconds=20), delay
            assert ruleset(server) == old, f"not rolled back after a kill at {delay} s"
            again = server.nftc("apply", str(MINIMAL), "--wait", "2")
            assert again.returncode == 0, (delay, again.stderr)
            assert ruleset(server) == old


# The state directory: read-only, full.

BIG = SITE + "zone many = " + ", ".join(f"10.{i // 250}.{i % 250}.1" for i in range(3000)) + "\nallow many -> smtp\n"


def nftc_after_mount(server: Server, mount: str, *args: str) -> subprocess.CompletedProcess:
    """Run `mount` then nftc in a mount namespace of their own: the mount dies with the command."""
    command = f'{mount} && exec "$0" -m nftc "$@"'
    return server.lab.exec(server.ns, "env", "-u", "SSH_CONNECTION", "unshare", "--mount", "--propagation", "private",
                           "--", "sh", "-c", command, sys.executable, *args, "--state-dir", str(server.state),
                           check=False, timeout=120)


def read_only(directory: str) -> str:
    quoted = shlex.quote(directory)
    return f"mount --bind {quoted} {quoted} && mount -o remount,bind,ro {quoted}"


def tiny_tmpfs(directory: str, size: str, fill: bool) -> str:
    quoted = shlex.quote(directory)
    mount = f"mkdir -p {quoted} && mount -t tmpfs -o size={size},mode=0700 nftc-test {quoted}"
    return mount + (f" && {{ dd if=/dev/zero of={quoted}/filler bs=4k 2>/dev/null; true; }}" if fill else "")


def assert_refused_naming_the_state_dir(server: Server, result: subprocess.CompletedProcess, before: str) -> None:
    assert result.returncode == 1, result.stdout
    assert str(server.state) in one_line(result.stderr)
    assert ruleset(server) == before


def test_a_read_only_state_dir_refuses_before_changing_anything(server):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = ruleset(server)
    result = nftc_after_mount(server, read_only(str(server.state)), "apply", server.policy("site.zfw", SITE))
    assert_refused_naming_the_state_dir(server, result, before)
    assert "not writable" in result.stderr


@pytest.mark.parametrize("confirm", [(), ("--confirm", "30")], ids=["plain", "confirm"])
@pytest.mark.parametrize("size, fill, name, policy", [("16k", True, "site.zfw", SITE), ("24k", False, "big.zfw", BIG)],
                         ids=["full", "room-for-the-snapshot-not-the-new-script"])
def test_a_full_state_dir_refuses_before_changing_anything(server, confirm, size, fill, name, policy):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = ruleset(server)
    result = nftc_after_mount(server, tiny_tmpfs(str(server.state), size, fill=fill),
                              "apply", server.policy(name, policy), *confirm)
    assert_refused_naming_the_state_dir(server, result, before)
    assert "No space left on device" in result.stderr


# Rollback with a damaged snapshot.

CORRUPTIONS = {
    "nft-garbage": ("snapshot.nft", "this is not a ruleset {{{\n"),
    "nft-binary": ("snapshot.nft", b"\xff\xfe\x00\x01garbage\x80"),
    "nft-truncated": ("snapshot.nft", lambda text: text[: len(text) // 2]),
    "nft-other-commands": ("snapshot.nft", "flush ruleset\n"),
    "nft-missing": ("snapshot.nft", None),
    "nft-directory": ("snapshot.nft", ...),
    "json-garbage": ("snapshot.json", "{not json"),
    "json-binary": ("snapshot.json", b"\xff\xfe\x00\x01"),
    "json-truncated": ("snapshot.json", lambda text: text[: len(text) // 2]),
    "json-wrong-shape": ("snapshot.json", "[]\n"),
    "json-missing-keys": ("snapshot.json", '{"family": "inet"}\n'),
    "json-missing": ("snapshot.json", None),
}


def corrupt(path, damage) -> None:
    if damage is None:
        path.unlink()
    elif damage is ...:
        path.unlink()
        path.mkdir()
    elif callable(damage):
        path.write_text(damage(path.read_text()))
    elif isinstance(damage, bytes):
        path.write_bytes(damage)
    else:
        path.write_text(damage)


@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_rollback_with_a_damaged_snapshot_is_one_line_and_leaves_the_table_alone(server, case):
    old, _new = old_and_new(server)  # leaves MINIMAL live, its snapshot holding SITE
    name, damage = CORRUPTIONS[case]
    corrupt(server.state / name, damage)
    result = server.nftc("rollback")
    assert result.returncode == 1, result.stdout
    assert str(server.state) in one_line(result.stderr) and "snapshot" in result.stderr
    assert ruleset(server) == old


def test_rollback_without_any_snapshot_is_one_line_and_leaves_the_table_alone(server, tmp_path):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = ruleset(server)
    server.state = tmp_path / "fresh-state"
    result = server.nftc("rollback")
    assert result.returncode == 1
    assert "no snapshot" in one_line(result.stderr) and str(server.state) in result.stderr
    assert not server.state.exists()
    assert ruleset(server) == before
