"""Issue 10, "fail2ban, for real": integrations/fail2ban/ with Debian's own fail2ban-server, in namespaces.

    client  eth0 ==== eth0  server (nftc's table, an echo server on 7777, fail2ban-server)
    10.99.0.2               10.99.0.1
    fd99::2                 fd99::1

fail2ban runs the shipped jails (jail.d/zimbra-nftc.conf), filters and action unchanged, with its configuration,
socket, pid file, database and log in tmp_path; only the log paths and maxretry are the test's (jail.local).
- the filters: Zimbra's MTA lines (postfix, SASL) and audit.log lines (webmail, admin console) give the client,
  and a forged `oip` in a user agent gives nobody else (fail2ban-regex);
- the kernel test: lines appended to the logs ban the client, IPv4 through the SMTP jail and IPv6 through the
  audit jail; its open sessions stop and it cannot connect; `nftc apply` of a changed policy keeps the bans;
  unbanning an address that is already gone is not an error; stopping fail2ban unbans its own addresses and
  leaves the rest of the shared set and nftc's table alone; the client connects again;
- `element_timeout = yes` (a zone `dynamic timeout ...`): each ban carries fail2ban's own time, and a ban fail2ban
  lengthens (bantime.increment) is lengthened in the kernel;
- the action itself: it creates, deletes and flushes nothing, and names the sets as nftc does.
"""

from __future__ import annotations

import configparser
import pathlib
import re
import shutil
import subprocess
import time

import pytest

import echo_session
from apply_helpers import ROOT, compiled_digest, lab, server, wait_until  # noqa: F401 (fixtures)
from helpers import unavailable
from nftc.system import child

INTEGRATION = ROOT / "integrations" / "fail2ban"
FAIL2BAN_CONFIG = pathlib.Path("/etc/fail2ban")  # Debian's fail2ban package: jail.conf, filter.d/postfix.conf...
PORT = 7777
SERVER = {4: "10.99.0.1", 6: "fd99::1"}
CLIENT = {4: "10.99.0.2", 6: "fd99::2"}
ADMIN_RANGE = "10.99.0.4/30"  # put in the shared set by someone else: fail2ban leaves it, and bans inside it
INSIDE_RANGE = "10.99.0.5"
MAXRETRY = 3
POLICY = f"""zone internet = any
zone f2b      = dynamic
service echo7 = tcp {PORT}
allow internet -> echo7
deny  f2b      -> any
"""
CHANGED_POLICY = POLICY + "allow internet -> smtp\n"
WAIT = 30.0  # seconds: fail2ban polls its logs every second; the bound is generous for a loaded CI machine

ECHO_SESSION = child.python(echo_session.__file__)  # tests/echo_session.py: the echo server and a TCP session
ECHO_SECONDS = 120  # the echo server exits by itself after this long without a new connection


def smtp_failure(address: str) -> str:
    """A line of Zimbra's MTA log (/var/log/zimbra.log, syslog): postfix refusing an SMTP AUTH password."""
    return (f"{time.strftime('%b %e %H:%M:%S')} mail postfix/submission/smtpd[10686]: warning: "
            f"unknown[{address}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n")


def audit_failure(address: str, user_agent: str = "ZimbraWebClient - FF125 (Linux)/10.0.0_GA_4518") -> str:
    """A line of /opt/zimbra/log/audit.log: a webmail login refused, the client behind Zimbra's proxy (oip)."""
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S')},123 WARN  [qtp1-23:https://mail.example.com/service/soap/"
            f"AuthRequest] [name=bob@example.com;oip={address};ip=127.0.0.1;ua={user_agent};] security - "
            f"cmd=Auth; account=bob@example.com; protocol=soap; error=authentication failed for "
            f"[bob@example.com], invalid password;\n")


def admin_console_failure(address: str) -> str:
    """A line of audit.log: an admin console login (port 7071, no proxy in between: the client is `ip`)."""
    return (f"{time.strftime('%Y-%m-%d %H:%M:%S')},456 WARN  [qtp1-24:https://mail.example.com:7071/service/admin/"
            f"soap/AuthRequest] [name=admin@example.com;ip={address};ua=ZimbraWebClient - FF125;] security - "
            f"cmd=Auth; account=admin@example.com; protocol=soap; error=authentication failed for "
            f"[admin@example.com], invalid password;\n")


def needs_fail2ban() -> None:
    if shutil.which("fail2ban-server") is None or not (FAIL2BAN_CONFIG / "filter.d" / "postfix.conf").exists():
        unavailable("needs Debian's fail2ban package (scripts/setup.sh test installs it)")


