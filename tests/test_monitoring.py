"""Issue 10, "Monitoring": `nftc status --format json|openmetrics` (item 1) and one audit line to syslog per apply,
confirm, rollback, guard action and refresh (item 2).

The OpenMetrics output is checked by prometheus_client's strict OpenMetrics parser, not by the renderer's own
reading. Counter and set names are data another tool may choose (anything with CAP_NET_ADMIN can add a counter
to nftc's table): the kernel tests add one whose name forges nftc's counter lines in the text listing.

Syslog is tested without touching the machine's logger: nftc runs in a private mount namespace (`unshare -m`) in
which an overlay over /dev holds the test's own datagram socket as /dev/log (or no /dev/log at all), and the test
reads the lines from that socket.
"""

from __future__ import annotations

import errno
import json
import re
import socket
import struct
import subprocess
import sys
import time

import pytest

from apply_helpers import SITE, Server, lab, server  # noqa: F401 (fixtures)
from nftc.system import audit, exposition, records, setsize
from nftc.system.monitor import DropCounter, RuleCounter, SetSize, Status, TableStatus
from nftc.system.records import Event, Target
from nftc.system.state import StateDir, StateError

# A counter name another tool could give: in the text listing it forges a second `counter lan/ssh/r2` with a
# huge value and an unindented `# EOF`; in OpenMetrics it would close the document early if not escaped.
HOSTILE = 'x {\n\t\tpackets 999999 bytes 1\n\t}\n\tcounter lan/ssh/r2 {\n\t\tpackets 999999 bytes 1\n\t}\n# EOF\\ "'


def _openmetrics(text: str) -> dict:
    """Family name -> family, from prometheus_client's strict OpenMetrics parser (it requires `# EOF` last)."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    return {family.name: family for family in text_string_to_metric_families(text)}


def _status(**changes) -> Status:
    fields = dict(
        time=1.5e9,
        table=TableStatus(Target("inet", "zfw"), True, "/etc/nftc/policy.zfw", "ab" * 32, "2026-01-01T00:00:00Z",
                          False, "none", "none"),
        rules=(RuleCounter("lan/ssh/r2", "lan", "ssh", "r2", 5, 300),
               RuleCounter(HOSTILE, "x {", "y", "z", 1, 2)),
        drops=(DropCounter("drop/echo", 7, 700), DropCounter("caf\u00e9\ud800/\n", 1, 1)),
        sets=(SetSize("dyn_f2b_v4", "set", "dynamic", 100_000), SetSize('q"\\', "map", "static", 3),
              SetSize("gone", "set", "static", None)),
        events=(Event("apply", "ok", 1.7e9, "/etc/nftc/policy.zfw", "ab" * 32, "inet zfw", "uid=0", ""),
                Event("refresh", "failed", 1.7e9 + 1, None, None, None, "uid=0", "HTTP 500")),
        notes=())
    fields.update(changes)
    return Status(**fields)


def test_item1_openmetrics_is_valid_and_escapes_every_name_read_from_the_kernel():
    text = exposition.render_openmetrics(_status())
    lines = text.splitlines()
    assert lines[-1] == "# EOF" and [line for line in lines if "EOF" in line.split('"')[0]] == ["# EOF"]
    families = _openmetrics(text)
    rules = families["nftc_rule_packets"]
    assert rules.type == "counter" and {s.name for s in rules.samples} == {"nftc_rule_packets_total"}
    assert {s.labels["counter"]: s.value for s in rules.samples} == {"lan/ssh/r2": 5, HOSTILE: 1}
    drops = {s.labels["reason"]: s.value for s in families["nftc_drop_packets"].samples}
    assert drops == {"drop/echo": 7, "caf\u00e9?/\n": 1}  # a lone surrogate cannot be UTF-8: replaced
    sizes = {s.labels["set"]: s.value for s in families["nftc_set_elements"].samples}
    assert sizes == {"dyn_f2b_v4": 100_000, 'q"\\': 3}  # a set that went away is not a zero
    success = {s.labels["action"]: (s.labels["result"], s.value) for s in families["nftc_last_event_success"].samples}
    assert success == {"apply": ("ok", 1), "refresh": ("failed", 0)}
    assert families["nftc_table_info"].samples[0].labels["sha256"] == "ab" * 32


def test_item1_openmetrics_of_a_table_that_is_not_loaded_still_says_so():
    """A textfile collector must read `nftc_table_loaded 0`, not keep the last file."""
    families = _openmetrics(exposition.render_openmetrics(_status(
        table=TableStatus(Target("inet", "zfw"), False), rules=(), drops=(), sets=())))
    assert [s.value for s in families["nftc_table_loaded"].samples] == [0]
    assert not families["nftc_drift"].samples and not families["nftc_table_info"].samples


def test_item1_json_keeps_names_exact():
    document = json.loads(exposition.render_json(_status()))
    assert document["format"] == "nftc-status/1"
    assert [r["counter"] for r in document["rules"]] == ["lan/ssh/r2", HOSTILE]
    assert document["events"]["refresh"]["detail"] == "HTTP 500"
    assert document["sets"][0] == {"name": "dyn_f2b_v4", "kind": "set", "role": "dynamic", "elements": 100_000}


def test_item1_events_are_read_back_as_checked_records(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "SYSLOG_SOCKET", str(tmp_path / "no-log"))  # never the machine's logger
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    audit.record(state, "apply", "ok", policy="/p.zfw", digest="cd" * 32, table="inet zfw", detail="a\nb")
    event = records.read_event(state, "apply")
    assert (event.result, event.digest, event.detail) == ("ok", "cd" * 32, "a b")
    audit.record(state, "apply", "unchanged")  # an unchanged apply writes nothing (issue 9): the last one stays
    assert records.read_event(state, "apply") == event
    (tmp_path / "state" / "last-guard.json").write_text(json.dumps({**event.as_dict(), "action": "guard",
                                                                     "digest": "'; rm -rf /"}))
    with pytest.raises(StateError, match="digest is not a sha256"):
        records.read_event(state, "guard")


def test_item2_an_audit_line_is_one_line_whatever_its_values_hold(monkeypatch):
    monkeypatch.setenv("SUDO_USER", 'eve" detail="forged\nnftc[1]: apply ok')
    line = audit.audit_line(Event("apply", "failed", 0.0, '/tmp/a b\n"c.zfw', None, "inet zfw", audit.who(),
                                  'x" uid=0'))
    assert "\n" not in line and line.startswith('apply failed: policy="/tmp/a b\\n\\"c.zfw" table="inet zfw" uid=')
    assert 'sudo_user="eve\\" detail=\\"forged\\nnftc[1]: apply ok"' in line
    assert line.endswith('detail="x\\" uid=0"')


class _Replies:
    """A netlink socket's stand-in: recv returns the given datagrams in turn."""

    def __init__(self, *datagrams: bytes):
        self.datagrams = list(datagrams)

    def recv(self, size: int) -> bytes:
        return self.datagrams.pop(0)


