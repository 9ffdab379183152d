"""The lab: planning (pure) and the matrix on the real kernel for every shipped ruleset, IPv4 and IPv6."""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from nftc.lab import netns, session as lab, plan as labplan
from nftc.compiler import compile_policy
from nftc.semantics.resolve import LOCALHOST
from nftc.semantics.zones import zone_of

from helpers import unavailable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL_RULESETS = sorted(glob.glob(os.path.join(ROOT, "rulesets", "*.zfw")))
CLUSTER_RULESETS = [p for p in ALL_RULESETS if "\nhost " in open(p).read()]  # tests/test_cluster_lab.py
RULESETS = [p for p in ALL_RULESETS if p not in CLUSTER_RULESETS]
SINGLE = os.path.join(ROOT, "rulesets", "zimbra-single.zfw")
MINIMAL = os.path.join(ROOT, "rulesets", "minimal.zfw")
FAULTY = os.path.join(ROOT, "tests", "faulty_nftc.py")
OPEN, DROPPED = labplan.OPEN, labplan.DROPPED


def checked_policy(path: str):
    return compile_policy(path, {}).checked


def run_lab(path: str, scanner: str = "builtin", loaded: str | None = None) -> lab.LabReport:
    """The lab for `path`; `loaded` is the policy actually put into the kernel (a test hook, default: `path`)."""
    checked = checked_policy(path)
    with lab.session(checked, lambda live: lab.load_policy(live, loaded or path)) as live:
        return lab.probe_lab(live, checked, scanner)


# Planning, no kernel


def test_every_client_address_lies_in_its_own_zone():
    for path in RULESETS:
        checked = checked_policy(path)
        topology = labplan.plan_topology(checked)
        for client in topology.clients:
            assert set(client.addresses) == {4, 6}, (path, client)
            for address in client.addresses.values():
                assert zone_of(checked, address, client.interface) == client.zone


def test_a_zone_of_every_address_gets_an_address_no_other_zone_claims():
    checked = checked_policy(SINGLE)
    internet = next(c for c in labplan.plan_topology(checked).clients if c.zone == "internet")
    assert internet.addresses == {4: "203.0.113.10", 6: "2001:db8:ffff::10"}


def test_server_addresses_differ_from_every_client_address():
    topology = labplan.plan_topology(checked_policy(SINGLE))
    clients = {a for c in topology.clients for a in c.addresses.values()}
    assert not clients & set(topology.server_addresses.values())


def test_interface_zones_name_the_server_side_interface_after_the_interface(tmp_path):
    policy = tmp_path / "iface.zfw"
    policy.write_text("zone dmz = iface dmz0\nzone wan = iface wan*\nzone internet = any\n"
                      "allow dmz -> smtp\nallow wan -> http\nallow internet -> https\n")
    clients = {c.zone: c for c in labplan.plan_topology(checked_policy(str(policy))).clients}
    assert clients["dmz"].interface == "dmz0"
    assert clients["wan"].interface.startswith("wan")
    assert not clients["internet"].interface.startswith(("dmz", "wan"))
    assert set(clients["dmz"].addresses) == {4, 6}


def test_a_port_range_is_probed_at_its_first_and_last_port():
    from nftc.language.model import PortRange, Service

    service = Service("range", (PortRange("tcp", 7000, 7010), PortRange("udp", 53, 53)))
    assert labplan.probe_ports(service) == (("tcp", 7000), ("tcp", 7010), ("udp", 53))


def test_expected_states_follow_the_policy():
    checked = checked_policy(SINGLE)
    topology = labplan.plan_topology(checked)
    expected = labplan.expectations(checked, labplan.plan_probes(checked, topology))
    states = {(p.zone, p.port, p.protocol, p.family): e[0] for p, e in expected.items()}
    assert states[("internet", 443, "tcp", 6)] == OPEN
    assert states[("internet", 7071, "tcp", 4)] == DROPPED
    assert states[("lan", 7071, "tcp", 4)] == OPEN
    assert states[("lan", 11211, "udp", 6)] == DROPPED
    assert states[(LOCALHOST, 11211, "udp", 4)] == OPEN


NMAP_XML = """<?xml version="1.0"?><nmaprun><host><ports>
<extraports state="filtered" count="3">
<extrareasons reason="no-response" count="3" proto="tcp" ports="389,7071-7072"/></extraports>
<port protocol="tcp" portid="443"><state state="open"/></port>
<port protocol="udp" portid="11211"><state state="open|filtered"/></port>
<port protocol="tcp" portid="25"><state state="closed"/></port>
</ports></host></nmaprun>"""