def regex_hits(lines: str, filter_: str, tmp_path: pathlib.Path) -> list[str]:
    """The addresses fail2ban-regex finds in `lines` with `filter_` (a file, or `name[options]` of /etc's)."""
    log = tmp_path / "sample.log"
    log.write_text(lines)
    result = subprocess.run(["fail2ban-regex", "-r", "-o", "ip", str(log), filter_],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def action() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(INTEGRATION / "action.d" / "nftc.conf")
    return parser


def test_fail2ban_the_action_never_creates_deletes_or_flushes_what_nftc_owns():
    """No actionstart/actionstop/actionflush (fail2ban then unbans one by one), and no command but adding,
    getting and deleting one element."""
    definition = action()["Definition"]
    assert [definition[name] for name in ("actionstart", "actionstop", "actioncheck", "actionflush")] == [""] * 4
    commands = " ".join(definition[name] for name in ("actionban", "actionunban", "_prolong-yes"))
    assert set(re.findall(r"(?:<nftables>|\\;) (\w+ \w+)", commands)) == {"get element", "add element",
                                                                           "delete element"}
    assert not re.search(r"(?<!action)flush", (INTEGRATION / "action.d" / "nftc.conf").read_text().split(
        "[Definition]")[1])


def test_fail2ban_the_action_names_the_sets_as_nftc_does():
    """The action's copy of the set names (dyn_ZONE_v4/_v6, by fail2ban's family tag) is nftc's (names.py)."""
    from nftc.backend import names
    from nftc.language.model import DEFAULT_TABLE

    parsed = action()
    for section, version in (("Init", 4), ("Init?family=inet6", 6)):
        assert parsed[section]["addr_set"] == names.dynamic_set("<zone>", version)
    assert parsed["Init"]["table"] == DEFAULT_TABLE


@pytest.mark.slow
def test_fail2ban_the_audit_filter_finds_the_client_of_webmail_and_admin_console_failures(tmp_path):
    needs_fail2ban()
    success = audit_failure("203.0.113.8").replace("WARN ", "INFO ").split(" error=")[0] + "\n"
    lines = (audit_failure("203.0.113.7") + admin_console_failure("198.51.100.9") + audit_failure("2001:db8::66")
             + success)
    assert regex_hits(lines, str(INTEGRATION / "filter.d" / "zimbra-audit.conf"), tmp_path) == [
        "203.0.113.7", "198.51.100.9", "2001:db8::66"]


@pytest.mark.slow
def test_fail2ban_a_forged_oip_in_the_user_agent_frames_nobody(tmp_path):
    """Zimbra doubles every `;` of a context value: `x;oip=192.0.2.1;` sent as a user agent is logged
    `x;;oip=192.0.2.1;;`, and the filter takes the real client (oip, or ip when there is none)."""
    needs_fail2ban()
    forged = audit_failure("203.0.113.7", user_agent="x;;oip=192.0.2.1;;")
    forged_first = forged.replace("[name=bob@example.com;", "[name=bob@example.com;ua=y;;oip=192.0.2.2;;;")
    direct = admin_console_failure("198.51.100.9").replace("ua=ZimbraWebClient - FF125;", "ua=z;;oip=192.0.2.3;;;")
    assert regex_hits(forged + forged_first + direct, str(INTEGRATION / "filter.d" / "zimbra-audit.conf"),
                      tmp_path) == ["203.0.113.7", "203.0.113.7", "198.51.100.9"]


@pytest.mark.slow
def test_fail2ban_the_smtp_jail_reads_zimbras_mta_log_with_fail2bans_postfix_filter(tmp_path):
    needs_fail2ban()
    lines = (smtp_failure("203.0.113.7") + smtp_failure("2001:db8::7").replace("submission/", "smtps/")
             + smtp_failure("198.51.100.4").replace("submission/", ""))
    assert regex_hits(lines, "postfix[mode=auth]", tmp_path) == ["203.0.113.7", "2001:db8::7", "198.51.100.4"]


# On the kernel.


class Fail2ban:
    """Debian's fail2ban-server in the server's namespace, with the shipped jails, filters and action, and every
    file it writes in `directory`. Stopped by its own PID."""

    def __init__(self, namespace: str, directory: pathlib.Path, jail_local: str = ""):
        self.directory, self.config = directory, directory / "fail2ban"
        self.socket, self.pidfile, self.log = directory / "f2b.sock", directory / "f2b.pid", directory / "f2b.log"
        self.mta_log, self.audit_log = directory / "zimbra.log", directory / "audit.log"
        self.mta_log.write_text("")
        self.audit_log.write_text("")
        self._configure(jail_local)
        self.process = subprocess.Popen(
            ["ip", "netns", "exec", namespace, "fail2ban-server", "-f", "-x", "-c", str(self.config),
             "-s", str(self.socket), "-p", str(self.pidfile), "--logtarget", str(self.log), "--loglevel", "INFO"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_until(self._jails_started, WAIT):
            self.stop()
            raise AssertionError(f"fail2ban did not start both jails:\n{self.log_text()}")

    def _configure(self, jail_local: str) -> None:
        """Debian's configuration without its jails and local overrides, plus integrations/fail2ban as the
        README installs it, plus the test's paths (fail2ban.local, jail.local) and `jail_local`."""
        shutil.copytree(FAIL2BAN_CONFIG, self.config, ignore=shutil.ignore_patterns("*.local", "jail.d", "fail2ban.d"))
        for part in ("action.d", "filter.d", "jail.d"):
            shutil.copytree(INTEGRATION / part, self.config / part, dirs_exist_ok=True)
        (self.config / "fail2ban.local").write_text(
            f"[DEFAULT]\ndbfile = {self.directory / 'f2b.sqlite3'}\n")
        (self.config / "jail.local").write_text(
            f"[zimbra-smtp]\nlogpath = {self.mta_log}\nmaxretry = {MAXRETRY}\n\n"
            f"[zimbra-audit]\nlogpath = {self.audit_log}\nmaxretry = {MAXRETRY}\n{jail_local}")

    def client(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["fail2ban-client", "-c", str(self.config), "-s", str(self.socket), *args],
                              capture_output=True, text=True, timeout=WAIT)

    def _jails_started(self) -> bool:
        return "zimbra-audit, zimbra-smtp" in self.client("status").stdout

    def append(self, log: pathlib.Path, line: str, times: int = MAXRETRY) -> None:
        with log.open("a") as file:
            file.write(line * times)

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else "(no fail2ban log)"

    def errors(self) -> list[str]:
        """fail2ban's ERROR lines: a ban or unban command that failed (fail2ban-client still says 0)."""
        return [line for line in self.log_text().splitlines() if " ERROR " in line]

    def stop(self) -> None:
        """`fail2ban-client stop` (the jails unban what they banned), then, if it is still running, kill it."""
        if self.process.poll() is None:
            try:
                self.client("stop")
            except subprocess.TimeoutExpired:
                pass  # killed below
        try:
            self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


class Session:
    """A TCP session from the client namespace to the echo server, driven line by line."""

    def __init__(self, namespace: str, source: str, server: str):
        self.process = subprocess.Popen(["ip", "netns", "exec", namespace,
                                         *ECHO_SESSION, "session", source, server, str(PORT)],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, cwd=child.CWD)
        self.connected = self.process.stdout.readline().strip() == "connected"

    def exchange(self, seconds: float = 2.0) -> str:
        self.process.stdin.write(f"{seconds}\n")
        self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


def connects(namespace: str, version: int) -> bool:
    session = Session(namespace, CLIENT[version], SERVER[version])
    try:
        return session.connected and session.exchange() == "ok"
    finally:
        session.close()


def set_elements(server, version: int) -> str:
    return server.nft("list", "set", "inet", "zfw", f"dyn_f2b_v{version}")


@pytest.mark.kernel
def test_fail2ban_bans_through_nftc_cuts_sessions_survives_an_apply_and_unbans(server, lab, tmp_path):
    needs_fail2ban()
    client = lab.namespace("cli")
    lab.wire(server.ns, client, (f"{SERVER[4]}/24", f"{SERVER[6]}/64"), (f"{CLIENT[4]}/24", f"{CLIENT[6]}/64"))
    applied = server.nftc("apply", server.policy("site.zfw", POLICY))
    assert applied.returncode == 0, applied.stderr
    echo = subprocess.Popen(["ip", "netns", "exec", server.ns, *ECHO_SESSION, "serve", str(PORT), str(ECHO_SECONDS)],
                            stdout=subprocess.PIPE, text=True, cwd=child.CWD)
    sessions = {}
    fail2ban = None
    try:
        assert echo.stdout.readline().strip() == "ready"
        sessions = {version: Session(client, CLIENT[version], SERVER[version]) for version in (4, 6)}
        assert all(s.connected and s.exchange() == "ok" for s in sessions.values())
        server.nft("add", "element", "inet", "zfw", "dyn_f2b_v4", f"{{ {ADMIN_RANGE} }}")
        fail2ban = Fail2ban(server.ns, tmp_path)

        # Log lines appended to the MTA log (IPv4) and to audit.log (IPv6) ban the client.
        fail2ban.append(fail2ban.mta_log, smtp_failure(CLIENT[4]) + smtp_failure(INSIDE_RANGE))
        fail2ban.append(fail2ban.audit_log, audit_failure(CLIENT[6]))
        for version in (4, 6):
            assert wait_until(lambda: CLIENT[version] in set_elements(server, version), WAIT), fail2ban.log_text()
        assert fail2ban.errors() == []
        assert sessions[4].exchange() == "timeout" and sessions[6].exchange() == "timeout"  # open sessions stop
        assert not connects(client, 4) and not connects(client, 6)  # and new ones

        # An apply of a changed policy during the ban keeps it.
        reload = server.nftc("apply", server.policy("changed.zfw", CHANGED_POLICY))
        assert reload.returncode == 0, reload.stderr
        assert server.digest() == compiled_digest(str(server.dir / "changed.zfw"))
        assert CLIENT[4] in set_elements(server, 4) and CLIENT[6] in set_elements(server, 6)
        assert not connects(client, 4) and not connects(client, 6)

        # An address already gone (expired, deleted by hand) unbans without an error.
        server.nft("delete", "element", "inet", "zfw", "dyn_f2b_v6", f"{{ {CLIENT[6]} }}")
        assert fail2ban.client("set", "zimbra-audit", "unbanip", CLIENT[6]).returncode == 0
        assert fail2ban.errors() == []
        assert connects(client, 6)

        # Stopping fail2ban unbans its own address, and only that one: the shared set is never flushed.
        fail2ban.stop()
        assert CLIENT[4] not in set_elements(server, 4) and ADMIN_RANGE in set_elements(server, 4)
        assert connects(client, 4)
        assert server.digest() == compiled_digest(str(server.dir / "changed.zfw"))  # nftc's table untouched
        log = fail2ban.log_text()
        assert all(f"[{jail}] Ban {address}" in log and f"[{jail}] Unban {address}" in log for jail, address in (
            ("zimbra-smtp", CLIENT[4]), ("zimbra-smtp", INSIDE_RANGE), ("zimbra-audit", CLIENT[6])))
        assert fail2ban.errors() == []  # every ban and unban command succeeded
    finally:
        for session in sessions.values():
            session.close()
        if fail2ban is not None:
            fail2ban.stop()
        echo.kill()
        echo.wait(timeout=10)


TIMEOUT_POLICY = """zone internet = any
zone f2b      = dynamic timeout 1h
allow internet -> smtp
deny  f2b      -> any
"""


@pytest.mark.kernel
def test_fail2ban_element_timeout_gives_each_ban_fail2bans_own_time(server, tmp_path):
    """With `zone f2b = dynamic timeout 1h` and `element_timeout = yes`, each ban is added with fail2ban's own
    time, not the zone's hour, and a ban fail2ban lengthens (bantime.increment: a second offence) is lengthened in
    the kernel too: the kernel never lifts a ban fail2ban still counts, nor keeps one long after fail2ban's end."""
    needs_fail2ban()
    applied = server.nftc("apply", server.policy("timeouts.zfw", TIMEOUT_POLICY))
    assert applied.returncode == 0, applied.stderr

    def listing() -> str:
        return set_elements(server, 4) + set_elements(server, 6)

    assert "timeout 1h" in listing()
    fail2ban = Fail2ban(server.ns, tmp_path, "bantime = 10s\nbantime.increment = true\n"
                                             "action = nftc[zone=f2b, element_timeout=yes]\n")
    try:
        fail2ban.append(fail2ban.audit_log, audit_failure("2001:db8::66") + audit_failure("203.0.113.7"))
        assert wait_until(lambda: listing().count("timeout 10s expires") == 2, WAIT), fail2ban.log_text() + listing()
        assert wait_until(lambda: "203.0.113.7" not in listing(), WAIT)  # the kernel and fail2ban end it (10 s)
        assert wait_until(lambda: "[zimbra-audit] Unban 203.0.113.7" in fail2ban.log_text(), WAIT)

        # A second offence: banned for 10 s, then fail2ban doubles the ban (bantime.increment) and prolongs it.
        fail2ban.append(fail2ban.audit_log, audit_failure("203.0.113.7"))
        assert wait_until(lambda: "203.0.113.7 timeout 20s expires" in listing(), WAIT), fail2ban.log_text() + listing()
        assert fail2ban.errors() == []
    finally:
        fail2ban.stop()
