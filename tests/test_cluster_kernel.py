"""Issue 11, in the kernel: `nftc apply` and `nftc diff` of a cluster policy pick the host whose addresses the
machine has, in its own network namespace, and refuse with one line when none or several match.

Each case is a fresh namespace (nftc.lab.netns.Lab) holding the addresses it needs on a veth pair to a second
namespace of its own; nothing leaves them.
"""

from __future__ import annotations

import pathlib

import pytest

from apply_helpers import Server, lab  # noqa: F401 (fixture)
from nftc.compiler import compile_policy
from nftc.lab.netns import Lab

pytestmark = pytest.mark.kernel

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = str(ROOT / "rulesets" / "zimbra-cluster.zfw")


def _machine(lab, tmp_path: pathlib.Path, *addresses: str) -> Server:
    """A namespace holding `addresses` on its end of a veth pair (the other end: a namespace of its own, wired
    to nothing else), as a host holds its own."""
    server = Server(lab, tmp_path)
    lab.wire(server.ns, lab.namespace("peer"), addresses, ("192.0.2.2/24",))
    return server


def _digest(host: str) -> str:
    return compile_policy(SHIPPED, {}, host=host).digest


def test_item_apply_picks_the_host_holding_the_machines_address(lab, tmp_path):
    server = _machine(lab, tmp_path, "10.0.0.14/24", "fd00:10::14/64")
    result = server.nftc("apply", SHIPPED)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"applied {SHIPPED}: table inet zimbra sha256:{_digest('mbox1')[:16]}")
    listing = server.nft("list", "table", "inet", "zimbra")
    assert "chain zone_mta1 {" in listing and "zone_mbox1" not in listing
    again = server.nftc("apply", SHIPPED)  # nothing changed: the recorded mbox1 script stands, and is live
    assert (again.returncode, again.stdout) == (0, f"unchanged: table inet zimbra sha256:{_digest('mbox1')[:16]} "
                                                   f"({SHIPPED})\n")
    diff = server.nftc("diff", SHIPPED)
    assert diff.returncode == 0 and f"new:  sha256:{_digest('mbox1')} ({SHIPPED})" in diff.stdout
    other = server.nftc("apply", SHIPPED, "--host", "mbox2")  # --host wins over the addresses
    assert other.returncode == 0 and f"sha256:{_digest('mbox2')[:16]}" in other.stdout
    assert "chain zone_mbox1 {" in server.nft("list", "table", "inet", "zimbra")


@pytest.mark.parametrize("addresses, message", [
    ((), "no host of the policy (ldap1, mta1, proxy1, mbox1, mbox2) has an address of this machine: choose one "
         "with --host NAME"),
    (("10.0.0.14/24", "fd00:10::15/64"), "this machine has addresses of several hosts (mbox1, mbox2): choose one "
                                         "with --host NAME"),
], ids=("none", "several"))
def test_item_apply_and_diff_refuse_when_no_host_or_several_match(lab, tmp_path, addresses, message):
    server = _machine(lab, tmp_path, "192.0.2.1/24", *addresses)
    for command in ("apply", "diff"):
        result = server.nftc(command, SHIPPED)
        assert (result.returncode, result.stdout, result.stderr) == (2, "", f"nftc: {command}: {SHIPPED}: "
                                                                            f"{message}\n")
    assert server.nft("list", "tables") == ""


def test_item_apply_at_boot_keeps_the_host_last_applied_when_the_addresses_are_not_up(lab, tmp_path):
    """`apply --boot` runs before the network may be up: the host last applied (still a host of the policy)
    is compiled, not a refusal that would leave the machine without its firewall."""
    server = _machine(lab, tmp_path, "10.0.0.14/24", "fd00:10::14/64")
    assert server.nftc("apply", SHIPPED).returncode == 0
    server.lab.exec(server.ns, "ip", "addr", "flush", "dev", "eth0")
    server.nft("delete", "table", "inet", "zimbra")  # as after a reboot
    result = server.nftc("apply", "--boot", SHIPPED)
    assert result.returncode == 0, result.stderr
    assert f"sha256:{_digest('mbox1')[:16]}" in result.stdout
    assert "chain zone_mta1 {" in server.nft("list", "table", "inet", "zimbra")
    with Lab() as other:  # no record, no address: refused, as a policy that does not compile
        refused = Server(other, tmp_path / "fresh").nftc("apply", "--boot", SHIPPED)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"nftc: apply: {SHIPPED}: no host of the policy")



def test_item_check_validates_every_hosts_ruleset_or_the_one_asked(capsys):
    """`nftc check FILE`: the kernel validates each host's ruleset (in a private namespace); `--host`: one."""
    from nftc.cli.main import main

    assert main(["check", SHIPPED]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 1)[0] for line in lines] == [f"{SHIPPED} (host {h})" for h in
                                                         ("ldap1", "mta1", "proxy1", "mbox1", "mbox2")]
    assert all(": ok: the kernel accepts table inet zimbra (" in line for line in lines)
    assert main(["check", SHIPPED, "--host", "mta1"]) == 0
    assert capsys.readouterr().out.startswith(f"{SHIPPED} (host mta1): ok: the kernel accepts table inet zimbra (")
