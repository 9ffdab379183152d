"""Issue 10, "Elements are never lost, and reloads do not touch them" (item 1: reloads keep the dynamic sets and
the named counters; item 2: timeouts, time left carried, no auto-merge, kernel data checked).

The units run in the fast loop; the kernel tests each run nftc in a namespace of their own (apply_helpers)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import subprocess
import sys

import pytest

from nftc.backend.render_nft import render_nft
from nftc.language import model as m
from nftc.system import elements, live, transaction
from nftc.system.records import Target
from apply_helpers import SITE, lab, server, wait_until  # noqa: F401 (fixtures)
from helpers import compile_text

ZFW = Target("inet", "zfw")
SITE_WITH_IMAP = SITE + "allow lan -> imap\n"
TIMED = SITE.replace("= dynamic\n", "= dynamic timeout 1h\n")
TIMED_LONGER = SITE.replace("= dynamic\n", "= dynamic timeout 2h\n")
NO_BLOCKLIST = "zone internet = any\nzone lan = 10.99.0.0/24\nallow internet -> smtp\nallow lan -> smtp, ssh\n"
V4 = "dyn_blocklist_v4"


def _set_json(elem: list, timeout=None) -> dict:
    body = {"family": "inet", "name": V4, "table": "zfw", "type": "ipv4_addr", "flags": ["interval", "timeout"],
            "elem": elem}
    return {"set": body if timeout is None else {**body, "timeout": timeout}}


# Units: the language.


def test_item2_dynamic_timeout_is_read_in_seconds_and_rendered_as_nft_lists_it():
    """`90m` is written `1h30m`, as the kernel's listing says it: a rollback compares the two (kept in place)."""
    policy = compile_text(TIMED.replace("1h", "90m"))
    script = render_nft(policy.table)
    assert "\t\tflags interval,timeout\n\t\ttimeout 1h30m\n" in live.table_block(script, ZFW)
    assert [m.format_duration(s) for s in (1, 60, 3600, 5400, 86400, 90061)] == ["1s", "1m", "1h", "1h30m", "1d",
                                                                                  "1d1h1m1s"]
    assert m.parse_duration("1d1h1m1s") == 90061 and m.parse_duration("90m") == 5400
    assert m.parse_duration("1" * 5000 + "s") > 365 * 86400  # out of range, not a crash of int()
    untimed = render_nft(compile_text(SITE).table)
    assert "timeout" not in "\n".join(live.set_block_lines(untimed, V4))


# Units: elements read from the kernel are data, and their timing is checked.


def test_item2_an_elements_own_timeout_and_time_left_are_carried_as_checked_numbers():
    read = elements.from_json(V4, _set_json([{"elem": {"val": "192.0.2.1", "timeout": 600, "expires": 299}},
                                             {"elem": {"val": "192.0.2.3", "expires": 1800}},
                                             {"elem": {"val": "192.0.2.5", "expires": 0}}], timeout=3600))
    assert elements.add_command(ZFW, read, timeouts=True) == (
        "add element inet zfw dyn_blocklist_v4 { 192.0.2.1 timeout 600s expires 299s, "
        "192.0.2.3 timeout 3600s expires 1800s, 192.0.2.5 timeout 3600s expires 1s }\n")
    # a set without `flags timeout` refuses an element's timing: the addresses alone
    assert elements.add_command(ZFW, read, timeouts=False) == (
        "add element inet zfw dyn_blocklist_v4 { 192.0.2.1, 192.0.2.3, 192.0.2.5 }\n")


HOSTILE_TIMINGS = [
    ("a string", {"timeout": "1h } ; flush ruleset ; add element inet zfw x {", "expires": 5}),
    ("nft syntax in time left", {"timeout": 600, "expires": "5s } ; delete table inet zfw"}),
    ("negative", {"timeout": -600, "expires": -5}),
    ("zero timeout", {"timeout": 0, "expires": 5}),
    ("huge", {"timeout": 10**40, "expires": 10**40}),
    ("a float", {"timeout": 600.5, "expires": 2.5}),
    ("a boolean", {"timeout": True, "expires": True}),
    ("a list", {"timeout": [600], "expires": {"s": 5}}),
    ("no timeout, a time left of a float zero", {"expires": 0.0}),
]