def test_nmap_report_is_read_including_collapsed_ports():
    assert lab.parse_nmap(NMAP_XML) == {
        ("tcp", 389): DROPPED, ("tcp", 7071): DROPPED, ("tcp", 7072): DROPPED, ("tcp", 443): OPEN,
        ("udp", 11211): DROPPED, ("tcp", 25): labplan.REFUSED}


@pytest.mark.parametrize("name", ["nftct", "nftclab12", "nftct12x1-server", "eth0"])
def test_tear_down_refuses_a_prefix_that_is_not_a_lab(name):
    with pytest.raises(lab.LabError):
        lab.tear_down(name)


@pytest.mark.parametrize("name, prefix", [
    ("nftclab5x0-server", "nftclab5x0"), ("nftct12x10server", "nftct12x10"), ("nftct12x1-a", "nftct12x1"),
    ("nftcbench7x3-apply", "nftcbench7x3"), ("nftct", None), ("eth0", None), ("xnftct1x0", None),
])
def test_item8_a_namespace_name_gives_back_its_exact_prefix(name, prefix):
    """So a sweep or `--down nftct12x1` never takes nftct12x10's namespaces, nor a name nftc did not make."""
    assert netns.prefix_of(name) == prefix


# On the kernel


def assert_cells(report: lab.LabReport, cells) -> None:
    for zone, service, port, protocol, state in cells:
        for family in (4, 6):
            observation = report.cell(zone, service, family, port, protocol)
            assert observation.observed == state, labplan.format_mismatch(observation)


SHIPPED_CELLS = {
    "zimbra-single.zfw": [("internet", "https", 443, "tcp", OPEN), ("internet", "admin", 7071, "tcp", DROPPED),
                          ("internet", "ssh", 22, "tcp", DROPPED), ("lan", "ldap", 389, "tcp", DROPPED),
                          ("lan", "admin", 7071, "tcp", OPEN), ("lan", "memcached", 11211, "tcp", DROPPED),
                          ("lan", "memcached_udp", 11211, "udp", DROPPED), ("localhost", "ldap", 389, "tcp", OPEN),
                          ("localhost", "memcached_udp", 11211, "udp", OPEN)],
    "zimbra-multi.zfw": [("internet", "https", 443, "tcp", OPEN), ("internet", "admin", 7071, "tcp", DROPPED),
                         ("cluster", "lmtp", 7025, "tcp", OPEN), ("cluster", "memcached", 11211, "tcp", OPEN),
                         ("cluster", "memcached_udp", 11211, "udp", DROPPED), ("cluster", "ldap", 389, "tcp", DROPPED),
                         ("admins", "admin", 7071, "tcp", OPEN), ("admins", "memcached", 11211, "tcp", DROPPED),
                         ("localhost", "mysql", 7306, "tcp", OPEN)],
    "minimal.zfw": [("internet", "smtp", 25, "tcp", OPEN), ("internet", "ssh", 22, "tcp", DROPPED),
                    ("admin", "ssh", 22, "tcp", OPEN), ("admin", "https", 443, "tcp", DROPPED),
                    ("localhost", "ssh", 22, "tcp", OPEN)],
}


@pytest.mark.kernel
@pytest.mark.parametrize("path", RULESETS, ids=os.path.basename)
def test_shipped_ruleset_behaves_on_the_kernel_as_the_policy_says(path):
    report = run_lab(path)
    print(f"\n{os.path.basename(path)}\n{lab.report_text(report)}")
    assert not report.mismatches, "\n".join(map(labplan.format_mismatch, report.mismatches))
    assert all(a.holds for a in report.assertions)
    assert_cells(report, SHIPPED_CELLS[os.path.basename(path)])


@pytest.mark.kernel
def test_nmap_sees_the_same_matrix_for_zimbra_single():
    if shutil.which("nmap") is None:
        unavailable("nmap is not installed")
    report = run_lab(SINGLE, scanner="nmap")
    print(f"\nnmap, zimbra-single.zfw\n{lab.report_text(report)}")
    assert report.ok, "\n".join(map(labplan.format_mismatch, report.mismatches))
    assert_cells(report, SHIPPED_CELLS["zimbra-single.zfw"])


@pytest.mark.kernel
def test_lab_reports_a_kernel_that_differs_from_the_policy(tmp_path):
    loose = tmp_path / "loose.zfw"
    loose.write_text(open(SINGLE).read().replace("allow internet  -> zimbra.public",
                                                 "allow internet  -> zimbra.public, ldap, admin")
                     .replace("assert internet !-> zimbra.admin, zimbra.internal, ssh", ""))
    report = run_lab(SINGLE, loaded=str(loose))
    wrong = {(o.probe.zone, o.probe.port, o.probe.family, o.observed) for o in report.mismatches}
    assert wrong == {("internet", port, family, OPEN) for port in (389, 7071) for family in (4, 6)}
    assert not report.ok
    assert [a.text for a in report.assertions if not a.holds] == [
        "assert internet !-> zimbra.admin", "assert internet !-> zimbra.internal"]


