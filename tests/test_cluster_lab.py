"""Issue 11, item "the cluster lab": `nftc lab FILE` on a cluster policy builds one namespace per host and a
client per zone on one bridge, loads each host's ruleset (`nftc apply --host`), and proves the cluster matrix on
the kernel, IPv4 and IPv6, against reach over each host's policy; `--host` keeps the single-host lab."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from nftc.compiler import compile_cluster
from nftc.lab import cluster, plan as labplan
from nftc.language.loader import load_policy
from nftc.semantics.resolve import LOCALHOST
from nftc.semantics.zones import zone_of

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "rulesets", "zimbra-cluster.zfw")
CLUSTER4 = os.path.join(ROOT, "tests", "policies", "cluster4.zfw")
OPEN, DROPPED, REFUSED = labplan.OPEN, labplan.DROPPED, labplan.REFUSED


def cluster_plan(path: str) -> cluster.ClusterPlan:
    compilations = compile_cluster(path, {})
    return cluster.plan_cluster(load_policy(path, {}).hosts, {c.host: c.checked for c in compilations})


# Planning, no kernel


def test_item3_each_host_is_a_member_with_its_own_addresses_and_each_zone_a_client():
    plan = cluster_plan(CLUSTER4)
    assert [(h.name, h.addresses) for h in plan.hosts] == [
        (f"{name}", {4: (f"10.0.0.{n}",), 6: (f"fd00:10::{n}",)})
        for name, n in (("ldap1", 11), ("mta1", 12), ("proxy1", 13), ("mbox1", 14))]
    assert [c.name for c in plan.clients] == ["internet", "admins"]
    for client in plan.clients:
        assert set(client.addresses) == {4, 6}
        for (address,) in client.addresses.values():
            assert all(zone_of(checked, address, cluster.LAB_INTERFACE) == client.name
                       for checked in plan.checked.values())


def test_item3_probes_see_each_source_as_its_zone_on_the_target():
    plan = cluster_plan(CLUSTER4)
    zones = {(p.source, p.target, p.probe.family): p.probe.zone for p in plan.probes}
    assert zones[("mta1", "mbox1", 6)] == "mta1"
    assert zones[("mbox1", "mbox1", 4)] == LOCALHOST
    assert zones[("admins", "ldap1", 6)] == "admins"
    assert {p.source for p in plan.probes} == {"ldap1", "mta1", "proxy1", "mbox1", "internet", "admins"}


def test_item3_expectations_follow_each_host_policy_and_the_binds():
    plan = cluster_plan(CLUSTER4)
    expected = {(p.source, p.target, p.probe.service, p.probe.family): e
                for p, e in cluster.expectations(plan).items()}
    for family in (4, 6):
        assert expected[("mta1", "mbox1", "lmtp", family)][0] == OPEN
        assert expected[("proxy1", "mbox1", "lmtp", family)][0] == DROPPED
        assert expected[("proxy1", "mbox1", "nginx_lookup", family)][0] == OPEN
        assert expected[("mta1", "mbox1", "nginx_lookup", family)][0] == DROPPED
        assert expected[("mbox1", "mbox1", "mysql", family)][0] == OPEN  # over loopback
        assert expected[("mta1", "mbox1", "mysql", family)][0] == DROPPED
    state, reason = expected[("internet", "mbox1", "ssh", 4)]
    assert (state, reason) == (DROPPED, f"rule r1 at {CLUSTER4}:13:1 "
                                        "(deny)")


# On the kernel


SHIPPED_CELLS = [
    ("mta1", "mbox1", "lmtp", 7025, "tcp", OPEN), ("proxy1", "mbox1", "lmtp", 7025, "tcp", DROPPED),
    ("proxy1", "mbox1", "nginx_lookup", 7072, "tcp", OPEN), ("mta1", "mbox1", "nginx_lookup", 7072, "tcp", DROPPED),
    ("mta1", "mbox2", "lmtp", 7025, "tcp", OPEN), ("proxy1", "mbox1", "onlyoffice", 7084, "tcp", OPEN),
    ("proxy1", "mbox2", "onlyoffice", 7084, "tcp", DROPPED), ("mbox2", "mbox1", "convertd", 7047, "tcp", OPEN),
    ("mbox1", "proxy1", "memcached", 11211, "tcp", OPEN), ("mbox1", "proxy1", "memcached_udp", 11211, "udp", DROPPED),
    ("mbox1", "ldap1", "ldap", 389, "tcp", OPEN), ("internet", "ldap1", "ldap", 389, "tcp", DROPPED),
    ("internet", "proxy1", "https", 443, "tcp", OPEN), ("internet", "mbox1", "https", 443, "tcp", DROPPED),
    ("internet", "mbox1", "admin", 7071, "tcp", DROPPED), ("admins", "mbox1", "admin", 7071, "tcp", OPEN),
    ("admins", "ldap1", "ssh", 22, "tcp", OPEN), ("mbox1", "mbox1", "mysql", 7306, "tcp", OPEN),
    ("mbox2", "mbox1", "mysql", 7306, "tcp", DROPPED), ("ldap1", "mbox1", "syslog", 514, "udp", OPEN),
]


@pytest.mark.kernel
def test_item3_the_shipped_cluster_behaves_on_the_kernel_as_each_host_policy_says():
    """Through the CLI (`nftc lab FILE --json`): every path the policy opens is open, every other closed."""
    result = subprocess.run([sys.executable, "-B", "-m", "nftc", "lab", "--json", SHIPPED], capture_output=True,
                            text=True, timeout=600, cwd="/")
    document = json.loads(result.stdout)
    assert (result.returncode, document["mismatches"]) == (0, []), result.stderr
    assert document["ok"] and document["assertions"] and all(a["holds"] for a in document["assertions"])
    cells = {(o["from"], o["to"], o["service"], o["port"], o["protocol"], o["family"]): o["observed"]
             for o in document["observations"]}
    for source, target, service, port, protocol, state in SHIPPED_CELLS:
        for family in (4, 6):
            assert cells[(source, target, service, port, protocol, family)] == state, (source, target, service,
                                                                                      family)
    assert {o["family"] for o in document["observations"]} == {4, 6}


BROKEN = {  # what the kernel gets instead of cluster4.zfw: mbox1 without mta1's LMTP, ldap1 with LDAP for all
    "deny   internet -> ssh on mbox1\n": "deny   internet -> ssh on mbox1\ndeny   mta1 -> lmtp on mbox1\n"
                                        "allow  internet -> ldap on ldap1\n",
    "assert mta1 -> lmtp on mbox1\n": "",
}


@pytest.mark.kernel
def test_item3_a_host_ruleset_without_one_call_is_caught_as_a_mismatch(tmp_path):
    """The lab compares with the policy, not with what it loaded: a host ruleset that lacks mta1 -> mbox1 7025,
    and one that opens LDAP to the internet, are each a mismatch, IPv4 and IPv6."""
    text = open(CLUSTER4).read()
    for old, new in BROKEN.items():
        assert old in text
        text = text.replace(old, new)
    broken = tmp_path / "broken.zfw"
    broken.write_text(text)
    plan = cluster_plan(CLUSTER4)
    with cluster.cluster_session(plan, lambda live, host: cluster.load_host(live, str(broken), host)) as live:
        report = cluster.probe_cluster(live)
    wrong = {(o.source, o.target, o.observation.probe.port, o.observation.probe.family, o.observation.observed)
             for o in report.mismatches}
    assert wrong == {("mta1", "mbox1", 7025, f, DROPPED) for f in (4, 6)} | {
        ("internet", "ldap1", 389, f, OPEN) for f in (4, 6)}
    assert not report.ok
    assert [(h, c.text) for h, c in report.assertions if not c.holds] == [("mbox1", "assert mta1 -> lmtp")]
    assert "mismatch: mta1 -> mbox1 lmtp 7025/tcp IPv4 (zone mta1 there): expected open" in cluster.report_text(report)


@pytest.mark.kernel
def test_item3_host_option_keeps_the_single_host_lab():
    result = subprocess.run([sys.executable, "-B", "-m", "nftc", "lab", "--json", "--host", "mbox1", CLUSTER4],
                            capture_output=True, text=True, timeout=600, cwd="/")
    document = json.loads(result.stdout)
    assert (result.returncode, document["mismatches"]) == (0, []), result.stderr
    cells = {(o["zone"], o["service"], o["family"]): o["observed"] for o in document["observations"]}
    assert "from" not in document["observations"][0]  # the single-host lab's rows: zone, service
    for family in (4, 6):
        assert cells[("mta1", "lmtp", family)] == OPEN
        assert cells[("proxy1", "lmtp", family)] == DROPPED
        assert cells[("internet", "ssh", family)] == DROPPED
