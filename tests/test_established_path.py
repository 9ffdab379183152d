"""Issue 9, "new connections: nftc's cost over a conntrack-only ruleset <= 5 %": the short path.

After the loopback and spoofed-loopback rules, an established or related packet that is not ICMP goes to the
chain `established` (UDP 11211 drop, bans, accept) instead of walking ND, MLD, the reverse-path check and the
four echo rules, which can never match it. The short path must weaken nothing; each invariant is attacked on the
kernel, with the site of tests/test_packet_path.py (server, internet client, LAN client):

- (a) a forged loopback source in the reply direction of a local loopback flow (conntrack: established) is
  dropped, not delivered to the local socket; with a conntrack-only table the kernel delivers the same packet,
  so it is the ruleset that stops it;
- (b) every echo request is metered per source even when conntrack calls it established (one ping's requests
  share an echo id): `test_packet_path.py::test_item18_a_ping_flood_from_one_host_does_not_starve_another_zone`
  floods with one id and stays cut to burst + rate x time; here, the compiled order;
- (c) UDP to 11211 of a flow conntrack already knows (an entry from before nftc's table) is dropped and counted;
- (d) ND, MLD, invalid, ICMP errors, rpfilter and bans keep their place: the compiled order (bans on the kernel:
  tests/test_bans.py).

This file is also the small UDP programs those tests run in namespaces (`python test_established_path.py
peer|echo|ask ...`).
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time

import pytest

from helpers import compile_text
from nftc.backend.render_nft import render_nft, render_rule
from test_packet_path import POLICY, SERVER, TABLE, Site, site, udp_packet  # noqa: F401 (site: the fixture)

FORGED_SOURCE_PORT = 40000  # udp_packet's source port
LOOPBACK_PORT, MEMCACHED, CLIENT_PORT = 5600, 11211, 40001
PROGRAM_SECONDS = 20  # every program below exits by itself after this
THIS_PROGRAM = (sys.executable, "-B", os.path.abspath(__file__))
CONNTRACK_ONLY = """table inet ctonly {
\tchain input {
\t\ttype filter hook input priority filter; policy drop;
\t\tiif "lo" accept
\t\tct state established,related accept
\t}
}
"""
PERMISSIVE = """table inet before {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state invalid drop
\t}
}
"""


# The programs run inside namespaces.


def _listen(sock: socket.socket, seconds: float) -> None:
    """Print each datagram's payload on a line as it arrives, until `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data, source = sock.recvfrom(2048)
        except socket.timeout:
            return
        print(data.decode(errors="replace"), flush=True)
        if data.startswith(b"echo "):
            try:
                sock.sendto(data, source)
            except OSError:  # an output chain dropped the answer (EPERM): the service goes on
                pass


def _peer(port: int, seconds: float) -> None:
    """A local loopback flow 127.0.0.1:port -> 127.0.0.1:FORGED_SOURCE_PORT, then listen on it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.sendto(b"open", ("127.0.0.1", FORGED_SOURCE_PORT))
    print("ready", flush=True)
    _listen(sock, seconds)


def _echo(port: int, seconds: float) -> None:
    """A UDP service on every IPv4 address: answers datagrams that start with `echo `."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print("ready", flush=True)
    _listen(sock, seconds)


def _ask(server: str, port: int, payload: str) -> None:
    """One datagram from CLIENT_PORT (always the same flow); prints `answered` or `silent`."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("0.0.0.0", CLIENT_PORT))
        sock.settimeout(1.0)
        sock.sendto(f"echo {payload}".encode(), (server, port))
        try:
            sock.recvfrom(2048)
            print("answered")
        except socket.timeout:
            print("silent")


# Helpers of the tests.


def _start(site: Site, *args: str) -> subprocess.Popen:
    command = ["ip", "netns", "exec", site.server, *THIS_PROGRAM, *args, str(PROGRAM_SECONDS)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([process.stdout], [], [], 20)
    if not (ready and process.stdout.readline().strip() == "ready"):
        process.kill()
        raise AssertionError(process.communicate()[1])
    return process


def _received(process: subprocess.Popen) -> list[str]:
    """What a program printed: the payloads it got (stopped after a moment for the last datagram to land)."""
    time.sleep(0.5)
    process.kill()
    return process.communicate(timeout=30)[0].split()


def _nft(site: Site, text: str) -> None:
    site.lab.exec(site.server, "nft", "-f", "-", input=text)


def _short_path(policy: str) -> tuple[list[str], list[str]]:
    """(input chain, chain `established`), each rule rendered without its comment."""
    chains = {c.name: [render_rule(r).split(" comment ")[0] for r in c.rules]
              for c in compile_text(policy).table.chains}
    return chains["input"], chains["established"]


def _index(rules: list[str], text: str) -> int:
    return next(i for i, rule in enumerate(rules) if text in rule)


# (d), (b), (c): what the compiler emits.


BANNING = POLICY + "zone f2b = dynamic\n"  # a blocking zone: looked up for every packet


def test_item9_the_short_path_comes_after_the_spoof_drops_and_skips_only_rules_it_cannot_match():
    """(a), (d): the spoofed-loopback drops come first; the short path only takes what is established or
    related and not ICMP; ND, MLD, rpfilter, echo, invalid and the ICMP errors keep their order behind it."""
    rules, _ = _short_path(BANNING)
    short = _index(rules, "goto established")
    assert rules[short] == "ct state established,related meta l4proto != { 1, 58 } goto established"
    assert [i for i, r in enumerate(rules) if "drop/spoofed-loopback" in r] == [1, 2] and short == 3
    order = [_index(rules, text) for text in ("nd-neighbor-solicit", "mld-listener-query", "fib saddr",
                                              "udp dport 11211", "@dyn_f2b_v4", "echo-request",
                                              "ct state established,related accept", "ct state invalid",
                                              "packet-too-big", "vmap @zones_v4")]
    assert short < order[0] and order == sorted(order)


def test_item9_the_established_chain_drops_memcached_and_bans_before_its_accept():
    """(c), (d): the short path keeps the UDP 11211 drop and the bans (every packet) before its accept, the same
    rules as the input chain's, and holds no echo rule: (b) echo requests never take it."""
    rules, established = _short_path(BANNING)
    assert established[0] == rules[_index(rules, "udp dport 11211")]
    bans = [r for r in rules if "goto ban_f2b" in r]
    assert len(bans) == 2 and established[1:3] == bans and established[3:] == ["accept"]
    assert not any("echo" in rule for rule in established)


