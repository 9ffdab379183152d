"""nftc apply, confirm, rollback, diff and status on the real kernel, each test in its own namespaces.

Every nftc command runs as `ip netns exec NS python -m nftc ...` (the way the lab calls it); the state dir is
a temporary directory. Waits are bounded polls, never timing assertions.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

from apply_helpers import FAULTY, MINIMAL, SITE, compiled_digest, lab, server, wait_until  # noqa: F401 (fixtures)
from helpers import readable_nftc
from nftc.lab.netns import Lab

pytestmark = pytest.mark.kernel

SITE_WITH_IMAP = SITE + "allow lan -> imap\n"
FOREIGN = """\
table ip nat {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth9" masquerade
	}
}
table inet f2b {
	set banned {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}
	chain input {
		type filter hook input priority filter - 1; policy accept;
		ip saddr @banned drop
	}
}
"""


def test_apply_loads_the_table_and_status_names_policy_and_digest(server):
    result = server.nftc("apply", str(MINIMAL))
    assert result.returncode == 0, result.stderr
    assert server.digest() == compiled_digest(str(MINIMAL))
    status = server.nftc("status")
    assert status.returncode == 0, status.stderr
    assert str(MINIMAL) in status.stdout and compiled_digest(str(MINIMAL)) in status.stdout
    assert "drift:   none" in status.stdout
    assert "admin      ssh" in status.stdout


def test_a_rejected_transaction_leaves_the_previous_table_byte_identical(server):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = server.nft("list", "ruleset")
    site = server.policy("site.zfw", SITE)
    result = server.faulty(("--reject-with", "add rule inet zfw no_such_chain accept\n"), "apply", site)
    assert result.returncode == 1
    assert "kernel rejected" in result.stderr and "nothing was changed" in result.stderr
    assert server.nft("list", "ruleset") == before


def test_foreign_tables_are_byte_identical_after_apply_reload_and_rollback(server):
    server.nft("-f", "-", input=FOREIGN)
    foreign = server.nft("list", "table", "ip", "nat") + server.nft("list", "table", "inet", "f2b")
    site = server.policy("site.zfw", SITE)
    steps = [("apply", str(MINIMAL)), ("apply", site), ("apply", site), ("rollback",), ("rollback",)]
    for step in steps:
        result = server.nftc(*step)
        assert result.returncode == 0, (step, result.stderr)
        assert server.nft("list", "table", "ip", "nat") + server.nft("list", "table", "inet", "f2b") == foreign


def test_rollback_restores_the_table_before_the_last_apply(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    assert server.nftc("apply", site).returncode == 0
    assert server.nftc("rollback").returncode == 0
    assert server.digest() == compiled_digest(str(MINIMAL))


def test_an_unconfirmed_apply_is_rolled_back_at_the_deadline(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    result = server.nftc("apply", site, "--confirm", "2")
    assert result.returncode == 0, result.stderr
    assert server.digest() == compiled_digest(site)
    assert wait_until(lambda: server.digest() == compiled_digest(str(MINIMAL)))
    assert wait_until(lambda: "snapshot restored" in (server.state / "guard.log").read_text())
    assert server.nftc("confirm").returncode == 1


def test_an_unconfirmed_first_apply_is_rolled_back_to_no_table(server):
    assert server.nftc("apply", str(MINIMAL), "--confirm", "2").returncode == 0
    assert server.digest() is not None
    assert wait_until(lambda: "table inet zfw" not in server.nft("list", "tables"))


def test_a_confirmed_apply_is_kept(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    assert server.nftc("apply", site, "--confirm", "2").returncode == 0
    confirmed = server.nftc("confirm")
    assert confirmed.returncode == 0, confirmed.stderr
    assert wait_until(lambda: "nothing to do" in (server.state / "guard.log").read_text())
    assert server.digest() == compiled_digest(site)


def test_rollback_happens_even_when_apply_and_its_session_are_killed(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    apply = subprocess.Popen(
        ["ip", "netns", "exec", server.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-I", "-B", str(FAULTY),
         "--pause-after-load", "60", "--", "apply", site, "--confirm", "2", "--state-dir", str(server.state)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert wait_until(lambda: server.digest() == compiled_digest(site))
    finally:
        os.killpg(apply.pid, signal.SIGKILL)  # the apply process and everything in its session
        apply.wait(timeout=10)
    assert wait_until(lambda: server.digest() == compiled_digest(str(MINIMAL)))


def test_the_lockout_guard_refuses_a_policy_that_drops_the_ssh_session_and_force_overrides(server):
    ssh = {"SSH_CONNECTION": "203.0.113.9 50022 10.0.0.1 22"}
    refused = server.nftc("apply", str(MINIMAL), env=ssh)
    assert refused.returncode == 2
    assert "zone 'internet'" in refused.stderr and "allow internet -> ssh" in refused.stderr
    assert "zfw" not in server.nft("list", "tables")
    forced = server.nftc("apply", str(MINIMAL), "--force", env=ssh)
    assert forced.returncode == 0, forced.stderr
    assert server.digest() == compiled_digest(str(MINIMAL))


def test_the_lockout_guard_checks_the_admin_address_and_port_it_is_given(server):
    assert server.nftc("apply", str(MINIMAL), "--admin-from", "198.51.100.7").returncode == 0
    other_port = server.nftc("apply", str(MINIMAL), "--admin-from", "198.51.100.7:2222")
    assert other_port.returncode == 2 and "zone 'admin'" in other_port.stderr


HOLD_LOCK = """\
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0); os.write(fd, b"%d\\n" % os.getpid())
print(os.getpid(), flush=True)
time.sleep(60)
"""


def test_a_second_apply_waits_for_the_lock_then_names_the_holder_and_a_dead_holder_frees_it(server):
    server.state.mkdir()
    holder = subprocess.Popen(["ip", "netns", "exec", server.ns, sys.executable, "-c", HOLD_LOCK,
                               str(server.state / "lock")], stdout=subprocess.PIPE, text=True)
    try:
        pid = holder.stdout.readline().strip()
        blocked = server.nftc("apply", str(MINIMAL), "--wait", "0.5")
        assert blocked.returncode == 1
        assert f"pid {pid}" in blocked.stderr and "zfw" not in server.nft("list", "tables")
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert (server.state / "lock").read_text().strip() == pid  # the dead holder's PID is still written there
    recovered = server.nftc("apply", str(MINIMAL), "--wait", "0.5")
    assert recovered.returncode == 0, recovered.stderr


def test_concurrent_applies_are_serialised_and_both_succeed(server):
    site = server.policy("site.zfw", SITE)
    commands = [["ip", "netns", "exec", server.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-m", "nftc",
                 "apply", policy,
                 "--state-dir", str(server.state)] for policy in (str(MINIMAL), site)]
    processes = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands]
    results = [p.communicate(timeout=60) + (p.returncode,) for p in processes]
    assert [r[2] for r in results] == [0, 0], results
    assert server.digest() in (compiled_digest(str(MINIMAL)), compiled_digest(site))
    assert "drift:   none" in server.nftc("status").stdout


SERVE_ONCE = """\
import socket, sys
server = socket.create_server((sys.argv[1], int(sys.argv[2])))
server.settimeout(20)
print("ready", flush=True)
connection, _ = server.accept()
connection.sendall(b"220 nftc test\\r\\n")
connection.close()
"""
CONNECT = """\
import socket, sys
with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
    print(s.recv(100).decode().strip())
