"""Issue 10, "A ban must mean a ban": blocking zones and trusted zones, compiled and on the kernel.

    client  eth0 ==== eth0  server
    10.99.0.2, .3           10.99.0.1
    fd99::2, ::3            fd99::1

- item 1 (bans): a zone fed at run time (or by a file) that allows nothing is looked up before conntrack and
  before the echo accept: adding the source of an open TCP session to `dyn_f2b_v4` (or `_v6`) cuts the session
  and its pings go unanswered; the drops count under `f2b/ban`, not `f2b/default-drop`.
- item 2 (trusted): `zone admins = ... trusted`; an address of a trusted zone added to a dynamic set keeps its
  session, its pings and new connections, whether the dynamic zone bans or allows; file zones never take a
  trusted zone's addresses; `zone_of` (what reach and the lab use) predicts what the kernel does.
- item 3: `nftc ignoreip POLICY` prints fail2ban's `ignoreip` line.

This file is also the small echo server and session client the kernel tests run inside namespaces
(`python test_bans.py serve PORT SECONDS` / `session SOURCE SERVER PORT`).
"""

from __future__ import annotations

import ipaddress
import re
import subprocess

import pytest

import echo_session
from helpers import compile_text
from nftc.backend.render_nft import render_nft, render_rule
from nftc.cli.main import main
from nftc.compiler import compile_policy
from nftc.lab import plan, session
from nftc.lab.netns import Lab
from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.language.parser import parse_text
from nftc.semantics.reach import decide, zone_segments
from nftc.semantics.zones import zone_of
from nftc.system import child

PORT = 7777
TABLE = "bantest"
SERVER = {4: "10.99.0.1", 6: "fd99::1"}
CLIENT = {4: "10.99.0.2", 6: "fd99::2"}  # in zone internet (any)
ADMIN = {4: "10.99.0.3", 6: "fd99::3"}  # in the trusted zone admins
POLICY = f"""table {TABLE}
zone internet = any
zone admins   = 10.99.0.3, fd99::3 trusted
zone f2b      = dynamic
zone partners = dynamic
service echo7 = tcp {PORT}
allow internet -> echo7
allow admins   -> echo7
allow partners -> smtp
"""
ECHO_SESSION = child.python(echo_session.__file__)  # tests/echo_session.py: the echo server and a TCP session
SERVE_SECONDS = 60  # the echo server's own bound: it exits by itself even if a test forgets it


# What the compiler emits (no kernel).


def input_rules(policy: str) -> list[str]:
    chain = next(c for c in compile_text(policy).table.chains if c.name == "input")
    return [render_rule(rule).split(" comment ")[0] for rule in chain.rules]


def first(rules: list[str], text: str) -> int:
    return next(i for i, rule in enumerate(rules) if text in rule)


def test_item1_a_blocking_dynamic_zone_is_looked_up_before_conntrack_and_echo():
    rules = input_rules(POLICY)
    ban = first(rules, "@dyn_f2b_v4")
    assert rules[ban] == "ip saddr @dyn_f2b_v4 ip saddr != @trusted_v4 goto ban_f2b"
    accept = first(rules, "ct state established,related accept")  # ICMP's; the rest: test_established_path.py
    assert ban < first(rules, "echo-request") < accept
    assert accept < first(rules, "@dyn_partners_v4")  # it allows: dispatched later
    assert first(rules, "@dyn_f2b_v6") < first(rules, "echo-request")


def test_item1_the_ban_chain_sends_new_connections_to_the_zone_and_counts_the_rest_as_bans():
    table = compile_text(POLICY).table
    chain = next(c for c in table.chains if c.name == "ban_f2b")
    assert [render_rule(r).split(" comment ")[0] for r in chain.rules] == [
        "ct state new goto zone_f2b", 'counter name "f2b/ban" drop']
    assert "f2b/ban" in {c.name for c in table.counters}


def test_item1_a_blocking_file_zone_leaves_the_zone_map_for_the_ban_map(tmp_path):
    (tmp_path / "drop.txt").write_text("203.0.113.0/24\n2001:db8:bad::/48\n10.99.0.3\n")
    policy = tmp_path / "p.zfw"
    policy.write_text(POLICY + 'zone drop = file "drop.txt"\nzone lan = 203.0.113.128/25\ndeny drop -> any\n')
    text = render_nft(compile_policy(str(policy), {}).table)
    rules = [line.strip().split(" comment ")[0] for line in text.splitlines()]
    assert rules.index("ip saddr vmap @bans_v4") < rules.index("ip6 saddr vmap @bans_v6") < next(
        i for i, r in enumerate(rules) if "echo-request" in r)
    bans = text[text.index("map bans_v4"):text.index("}", text.index("elements", text.index("map bans_v4")))]
    assert "203.0.113.0/25 : goto ban_drop" in bans  # the /25 stays the lan's: longest prefix
    assert "10.99.0.3" not in bans  # the trusted admin is never a file zone's
    zones = text[text.index("map zones_v4"):]
    assert "ban_drop" not in zones[:zones.index("}\n")] and "zone_drop" not in zones[:zones.index("}\n")]