# The kernel.


@pytest.mark.kernel
def test_item9_a_forged_loopback_source_cannot_join_an_established_loopback_flow(site):
    """(a): the server's IPv4 stack lets 127.0.0.1 in on eth0 (route_localnet, accept_local), so only the
    ruleset stands between the forged packet, which conntrack sees as the reply of a local loopback flow
    (established), and the local socket."""
    site.lab.exec(site.server, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1",
                  "net.ipv4.conf.eth0.accept_local=1")
    forged = udp_packet("127.0.0.1", "127.0.0.1", LOOPBACK_PORT, b"forged")
    got = {}
    for name, load in (("conntrack only", lambda: _nft(site, CONNTRACK_ONLY)),
                       ("nftc", lambda: (_nft(site, "delete table inet ctonly\n"), site.load(POLICY)))):
        load()
        peer = _start(site, "peer", str(LOOPBACK_PORT))
        try:
            site.forge(site.internet, "eth0", [forged])
        finally:
            got[name] = _received(peer)
    counters = site.counters()
    print(f"\nitem 9 (a): forged 127.0.0.1:{FORGED_SOURCE_PORT} -> 127.0.0.1:{LOOPBACK_PORT} delivered {got}; "
          f"drop/spoofed-loopback {counters.get('drop/spoofed-loopback')}")
    assert got["conntrack only"] == ["forged"]  # established: a ruleset that accepts it first lets it in
    assert got["nftc"] == []
    assert counters["drop/spoofed-loopback"] == 1


@pytest.mark.kernel
def test_item9_memcached_udp_of_a_flow_conntrack_already_knows_is_dropped(site):
    """(c): a UDP 11211 flow answered before nftc's table was loaded is established; its next datagram is
    still dropped and counted. A conntrack-only table afterwards lets the same flow in: it is established."""
    ask = ("ip", "netns", "exec", site.internet, *THIS_PROGRAM, "ask", SERVER["eth0"][0], str(MEMCACHED))
    _nft(site, PERMISSIVE)
    service = _start(site, "echo", str(MEMCACHED))
    try:
        answers = [subprocess.run((*ask, "before"), capture_output=True, text=True, timeout=30).stdout.strip()]
        site.load(POLICY)
        _nft(site, "delete table inet before\n")
        answers.append(subprocess.run((*ask, "nftc"), capture_output=True, text=True, timeout=30).stdout.strip())
        counters = site.counters()
        _nft(site, f"delete table inet {TABLE}\n" + CONNTRACK_ONLY)
        answers.append(subprocess.run((*ask, "after"), capture_output=True, text=True, timeout=30).stdout.strip())
    finally:
        received = _received(service)
    print(f"\nitem 9 (c): answers {answers}; the service received {received}; drop/memcached-udp "
          f"{counters.get('drop/memcached-udp')}")
    assert answers == ["answered", "silent", "answered"]
    assert [word for word in received if word != "echo"] == ["before", "after"]
    assert counters["drop/memcached-udp"] == 1


if __name__ == "__main__":
    if sys.argv[1] == "peer":
        _peer(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "echo":
        _echo(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "ask":
        _ask(sys.argv[2], int(sys.argv[3]), sys.argv[4])


@pytest.mark.slow  # a child nft in namespaces of its own
def test_issue9_the_ruleset_loads_on_a_system_without_etc_protocols(tmp_path):
    """A minimal system (no netbase) has no /etc/protocols, where nft looks up protocol names such as `ipv6-icmp`:
    the short path's rule names ICMP and ICMPv6 by number, and the kernel's check (`nft -c`, in a private network
    and mount namespace whose /etc/protocols is empty) takes the whole compiled table. The fresh-root test found
    the named version refused ("Could not resolve protocol name")."""
    script = tmp_path / "policy.nft"
    script.write_text(render_nft(compile_text(POLICY).table))
    empty = tmp_path / "protocols"
    empty.write_text("")
    result = subprocess.run(["unshare", "-rnm", "sh", "-c", 'mount --bind "$1" /etc/protocols && nft -c -f "$2"',
                             "sh", str(empty), str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
