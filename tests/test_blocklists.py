"""Issue 10, "Blocklists from a URL" (H4): `zone Z = url "..." refresh 12h`, `nftc refresh`, the last good list.

Items, as the tests name them:
1. the url zone in the language: its own sets `url_Z_v4/_v6`, an http(s) URL checked at compile time;
2. `nftc refresh`: timeout, size cap, conditional GET, lenient formats, only the zone's elements replaced in one
   transaction, the digest and drift left true;
3. every failure keeps the last good list and says why in one line; `apply --boot` loads the last good list;
4. `file` zones read the same formats (host bits: a warning, the network they lie in);
5. against a real HTTP server in a namespace of its own, wired by veth to nftc's (kernel tests below).
"""

from __future__ import annotations

import hashlib
import http.server
import ipaddress
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import time

import pytest

from nftc.backend.render_nft import render_nft
from nftc.cli.main import build_parser, main
from nftc.compiler import compile_policy
from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.language.loader import read_address_list
from nftc.language.parser import parse_text
from nftc.system.blocklists import ListError, checked

from apply_helpers import lab, server, wait_until  # noqa: F401 (fixtures)
from helpers import man_pages, unavailable

THIS_PROGRAM = (sys.executable, "-B", os.path.abspath(__file__))  # -B: no bytecode written into the checkout

DROP = """\
; Spamhaus DROP List 2026/11/30 - (c) 2026 The Spamhaus Project SLU
; https://www.spamhaus.org/drop/drop.txt
; Last-Modified: Sun, 29 Nov 2026 12:00:00 GMT
1.10.16.0/20 ; SBL256894
2.56.192.0/22 ; SBL459831
192.0.2.7 ; a host
198.51.100.0/24 ; SBL1
198.51.100.64/26 ; nested in the line above
"""


def policy(tmp_path: pathlib.Path, text: str) -> str:
    path = tmp_path / "p.zfw"
    path.write_text(text)
    return str(path)


URL_POLICY = """\
zone internet = any
zone admins = 10.9.0.0/24 trusted
zone drop = url "https://www.spamhaus.org/drop/drop.txt" refresh 12h
allow internet -> smtp
"""


# Item 1: the language


def test_item1_a_url_zone_parses_to_its_source():
    zone, = parse_text('zone drop = url "https://www.spamhaus.org/drop/drop.txt" refresh 12h\n', "p.zfw")
    assert zone == m.Zone("drop", (m.UrlSource("https://www.spamhaus.org/drop/drop.txt", 43200),))
    zone, = parse_text('zone drop = url "http://lists.example/x.txt"\n', "p.zfw")
    assert zone.sources[0].refresh_seconds == m.DEFAULT_REFRESH_SECONDS