def test_item1_a_zone_that_allows_something_or_a_static_zone_never_bans():
    rules = input_rules("zone internet = any\nzone quiet = 192.0.2.0/24\nzone vpn = dynamic\n"
                        "allow vpn -> ssh\nallow internet -> smtp\n")
    assert not any("ban_" in rule or "@bans_v" in rule for rule in rules)


def test_item2_trusted_parses():
    zone, = parse_text("zone admins = 10.9.0.0/24, fd00:9::/64 trusted\n", "p.zfw")
    assert zone == m.Zone("admins", (m.AddressSource(ipaddress.ip_network("10.9.0.0/24")),
                                     m.AddressSource(ipaddress.ip_network("fd00:9::/64"))), trusted=True)


def test_item2_zone_of_never_puts_a_trusted_address_in_a_dynamic_or_file_zone(tmp_path):
    (tmp_path / "drop.txt").write_text("10.99.0.0/24\n10.99.0.3\nfd99::3\n")
    policy = tmp_path / "p.zfw"
    policy.write_text(POLICY + 'zone drop = file "drop.txt"\ndeny drop -> any\n')
    checked = compile_policy(str(policy), {}).checked
    listed = {"f2b": (ipaddress.ip_network("10.99.0.0/16"),), "partners": (ipaddress.ip_network("fd99::/64"),)}
    assert zone_of(checked, "10.99.0.3", "eth0", listed) == "admins"
    assert zone_of(checked, "fd99::3", "eth0", listed) == "admins"
    assert zone_of(checked, "10.99.1.2", "eth0", listed) == "f2b"
    assert zone_of(checked, "10.99.0.2", "eth0", listed) == "drop"  # the policy's bans come first
    assert zone_of(checked, "fd99::2", "eth0", listed) == "partners"


@pytest.mark.parametrize("text, message", [
    ("zone internet = any trusted\n", "zone 'internet' cannot be trusted: 'any' holds every address"),
    ("zone f2b = dynamic trusted\n", "zone 'f2b' cannot be trusted: its addresses are added at run time"),
    ('zone f = file "x.txt" trusted\n', "zone 'f' cannot be trusted: its addresses come from a file"),
    ("zone dmz = iface eth1 trusted\n", "zone 'dmz' cannot be trusted: a trusted zone lists addresses, not "
                                        "interfaces"),
])
def test_item2_only_a_zone_of_addresses_can_be_trusted(tmp_path, text, message):
    (tmp_path / "x.txt").write_text("192.0.2.1\n")
    policy = tmp_path / "p.zfw"
    policy.write_text(text)
    with pytest.raises(PolicyError) as caught:
        compile_policy(str(policy), {})
    assert [d.message for d in caught.value.diagnostics] == [message]


def test_item3_ignoreip_prints_loopback_and_the_trusted_networks(tmp_path, capsys):
    policy = tmp_path / "p.zfw"
    policy.write_text(POLICY + "zone ops = fd00:9::/64, 192.0.2.0/25 trusted\n")
    assert main(["ignoreip", str(policy)]) == 0
    assert capsys.readouterr().out == "ignoreip = 127.0.0.1/8 ::1 10.99.0.3/32 192.0.2.0/25 fd00:9::/64 fd99::3/128\n"


# On the kernel: a server and a client namespace.


class Site:
    """The server with the policy loaded (as nft text, no state directory) and a client with two addresses per
    family: one in zone internet, one in the trusted zone admins."""

    def __init__(self, lab, policy: str):
        self.lab, self.compilation = lab, compile_text(policy)
        self.server, self.client = lab.namespace("srv"), lab.namespace("cli")
        lab.wire(self.server, self.client, (f"{SERVER[4]}/24", f"{SERVER[6]}/64"),
                 (f"{CLIENT[4]}/24", f"{ADMIN[4]}/24", f"{CLIENT[6]}/64", f"{ADMIN[6]}/64"))
        lab.exec(self.server, "nft", "-f", "-", input=render_nft(self.compilation.table))
        self.echo = subprocess.Popen(["ip", "netns", "exec", self.server, *ECHO_SESSION, "serve", str(PORT),
                                      str(SERVE_SECONDS)], stdout=subprocess.PIPE, text=True)
        assert self.echo.stdout.readline().strip() == "ready"

    def ban(self, zone: str, address: str) -> None:
        version = ipaddress.ip_address(address.split("/")[0]).version
        self.lab.exec(self.server, "nft", "add", "element", "inet", TABLE, f"dyn_{zone}_v{version}", f"{{ {address} }}")

    def pings(self, source: str, count: int = 2) -> bool:
        """Whether any of `count` pings from `source` is answered (ping's own deadline bounds it)."""
        server = SERVER[ipaddress.ip_address(source).version]
        return self.lab.exec(self.client, "ping", "-c", str(count), "-i", "0.2", "-W", "1", "-I", source, server,
                             check=False, timeout=20).returncode == 0

    def connects(self, source: str) -> bool:
        with Session(self, source) as session:
            return session.connected and session.exchange() == "ok"

    def counter(self, name: str) -> int:
        listing = self.lab.exec(self.server, "nft", "list", "counter", "inet", TABLE, name).stdout
        return int(re.search(r"packets (\d+)", listing).group(1))

    def close(self) -> None:
        self.echo.kill()
        self.echo.wait(timeout=10)


