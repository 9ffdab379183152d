"""Issue 11, item "matrix and explain": `nftc matrix` (who reaches whom on what) and `nftc explain` (the verdict
for one source and the policy line that decides it), both from reach over each host's policy; no root."""

from __future__ import annotations

import json
import os

import pytest

from nftc.cli.main import main
from nftc.compiler import compile_cluster
from nftc.semantics import matrix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLUSTER = os.path.join("rulesets", "zimbra-cluster.zfw")
CLUSTER4 = os.path.join("tests", "policies", "cluster4.zfw")
MINIMAL = os.path.join("rulesets", "minimal.zfw")


@pytest.fixture(autouse=True)
def in_checkout(monkeypatch):
    """Relative paths, so the printed `file:line:col` is the same wherever the suite runs from."""
    monkeypatch.chdir(ROOT)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def views(path: str) -> tuple[matrix.View, ...]:
    return tuple(matrix.View(c.host, c.checked) for c in compile_cluster(path, {}))


CLUSTER4_TEXT = """\
from ldap1 (host):
  to mta1    smtp 25/tcp, zimbra.public 80,110,143,443,465,587,993,995/tcp
  to proxy1  zimbra.public 25,80,110,143,443,465,587,993,995/tcp
  to mbox1   syslog 514/udp

from mta1 (host):
  to ldap1   ldap 389/tcp
  to proxy1  zimbra.public 25,80,110,143,443,465,587,993,995/tcp
  to mbox1   lmtp 7025/tcp, mta_auth 7073/tcp, syslog 514/udp

from proxy1 (host):
  to ldap1   ldap 389/tcp
  to mta1    zimbra.public 25,80,110,143,443,465,587,993,995/tcp
  to mbox1   nginx_lookup 7072/tcp, backends_mail 7110,7143,7993,7995/tcp, backends_web 8080,8443/tcp, syslog 514/udp

from mbox1 (host):
  to ldap1   ssh 22/tcp, ldap 389/tcp
  to mta1    ssh 22/tcp, smtp 25/tcp, zimbra.public 80,110,143,443,465,587,993,995/tcp
  to proxy1  ssh 22/tcp, memcached 11211/tcp, zimbra.public 25,80,110,143,443,465,587,993,995/tcp

from internet (zone):
  to ldap1   nothing
  to mta1    zimbra.public 25,80,110,143,443,465,587,993,995/tcp
  to proxy1  zimbra.public 25,80,110,143,443,465,587,993,995/tcp
  to mbox1   nothing

from admins (zone):
  to ldap1   ssh 22/tcp, zimbra.admin 7071,9071/tcp
  to mta1    ssh 22/tcp, zimbra.admin 7071,9071/tcp
  to proxy1  ssh 22/tcp, zimbra.admin 7071,9071/tcp
  to mbox1   ssh 22/tcp, zimbra.admin 7071,9071/tcp
"""


def test_item4_matrix_text_is_every_source_against_every_host(capsys):
    """The role matrix per host: on mbox1 7025 from mta1 and not from proxy1, 7072 from proxy1 and not mta1."""
    assert run(capsys, "matrix", CLUSTER4) == (0, CLUSTER4_TEXT, "")


def test_item4_matrix_json_on_the_shipped_cluster(capsys):
    code, out, err = run(capsys, "matrix", CLUSTER, "--format", "json")
    assert (code, err) == (0, "")
    document = json.loads(out)
    hosts = ["ldap1", "mta1", "proxy1", "mbox1", "mbox2"]
    assert document["hosts"] == hosts
    assert document["sources"] == [{"name": h, "kind": "host"} for h in hosts] + [
        {"name": "internet", "kind": "zone"}, {"name": "admins", "kind": "zone"}]
    cells = {(c["from"], c["to"]): c["open"] for c in document["matrix"]}
    assert len(cells) == 7 * 5
    assert all(cells[(h, h)] is None for h in hosts)
    mta_to_mbox1 = {o["service"]: o for o in cells[("mta1", "mbox1")]}
    assert mta_to_mbox1["lmtp"]["ports"] == ["7025/tcp"]
    assert mta_to_mbox1["lmtp"]["line"].startswith(f"{CLUSTER}:") and "allow cluster" in mta_to_mbox1["lmtp"]["line"]
    assert "nginx_lookup" not in mta_to_mbox1
    proxy_to_mbox1 = {o["service"] for o in cells[("proxy1", "mbox1")]}
    assert {"nginx_lookup", "backends_web", "onlyoffice"} <= proxy_to_mbox1 and "lmtp" not in proxy_to_mbox1
    assert cells[("internet", "mbox1")] == [] and cells[("internet", "ldap1")] == []


