"""Issue 7, items 16-18: the packet path, as compiled and on the kernel with a server on two interfaces.

    internet client  eth0 ==== eth0  server  eth1 ==== eth0  LAN client
    203.0.113.10/24          203.0.113.1/24  192.168.1.1/24  192.168.1.10/24
    2001:db8:1::10/64        2001:db8:1::1/64  fd00:1::1/64  fd00:1::10/64

The server's default route points at the internet client, as a single-homed mail server's would; the LAN is a
second interface with its own prefix. Forged packets (a loopback or LAN source sent in on the internet
interface) are whole IPv4/IPv6 frames written to an AF_PACKET socket in the client's namespace, so the client's
own stack never checks them; this file is also the small program that sends them and the UDP listener that
reports what arrived (`python test_packet_path.py send|receive ...`, run inside a namespace).

- 16: a UDP packet from ::ffff:127.0.0.1 or ::127.0.0.1 (IPv4-mapped, IPv4-compatible loopback) arriving on
  eth0 must not reach a UDP service open to `any`; it is counted under drop/spoofed-loopback.
- 17: `rpfilter strict` (the default) drops a LAN source arriving on the internet interface before it is put in
  the LAN zone; `loose` only drops sources with no route at all; `off` checks nothing.
- 18: while an internet host floods pings, a LAN host pinging at 5/s loses (almost) none: the echo limit is
  per source.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from nftc.compiler import compile_policy
from nftc.lab.netns import Lab
from nftc.backend.render_json import render_json
from nftc.backend.render_nft import render_nft, render_rule

from helpers import compile_text, unavailable

TABLE = "pathtest"
OPEN_UDP, LAN_UDP, ADMIN = 5514, 5515, 7071  # open to `any`; LAN only; the admin console (LAN only)
POLICY = f"""table {TABLE}
zone lan      = 192.168.1.0/24, fd00:1::/64
zone internet = any
service probe    = udp {OPEN_UDP} "a UDP service open to every address"
service lanprobe = udp {LAN_UDP} "a UDP service of the LAN only"
allow internet -> smtp, probe
allow lan      -> zimbra.admin, lanprobe
icmp echo 10/second burst 10
"""
ADMIN_COUNTER, OPEN_UDP_COUNTER = "lan/zimbra.admin/r2", "internet/probe/r1"
SERVER = {"eth0": ("203.0.113.1", "2001:db8:1::1"), "eth1": ("192.168.1.1", "fd00:1::1")}
INTERNET, LAN = ("203.0.113.10", "2001:db8:1::10"), ("192.168.1.10", "fd00:1::10")
UNREACHABLE = ("10.66.0.0/16", "2001:db8:dead::/48")  # routes of type unreachable in the server
RECEIVE_SECONDS = 1.5
THIS_PROGRAM = (sys.executable, "-B", os.path.abspath(__file__))  # -B: it writes no bytecode into the checkout


# Packets: pure functions, so what the tests send is plain to read.


def _checksum(data: bytes) -> int:
    data += b"\0" * (len(data) % 2)
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _ip_packet(source: str, destination: str, protocol: int, segment: bytes, checksum_at: int) -> bytes:
    """An IPv4 or IPv6 header (by the source's family) and `segment`, its checksum filled in at `checksum_at`."""
    src, dst = ipaddress.ip_address(source), ipaddress.ip_address(destination)
    pseudo = (src.packed + dst.packed + (struct.pack("!BBH", 0, protocol, len(segment)) if src.version == 4
                                         else struct.pack("!I3xB", len(segment), protocol)))
    checksum = _checksum(pseudo + segment) or 0xFFFF
    segment = segment[:checksum_at] + struct.pack("!H", checksum) + segment[checksum_at + 2:]
    if src.version == 6:
        return struct.pack("!IHBB", 6 << 28, len(segment), protocol, 64) + src.packed + dst.packed + segment
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, 0, 64, protocol, 0, src.packed,
                         dst.packed)
    return header[:10] + struct.pack("!H", _checksum(header)) + header[12:] + segment


def udp_packet(source: str, destination: str, port: int, payload: bytes = b"nftc packet path") -> bytes:
    return _ip_packet(source, destination, 17, struct.pack("!HHHH", 40000, port, 8 + len(payload), 0) + payload, 6)


def tcp_syn(source: str, destination: str, port: int) -> bytes:
    segment = struct.pack("!HHIIBBHHH", 40001, port, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    return _ip_packet(source, destination, 6, segment, 16)


# The programs run inside namespaces.


def _send(interface: str, destination_mac: str, packets: list[str]) -> None:
    """Each packet (hex) in an Ethernet frame to `destination_mac`, straight onto `interface`."""
    with open(f"/sys/class/net/{interface}/address") as handle:
        own_mac = bytes.fromhex(handle.read().strip().replace(":", ""))
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW) as sock:
        sock.bind((interface, 0))
        for packet in map(bytes.fromhex, packets):
            ethertype = b"\x86\xdd" if packet[0] >> 4 == 6 else b"\x08\x00"
            sock.send(bytes.fromhex(destination_mac.replace(":", "")) + own_mac + ethertype + packet)


