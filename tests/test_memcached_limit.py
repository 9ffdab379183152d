"""memcached on the kernel: the per-source rate limit on new TCP connections, and UDP 11211 never answered.

Run with `pytest -s` to see the figures (they go in the issue's closing note).
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

from nftc.lab import session as lab, plan as labplan
from nftc.compiler import compile_policy

from helpers import unavailable

RATE, BURST = 20, 20
ATTEMPTS, SECONDS = 300, 2.0
LIMITED_POLICY = f"""table labrate
zone peers    = 10.77.0.0/24, fd00:77::/64
zone internet = any
allow internet -> smtp
allow peers    -> zimbra.memcached limit {RATE}/second per source burst {BURST}
assert internet !-> zimbra.memcached
"""

pytestmark = pytest.mark.kernel


@pytest.fixture
def limited_policy(tmp_path):
    if shutil.which("memcached") is None:
        unavailable("memcached is not installed (apt install memcached)")
    path = tmp_path / "limited.zfw"
    path.write_text(LIMITED_POLICY)
    return str(path)


def burst_from(live: lab.LiveLab, zone: str, family: int, attempts: int) -> dict:
    server = live.topology.server_addresses[family]
    result = live.exec(live.clients[zone], sys.executable, "-m", "nftc.lab.probe", "burst", server,
                       str(lab.MEMCACHED_PORT), "--count", str(attempts), "--seconds", str(SECONDS),
                       "--timeout", "0.5", timeout=60)
    return json.loads(result.stdout)


SHIPPED_MULTI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "rulesets",
                             "zimbra-multi.zfw")


@pytest.mark.parametrize("shipped, zone, rate, burst, attempts", [
    (False, "peers", RATE, BURST, ATTEMPTS),      # the small test policy above
    (True, "cluster", 200, 400, 1200),            # rulesets/zimbra-multi.zfw as shipped
], ids=["limit-20-burst-20", "zimbra-multi-200-burst-400"])
def test_a_burst_of_new_connections_is_cut_to_the_configured_rate(limited_policy, shipped, zone, rate, burst,
                                                                  attempts):
    policy = SHIPPED_MULTI if shipped else limited_policy
    checked = compile_policy(policy, {}).checked
    with lab.session(checked, lambda live: lab.load_policy(live, policy)) as live:
        assert live.memcached
        for family in (4, 6):
            figures = burst_from(live, zone, family, attempts)
            allowed = burst + rate * figures["window_seconds"]
            print(f"\nmemcached limit {rate}/second burst {burst}, IPv{family}: {figures['attempts']} new TCP "
                  f"connections in {figures['window_seconds']} s -> {figures['accepted']} accepted, "
                  f"{figures['dropped']} dropped, {figures['refused']} refused; "
                  f"burst + rate x time = {allowed:.0f}")
            assert figures["refused"] == 0
            assert abs(figures["accepted"] - allowed) <= max(10, 0.25 * allowed)
            assert figures["dropped"] == figures["attempts"] - figures["accepted"]


def test_udp_memcached_answers_localhost_but_never_the_internet(limited_policy):
    checked = compile_policy(limited_policy, {}).checked
    udp = {"protocol": "udp", "port": lab.MEMCACHED_PORT}
    with lab.session(checked, lambda live: None) as live:  # no ruleset yet: memcached answers everyone
        internet = live.clients["internet"]
        targets = [{"address": a, **udp} for a in live.topology.server_addresses.values()]
        before = lab.run_scan(live, internet, targets)
        lab.load_policy(live, limited_policy)
        live.lab.flush_neighbours()
        after = lab.run_scan(live, internet, targets)
        local = lab.run_scan(live, live.server, [{"address": a, **udp} for a in labplan.LOOPBACK.values()])
    print(f"\nUDP 11211 from the internet zone without the ruleset: {[r['detail'] for r in before]}; "
          f"with it: {[r['state'] for r in after]}; from localhost: {[r['detail'] for r in local]}")
    assert all(r["state"] == labplan.OPEN and r["detail"].startswith("VERSION") for r in before)
    assert [r["state"] for r in after] == [labplan.DROPPED, labplan.DROPPED]
    assert all(r["state"] == labplan.OPEN and r["detail"].startswith("VERSION") for r in local)