@pytest.mark.parametrize("label, timing", HOSTILE_TIMINGS, ids=[label for label, _ in HOSTILE_TIMINGS])
def test_item2_a_hostile_timing_from_the_kernel_is_not_carried_the_address_is(label, timing):
    """Another tool can write what libnftables lists: a timing nftc cannot believe never reaches the transaction;
    the ban itself is kept (the element takes its new set's own timeout), and a good neighbour keeps its time."""
    read = elements.from_json(V4, _set_json([{"elem": {"val": "192.0.2.7", **timing}},
                                             {"elem": {"val": "192.0.2.9", "timeout": 600, "expires": 42}}]))
    assert elements.add_command(ZFW, read, timeouts=True) == (
        "add element inet zfw dyn_blocklist_v4 { 192.0.2.7, 192.0.2.9 timeout 600s expires 42s }\n")
    assert read.unreadable == 0


def test_item2_time_left_beyond_the_timeout_is_cut_to_it_since_the_kernel_refuses_more():
    read = elements.from_json(V4, _set_json([{"elem": {"val": "192.0.2.1", "timeout": 60, "expires": 3000}}]))
    assert read.elements[0].timeout == 60 and read.elements[0].expires == 60


def test_item2_a_snapshot_keeps_when_an_element_expires_not_how_long_it_had_left():
    """A rollback an hour later adds the element back with an hour less; one whose time ran out, not at all."""
    read = elements.from_json(V4, _set_json([{"elem": {"val": "192.0.2.1", "timeout": 7200, "expires": 5400}},
                                             {"elem": {"val": "192.0.2.2", "timeout": 600, "expires": 60}},
                                             "192.0.2.3"]))
    saved = json.loads(json.dumps(elements.saved_items(read, now=1_000_000.5)))
    later = elements.from_saved(V4, saved, now=1_003_600.0)
    assert [(e.address.render(), e.timeout, e.expires) for e in later.elements] == [
        ("192.0.2.1", 7200, 1800), ("192.0.2.3", 0, 0)]
    assert later.unreadable == 0


def test_item2_the_guard_ages_the_snapshot_it_read_when_it_armed():
    """The guard reads the snapshot when it arms and restores it at the deadline: the time left is that at the
    load, not at the reading; an apply made while a confirmation is pending saves the same expiry again."""
    items = [{"val": "192.0.2.1", "timeout": 3600, "expires_at": 1_001_000}, {"val": "192.0.2.2", "timeout": 600,
                                                                               "expires_at": 1_000_300}]
    armed = elements.from_saved(V4, items, now=1_000_000.0)
    assert [e.expires for e in armed.elements] == [1000, 300]
    assert elements.saved_items(armed, now=1_000_500.0) == items  # extended snapshot: expiry unchanged
    deadline = elements.aged(armed, now=1_000_600.0)
    assert elements.add_command(ZFW, deadline, timeouts=True) == (
        "add element inet zfw dyn_blocklist_v4 { 192.0.2.1 timeout 3600s expires 400s }\n")
    just_read = elements.from_json(V4, _set_json([{"elem": {"val": "192.0.2.1", "timeout": 60, "expires": 30}}]))
    assert elements.aged(just_read, now=2_000_000.0) == just_read  # read for this very load


@pytest.mark.parametrize("expires_at", ["2030-01-01", 1.5e9, True, None, [1]])
def test_item2_a_hostile_expiry_in_a_snapshot_is_not_believed(expires_at):
    items = [{"val": "192.0.2.1", "timeout": 600, "expires_at": expires_at},
             {"val": "192.0.2.1/33", "timeout": 600, "expires_at": 2_000_000},
             {"val": "192.0.2.5", "timeout": "600s; flush ruleset", "expires_at": 1_000_100}]
    read = elements.from_saved(V4, items, now=1_000_000.0)
    assert elements.add_command(ZFW, read, timeouts=True) == (
        "add element inet zfw dyn_blocklist_v4 { 192.0.2.1, 192.0.2.5 }\n")
    assert read.unreadable == 1  # the /33