def _receive(port: int, seconds: float) -> None:
    """Print `ready`, then after `seconds` the JSON list of source addresses of every datagram on `port`."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    print("ready", flush=True)
    sources, deadline = [], time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            sources.append(sock.recvfrom(2048)[1][0])
        except socket.timeout:
            break
    print(json.dumps(sources), flush=True)


# What the compiler emits (no kernel).


def input_rules(policy: str) -> list[str]:
    compilation = compile_text(policy)
    chain = next(c for c in compilation.table.chains if c.name == "input")
    return [render_rule(rule) for rule in chain.rules]


def test_item16_ipv4_loopback_written_in_ipv6_is_a_spoofed_loopback_source():
    rules = input_rules(POLICY)
    assert 'iif != "lo" ip6 saddr { ::1, ::ffff:127.0.0.0/104, ::127.0.0.0/104 } counter name ' \
           '"drop/spoofed-loopback" drop' in " ".join(rules)


def test_item17_rpfilter_parses_and_defaults_to_strict():
    from nftc.language import model as m
    from nftc.language.parser import parse_text

    assert parse_text("rpfilter loose\n", "p.zfw") == (m.RpFilter("loose"),)
    assert compile_text(POLICY).checked.policy.rpfilter == m.DEFAULT_RPFILTER == m.RpFilter("strict")


@pytest.mark.parametrize("mode, lookup", [("strict", "fib saddr . mark . iif oif missing"),
                                          ("", "fib saddr . mark . iif oif missing"),
                                          ("loose", "fib saddr . mark oif missing"), ("off", None)])
def test_item17_rpfilter_checks_the_route_back_before_the_source_picks_a_zone(mode, lookup):
    rules = input_rules(POLICY + (f"rpfilter {mode}\n" if mode else ""))
    fib = [i for i, rule in enumerate(rules) if " fib " in f" {rule}"]
    if lookup is None:
        assert fib == []
        return
    # only packets conntrack sees as new: a lookup per packet of every established flow cost 4-8 % of the rate
    assert len(fib) == 1 and rules[fib[0]].startswith(f"ct state new {lookup} goto drop_rpfilter")
    first = {word: next(i for i, rule in enumerate(rules) if word in rule)
             for word in ("nd-neighbor-solicit", "echo-request", "ct state established,related accept",
                          "vmap @zones_v4")}
    assert first["nd-neighbor-solicit"] < fib[0] < first["echo-request"] \
        < first["ct state established,related accept"] < first["vmap @zones_v4"]


def test_item17_fib_in_libnftables_json():
    document = json.loads(render_json(compile_text(POLICY + "rpfilter loose\n").table))
    matches = [e["match"] for c in document["nftables"] if "rule" in c.get("add", {})
               for e in c["add"]["rule"]["expr"] if "fib" in e.get("match", {}).get("left", {})]
    assert matches == [{"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "mark"]}}, "right": False}]


@pytest.mark.parametrize("echo, expected", [
    ("icmp echo 10/second burst 10", [
        "icmp type echo-request update @echo_v4 { ip saddr limit rate 10/second burst 10 packets } accept",
        "icmp type echo-request goto drop_echo",
        "icmpv6 type echo-request update @echo_v6 { ip6 saddr limit rate 10/second burst 10 packets } accept",
        "icmpv6 type echo-request goto drop_echo"]),
    ("icmp echo off", ["icmp type echo-request goto drop_echo", "icmpv6 type echo-request goto drop_echo"]),
], ids=["rate", "off"])
def test_item18_echo_is_metered_per_source(echo, expected):
    policy = POLICY.replace("icmp echo 10/second burst 10\n", echo + "\n")
    rules = [rule.split(" comment ")[0] for rule in input_rules(policy) if "echo-request" in rule]
    assert rules == expected
    sets = {s.name: s for s in compile_text(policy).table.sets}
    assert ("echo_v4" in sets) == ("off" not in echo)


# The site: three namespaces, the server on two interfaces.


@dataclass
class Site:
    lab: Lab
    server: str
    internet: str
    lan: str
    directory: str

    def load(self, policy: str) -> None:
        path = os.path.join(self.directory, "policy.zfw")
        with open(path, "w") as handle:
            handle.write(policy)
        script = os.path.join(self.directory, "policy.nft")
        with open(script, "w") as handle:
            handle.write(render_nft(compile_policy(path, {}).table))
        self.lab.exec(self.server, "nft", "-f", script)

    def counters(self) -> dict[str, int]:
        listing = json.loads(self.lab.exec(self.server, "nft", "-j", "list", "counters", "table", "inet",
                                           TABLE).stdout)
        return {item["counter"]["name"]: item["counter"]["packets"] for item in listing["nftables"]
                if "counter" in item}

    def mac(self, namespace: str, interface: str) -> str:
        return json.loads(self.lab.exec(namespace, "ip", "-j", "link", "show", interface).stdout)[0]["address"]

    def forge(self, client: str, server_interface: str, packets: list[bytes]) -> None:
        """Write `packets` onto the client's eth0, towards the server's `server_interface`."""
        destination = self.mac(self.server, server_interface)
        self.lab.exec(client, *THIS_PROGRAM, "send", "eth0", destination, *(p.hex() for p in packets), timeout=30)

    def delivered(self, port: int, send) -> list:
        """Sources of the datagrams a UDP listener on `port` in the server gets while `send()` runs."""
        command = ["ip", "netns", "exec", self.server, *THIS_PROGRAM, "receive", str(port), str(RECEIVE_SECONDS)]
        listener = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            ready, _, _ = select.select([listener.stdout], [], [], 20)
            assert ready and listener.stdout.readline().strip() == "ready", listener.stderr.read()
            send()
            out, err = listener.communicate(timeout=30)
            assert listener.returncode == 0, err
            return [ipaddress.ip_address(a) for a in json.loads(out)]
        finally:
            if listener.poll() is None:
                listener.kill()
                listener.wait()


def as_seen(address: str):
    """The source a dual-stack listener reports: an IPv4 source as IPv4-mapped."""
    parsed = ipaddress.ip_address(address)
    return ipaddress.ip_address(f"::ffff:{parsed}") if parsed.version == 4 else parsed


def _wire(lab, server: str, client: str, interface: str, server_addresses, client_addresses) -> None:
    lab.wire(server, client, (f"{server_addresses[0]}/24", f"{server_addresses[1]}/64"),
             (f"{client_addresses[0]}/24", f"{client_addresses[1]}/64"), left_if=interface)


@pytest.fixture
def site(tmp_path):
    with Lab() as lab:
        server, internet, lan = lab.namespace("srv"), lab.namespace("inet"), lab.namespace("lan")
        # The kernel's own IPv4 reverse-path filter stays off: what is tested is the ruleset's.
        lab.exec(server, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        _wire(lab, server, internet, "eth0", SERVER["eth0"], INTERNET)
        _wire(lab, server, lan, "eth1", SERVER["eth1"], LAN)
        for family, gateway, unreachable in zip(("-4", "-6"), INTERNET, UNREACHABLE):
            lab.exec(server, "ip", family, "route", "add", "default", "via", gateway, "dev", "eth0")
            lab.exec(server, "ip", family, "route", "add", "unreachable", unreachable)
        yield Site(lab, server, internet, lan, str(tmp_path))


# 16


@pytest.mark.kernel
def test_item16_ipv4_loopback_inside_ipv6_is_dropped_off_loopback(site):
    site.load(POLICY)
    forged = ["::ffff:127.0.0.1", "::127.0.0.1", "::ffff:127.3.2.1"]
    genuine = [INTERNET[1], INTERNET[0]]
    packets = [udp_packet(s, SERVER["eth0"][1], OPEN_UDP) for s in forged]
    packets.append(udp_packet(INTERNET[1], SERVER["eth0"][1], OPEN_UDP))
    packets.append(udp_packet(INTERNET[0], SERVER["eth0"][0], OPEN_UDP))
    got = site.delivered(OPEN_UDP, lambda: site.forge(site.internet, "eth0", packets))
    counters = site.counters()
    print(f"\nitem 16: sent from {forged + genuine}; delivered from {got}; drop/spoofed-loopback "
          f"{counters.get('drop/spoofed-loopback')}")
    assert sorted(got) == sorted(map(as_seen, genuine))
    assert counters["drop/spoofed-loopback"] == len(forged)
    assert counters[OPEN_UDP_COUNTER] == len(genuine)


# 17


def _rpfilter_round(site: Site, family: int) -> dict:
    """Forge, per family: a LAN source and a source the server has no route for, both in on eth0; then the
    genuine LAN client on eth1. Which ones arrived, and the counters afterwards."""
    index = 0 if family == 4 else 1
    server, lan_server = SERVER["eth0"][index], SERVER["eth1"][index]
    spoofed = str(ipaddress.ip_network(("192.168.1.0/24", "fd00:1::/64")[index])[99])
    unrouted = str(ipaddress.ip_network(UNREACHABLE[index])[5])
    lan_got = site.delivered(LAN_UDP, lambda: site.forge(site.internet, "eth0", [
        udp_packet(spoofed, server, LAN_UDP), tcp_syn(spoofed, server, ADMIN)]))
    open_got = site.delivered(OPEN_UDP, lambda: site.forge(site.internet, "eth0", [
        udp_packet(unrouted, server, OPEN_UDP)]))
    genuine_got = site.delivered(LAN_UDP, lambda: site.forge(site.lan, "eth1", [
        udp_packet(LAN[index], lan_server, LAN_UDP)]))
    return {"spoofed": as_seen(spoofed) in lan_got, "unrouted": as_seen(unrouted) in open_got,
            "genuine": genuine_got == [as_seen(LAN[index])], "counters": site.counters()}


# mode -> (a LAN source on the internet interface arrives, a source with no route arrives)
RPFILTER_MODES = {"strict": (False, False), "": (False, False), "loose": (True, False), "off": (True, True)}


@pytest.mark.kernel
@pytest.mark.parametrize("mode", RPFILTER_MODES, ids=lambda m: m or "default")
def test_item17_rpfilter_decides_which_forged_sources_arrive_on_the_wrong_interface(site, mode):
    site.load(POLICY + (f"rpfilter {mode}\n" if mode else ""))
    spoofed_arrives, unrouted_arrives = RPFILTER_MODES[mode]
    for family in (4, 6):
        before = site.counters()
        seen = _rpfilter_round(site, family)
        after = seen["counters"]
        reached_admin = after[ADMIN_COUNTER] - before[ADMIN_COUNTER]
        dropped = after.get("drop/rpfilter", 0) - before.get("drop/rpfilter", 0)
        print(f"\nitem 17, rpfilter {mode or '(default)'}, IPv{family}: LAN source on the internet interface "
              f"arrived {seen['spoofed']}, its SYN reached 7071 {reached_admin} times; unrouted source arrived "
              f"{seen['unrouted']}; genuine LAN arrived {seen['genuine']}; drop/rpfilter +{dropped}")
        assert seen["spoofed"] is spoofed_arrives
        assert reached_admin == (1 if spoofed_arrives else 0)
        assert seen["unrouted"] is unrouted_arrives
        assert seen["genuine"]
        assert dropped == (not spoofed_arrives) * 2 + (not unrouted_arrives)


# 18

ECHO_RATE, ECHO_BURST = 10, 10  # as in POLICY
# Asked every 2 ms; ping manages about 100/s here once most requests go unanswered: ~5 s, bounded by count.
FLOOD_COUNT, FLOOD_INTERVAL = 500, 0.002
POLITE_COUNT, POLITE_INTERVAL = 12, 0.2  # 5/s for 2.4 s
PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received.*?time (\d+)ms")


def _ping(namespace: str, family: int, address: str, count: int, interval: float) -> subprocess.Popen:
    command = ["ip", "netns", "exec", namespace, "ping", f"-{family}", "-n", "-q", "-i", str(interval), "-c",
               str(count), "-W", "1", address]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _replies(process: subprocess.Popen) -> tuple[int, int, float]:
    """(requests sent, replies, seconds) from ping's summary line."""
    out, err = process.communicate(timeout=60)
    summary = PING_SUMMARY.search(out)
    assert summary, out + err
    return int(summary[1]), int(summary[2]), int(summary[3]) / 1000