def test_item4_matrix_comes_from_reach_over_each_host_policy():
    """The same computation as the rulesets: every opening is the reach decision of each of its ports."""
    from nftc.semantics.reach import decide, zone_segments
    found = views(CLUSTER)
    table = matrix.cluster_matrix(found)
    by_host = {v.host: v for v in found}
    for cell in table.cells:
        if not cell.openings:
            continue
        segments = zone_segments(by_host[cell.host].checked, cell.source)
        for opening in cell.openings:
            for r in opening.ports:
                for port in {r.first, r.last}:
                    decision = decide(segments, r.protocol, port)
                    assert (decision.verdict, decision.rule) == ("accept", opening.rule), (cell, r)


def test_item4_matrix_of_a_policy_without_hosts_has_one_column(capsys):
    code, out, err = run(capsys, "matrix", MINIMAL)
    assert (code, err) == (0, "")
    assert out == ("from internet (zone):\n  to this host  smtp 25/tcp, submission 587/tcp\n\n"
                   "from admin (zone):\n  to this host  ssh 22/tcp, smtp 25/tcp, submission 587/tcp\n")


@pytest.mark.parametrize("argv, expected", [
    (("--from", "10.0.0.12", "--host", "mbox1", "--to", "7025/tcp"),
     "on mbox1: 10.0.0.12 is zone mta1\n"
     f"  7025/tcp: accept, by {CLUSTER4}:14:1: allow  cluster  -> zimbra.roles\n"),
    (("--from", "10.0.0.13", "--host", "mbox1", "--to", "7025/tcp"),
     "on mbox1: 10.0.0.13 is zone proxy1\n  7025/tcp: drop, no rule allows it (default drop)\n"),
    (("--from", "fd00:10::13", "--host", "mbox1", "--to", "7072/tcp"),
     "on mbox1: fd00:10::13 is zone proxy1\n"
     f"  7072/tcp: accept, by {CLUSTER4}:14:1: allow  cluster  -> zimbra.roles\n"),
    (("--from", "203.0.113.9", "--host", "mbox1", "--to", "22/tcp"),
     "on mbox1: 203.0.113.9 is zone internet\n"
     f"  22/tcp: drop, by {CLUSTER4}:13:1: deny   internet -> ssh on mbox1\n"),
    (("--from", "203.0.113.9", "--host", "mbox1", "--to", "11211/udp"),
     "on mbox1: 203.0.113.9 is zone internet\n  11211/udp: drop, UDP 11211 is always dropped outside localhost\n"),
    (("--from", "10.0.0.14", "--host", "mbox1", "--to", "7306/tcp"),
     "on mbox1: 10.0.0.14 is zone localhost\n  7306/tcp: accept, loopback traffic is accepted\n"),
    (("--from", "10.9.0.7", "--host", "ldap1"),
     "on ldap1: 10.9.0.7 is zone admins; open to it:\n"
     f"  ssh 22/tcp                  {CLUSTER4}:16:1: allow  admins   -> zimbra.admin, ssh\n"
     f"  zimbra.admin 7071,9071/tcp  {CLUSTER4}:16:1: allow  admins   -> zimbra.admin, ssh\n"),
    (("--from", "203.0.113.9", "--host", "ldap1"), "on ldap1: 203.0.113.9 is zone internet; nothing is open to it\n"),
    (("--from", "10.0.0.12", "--to", "389/tcp"),
     "on ldap1: 10.0.0.12 is zone mta1\n"
     f"  389/tcp: accept, by {CLUSTER4}:14:1: allow  cluster  -> zimbra.roles\n"
     "on mta1: 10.0.0.12 is zone localhost\n  389/tcp: accept, loopback traffic is accepted\n"
     "on proxy1: 10.0.0.12 is zone mta1\n  389/tcp: drop, no rule allows it (default drop)\n"
     "on mbox1: 10.0.0.12 is zone mta1\n  389/tcp: drop, no rule allows it (default drop)\n"),
], ids=["allowed", "denied-by-default", "ipv6", "denied-by-a-line", "memcached-udp", "itself", "every-port",
        "nothing", "every-host"])
