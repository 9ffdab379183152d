"""Issue 7 on the kernel: only nftc's tables, confirm-or-rollback whatever happens, elements as data, the truth
about drift, and the boot fallback. Each test is named after the item it covers; each runs in its own namespace
with a temporary state dir (tests/apply_helpers.py), and mounts live in a mount namespace of one command.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time

import pytest

from apply_helpers import MINIMAL, SITE, Server, compiled_digest, lab, server, wait_until  # noqa: F401 (fixtures)
from nftc.system import live

pytestmark = pytest.mark.kernel

SITE_B = SITE.replace("zone lan ", "zone office ").replace("allow lan ", "allow office ")
RENAMED = "table zimbra\n" + SITE_B
FOREIGN_F2B = """\
table inet f2b {
	chain input {
		type filter hook input priority filter - 1; policy accept;
	}
}
"""


def tables(server: Server) -> list[str]:
    return sorted(server.nft("list", "tables").split("\n")[:-1])


def digest_of(server: Server, name: str) -> str | None:
    return live.digest(server.lab.exec(server.ns, "nft", "list", "table", "inet", name, check=False).stdout)


def guard_log(server: Server) -> str:
    path = server.state / "guard.log"
    return path.read_text() if path.exists() else ""


# 3. Test hooks are not in the installed tool.

def test_item3_the_installed_tool_obeys_no_fault_variable(server):
    site = server.policy("site.zfw", SITE)
    started = time.monotonic()
    result = server.nftc("apply", site, env={"NFTC_TEST_INJECT": "add rule inet zfw no_such_chain accept\n",
                                             "NFTC_TEST_PAUSE_AFTER_LOAD": "60"})
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert server.digest() == compiled_digest(site)


# 7. Only nftc's table.

def test_item7_a_table_of_the_same_name_without_nftcs_marker_is_never_replaced(server):
    server.nft("-f", "-", input=FOREIGN_F2B.replace("f2b", "zfw"))
    before = server.nft("list", "ruleset")
    result = server.nftc("apply", str(MINIMAL))
    assert result.returncode == 1
    assert "table inet zfw exists and is not nftc's" in result.stderr
    assert server.nft("list", "ruleset") == before


def test_item7_rollback_leaves_alone_a_table_that_is_no_longer_nftcs(server):
    assert server.nftc("apply", str(MINIMAL)).returncode == 0  # the snapshot says: there was no table
    server.nft("delete", "table", "inet", "zfw")
    server.nft("-f", "-", input=FOREIGN_F2B.replace("f2b", "zfw"))
    before = server.nft("list", "ruleset")
    result = server.nftc("rollback")
    assert result.returncode == 0, result.stderr
    assert "not nftc's any more; left alone" in result.stderr
    assert server.nft("list", "ruleset") == before


# 8. The table renamed while a confirmation is pending.

def test_item8_a_rename_while_pending_rolls_back_to_exactly_the_last_confirmed_state(server):
    first = server.policy("a.zfw", SITE)
    assert server.nftc("apply", first).returncode == 0
    confirmed = server.nft("list", "ruleset")
    assert server.nftc("apply", first, "--confirm", "3").returncode == 0
    renamed = server.nftc("apply", server.policy("b.zfw", RENAMED), "--confirm", "3")
    assert renamed.returncode == 0, renamed.stderr
    assert "inet zimbra" in server.nft("list", "tables") and "inet zfw" not in server.nft("list", "tables")
    assert wait_until(lambda: "snapshot restored" in guard_log(server), seconds=30), guard_log(server)
    assert server.nft("list", "ruleset") == confirmed


def test_item8_a_renamed_table_replaces_nftcs_earlier_one_and_rollback_brings_it_back(server):
    first = server.policy("a.zfw", SITE)
    assert server.nftc("apply", first).returncode == 0
    confirmed = server.nft("list", "ruleset")
    renamed = server.nftc("apply", server.policy("b.zfw", RENAMED))
    assert renamed.returncode == 0, renamed.stderr
    assert "removed nftc's earlier table inet zfw" in renamed.stdout
    assert tables(server) == ["table inet zimbra"]
    assert server.nftc("rollback").returncode == 0
    assert server.nft("list", "ruleset") == confirmed


# 6 (the guard's part). A guard never undoes what another state directory applied since.

def test_item6_a_guard_does_not_roll_back_a_table_another_state_dir_replaced(server, tmp_path):
    first, second = server.policy("a.zfw", SITE), server.policy("b.zfw", SITE_B)
    assert server.nftc("apply", first, "--confirm", "3").returncode == 0
    other = server.with_state_dir(tmp_path / "other-state")
    assert other.nftc("apply", second).returncode == 0
    assert wait_until(lambda: "NOT ROLLED BACK" in guard_log(server), seconds=30), guard_log(server)
    assert server.digest() == compiled_digest(second)


# 9. A full state filesystem at the deadline.

def test_item9_the_guard_rolls_back_on_a_full_state_filesystem(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    old = server.ruleset()
    state = shlex.quote(str(server.state))
    script = (f"mkdir -p {state} && mount -t tmpfs -o size=2m,mode=0700 nftc-test {state} && "
              f'"$0" -I -B -m nftc apply {shlex.quote(site)} --confirm 3 --state-dir {state} && '
              f"{{ dd if=/dev/zero of={state}/filler bs=4k 2>/dev/null; true; }}")
    # The tmpfs lives in a mount namespace of this command; the guard it starts keeps it (and its full disk).
    result = server.lab.exec(server.ns, "env", "-u", "SSH_CONNECTION", "unshare", "--mount", "--propagation",
                             "private", "--", "sh", "-c", script, sys.executable, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert server.digest() == compiled_digest(site)
    assert wait_until(lambda: server.ruleset() == old, seconds=30)


# 10. A damaged pending record, a moved directory: any doubt means roll back.

def unconfirmed_apply(server: Server) -> str:
    """MINIMAL confirmed, SITE applied with --confirm 3: the ruleset a rollback must bring back (in name order:
    a rollback in place lists the same table in another order)."""
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    old = server.ruleset()
    assert server.nftc("apply", server.policy("site.zfw", SITE), "--confirm", "3").returncode == 0
    return old


@pytest.mark.parametrize("damage", ['{"deadline": "soon"}\n', "{not json", ""], ids=["string", "garbage", "empty"])
def test_item10_a_damaged_pending_record_means_roll_back(server, damage):
    old = unconfirmed_apply(server)
    (server.state / "pending.json").write_text(damage)
    assert wait_until(lambda: "snapshot restored" in guard_log(server), seconds=30), guard_log(server)
    assert "treated as unconfirmed" in guard_log(server)
    assert server.ruleset() == old


def test_item10_a_moved_state_directory_still_rolls_back(server):
    old = unconfirmed_apply(server)
    moved = server.state.with_name("moved-state")
    server.state.rename(moved)
    assert wait_until(lambda: "snapshot restored" in (moved / "guard.log").read_text(), seconds=30)
    assert server.ruleset() == old


def test_item10_a_removed_state_directory_still_rolls_back(server):
    old = unconfirmed_apply(server)
    subprocess.run(["rm", "-rf", str(server.state)], check=True)
    assert wait_until(lambda: server.ruleset() == old, seconds=30)


# 11. --confirm's range, and a deadline no wall-clock step moves.

@pytest.mark.parametrize("seconds", ["nan", "inf", "-inf", "1e308", "0", "0.5", "86401", "ten"])
def test_item11_confirm_outside_one_second_to_a_day_is_a_usage_error_before_anything(server, seconds):
    result = server.nftc("apply", str(MINIMAL), f"--confirm={seconds}")
    assert result.returncode == 2
    assert "is not a number of seconds from 1 to 86400" in result.stderr
    assert "zfw" not in server.nft("list", "tables") and not server.state.exists()


def rewrite_pending(server: Server, **changes) -> None:
    path = server.state / "pending.json"
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **changes}))


def boottime_in(server: Server, seconds: float) -> float:
    return time.clock_gettime(time.CLOCK_BOOTTIME) + seconds


def test_item11_the_deadline_is_kept_on_the_boot_clock_not_the_wall_clock(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    old = server.ruleset()
    assert server.nftc("apply", site, "--confirm", "600").returncode == 0
    # What a wall-clock step would do: the wall-clock deadline far away; the boot-clock deadline in a second.
    rewrite_pending(server, deadline=boottime_in(server, 1), deadline_wall=time.time() + 86400)
    assert wait_until(lambda: server.ruleset() == old, seconds=30)


def test_item11_a_pending_record_of_an_earlier_boot_is_said_and_ignored(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site, "--confirm", "600").returncode == 0
    rewrite_pending(server, boot_id="00000000-0000-0000-0000-000000000000")
    assert "a record from an earlier boot" in server.nftc("status").stdout
    again = server.nftc("apply", site)
    assert again.returncode == 0 and "snapshot is still" not in again.stdout


# 13. Dynamic elements are data.

INJECTED_COMMENT = 'x" }; flush table inet f2b; add element inet zfw dyn_blocklist_v4 { 192.0.2.4 comment "y'


def add_elements_as_json(server: Server, set_name: str, elements: list) -> None:
    command = {"nftables": [{"add": {"element": {"family": "inet", "table": "zfw", "name": set_name,
                                                 "elem": elements}}}]}
    server.nft("-j", "-f", "-", input=json.dumps(command))


def test_item13_element_comments_never_reach_the_transaction_as_text(server):
    server.nft("-f", "-", input=FOREIGN_F2B)
    foreign = server.nft("list", "table", "inet", "f2b")
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    add_elements_as_json(server, "dyn_blocklist_v4", [
        {"elem": {"val": "192.0.2.66", "comment": INJECTED_COMMENT}},
        {"elem": {"val": "192.0.2.67", "comment": "line one\nline two"}},
        {"prefix": {"addr": "198.18.0.0", "len": 15}}])
    for index in range(2):  # the second apply proves a newline in a comment does not break later ones
        # A state directory without a record each time: the whole table is replaced and the elements carried as
        # data (with the record, an apply keeps the dynamic sets in place and never reads them: test_apply_fast).
        result = server.with_state_dir(server.dir / f"fresh-state-{index}").nftc("apply", site)
        assert result.returncode == 0, result.stderr
        assert "3 dynamic elements carried over" in result.stdout
    assert server.nft("list", "table", "inet", "f2b") == foreign
    elements = server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4")
    assert "192.0.2.66" in elements and "192.0.2.67" in elements and "198.18.0.0/15" in elements
    assert not re.search(r"192\.0\.2\.4\b", elements) and "line one" not in elements and 'comment "x' not in elements


def test_item13_a_rollback_carries_elements_as_data_too(server):
    server.nft("-f", "-", input=FOREIGN_F2B)
    foreign = server.nft("list", "table", "inet", "f2b")
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    add_elements_as_json(server, "dyn_blocklist_v4", [{"elem": {"val": "192.0.2.66", "comment": INJECTED_COMMENT}}])
    assert server.nftc("apply", server.policy("site2.zfw", SITE + "allow lan -> imap\n")).returncode == 0
    result = server.nftc("rollback")
    assert result.returncode == 0, result.stderr
    assert server.nft("list", "table", "inet", "f2b") == foreign
    assert "192.0.2.66" in server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4")


# 20. Drift: the truth after a rollback, and what an apply discards.

HAND_EDIT = ("add", "rule", "inet", "zfw", "zone_lan", "tcp", "dport", "8080", "accept")


def test_item20_status_after_a_rollback_shows_the_hand_edit_the_snapshot_carried(server):
    first = server.policy("a.zfw", SITE)
    assert server.nftc("apply", first).returncode == 0
    server.nft(*HAND_EDIT)
    applied = server.nftc("apply", server.policy("b.zfw", SITE + "allow lan -> imap\n"))
    assert applied.returncode == 0
    assert server.nftc("rollback").returncode == 0
    status = server.nftc("status")
    assert "drift:   DRIFT" in status.stdout, status.stdout
    assert "restored by a rollback" in status.stdout


def test_item20_apply_lists_the_hand_edits_it_discards(server):
    first = server.policy("a.zfw", SITE)
    assert server.nftc("apply", first).returncode == 0
    server.nft(*HAND_EDIT)
    result = server.nftc("apply", first)
    assert result.returncode == 0, result.stderr
    assert "discarded 1 hand-edited lines of table inet zfw" in result.stderr
    assert "tcp dport 8080 accept" in result.stderr
    clean = server.nftc("apply", first)
    assert "discarded" not in clean.stderr


# 22 (the boot half). A policy that no longer compiles: the last applied ruleset, and a failure all the same.

def test_item22_at_boot_a_broken_policy_loads_the_last_applied_ruleset_and_fails(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    good = compiled_digest(site)
    server.nft("delete", "table", "inet", "zfw")  # what a reboot leaves: no table
    broken = server.policy("site.zfw", SITE + "allow nowhere -> smtp\n")
    result = server.nftc("apply", broken, "--boot")
    assert result.returncode == 2
    assert "does not compile: loaded the last applied ruleset instead" in result.stderr
    assert server.digest() == good


def test_item22_at_boot_an_apply_unconfirmed_before_a_reboot_is_rolled_back(server):
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", str(MINIMAL)).returncode == 0
    confirmed = server.nft("list", "ruleset")
    assert server.nftc("apply", site, "--confirm", "600").returncode == 0
    rewrite_pending(server, boot_id="00000000-0000-0000-0000-000000000000")  # the machine went down meanwhile
    server.nft("delete", "table", "inet", "zfw")  # and came back with no table
    result = server.nftc("apply", site, "--boot")
    assert result.returncode == 1
    assert "still waiting for confirmation when the machine went down" in result.stderr
    assert server.nft("list", "ruleset") == confirmed
    assert server.nftc("apply", site, "--boot").returncode == 0  # the next boot loads the policy as usual


def test_item22_without_a_record_a_broken_policy_loads_nothing(server):
    broken = server.policy("site.zfw", SITE + "allow nowhere -> smtp\n")
    result = server.nftc("apply", broken, "--boot")
    assert result.returncode == 2
    assert "holds no applied ruleset to load instead: nothing was loaded" in result.stderr
    assert "zfw" not in server.nft("list", "tables")
