"""The audit trail: one line to syslog (the journal) per apply, confirm, rollback, guard action and refresh, and
the last event of each action in the state directory (records.Event), which `status --format json|openmetrics`
reports.

`record` is the one function every action calls (the CLI for apply, confirm and rollback; guard.py; refresh). It
never fails the action it records: with no syslog socket (/dev/log missing), the line is lost and
standard error says so, once per process, when it is a terminal; a state directory that cannot take the record
is passed over in silence (the action has said its own error already).

Who: the real uid, the login uid the kernel keeps for the session (/proc/self/loginuid: set at login, kept through
sudo and su, unset for daemons and boot), and $SUDO_USER, which sudo sets but anyone can put in an environment:
it is said as what it is, next to the login uid that cannot be forged. Every value another party could shape (a
policy path, an error message, $SUDO_USER) is quoted and escaped, so an audit line is one line.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import syslog
import time

from .records import EVENT_ACTIONS, MAX_DETAIL, Event, event_file
from .state import StateDir

SYSLOG_SOCKET = "/dev/log"  # where syslog(3) sends (glibc's _PATH_LOG)
IDENT = "nftc"
_UNSET_LOGIN_UID = 4294967295  # (uid_t)-1: no login session (a daemon, the boot)
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+-]{1,256}")
_said_no_syslog: list[bool] = []  # once per process


def who() -> str:
    """uid, login uid and $SUDO_USER of this process, and its network namespace (whose ruleset it changed: the
    lab's and the tests' run in their own), as `uid=0 login_uid=1000 sudo_user=alice netns=4026531840`."""
    parts = [f"uid={os.getuid()}"]
    login_uid = _login_uid()
    if login_uid is not None:
        parts.append(f"login_uid={login_uid}")
    sudo_user = os.environ.get("SUDO_USER")
    if sudo_user:
        parts.append(f"sudo_user={quoted(sudo_user[:64])}")
    try:
        parts.append(f"netns={os.stat('/proc/self/ns/net').st_ino}")
    except OSError:
        pass
    return " ".join(parts)


def _login_uid() -> int | None:
    try:
        with open("/proc/self/loginuid", encoding="ascii") as handle:
            value = int(handle.read().strip())
    except (OSError, ValueError):
        return None
    return None if value == _UNSET_LOGIN_UID else value


def quoted(value: str) -> str:
    """A value as it goes into an audit line: bare when plain, else a JSON string (quotes, backslashes, control
    and non-ASCII characters escaped), so nothing a value holds can start a line or fake a field."""
    return value if _PLAIN.fullmatch(value) else json.dumps(value)


def audit_line(event: Event) -> str:
    """`apply ok: policy=... table="inet zfw" sha256=... uid=0 login_uid=1000 detail="..."`: one line."""
    fields = [f"{event.action} {event.result}:"]
    for key, value in (("policy", event.policy), ("table", event.table), ("sha256", event.digest)):
        if value:
            fields.append(f"{key}={quoted(value)}")
    if event.who:
        fields.append(event.who)
    if event.detail:
        fields.append(f"detail={quoted(event.detail)}")
    return " ".join(fields)


def record(state: StateDir | None, action: str, result: str, *, policy: str | None = None,
           digest: str | None = None, table: str | None = None, detail: str = "") -> Event:
    """Say one action to syslog and keep it as the action's last event in `state` (when that directory exists).
    Never raises for want of syslog or room: the action it records has happened (or failed) already."""
    if action not in EVENT_ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    event = Event(action, result, round(time.time(), 3), policy, digest, table, who(),
                  " ".join(detail.split())[:MAX_DETAIL])
    if state is not None and result != "unchanged":  # an unchanged apply writes nothing (README, issue 9)
        _keep(state, event)
    to_syslog(audit_line(event), result in ("ok", "unchanged"))
    return event


def to_syslog(line: str, success: bool) -> bool:
    """Send one line to the local syslog socket (facility authpriv, as sudo's lines); False when there is none.
    The C library's syslog(3) (Python's `syslog`: 0.04 ms to import, where logging.handlers takes 12 ms of an
    unchanged apply's 90) drops a line it cannot send without a word, so the socket is looked for first."""
    try:
        found = stat.S_ISSOCK(os.stat(SYSLOG_SOCKET).st_mode)
    except OSError as exc:
        return _no_syslog(exc.strerror or str(exc))
    if not found:
        return _no_syslog("not a socket")
    syslog.openlog(IDENT, syslog.LOG_PID | syslog.LOG_NDELAY, syslog.LOG_AUTHPRIV)
    try:
        syslog.syslog(syslog.LOG_INFO if success else syslog.LOG_WARNING, line)
    finally:
        syslog.closelog()
    return True


def _no_syslog(reason: str) -> bool:
    """Says the line was lost, once per process and on a terminal only, as the lockout guard's warning (README,
    "Applying a policy"): an error stays one line for scripts, and a host without syslog is a container or a
    chroot, where systemd and cron (which give no terminal) would have put /dev/log."""
    if not _said_no_syslog and os.isatty(2):
        _said_no_syslog.append(True)
        print(f"nftc: warning: no audit line written: syslog socket {SYSLOG_SOCKET}: {reason}", file=sys.stderr)
    return False


def _keep(state: StateDir, event: Event) -> None:
    from .state import StateError, as_json

    try:
        if state.exists():
            state.write_text(event_file(event.action), as_json(event.as_dict()), durable=False)
    except (StateError, OSError):
        pass