def test_item4_explain_gives_the_verdict_and_the_line(capsys, argv, expected):
    assert run(capsys, "explain", CLUSTER4, *argv) == (0, expected, "")


def test_item4_explain_an_address_in_no_zone(capsys, tmp_path):
    policy = tmp_path / "p.zfw"
    policy.write_text("zone admin = 10.9.0.0/24\nallow admin -> ssh\n")
    assert run(capsys, "explain", str(policy), "--from", "10.0.0.1", "--to", "22/tcp") == (
        0, "on this host: 10.0.0.1 is in no zone: every new connection from it is dropped (no rule can match it)\n",
        "")


USAGE = "usage: nftc explain [-h] --from ADDR [--to PORT/PROTO] [--host NAME] FILE\n"


@pytest.mark.parametrize("argv, code, expected", [
    (("explain", CLUSTER4, "--from", "10.0.0.12", "--host", "mbx1"), 2,
     f"nftc: explain: {CLUSTER4} has no host 'mbx1'; did you mean 'mbox1'?\n"),
    (("explain", MINIMAL, "--from", "10.0.0.12", "--host", "mbox1"), 2,
     f"nftc: explain: {MINIMAL} declares no hosts: --host mbox1 is for a cluster policy "
     "(host NAME = ADDRESS, ... roles ROLE, ...)\n"),
    (("explain", CLUSTER4, "--from", "10.0.0.300"), 2,
     USAGE + "nftc: error: argument --from: '10.0.0.300' is not an IP address (such as 10.0.0.12 or fd00:10::12)\n"),
    (("explain", CLUSTER4, "--from", "mta1"), 2,
     USAGE + "nftc: error: argument --from: 'mta1' is not an IP address (such as 10.0.0.12 or fd00:10::12)\n"),
    (("explain", CLUSTER4, "--from", "10.0.0.12", "--to", "7025"), 2,
     USAGE + "nftc: error: argument --to: '7025' is not PORT/PROTO, such as 7025/tcp or 514/udp\n"),
    (("explain", CLUSTER4, "--from", "10.0.0.12", "--to", "70000/tcp"), 2,
     USAGE + "nftc: error: argument --to: '70000/tcp' is not PORT/PROTO, such as 7025/tcp or 514/udp\n"),
    (("explain", CLUSTER4, "--from", "10.0.0.12", "--to", "25/sctp"), 2,
     USAGE + "nftc: error: argument --to: '25/sctp' is not PORT/PROTO, such as 7025/tcp or 514/udp\n"),
], ids=["unknown-host", "host-without-hosts", "bad-address", "name-not-address", "no-protocol", "port-range",
        "protocol"])
def test_item4_explain_errors_are_one_clear_line(capsys, argv, code, expected):
    result = None
    try:
        result = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        result = exc.code
    out, err = capsys.readouterr()
    assert (result, out, err) == (code, "", expected)


def test_item4_matrix_of_a_broken_policy_prints_its_errors(capsys, tmp_path):
    policy = tmp_path / "p.zfw"
    policy.write_text("host a = 10.0.0.1 roles ldapp\nallow cluster -> zimbra.roles\n")
    code, out, err = run(capsys, "matrix", str(policy))
    assert (code, out) == (2, "")
    assert err == (f"{policy}:1:25: error: unknown role 'ldapp'\n  host a = 10.0.0.1 roles ldapp\n"
                   "                          ^~~~~\n  hint: did you mean 'ldap'?\n")