@pytest.mark.kernel
def test_item18_a_ping_flood_from_one_host_does_not_starve_another_zone(site):
    if shutil.which("ping") is None:
        unavailable("ping is not installed (apt install iputils-ping)")
    site.load(POLICY)
    for family in (4, 6):
        index = 0 if family == 4 else 1
        processes = []
        try:
            processes.append(_ping(site.internet, family, SERVER["eth0"][index], FLOOD_COUNT, FLOOD_INTERVAL))
            time.sleep(0.3)  # the flood is on before the LAN host starts
            processes.append(_ping(site.lan, family, SERVER["eth1"][index], POLITE_COUNT, POLITE_INTERVAL))
            polite = _replies(processes[1])
            flood = _replies(processes[0])
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait()
        allowed = ECHO_BURST + ECHO_RATE * flood[2]
        print(f"\nitem 18, IPv{family}: flood {flood[1]}/{flood[0]} answered in {flood[2]} s (burst + rate x "
              f"time = {allowed:.0f}); LAN host at 5/s {polite[1]}/{polite[0]} answered")
        assert polite[0] == POLITE_COUNT and polite[1] >= POLITE_COUNT - 1
        assert flood[0] == FLOOD_COUNT and flood[1] <= 1.25 * allowed + 5  # the flooder is still cut to its rate


if __name__ == "__main__":
    if sys.argv[1] == "send":
        _send(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "receive":
        _receive(int(sys.argv[2]), float(sys.argv[3]))