@pytest.mark.parametrize("url, message", [
    ("ftp://lists.example/drop.txt", "is not an http or https URL"),
    ("file:///etc/shadow", "is not an http or https URL"),
    ("https:///drop.txt", "has no host name"),
    ("https://user:secret@lists.example/x", "holds credentials"),
    ("https://lists.example:99999/x", "is not a URL"),
    ("drop.txt", "is not an http or https URL"),
])
def test_item1_a_bad_url_is_one_error_at_its_position(tmp_path, capsys, monkeypatch, url, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.zfw").write_text(f'zone internet = any\nzone drop = url "{url}"\nallow internet -> smtp\n')
    assert main(["compile", "p.zfw"]) == 2
    head = capsys.readouterr().err.splitlines()[0]
    assert head.startswith("p.zfw:2:17: error: ") and message in head, head


def test_item1_a_refresh_out_of_range_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.zfw").write_text('zone drop = url "https://l.example/x" refresh 10s\n')
    assert main(["compile", "p.zfw"]) == 2
    assert "p.zfw:1:47: error: refresh 10s is out of range" in capsys.readouterr().err


def test_item1_a_url_zone_cannot_be_trusted(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p.zfw").write_text('zone drop = url "https://l.example/x" trusted\n')
    assert main(["compile", "p.zfw"]) == 2
    assert "cannot be trusted: its addresses are downloaded" in capsys.readouterr().err


def test_item1_a_url_zone_compiles_to_its_own_sets_banned_before_conntrack(tmp_path):
    compiled = compile_policy(policy(tmp_path, URL_POLICY), {})
    text = render_nft(compiled.table)
    assert "set url_drop_v4 {" in text and "set url_drop_v6 {" in text
    assert "ip saddr @url_drop_v4 ip saddr != @trusted_v4 goto ban_drop" in text
    assert text.index("goto ban_drop") < text.index("ct state established,related accept")


# Item 2: formats, the digest


def test_item2_the_last_good_list_fills_the_sets_merged_and_the_digest_leaves_it_out(tmp_path):
    path = policy(tmp_path, URL_POLICY)
    sources: dict[str, str] = {}
    with_list = compile_policy(path, sources, lambda zone, url: ("/state/blocklist.drop.list", DROP))
    without = compile_policy(path, {})
    assert with_list.digest == without.digest
    assert sources["/state/blocklist.drop.list"] == DROP  # recorded as an input: a refresh makes apply compile
    v4 = next(s for s in with_list.table.sets if s.name == "url_drop_v4")
    assert len(v4.elements) == 4  # the nested /26 merged into its /24: the kernel refuses overlapping intervals
    assert "198.51.100.0/24" in render_nft(with_list.table)
    assert "198.51.100.64/26" not in render_nft(with_list.table)


@pytest.mark.parametrize("text, networks", [
    (DROP, ["1.10.16.0/20", "2.56.192.0/22", "192.0.2.7/32", "198.51.100.0/24", "198.51.100.64/26"]),
    ("# ipdeny.com\r\n203.0.113.0/24\r\n2001:db8::/32\r\n", ["203.0.113.0/24", "2001:db8::/32"]),
    ("192.0.2.0-192.0.2.5\n", ["192.0.2.0/30", "192.0.2.4/31"]),
    ("\xef\xbb\xbf".encode("latin-1").decode("utf-8") + "192.0.2.1\n", None),
])
def test_item2_lenient_formats(text, networks):
    if networks is None:  # a BOM inside the text (decoded already) is not an address
        with pytest.raises(PolicyError):
            read_address_list(text, "list")
        return
    found = read_address_list(text, "list")
    assert [str(n) for n in found.networks] == networks
    assert found.warnings == ()


def test_item2_host_bits_are_cleared_with_one_warning_for_the_list():
    found = read_address_list("192.0.2.1/24\n10.0.0.0/8\n198.51.100.9/24 ; x\n", "list")
    assert [str(n) for n in found.networks] == ["192.0.2.0/24", "10.0.0.0/8", "198.51.100.0/24"]
    warning, = found.warnings
    assert warning.severity == "warning" and warning.span.line == 1
    assert warning.message == "'192.0.2.1/24' has host bits set: read as 192.0.2.0/24 (and 1 more entries)"


# Item 3: what a list may not do


OWN = (ipaddress.ip_network("10.9.0.0/24"), ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"),
       ipaddress.ip_network("203.0.113.5/32"))


@pytest.mark.parametrize("text, message", [
    ("<html><body>Service Unavailable</body></html>\n", "not a list of addresses: line 1:"),
    ("; only comments\n\n", "the list holds no address"),
    ("10.0.0.0/8\n", "the list covers 10.9.0.0/24"),  # a trusted zone inside an entry
    ("10.9.0.128/25\n", "the list covers 10.9.0.0/24"),  # an entry inside a trusted zone
    ("0.0.0.0/0\n", "the list covers 10.9.0.0/24"),
    ("127.0.0.1\n", "the list covers 127.0.0.0/8"),
    ("::/0\n", "the list covers ::1/128"),
    ("203.0.113.0/24\n", "the list covers 203.0.113.5/32"),
    ("192.0.2.1\n192.0.2.2\n192.0.2.3\n", "more than 2 entries"),
])
def test_item3_a_list_that_is_garbage_or_covers_what_must_stay_reachable_is_refused(text, message):
    with pytest.raises(ListError) as refused:
        checked(text, "list", OWN, limit=2)
    assert message in str(refused.value) and "\n" not in str(refused.value)


def test_item3_a_list_beside_what_must_stay_reachable_passes():
    found = checked("10.8.255.0/24\n10.9.1.0/24\n203.0.113.6/31\n203.0.113.4\n", "list", OWN, limit=10)
    assert len(found.networks) == 4


# Item 4: file zones read the same formats


def test_item4_a_file_zone_reads_drop_format_and_clears_host_bits_with_a_warning(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "drop.txt").write_text(DROP + "203.0.113.9/24 ; host bits\n")
    (tmp_path / "p.zfw").write_text('zone internet = any\nzone spam = file "drop.txt"\nallow internet -> smtp\n')
    assert main(["compile", "p.zfw"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines()[0] == \
        "drop.txt:9:1: warning: '203.0.113.9/24' has host bits set: read as 203.0.113.0/24"
    assert "203.0.113.0/24" in captured.out and "203.0.113.9" not in captured.out
    assert main(["compile", "--strict", "p.zfw"]) == 2  # --strict: every warning is an error


def test_item2_refresh_of_a_policy_without_the_zone_asked_for_is_a_usage_error(tmp_path, capsys):
    """Refused before the kernel is asked anything: exit 2, one line."""
    path = policy(tmp_path, URL_POLICY)
    assert main(["refresh", path, "--zone", "nope", "--state-dir", str(tmp_path / "state")]) == 2
    assert capsys.readouterr().err == "nftc: refresh: no url zone named 'nope' (url zones: drop)\n"
    (tmp_path / "plain.zfw").write_text("zone internet = any\nallow internet -> smtp\n")
    assert main(["refresh", str(tmp_path / "plain.zfw"), "--state-dir", str(tmp_path / "state")]) == 2
    assert "the policy has no url zone" in capsys.readouterr().err


# Item 2: the shipped systemd timer and service

UNITS = pathlib.Path(__file__).resolve().parent.parent / "systemd"


@pytest.mark.slow
def test_item2_systemd_analyze_verifies_the_refresh_timer_and_service(tmp_path):
    """As tests/test_systemd_unit.py checks nftc.service: the shipped bytes under --root, no output at all. Unlike
    nftc.service these have systemd's default dependencies (sysinit.target, timers.target...): the distribution's
    targets are copied into the root as well."""
    analyze = shutil.which("systemd-analyze")
    targets = sorted(pathlib.Path("/usr/lib/systemd/system").glob("*.target"))
    if analyze is None or not targets:
        unavailable("systemd-analyze is not installed (Debian: the systemd package; scripts/setup.sh test)")
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    (root / "usr/lib/systemd/system").mkdir(parents=True)
    for target in targets:
        shutil.copyfile(target, root / "usr/lib/systemd/system" / target.name, follow_symlinks=False)
    for name in ("nftc.service", "nftc-refresh.service", "nftc-refresh.timer"):
        shutil.copyfile(UNITS / name, root / "etc/systemd/system" / name)
    (root / "usr/sbin").mkdir(parents=True)
    shutil.copy(pathlib.Path(sys.executable).with_name("nftc"), root / "usr/sbin/nftc")
    result = subprocess.run([analyze, "verify", f"--root={root}", "nftc-refresh.timer", "nftc-refresh.service"],
                            capture_output=True, text=True, timeout=120,
                            env=man_pages(root / "usr/share/man"))  # Documentation=man:nftc(8), issue 12
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_item2_the_refresh_service_runs_a_command_nftc_accepts_after_nftc():
    service = (UNITS / "nftc-refresh.service").read_text()
    command = next(line.split("=", 1)[1] for line in service.splitlines() if line.startswith("ExecStart="))
    program, *arguments = shlex.split(command)
    args = build_parser().parse_args(arguments)
    assert (program, args.command, args.policy) == ("/usr/sbin/nftc", "refresh", "/etc/nftc/policy.zfw")
    assert "After=nftc.service network-online.target" in service.splitlines()
    timer = (UNITS / "nftc-refresh.timer").read_text()
    assert "OnUnitActiveSec=1h" in timer.splitlines() and "WantedBy=timers.target" in timer.splitlines()


# Item 5: nftc refresh against an HTTP server in its own namespace, wired by veth to nftc's

WEB, SRV = "10.98.0.2", "10.98.0.1"
PORT = 8080
LIST_URL = f"http://{WEB}:{PORT}/list"
GOOD = "; good\n192.0.2.0/24 ; SBL1\n198.51.100.7\n2001:db8::/32\n"
CHANGED = "; changed\n203.0.113.0/25\n2001:db8:1::/48\n"

SITE = f"""\
zone internet = any
zone lan      = 10.99.0.0/24 trusted
zone spam     = url "{LIST_URL}" refresh 1h
zone f2b      = dynamic
allow internet -> smtp
allow lan      -> smtp, ssh
"""


class Handler(http.server.BaseHTTPRequestHandler):
    """What the list server answers is read per request from files in its directory: `mode` (file, 500, slow,
    huge, garbage) and `list` (the list, with a strong ETag of its sha256); each request is logged to `log`."""

    directory = "."

    def do_GET(self):
        base = pathlib.Path(self.directory)
        with open(base / "log", "a") as log:
            log.write(f"{self.path} if-none-match={self.headers.get('If-None-Match')}\n")
        mode = (base / "mode").read_text().strip()
        if mode == "500":
            return self._send(500, b"oops\n")
        if mode == "slow":
            time.sleep(8)
            return self._send(200, b"192.0.2.1\n")
        if mode == "huge":  # no Content-Length: the cap must stop the read itself
            self.send_response(200)
            self.end_headers()
            for _ in range(64):
                self.wfile.write(b"192.0.2.1\n" * 10000)
            return None
        if mode == "garbage":
            return self._send(200, b"<html><body>Please log in</body></html>\n")
        body = (base / "list").read_bytes()
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        return self._send(200, body, etag)

    def _send(self, code: int, body: bytes, etag: str = ""):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def serve(directory: str, port: int, seconds: float) -> None:
    """The list server (run in the web namespace); it stops by itself after `seconds`, whatever happens."""
    Handler.directory = directory
    server = http.server.ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.timeout = 0.5
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        server.handle_request()


class ListSite:
    """nftc's namespace (the `server` fixture) and a web namespace serving the list, wired by one veth pair."""

    def __init__(self, server, tmp_path: pathlib.Path):
        self.server, self.www = server, tmp_path / "www"
        self.www.mkdir()
        self.web = server.lab.namespace("web")
        server.lab.wire(server.ns, self.web, (f"{SRV}/24",), (f"{WEB}/24",))
        self.set_list(GOOD)
        self.mode("file")
        self.process = subprocess.Popen(["ip", "netns", "exec", self.web, *THIS_PROGRAM, "serve", str(self.www),
                                         str(PORT), "240"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.policy = server.policy("site.zfw", SITE)

    def mode(self, mode: str) -> None:
        (self.www / "mode").write_text(mode)

    def set_list(self, text: str) -> None:
        (self.www / "list").write_text(text)

    def requests(self) -> list[str]:
        log = self.www / "log"
        return log.read_text().splitlines() if log.exists() else []

    def refresh(self, *options: str, timeout: float = 60) -> subprocess.CompletedProcess:
        return self.server.nftc("refresh", self.policy, *options)

    def elements(self, version: int) -> str:
        listing = self.server.nft("list", "set", "inet", "zfw", f"url_spam_v{version}")
        return " ".join(listing.split("elements = {", 1)[1].split("}", 1)[0].split()) if "elements" in listing else ""

    def table_without_blocklists(self) -> list[str]:
        """The table as listed, but the url sets' blocks: what a refresh must leave as it was."""
        kept, skipping = [], False
        for line in self.server.nft("list", "table", "inet", "zfw").splitlines():
            if line.strip().startswith("set url_spam_v"):
                skipping = True
            if not skipping:
                kept.append(line)
            if skipping and line.strip() == "}":
                skipping = False
        return kept

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture
def site(server, tmp_path):
    created = ListSite(server, tmp_path)
    try:
        probe = f"import urllib.request; urllib.request.urlopen('{LIST_URL}', timeout=1)"
        assert wait_until(lambda: server.lab.exec(server.ns, sys.executable, "-B", "-c", probe, check=False,
                                                  timeout=5).returncode == 0, 15), "the list server did not start"
        (created.www / "log").unlink()
        yield created
    finally:
        created.close()


@pytest.mark.kernel
def test_item5_refresh_loads_a_good_list_then_304_then_a_changed_list_touching_nothing_else(site):
    server = site.server
    assert server.nftc("apply", site.policy).returncode == 0
    digest = server.digest()
    assert site.elements(4) == ""  # nothing fetched yet: the zone's sets are empty
    server.nft("add", "element", "inet", "zfw", "dyn_f2b_v4", "{ 203.0.113.200 }")
    before = site.table_without_blocklists()

    done = site.refresh()
    assert done.returncode == 0, done.stderr
    assert "zone spam: ok: 3 entries" in done.stdout
    assert site.elements(4) == "192.0.2.0/24, 198.51.100.7" and site.elements(6) == "2001:db8::/32"
    assert site.table_without_blocklists() == before  # other sets, rules, chains, the dynamic element: untouched
    assert server.digest() == digest  # the marker still names the policy loaded
    status = server.nftc("status")
    assert "DRIFT" not in status.stdout + status.stderr, status.stdout
    event = json.loads(server.nftc("status", "--format", "json").stdout)["events"]["refresh"]
    assert event["result"] == "ok" and event["detail"].startswith("zone spam "), event  # monitoring sees it

    not_due = site.refresh()
    assert not_due.returncode == 0 and "not due" in not_due.stdout and len(site.requests()) == 1
    cached = site.refresh("--force")
    assert cached.returncode == 0 and "not modified (HTTP 304)" in cached.stdout, cached.stdout + cached.stderr
    assert "if-none-match=None" not in site.requests()[-1]  # the conditional GET sent the ETag kept

    site.set_list(CHANGED)
    changed = site.refresh("--force")
    assert changed.returncode == 0, changed.stderr
    assert site.elements(4) == "203.0.113.0/25" and site.elements(6) == "2001:db8:1::/48"
    assert site.table_without_blocklists() == before
    hand = server.nft("add", "element", "inet", "zfw", "url_spam_v4", "{ 192.0.2.99 }")
    assert hand == ""
    assert "DRIFT" in server.nftc("status").stdout  # a hand edit of a blocklist set is drift; a refresh is not


@pytest.mark.kernel
def test_item2_the_environment_cannot_send_the_download_through_a_proxy(site):
    """The environment is not trusted (`su` without `-` keeps a user's): http_proxy pointing at a dead port must
    not stop the refresh, nor route the list through whoever listens there."""
    assert site.server.nftc("apply", site.policy).returncode == 0
    proxies = {name: "http://127.0.0.1:9" for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")}
    done = site.server.nftc("refresh", site.policy, env=proxies)
    assert done.returncode == 0, done.stderr
    assert site.elements(4) == "192.0.2.0/24, 198.51.100.7"


@pytest.mark.kernel
@pytest.mark.parametrize("mode, options, said", [
    ("500", (), "HTTP 500"),
    ("slow", ("--timeout", "2"), "within"),
    ("huge", ("--max-size", "100k"), "larger than 102400 bytes"),
    ("garbage", (), "not a list of addresses"),
    ("covers-trusted", (), "covers 10.99.0.0/24"),
    ("covers-own", (), f"covers {SRV}/32"),
])
def test_item3_a_failed_refresh_keeps_the_last_good_list_and_says_why_in_one_line(site, mode, options, said):
    server = site.server
    assert server.nftc("apply", site.policy).returncode == 0
    assert site.refresh().returncode == 0
    good = site.elements(4)
    if mode.startswith("covers"):
        site.set_list("10.99.0.0/16\n" if mode == "covers-trusted" else f"{SRV}\n")
    else:
        site.mode(mode)
    started = time.monotonic()
    failed = site.refresh("--force", *options)
    assert time.monotonic() - started < 30
    assert failed.returncode == 1
    line, = failed.stderr.splitlines()
    assert line.startswith("nftc: refresh: zone spam: failed: ") and said in line, line
    assert "kept the last good list (3 entries" in line
    assert site.elements(4) == good


@pytest.mark.kernel
def test_item3_at_boot_without_network_apply_loads_the_last_good_list(site):
    server = site.server
    assert server.nftc("apply", site.policy).returncode == 0
    site.set_list(CHANGED)
    assert site.refresh().returncode == 0
    server.nft("delete", "table", "inet", "zfw")  # a reboot: no table
    server.lab.exec(server.ns, "ip", "link", "set", "eth0", "down")  # and no network
    boot = server.nftc("apply", "--boot", site.policy)
    assert boot.returncode == 0, boot.stderr
    assert site.elements(4) == "203.0.113.0/25" and site.elements(6) == "2001:db8:1::/48"
    failed = server.nftc("refresh", "--force", "--timeout", "2")  # no FILE: the policy last applied
    assert failed.returncode == 1 and "kept the last good list" in failed.stderr, failed.stderr
    assert site.elements(4) == "203.0.113.0/25"


@pytest.mark.kernel
def test_item2_a_refresh_is_recorded_as_an_apply_with_the_new_list(site, tmp_path):
    """After a refresh the record is what `nftc apply` with the new list would write: apply is 'unchanged'
    (nothing loaded), a changed kept list (by hand) makes it compile again, and a rollback snapshot holds the
    refreshed list."""
    server = site.server
    assert server.nftc("apply", site.policy).returncode == 0
    assert site.refresh().returncode == 0
    script = (server.state / "applied.script").read_text()
    assert "198.51.100.7" in script
    again = server.nftc("apply", site.policy)
    assert again.returncode == 0 and "unchanged" in again.stdout + again.stderr, again.stdout + again.stderr
    assert site.elements(4) == "192.0.2.0/24, 198.51.100.7"
    kept = server.state / "blocklist.spam.list"
    kept.write_text(kept.read_text() + "203.0.113.77\n")  # not the recorded sha256: not used, and not unchanged
    rebuilt = server.nftc("apply", site.policy)
    assert rebuilt.returncode == 0 and "unchanged" not in rebuilt.stdout + rebuilt.stderr
    assert site.elements(4) == ""  # a kept list that is not the one recorded is never loaded
    assert "DRIFT" not in server.nftc("status").stdout


@pytest.mark.kernel
@pytest.mark.parametrize("entries", [3, 12_000])
def test_item2_a_rollback_after_a_refresh_restores_the_refreshed_list(site, entries):
    """The snapshot an apply takes after a refresh holds the list the refresh loaded (not the one of the apply
    before it), and a changed policy loads the kept list with it. Above records.LISTED_ELEMENTS the snapshot is
    the recorded script, not a listing: the refresh must have recorded it."""
    server = site.server
    first = int(ipaddress.ip_address("100.64.0.0"))
    if entries > 3:  # every other address from 100.64.0.0: no two merge
        site.set_list("".join(f"{ipaddress.ip_address(first + 2 * i)}\n" for i in range(entries)))
    assert server.nftc("apply", site.policy).returncode == 0
    assert site.refresh().returncode == 0
    assert server.nftc("apply", site.policy).returncode == 0  # the table and its record, now with the list
    if entries > 3:  # another list of the same size: what the snapshot must hold
        site.set_list("".join(f"{ipaddress.ip_address(first + 2 * i + 1)}\n" for i in range(entries)))
        assert site.refresh("--force").returncode == 0
    loaded = site.elements(4)
    assert loaded.count(",") + 1 == (2 if entries == 3 else entries)
    changed = server.policy("changed.zfw", SITE + "allow lan -> imap\n")
    assert server.nftc("apply", changed).returncode == 0
    assert site.elements(4) == loaded
    rolled = server.nftc("rollback")
    assert rolled.returncode == 0, rolled.stderr
    assert server.digest() == compile_policy(site.policy, {}).digest
    assert site.elements(4) == loaded


def test_item2_the_recorded_scripts_digest_leaves_the_blocklists_out(tmp_path):
    """live.script_digest (how apply, reapply, drift and snapshots check a recorded script) agrees with the
    compiler with and without a list, and still notices any other change."""
    from nftc.system import live

    path = policy(tmp_path, URL_POLICY)
    with_list = compile_policy(path, {}, lambda zone, url: ("/state/blocklist.drop.list", DROP))
    script = render_nft(with_list.table)
    assert "1.10.16.0/20" in script
    assert live.script_digest(script) == with_list.digest == compile_policy(path, {}).digest
    for before, after in (("7025-7026", "7025-7027"), ('"zone drop: nftc refresh"', '"zone drop"')):
        assert before in script
        assert live.script_digest(script.replace(before, after)) != with_list.digest


@pytest.mark.kernel
def test_item2_refresh_is_refused_when_the_live_table_is_not_the_policy(site):
    server = site.server
    assert server.nftc("apply", site.policy).returncode == 0
    pathlib.Path(site.policy).write_text(SITE + "allow lan -> http\n")
    refused = site.refresh()
    assert refused.returncode == 1
    assert refused.stderr.strip() == "nftc: refresh: table inet zfw is not this policy as it compiles now; " \
                                     "run nftc apply first"


if __name__ == "__main__":
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))


def test_item2_refresh_help_says_the_download_defaults():
    """The CLI leaves --timeout and --max-size to nftc.system.download's defaults: its help must say them."""
    from nftc.system.download import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_SECONDS

    command = build_parser()._subparsers._group_actions[0].choices["refresh"]
    helps = {a.dest: a.help for a in command._actions}
    assert f"(default {DEFAULT_TIMEOUT_SECONDS:g})" in helps["timeout"]
    assert f"(default {DEFAULT_MAX_BYTES >> 20}m)" in helps["max_size"]