def _message(kind: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


def _attr(kind: int, value: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(value), kind) + value + b"\0" * (-len(value) % 4)


def _elements(*flags: int | None) -> bytes:
    elements = b"".join(_attr(1, _attr(1, _attr(1, b"\xc0\x00\x02\x01"))  # NFTA_LIST_ELEM { KEY { DATA_VALUE } }
                                  + (_attr(3, struct.pack(">I", flag)) if flag is not None else b""))
                        for flag in flags)
    return b"\x01\x00\x00\x00" + _attr(3 | 0x8000, elements)  # nfgenmsg, NFTA_SET_ELEM_LIST_ELEMENTS (nested)


def test_item1_set_sizes_count_starts_not_interval_ends():
    done = _message(3, b"\0\0\0\0")
    sock = _Replies(_message(0xA0D, _elements(1, None, 1, None)) + _message(0xA0D, _elements(None, 0)), done)
    assert setsize._count_dump(sock) == 4  # two ends (flag 1) not counted; flags 0 and none are starts


def test_item1_set_sizes_refuse_a_cut_dump_and_say_a_missing_set():
    cut = _message(0xA0D, _elements(None))[:-4]
    with pytest.raises(setsize.SetSizeError):
        setsize._count_dump(_Replies(struct.pack("=IHHII", 400, 0xA0D, 2, 1, 0) + cut[16:]))
    with pytest.raises(setsize.SetSizeError) as raised:
        setsize._count_dump(_Replies(_message(2, struct.pack("=i", -errno.ENOENT) + b"\0" * 16)))
    assert raised.value.errno == errno.ENOENT


# On the kernel.


def _nftc_json(server: Server, *args: str) -> dict:
    result = server.nftc("status", "--format", "json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _add_hostile_counter(server: Server) -> None:
    command = {"nftables": [{"add": {"counter": {"family": "inet", "table": "zfw", "name": HOSTILE}}}]}
    server.nft("-j", "-f", "-", input=json.dumps(command))


@pytest.mark.kernel
def test_item1_status_formats_read_counters_sets_and_events_from_the_kernel(server):
    policy = server.policy("site.zfw", SITE)
    assert server.nftc("apply", policy).returncode == 0
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v4",
               "{ 192.0.2.1, 192.0.2.3, 198.51.100.0/24, 203.0.113.10-203.0.113.20 }")
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v6", "{ 2001:db8::66 }")
    server.lab.exec(server.ns, sys.executable, "-c", "import socket\nfor _ in range(3):\n"
                    "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\n")
    _add_hostile_counter(server)
    listed = server.nft("list", "ruleset")
    assert listed.count("\tcounter lan/ssh/r2 {") == 2  # the text listing is forged: the JSON one is not

    document = _nftc_json(server)
    rules = [r for r in document["rules"] if r["counter"] == "lan/ssh/r2"]
    assert rules == [{"counter": "lan/ssh/r2", "zone": "lan", "service": "ssh", "rule": "r2", "packets": 0,
                      "bytes": 0}]
    assert [r["counter"] for r in document["rules"]].count(HOSTILE) == 1
    loopback = next(r for r in document["rules"] if r["counter"] == "localhost/accept")
    assert loopback["packets"] >= 3
    assert {"reason": "drop/no-zone", "packets": 0, "bytes": 0} in document["drops"]
    sizes = {s["name"]: s["elements"] for s in document["sets"]}
    assert (sizes["dyn_blocklist_v4"], sizes["dyn_blocklist_v6"]) == (4, 1)
    assert document["table"]["loaded"] and document["table"]["drift"] == "DRIFT"  # the added counter is a hand edit
    assert document["events"]["apply"]["result"] == "ok"
    assert document["events"]["apply"]["digest"] == document["table"]["sha256"]

    result = server.nftc("status", "--format", "openmetrics")
    assert result.returncode == 0, result.stderr
    families = _openmetrics(result.stdout)
    packets = {s.labels["counter"]: s.value for s in families["nftc_rule_packets"].samples}
    assert packets["lan/ssh/r2"] == 0 and packets[HOSTILE] == 0
    assert {s.labels["set"]: s.value for s in families["nftc_set_elements"].samples}["dyn_blocklist_v4"] == 4

    server.nft("delete", "table", "inet", "zfw")
    gone = server.nftc("status", "--format", "openmetrics")
    assert gone.returncode == 0 and [s.value for s in _openmetrics(gone.stdout)["nftc_table_loaded"].samples] == [0]


# Syslog, in a private mount namespace.


def _private_dev_command(server: Server, tmp_path, log_socket: str | None, *args: str, login_uid: int = 1000,
                         env: dict[str, str] | None = None) -> list[str]:
    """nftc ARGS in the server's network namespace and a private mount namespace whose /dev is an overlay of the
    machine's: /dev/log there is `log_socket` (bound over an empty file), or absent. The machine's /dev and its
    logger are never touched."""
    upper, work = tmp_path / "dev-upper", tmp_path / "dev-work"
    upper.mkdir(exist_ok=True)
    work.mkdir(exist_ok=True)
    script = (f"mount -t overlay overlay -o lowerdir=/dev,upperdir={upper},workdir={work} /dev && rm -f /dev/log"
              + (f" && touch /dev/log && mount --bind {log_socket} /dev/log" if log_socket else "")
              + f" && echo {login_uid} > /proc/self/loginuid && exec \"$@\"")
    pairs = [f"{k}={v}" for k, v in (env or {}).items()]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
            "ip", "netns", "exec", server.ns, "env", "-u", "SSH_CONNECTION", "-u", "SUDO_USER", *pairs,
            sys.executable, "-B", "-m", "nftc", *args, "--state-dir", str(server.state)]