@pytest.mark.kernel
def test_cli_exits_non_zero_on_a_mismatch_and_zero_when_the_kernel_agrees(tmp_path):
    good = subprocess.run([sys.executable, "-m", "nftc", "lab", "--json", MINIMAL], capture_output=True, text=True,
                          timeout=300)
    assert good.returncode == 0, good.stderr
    document = json.loads(good.stdout)
    assert document["ok"] and not document["mismatches"] and document["observations"]
    loose = tmp_path / "loose.zfw"  # what the kernel gets: ssh open to the internet, which minimal.zfw drops
    loose.write_text(open(MINIMAL).read().replace("allow internet -> smtp, submission",
                                                  "allow internet -> smtp, submission, ssh"))
    bad = subprocess.run([sys.executable, "-I", "-B", FAULTY, "--lab-loads", str(loose), "--", "lab", "--json", MINIMAL],
                         capture_output=True, text=True, timeout=300, cwd="/")
    assert bad.returncode == 1, bad.stderr
    document = json.loads(bad.stdout)
    assert not document["ok"]
    assert {(m["zone"], m["port"], m["observed"]) for m in document["mismatches"]} == {("internet", 22, OPEN)}


@pytest.mark.kernel
def test_keep_leaves_the_lab_up_and_down_removes_it():
    kept = subprocess.run([sys.executable, "-m", "nftc", "lab", "--keep", os.path.join(ROOT, "rulesets",
                                                                                        "minimal.zfw")],
                          capture_output=True, text=True, timeout=300)
    prefix = kept.stdout.split("nftc lab --down ")[-1].split()[0]
    try:
        assert kept.returncode == 0, kept.stderr
        assert "ip netns exec" in kept.stdout and f"nftc lab --down {prefix}" in kept.stdout
        names = lab.lab_namespaces(prefix)
        assert len(names) == 3
        server = next(n for n in names if n.endswith("-server"))
        assert "table inet" in subprocess.run(["ip", "netns", "exec", server, "nft", "list", "tables"],
                                              capture_output=True, text=True).stdout
        lab.sweep_orphans()  # its maker has exited, but it was kept on purpose
        assert lab.lab_namespaces(prefix) == names
    finally:
        down = subprocess.run([sys.executable, "-m", "nftc", "lab", "--down", prefix], capture_output=True,
                              text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    assert lab.lab_namespaces(prefix) == []


# Issue 8: a run killed half way leaves no namespaces that nothing cleans.


def ended_pid() -> int:
    """The pid of a process that has ended and been reaped (pids are not reused that soon)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def add_namespaces(*names: str) -> None:
    for name in names:
        netns.run("ip", "netns", "add", name)


def delete_namespaces(*names: str) -> None:
    for name in names:
        netns.run("ip", "netns", "del", name, check=False)


@pytest.mark.kernel
def test_item8_the_sweep_removes_what_a_killed_run_left_and_nothing_of_a_running_one():
    gone = ended_pid()
    left = [f"{netns.TEST_STEM}{gone}x0srv", f"{netns.LAB_STEM}{gone}x1-server", f"{netns.BENCH_STEM}{gone}x2-apply"]
    running = f"{netns.unique_prefix(netns.TEST_STEM)}srv"  # made by this process, which is running
    kept_prefix = f"{netns.LAB_STEM}{gone}x3"
    kept_state = tempfile.mkdtemp(prefix=f"{kept_prefix}-")
    open(os.path.join(kept_state, lab.KEPT_MARK), "x").close()
    add_namespaces(*left, running, f"{kept_prefix}-server")
    stray = subprocess.Popen(["ip", "netns", "exec", left[0], "sleep", "60"])  # a process a killed run left inside
    try:
        deadline = time.monotonic() + 10
        while str(stray.pid) not in netns.run("ip", "netns", "pids", left[0]).stdout.split():
            assert time.monotonic() < deadline, "the stray process never entered its namespace"
            time.sleep(0.02)
        swept = lab.sweep_orphans()
        names = netns.listed()
        assert set(left) <= set(swept) and not set(left) & set(names)
        with pytest.raises(ProcessLookupError):  # killed by PID (and reaped) before its namespace went
            os.kill(stray.pid, 0)
        assert running in names
        assert f"{kept_prefix}-server" in names and f"{kept_prefix}-server" not in swept
    finally:
        stray.kill()
        stray.wait()
        delete_namespaces(*left, running)
        lab.tear_down(kept_prefix)
    assert not os.path.exists(kept_state)


@pytest.mark.kernel
def test_item8_lab_down_takes_a_test_prefix_exactly():
    gone = ended_pid()
    target, neighbour = f"{netns.TEST_STEM}{gone}x1", f"{netns.TEST_STEM}{gone}x10"
    add_namespaces(f"{target}srv", f"{target}cli", f"{neighbour}srv")
    try:
        down = subprocess.run([sys.executable, "-m", "nftc", "lab", "--down", target], capture_output=True,
                              text=True, timeout=60)
        assert down.returncode == 0, down.stderr
        assert down.stdout.startswith("deleted 2 namespaces: ")
        assert set(down.stdout.split()[3:]) == {f"{target}srv", f"{target}cli"}
        assert netns.namespaces(target) == [] and netns.namespaces(neighbour) == [f"{neighbour}srv"]
    finally:
        delete_namespaces(f"{target}srv", f"{target}cli", f"{neighbour}srv")


# Issue 11, item 2: the lab binds as Zimbra does (catalog `bind`), so it measures real exposure.

BIND_POLICY = """zone lan = 192.168.1.0/24, fd00:1::/64
allow lan -> mysql, lmtp, dnscache
"""


def test_item2_an_accepted_port_zimbra_binds_to_loopback_is_expected_refused_from_other_zones(tmp_path):
    path = tmp_path / "bind.zfw"
    path.write_text(BIND_POLICY)
    checked = checked_policy(str(path))
    probes = labplan.plan_probes(checked, labplan.plan_topology(checked))
    expected = {(p.zone, p.service, p.protocol, p.family): e for p, e in labplan.expectations(checked, probes).items()}
    state, reason = expected[("lan", "mysql", "tcp", 4)]
    assert state == labplan.REFUSED
    assert reason == f"rule r1 at {path}:2:1 (allow); {labplan.NOTHING_LISTENS}"
    assert expected[("lan", "dnscache", "udp", 6)][0] == labplan.REFUSED
    assert expected[("lan", "lmtp", "tcp", 6)][0] == OPEN  # 7025 binds every address: really exposed
    assert expected[(LOCALHOST, "mysql", "tcp", 4)][0] == OPEN


def test_item2_listeners_are_planned_where_zimbra_binds_them():
    checked = checked_policy(SINGLE)
    ports = labplan.listener_ports(labplan.plan_probes(checked, labplan.plan_topology(checked)))
    assert {7306, 10024, 10032, 7171, 8465, 3310, 53, 10663} <= set(ports["loopback"]["tcp"])
    assert ports["loopback"]["udp"] == (53,)
    assert {389, 7025, 7071, 7072, 7073, 11211, 8080} <= set(ports["all"]["tcp"])
    assert not set(ports["all"]["tcp"]) & set(ports["loopback"]["tcp"])


def listening(live: lab.LiveLab, port: int) -> set[str]:
    """The local addresses a TCP socket listens on for `port` in the server, as `ss` shows them."""
    lines = live.exec(live.server, "ss", "-Hltn", f"sport = :{port}").stdout.splitlines()
    return {line.split()[3].rsplit(":", 1)[0] for line in lines}


@pytest.mark.kernel
def test_item2_the_lab_listens_where_zimbra_binds_and_the_kernel_agrees(tmp_path):
    """mysql 7306 and the DNS cache 53 listen on 127.0.0.1 and ::1 only: the lan's accepted connection is refused
    (nothing listens on the server's address); lmtp 7025 listens everywhere and answers the lan."""
    path = tmp_path / "bind.zfw"
    path.write_text(BIND_POLICY)
    checked = checked_policy(str(path))
    with lab.session(checked, lambda live: lab.load_policy(live, str(path))) as live:
        binds = {port: listening(live, port) for port in (7306, 53, 7025)}
        report = lab.probe_lab(live, checked)
    assert binds == {7306: {"127.0.0.1", "[::1]"}, 53: {"127.0.0.1", "[::1]"}, 7025: {"*"}}
    assert not report.mismatches, "\n".join(map(labplan.format_mismatch, report.mismatches))
    assert_cells(report, [("lan", "mysql", 7306, "tcp", labplan.REFUSED), ("lan", "dnscache", 53, "udp",
                                                                            labplan.REFUSED),
                          ("lan", "lmtp", 7025, "tcp", OPEN), ("localhost", "mysql", 7306, "tcp", OPEN),
                          ("localhost", "dnscache", 53, "udp", OPEN), ("lan", "ldap", 389, "tcp", DROPPED)])