class Session:
    """A live TCP session from `source` to the echo server, driven line by line."""

    def __init__(self, site: Site, source: str):
        server = SERVER[ipaddress.ip_address(source).version]
        self.process = subprocess.Popen(["ip", "netns", "exec", site.client, *ECHO_SESSION, "session", source,
                                         server, str(PORT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)
        self.connected = self.process.stdout.readline().strip() == "connected"

    def exchange(self, seconds: float = 2.0) -> str:
        """Send a line; `ok` when the echo comes back within `seconds`."""
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def site():
    with Lab() as lab:
        created = Site(lab, POLICY)
        try:
            yield created
        finally:
            created.close()


@pytest.mark.kernel
@pytest.mark.parametrize("version", [4, 6])
def test_item1_a_ban_cuts_an_open_session_and_its_pings(site, version):
    source = CLIENT[version]
    with Session(site, source) as session:
        assert session.connected and session.exchange() == "ok"
        assert site.pings(source)
        site.ban("f2b", source)
        assert session.exchange() == "timeout"  # the open session is cut
        assert not site.pings(source)
    assert not site.connects(source)
    assert site.counter("f2b/ban") > 0  # the session's and the pings' packets: bans, not default drops


@pytest.mark.kernel
@pytest.mark.parametrize("version", [4, 6])
def test_item2_a_trusted_address_added_to_dynamic_sets_keeps_working(site, version):
    source = ADMIN[version]
    wide = "10.99.0.0/24" if version == 4 else "fd99::/64"
    with Session(site, source) as session:
        assert session.connected and session.exchange() == "ok"
        site.ban("f2b", source)
        site.ban("f2b", CLIENT[version])
        site.ban("partners", wide)  # a range, in a dynamic zone that allows something, but not echo7
        assert session.exchange() == "ok"
        assert site.pings(source)
    assert site.connects(source)
    assert not site.connects(CLIENT[version])  # the other address of the client is banned


@pytest.mark.kernel
def test_item2_zone_of_and_reach_predict_what_the_kernel_does(site):
    """For each source and what the dynamic sets hold, the zone nftc computes decides port 7777 as the kernel."""
    checked = site.compilation.checked
    site.ban("partners", CLIENT[4])
    site.ban("partners", ADMIN[6])
    site.ban("f2b", CLIENT[6])
    listed = {"partners": (ipaddress.ip_network(CLIENT[4]), ipaddress.ip_network(ADMIN[6])),
              "f2b": (ipaddress.ip_network(CLIENT[6]),)}
    for source in (*CLIENT.values(), *ADMIN.values()):
        zone = zone_of(checked, source, "eth0", listed)
        expected = decide(zone_segments(checked, zone), "tcp", PORT).verdict == "accept"
        assert site.connects(source) == expected, (source, zone)


LAB_POLICY = """zone internet = any
zone drop     = file "drop.txt"
zone ops      = 198.51.100.0/28 trusted
reject drop     -> smtp
allow  internet -> smtp, imap
allow  ops      -> ssh
"""


@pytest.mark.kernel
def test_items1_2_the_lab_agrees_on_a_rejecting_blocking_file_zone_and_a_trusted_zone_inside_it(tmp_path):
    """New connections from a blocking zone still get its rules (reject: refused), trusted addresses listed in
    its file stay the trusted zone's: the lab's matrix (expected from reach) has no mismatch."""
    (tmp_path / "drop.txt").write_text("198.51.100.0/24\n198.51.100.5\n2001:db8:bad::/48\n")
    policy = tmp_path / "lab.zfw"
    policy.write_text(LAB_POLICY)
    checked = compile_policy(str(policy), {}).checked
    with session.session(checked, lambda live: session.load_policy(live, str(policy))) as live:
        report = session.probe_lab(live, checked, "builtin")
    assert report.ok, "\n".join(map(plan.format_mismatch, report.mismatches))
    assert report.cell("drop", "smtp", 4).observed == plan.REFUSED
    assert report.cell("ops", "ssh", 4).observed == plan.OPEN