class _Syslog:
    """The test's /dev/log: a datagram socket in a short temporary directory."""

    def __init__(self, directory):
        self.path = str(directory / "log")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def lines(self, until: str | None = None, seconds: float = 3.0) -> list[str]:
        """Every datagram until one contains `until` (or `seconds` pass without one)."""
        found, deadline = [], time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                found.append(self.sock.recv(4096).decode())
            except socket.timeout:
                break
            if until and until in found[-1]:
                break
        return found


@pytest.fixture
def syslog(tmp_path):
    sink = _Syslog(tmp_path)
    yield sink
    sink.sock.close()


def _run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.kernel
def test_item2_apply_confirm_rollback_and_the_guard_each_write_one_audit_line(server, tmp_path, syslog):
    policy = server.policy("site.zfw", SITE)
    broken = server.policy("broken.zfw", "zone lan = 10.0.0.0/8\nallow lan -> nosuchservice\n")
    steps = [(("apply", policy, "--confirm", "600"), 0, "apply ok"), (("confirm",), 0, "confirm ok"),
             (("apply", policy), 0, "apply unchanged"), (("rollback",), 0, "rollback ok"),
             (("apply", broken), 2, "apply refused")]
    hostile = {"SUDO_USER": 'eve"\nnftc[1]: forged'}
    for args, code, said in steps:
        result = _run(_private_dev_command(server, tmp_path, syslog.path, *args, env=hostile))
        assert result.returncode == code, (args, result.stderr)
        assert "no audit line" not in result.stderr
        lines = syslog.lines()
        assert len(lines) == 1, (args, lines)
        line = lines[0]
        assert re.match(rf"<{86 if code == 0 else 84}>\w{{3}} [ \d]\d \d\d:\d\d:\d\d nftc\[\d+\]: {said}: ", line), line
        assert "\n" not in line, line  # authpriv.info (86) or .warning (84), as syslog(3) writes it
        assert " uid=0 login_uid=1000 " in line and 'sudo_user="eve\\"\\nnftc[1]: forged"' in line, line
        if args[0] == "confirm":
            digest = json.loads((server.state / "applied.json").read_text())["digest"]
            assert f" sha256={digest} " in line
            assert json.loads((server.state / "last-confirm.json").read_text())["digest"] == digest
    assert json.loads((server.state / "last-apply.json").read_text())["result"] == "refused"

    result = _run(_private_dev_command(server, tmp_path, syslog.path, "apply", policy, "--confirm", "1"))
    assert result.returncode == 0, result.stderr
    lines = syslog.lines(until="guard ", seconds=20)
    assert [line.split("]: ")[1].split(":")[0] for line in lines] == ["apply ok", "guard ok"], lines
    assert "not confirmed in time: snapshot restored" in lines[1] and " login_uid=1000" in lines[1]
    assert json.loads((server.state / "last-guard.json").read_text())["result"] == "ok"