def test_item2_only_a_set_with_the_timeout_flag_takes_timings():
    timed = render_nft(compile_text(TIMED).table)
    assert elements.takes_timeouts(timed, V4) and not elements.takes_timeouts(render_nft(compile_text(SITE).table), V4)
    listing = "table inet zfw {\n\tset dyn_blocklist_v4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n" \
              "\t\ttimeout 1h30m\n\t}\n}\n"
    assert elements.takes_timeouts(listing, V4)


# Units: the in-place transaction keeps the named counters.


def test_item1_in_place_keeps_the_counters_declared_the_same_and_remakes_the_others():
    """A counter stays (and keeps counting) when its declaration is the same in both scripts; one whose comment
    moved with its rule's line is made anew, so the table is exactly the compiled one."""
    before = render_nft(compile_text(SITE).table)
    after = render_nft(compile_text("# a line more: every rule's comment moves\n" + SITE_WITH_IMAP).table)
    listing = live.table_block(before, ZFW)
    kept = transaction.kept(("dyn_blocklist_v4", "dyn_blocklist_v6"), after, before, listing)
    assert "drop/no-zone" in kept.counters and "localhost/accept" in kept.counters
    assert "lan/ssh/r2" in transaction.counter_declarations(before)
    assert "lan/ssh/r2" not in kept.counters  # its comment names the policy line, which moved
    assert "lan/imap/r3" not in kept.counters  # new
    text = transaction.in_place(ZFW, listing, kept, after)
    deleted = {line.split()[-1] for line in text.splitlines() if line.startswith("delete counter")}
    assert deleted.isdisjoint(kept.counters) and "lan/ssh/r2" in deleted
    unchanged = transaction.kept((), after, after, live.table_block(after, ZFW))
    assert set(unchanged.counters) == set(transaction.counter_declarations(after)) and unchanged


def test_item1_a_rollback_in_place_keeps_what_is_declared_the_same_in_the_snapshot_and_now():
    """The snapshot (here the recorded script) against the live table as listed without elements: counter values
    do not count; a set whose timeout changed, or a table holding an object nftc never makes, is not kept."""
    saved = live.table_block(render_nft(compile_text(TIMED).table), ZFW)
    listing = live.table_block(render_nft(compile_text(TIMED_LONGER + "allow lan -> imap\n").table), ZFW)
    listing = listing.replace("\tcounter drop/no-zone {\n", "\tcounter drop/no-zone {\n\t\tpackets 7 bytes 420\n")
    found = transaction.restore_in_place(ZFW, saved, listing)
    assert found is not None and "drop/no-zone" in found.kept.counters and found.kept.sets == ()
    assert "delete set inet zfw dyn_blocklist_v4" in found.body and "delete counter inet zfw drop/no-zone" not in \
        found.body and found.body.endswith(saved)
    same = transaction.restore_in_place(ZFW, saved, saved)
    assert same.kept.sets == ("dyn_blocklist_v4", "dyn_blocklist_v6") and "dyn_blocklist" not in same.body.split(
        "table inet zfw {")[0]
    quota = listing.replace("\tcounter drop/no-zone {\n", "\tquota q {\n\t\t25 mbytes\n\t}\n\tcounter drop/no-zone {\n")
    assert transaction.restore_in_place(ZFW, saved, quota) is None


# Kernel: the whole path, in a namespace.

def _set(server, name: str = V4) -> dict:
    return json.loads(server.nft("-j", "list", "set", "inet", "zfw", name))["nftables"][1]["set"]


def _timed(server) -> dict[str, tuple[int, int]]:
    """address -> (timeout, seconds left) of the timed dynamic set, as the kernel lists them."""
    body = _set(server)
    return {e["elem"]["val"]: (e["elem"].get("timeout", body.get("timeout")), e["elem"]["expires"])
            for e in body.get("elem", [])}


def _counters(server) -> dict[str, int]:
    listed = json.loads(server.nft("-j", "list", "counters", "table", "inet", "zfw"))["nftables"]
    return {item["counter"]["name"]: item["counter"]["packets"] for item in listed if "counter" in item}


