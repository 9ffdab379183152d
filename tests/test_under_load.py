"""Under load, on the kernel: the per-source memcached limit keeps three sources fair while one floods, and the
ICMP echo limit cuts a ping flood to its rate (IPv4 and IPv6); `icmp echo off` answers no ping at all.

Every flood is bounded in count and in time (a few seconds), and runs between the lab's own namespaces only.
Run with `pytest -s` to see the figures.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from nftc.lab import session as lab, plan as labplan
from nftc.compiler import compile_policy
from nftc.semantics.zones import zone_of

from helpers import unavailable

pytestmark = pytest.mark.kernel

RATE, BURST = 20, 20
FLOOD_ATTEMPTS, POLITE_PER_SECOND, SECONDS = 600, 15, 2.0
FAIR_POLICY = f"""table labload
zone cluster = 10.77.0.0/24, fd77::/64
allow cluster -> zimbra.memcached limit {RATE}/second per source burst {BURST}
"""
# Two more sources in the zone, next to the lab's own client (10.77.0.1 / fd77::1), wired on these interfaces.
EXTRA_SOURCES = (("lzpolite1", {4: "10.77.0.2", 6: "fd77::2"}), ("lzpolite2", {4: "10.77.0.3", 6: "fd77::3"}))

ECHO_RATE, ECHO_BURST = 10, 10
# 300 requests, one every 4 ms asked (ping manages about one every 9 ms here: ~3 s), then at most 1 s for late
# replies. No `ping -w`: with it, `-c` counts replies, and a ping whose requests are dropped sends until the deadline.
PING_COUNT, PING_INTERVAL, PING_WAIT = 300, 0.004, 1
ECHO_POLICY = """table labecho
zone internet = any
allow internet -> smtp
icmp echo {echo}
"""
PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received.*?time (\d+)ms")


def write_policy(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def near(observed: float, expected: float, floor: float) -> bool:
    """Within a quarter of the expected count, or `floor` for small counts (timers and scheduling jitter)."""
    return abs(observed - expected) <= max(floor, 0.25 * expected)


# memcached: three sources at once


def add_sources(live: lab.LiveLab, checked, zone: str) -> list[str]:
    """Two more client namespaces inside `zone`, wired to the server the way the lab wires its own clients."""
    namespaces = [live.clients[zone]]
    for interface, addresses in EXTRA_SOURCES:
        assert all(zone_of(checked, a, interface) == zone for a in addresses.values())
        namespace = lab.prepare_namespace(live.lab, f"-{interface}")
        lab._wire_client(live, labplan.Client(zone, interface, addresses), namespace)
        namespaces.append(namespace)
    return namespaces


def start_burst(namespace: str, server: str, attempts: int) -> subprocess.Popen:
    command = ["ip", "netns", "exec", namespace, sys.executable, "-m", "nftc.lab.probe", "burst", server,
               str(lab.MEMCACHED_PORT), "--count", str(attempts), "--seconds", str(SECONDS), "--timeout", "0.5"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def bursts_at_once(namespaces: list[str], server: str, attempts: list[int]) -> list[dict]:
    """One burst process per namespace, all started before any is awaited; each is killed by PID if it hangs."""
    processes = []
    try:
        for namespace, count in zip(namespaces, attempts):
            processes.append(start_burst(namespace, server, count))
        results = []
        for process in processes:
            out, err = process.communicate(timeout=60)
            assert process.returncode == 0, err
            results.append(json.loads(out))
        return results
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def fair_policy(tmp_path):
    if shutil.which("memcached") is None:
        unavailable("memcached is not installed (apt install memcached)")
    return write_policy(tmp_path, "fair.zfw", FAIR_POLICY)


def test_one_flooding_source_does_not_eat_the_memcached_budget_of_the_others(fair_policy):
    checked = compile_policy(fair_policy, {}).checked
    polite_attempts = int(POLITE_PER_SECOND * SECONDS)
    with lab.session(checked, lambda live: lab.load_policy(live, fair_policy)) as live:
        assert live.memcached
        namespaces = add_sources(live, checked, "cluster")
        live.lab.flush_neighbours()
        for family in (4, 6):
            server = live.topology.server_addresses[family]
            flood, *polite = bursts_at_once(namespaces, server, [FLOOD_ATTEMPTS, polite_attempts, polite_attempts])
            allowed = BURST + RATE * flood["window_seconds"]
            print(f"\nmemcached limit {RATE}/second per source burst {BURST}, IPv{family}, three sources at once: "
                  f"flooder {flood['accepted']}/{flood['attempts']} accepted in {flood['window_seconds']} s "
                  f"(burst + rate x time = {allowed:.0f}); well-behaved "
                  + ", ".join(f"{p['accepted']}/{p['attempts']} in {p['window_seconds']} s" for p in polite))
            assert flood["refused"] == 0
            assert near(flood["accepted"], allowed, floor=10)
            for figures in polite:
                assert figures["refused"] == 0
                assert figures["accepted"] >= 0.9 * figures["attempts"]


# ICMP echo


def ping(live: lab.LiveLab, namespace: str, family: int, *options: str) -> dict:
    """Echo requests from `namespace` to the server: `-c` requests, each reply awaited at most `-W` seconds."""
    server = live.topology.server_addresses[family]
    result = live.exec(namespace, "ping", f"-{family}", "-n", "-q", *options, server, check=False,
                       timeout=30)
    summary = PING_SUMMARY.search(result.stdout)
    assert summary, result.stdout + result.stderr
    return {"sent": int(summary[1]), "received": int(summary[2]), "seconds": int(summary[3]) / 1000}


def flood_ping(live: lab.LiveLab, namespace: str, family: int) -> dict:
    return ping(live, namespace, family, "-i", str(PING_INTERVAL), "-c", str(PING_COUNT), "-W", str(PING_WAIT))


def a_few_pings(live: lab.LiveLab, namespace: str, family: int) -> dict:
    return ping(live, namespace, family, "-i", "0.2", "-c", "3", "-W", "1")


@pytest.fixture
def ping_available():
    if shutil.which("ping") is None:
        unavailable("ping is not installed (apt install iputils-ping)")


# The echo rules come before `ct state established,related accept`: conntrack files every request of one ping (one
# ICMP id) under the entry its first reply established, so after it the limit would never be met again.
def test_a_ping_flood_is_cut_to_the_echo_rate(tmp_path, ping_available):
    policy = write_policy(tmp_path, "echo.zfw", ECHO_POLICY.format(echo=f"{ECHO_RATE}/second burst {ECHO_BURST}"))
    checked = compile_policy(policy, {}).checked
    with lab.session(checked, lambda live: lab.load_policy(live, policy)) as live:
        client = live.clients["internet"]
        for family in (4, 6):
            figures = flood_ping(live, client, family)
            allowed = ECHO_BURST + ECHO_RATE * figures["seconds"]
            print(f"\nicmp echo {ECHO_RATE}/second burst {ECHO_BURST}, IPv{family}: {figures['sent']} echo requests "
                  f"from one ping in {figures['seconds']} s -> {figures['received']} replies; "
                  f"burst + rate x time = {allowed:.0f}")
            assert figures["sent"] == PING_COUNT
            assert near(figures["received"], allowed, floor=5)


def test_icmp_echo_off_answers_no_ping(tmp_path, ping_available):
    policy = write_policy(tmp_path, "quiet.zfw", ECHO_POLICY.format(echo="off"))
    checked = compile_policy(policy, {}).checked
    with lab.session(checked, lambda live: None) as live:  # no ruleset yet: the server answers pings
        client = live.clients["internet"]
        before = {family: a_few_pings(live, client, family) for family in (4, 6)}
        lab.load_policy(live, policy)
        after = {family: a_few_pings(live, client, family) for family in (4, 6)}
    print(f"\nicmp echo off: replies before loading {[before[f]['received'] for f in (4, 6)]}, "
          f"after {[after[f]['received'] for f in (4, 6)]} (IPv4, IPv6; 3 requests each)")
    assert all(before[f]["received"] == before[f]["sent"] == 3 for f in (4, 6))
    assert all(after[f]["sent"] == 3 and after[f]["received"] == 0 for f in (4, 6))