@pytest.mark.kernel
def test_item2_without_dev_log_apply_succeeds_and_says_so_once_on_a_terminal(server, tmp_path):
    policy = server.policy("site.zfw", SITE)
    quiet = _run(_private_dev_command(server, tmp_path, None, "apply", policy))
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # no terminal: scripts get their one line
    command = _private_dev_command(server, tmp_path, None, "apply", "--force", policy)
    on_terminal = _run(["script", "-qec", " ".join(_shell_quoted(command)), "/dev/null"])
    assert on_terminal.returncode == 0, on_terminal.stdout
    said = [line for line in on_terminal.stdout.splitlines() if "no audit line written" in line]
    assert len(said) == 1 and "syslog socket /dev/log" in said[0], on_terminal.stdout
    assert json.loads((server.state / "last-apply.json").read_text())["result"] == "ok"


def _shell_quoted(command: list[str]) -> list[str]:
    import shlex

    return [shlex.quote(part) for part in command]


@pytest.mark.kernel
def test_item1_text_status_is_not_fooled_by_a_counter_that_forges_nftc_lines(server):
    """The default text format stays as it is, but its counters are read as JSON too: a counter another tool
    added cannot make `nftc status` show a rule with counts it never had, nor print a raw newline."""
    assert server.nftc("apply", server.policy("site.zfw", SITE)).returncode == 0
    _add_hostile_counter(server)
    result = server.nftc("status")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert [row for row in rows if row[:3] == ["lan", "ssh", "r2"]] == [["lan", "ssh", "r2", "0", "0"]]
    forged = [line for line in result.stdout.splitlines() if "999999" in line]
    assert forged and all(line.startswith("x {\\n") and line.split()[-2:] == ["0", "0"] for line in forged), forged
    assert "# EOF" not in result.stdout.splitlines() and "\\n# EOF" in result.stdout