def _loopback_packets(server, count: int = 3) -> None:
    """Packets through the input chain's `localhost/accept` counter."""
    server.lab.exec(server.ns, sys.executable, "-B", "-c", "import socket\nfor _ in range(%d):\n    socket.socket("
                    "socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\n" % count)


@contextlib.contextmanager
def _adding(server, loop: str):
    """Runs the shell `loop` (one `nft add element` at a time) in the server's namespace while the block runs;
    waits for it (bounded) and fails the test if one add failed."""
    adder = subprocess.Popen(["ip", "netns", "exec", server.ns, "sh", "-c", "set -e; " + loop],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        yield
        _, err = adder.communicate(timeout=120)
    finally:
        if adder.poll() is None:
            adder.kill()
            adder.wait()
    assert adder.returncode == 0, err


@pytest.mark.kernel
def test_item1_no_element_is_lost_while_20_applies_run(server):
    """A process adds 1,000 addresses, one `nft add element` at a time, while 20 applies (alternating between two
    policies, so each loads) replace everything else: all 1,000 are there at the end."""
    policies = [server.policy("a.zfw", SITE), server.policy("b.zfw", SITE_WITH_IMAP)]
    assert server.nftc("apply", policies[0]).returncode == 0
    with _adding(server, "for i in $(seq 0 999); do nft add element inet zfw dyn_blocklist_v4 "
                         "\"{ 10.200.$((i / 250)).$((i % 250 + 1)) }\"; sleep 0.015; done"):
        results = [server.nftc("apply", policies[(i + 1) % 2]) for i in range(20)]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    assert all("dynamic sets kept in place" in r.stdout for r in results)
    found = {e if isinstance(e, str) else e["elem"]["val"] for e in _set(server).get("elem", [])}
    assert found == {f"10.200.{i // 250}.{i % 250 + 1}" for i in range(1000)}


@pytest.mark.kernel
def test_item1_no_element_is_lost_while_applies_are_rolled_back(server):
    """The same with `apply --confirm` and `rollback`, 8 times: the rollback puts the table back around the
    dynamic sets (and counters) it finds declared as in the snapshot."""
    policies = [server.policy("a.zfw", SITE), server.policy("b.zfw", SITE_WITH_IMAP)]
    assert server.nftc("apply", policies[0]).returncode == 0
    with _adding(server, "for i in $(seq 0 399); do nft add element inet zfw dyn_blocklist_v6 "
                         "\"{ fd00:200::$i }\"; sleep 0.015; done"):
        results = [server.nftc(*args) for _ in range(8) for args in (("apply", policies[1], "--confirm", "600"),
                                                                     ("rollback",))]
    assert all(r.returncode == 0 for r in results), [r.stderr for r in results if r.returncode]
    found = {e if isinstance(e, str) else e["elem"]["val"] for e in _set(server, "dyn_blocklist_v6").get("elem", [])}
    assert found == {str(ipaddress.ip_address(f"fd00:200::{i}")) for i in range(400)}
    assert "drift:   none" in server.nftc("status").stdout


@pytest.mark.kernel
def test_item1_counters_keep_counting_across_an_apply(server):
    """Read as JSON before and after: a counter the new table declares the same is not reset by the apply."""
    assert server.nftc("apply", server.policy("a.zfw", SITE)).returncode == 0
    _loopback_packets(server)
    before = _counters(server)
    assert before["localhost/accept"] >= 3
    result = server.nftc("apply", server.policy("b.zfw", SITE_WITH_IMAP))
    assert result.returncode == 0, result.stderr
    after = _counters(server)
    assert after["localhost/accept"] >= before["localhost/accept"]
    _loopback_packets(server)
    assert _counters(server)["localhost/accept"] >= before["localhost/accept"] + 3
    assert "lan/imap/r3" in after and "drift:   none" in server.nftc("status").stdout
    counted = _counters(server)["localhost/accept"]
    assert server.nftc("apply", server.policy("a.zfw", SITE), "--confirm", "600").returncode == 0
    assert server.nftc("rollback").returncode == 0  # in place: kept again
    assert _counters(server)["localhost/accept"] >= counted and "lan/imap/r3" in _counters(server)


@pytest.mark.kernel
def test_item2_elements_expire_and_a_changed_set_definition_keeps_their_time_left(server):
    """`dynamic timeout 1h`; an element with its own timeout (10m) and one with the set's; the next policy makes
    the set's timeout 2h, so the set is made anew and its elements carried: each keeps the time it had left."""
    assert server.nftc("apply", server.policy("a.zfw", TIMED)).returncode == 0
    server.nft("add", "element", "inet", "zfw", V4, "{ 192.0.2.1 timeout 10m, 192.0.2.2, 192.0.2.3 timeout 2s }")
    before = _timed(server)
    assert before["192.0.2.1"][0] == 600 and before["192.0.2.2"][0] == 3600
    assert wait_until(lambda: "192.0.2.3" not in _timed(server), 10)  # expired by itself
    result = server.nftc("apply", server.policy("b.zfw", TIMED_LONGER))
    assert result.returncode == 0, result.stderr
    after = _timed(server)
    assert set(after) == {"192.0.2.1", "192.0.2.2"}
    for address, (timeout, left) in before.items():
        if address in after:
            assert after[address][0] == timeout  # not the new set's 2h
            assert left - 30 <= after[address][1] <= left  # the clock did not restart
    assert _set(server)["timeout"] == 7200 and "drift:   none" in server.nftc("status").stdout


@pytest.mark.kernel
def test_item2_a_rollback_keeps_the_time_left_whether_from_the_live_set_or_the_snapshot(server):
    """Rollback of an apply that changed the set (the live elements are carried back) and, by the guard at the
    confirmation deadline, of one that removed the zone (the snapshot's elements are, less the time passed)."""
    assert server.nftc("apply", server.policy("a.zfw", TIMED)).returncode == 0
    server.nft("add", "element", "inet", "zfw", V4, "{ 192.0.2.1 timeout 10m, 192.0.2.2 }")
    before = _timed(server)
    assert server.nftc("apply", server.policy("b.zfw", TIMED_LONGER), "--confirm", "600").returncode == 0
    assert server.nftc("rollback").returncode == 0
    restored = _timed(server)
    assert set(restored) == set(before) and _set(server)["timeout"] == 3600
    for address, (timeout, left) in before.items():
        assert restored[address][0] == timeout and left - 30 <= restored[address][1] <= left
    assert server.nftc("apply", server.policy("c.zfw", NO_BLOCKLIST), "--confirm", "2").returncode == 0
    assert V4 not in server.nft("list", "table", "inet", "zfw")
    assert wait_until(lambda: V4 in server.nft("list", "table", "inet", "zfw"), 30)  # the guard rolled back
    by_guard = _timed(server)
    assert set(by_guard) == set(before)
    for address, (timeout, left) in before.items():
        assert by_guard[address][0] == timeout and left - 60 <= by_guard[address][1] <= left - 1


@pytest.mark.kernel
@pytest.mark.parametrize("policy", [SITE, TIMED], ids=["untimed", "timed"])
def test_item2_one_of_two_adjacent_banned_addresses_can_be_unbanned(server, policy):
    """No auto-merge: 192.0.2.1 and 192.0.2.2 stay two elements, also once an apply carried them (the set made
    anew), so deleting one works and leaves the other."""
    assert server.nftc("apply", server.policy("a.zfw", policy)).returncode == 0
    server.nft("add", "element", "inet", "zfw", V4, "{ 192.0.2.1, 192.0.2.2 }")
    other = policy.replace("= dynamic", "= dynamic timeout 3h") if policy == SITE else TIMED_LONGER
    assert server.nftc("apply", server.policy("b.zfw", other)).returncode == 0  # set definition changed: carried
    server.nft("delete", "element", "inet", "zfw", V4, "{ 192.0.2.1 }")
    assert [e if isinstance(e, str) else e["elem"]["val"] for e in _set(server).get("elem", [])] == ["192.0.2.2"]