"""


def smtp_packets(status: str) -> int:
    found = re.search(r"^lan\s+smtp\s+r\d+\s+(\d+)", status, re.MULTILINE)
    assert found, status
    return int(found.group(1))


def connect(lab: Lab, ns: str, address: str, port: int, seconds: float) -> subprocess.CompletedProcess:
    return lab.exec(ns, sys.executable, "-c", CONNECT, address, str(port), str(seconds), check=False, timeout=30)


def test_status_counters_grow_after_a_tcp_connection(server, lab):
    client = lab.namespace("cli")
    lab.wire(server.ns, client, ("10.99.0.1/24",), ("10.99.0.2/24",))
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    before = smtp_packets(server.nftc("status").stdout)
    listener = subprocess.Popen(["ip", "netns", "exec", server.ns, sys.executable, "-c", SERVE_ONCE, "10.99.0.1",
                                 "25"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        reply = connect(lab, client, "10.99.0.1", 25, 5)
        assert reply.stdout.startswith("220"), reply.stderr
    finally:
        listener.kill()
        listener.wait(timeout=10)
    assert smtp_packets(server.nftc("status").stdout) > before


def test_a_dynamic_zone_drops_an_address_added_at_run_time(server, lab):
    client = lab.namespace("cli")
    lab.wire(server.ns, client, ("10.99.0.1/24",), ("10.99.0.2/24",))
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v4", "{ 10.99.0.2 }")
    listener = subprocess.Popen(["ip", "netns", "exec", server.ns, sys.executable, "-c", SERVE_ONCE, "10.99.0.1",
                                 "25"], stdout=subprocess.PIPE, text=True)
    try:
        assert listener.stdout.readline().strip() == "ready"
        assert connect(lab, client, "10.99.0.1", 25, 1).returncode != 0
    finally:
        listener.kill()
        listener.wait(timeout=10)
    assert re.search(r"blocklist/default-drop\s+[1-9]", server.nftc("status").stdout)


def test_diff_shows_a_zone_gaining_a_service_in_policy_terms_and_as_rules(server):
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    diff = server.nftc("diff", server.policy("site2.zfw", SITE_WITH_IMAP))
    assert diff.returncode == 0, diff.stderr
    assert "zone lan gains imap" in diff.stdout
    assert re.search(r'^\s+\+lan/imap/r\d+: counter name "lan/imap/r\d+" accept', diff.stdout, re.MULTILINE)
    assert "drift: none" in diff.stdout


def test_drift_is_detected_after_a_hand_edit(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    server.nft("add", "rule", "inet", "zfw", "zone_lan", "tcp", "dport", "8080", "accept")
    diff = server.nftc("diff", site)
    assert "drift: DRIFT" in diff.stdout and "tcp dport 8080 accept" in diff.stdout
    assert "drift:   DRIFT" in server.nftc("status").stdout


def test_dynamic_elements_survive_a_reload(server):
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v4", "{ 192.0.2.66, 198.18.0.0/15 }")
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v6", "{ 2001:db8::66 }")
    reload = server.nftc("apply", server.policy("site2.zfw", SITE_WITH_IMAP))
    assert reload.returncode == 0, reload.stderr
    assert "dynamic sets kept in place with their elements: dyn_blocklist_v4, dyn_blocklist_v6" in reload.stdout
    assert server.digest() == compiled_digest(str(server.dir / "site2.zfw"))
    v4 = server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4")
    assert "192.0.2.66" in v4 and "198.18.0.0/15" in v4
    assert "2001:db8::66" in server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v6")


def test_an_unusable_state_dir_is_one_line_and_leaves_the_ruleset_alone(server, tmp_path):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = server.nft("list", "ruleset")
    (tmp_path / "plain-file").write_text("")
    result = server.lab.exec(server.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-m", "nftc", "apply",
                             server.policy("site.zfw", SITE),
                             "--state-dir", str(tmp_path / "plain-file" / "state"), check=False)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "state directory" in result.stderr
    assert server.nft("list", "ruleset") == before


def test_without_privileges_apply_is_one_line_and_changes_nothing(server):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = server.nft("list", "ruleset")
    open_dir = tempfile.mkdtemp(prefix="nftc-unprivileged-")  # tmp_path is root-only
    try:
        os.chmod(open_dir, 0o1777)  # sticky, like /tmp: a parent anyone may write is refused (issue 7 item 4)
        with readable_nftc(MINIMAL) as (python, path, copies):  # nobody may not read the clone (/root/nftc)
            result = server.lab.exec(server.ns, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                     "--inh-caps=-all", "env", "-u", "SSH_CONNECTION", f"PYTHONPATH={path}", python,
                                     "-B", "-m", "nftc", "apply", str(copies[MINIMAL]),
                                     "--state-dir", os.path.join(open_dir, "state"), check=False)
    finally:
        shutil.rmtree(open_dir)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()  # the host lock in /run/nftc (root's) says it before the kernel can
    assert len(lines) == 1 and lines[0].startswith("nftc: apply: ") and \
        lines[0].endswith("needs root (CAP_NET_ADMIN)"), lines
    assert server.nft("list", "ruleset") == before


def test_missing_bindings_are_one_line_and_change_nothing(server, tmp_path):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    before = server.nft("list", "ruleset")
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "nftables.py").write_text('raise ImportError("simulated: no python3-nftables")\n')
    result = server.nftc("apply", server.policy("site.zfw", SITE), env={"PYTHONPATH": str(fake)})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "python3-nftables" in result.stderr
    assert server.nft("list", "ruleset") == before
