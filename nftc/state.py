"""The state directory of `nftc apply` (default /var/lib/nftc): snapshot, last applied ruleset, pending confirm, lock.

Files, all written atomically (temporary file + rename):
  lock             flock'ed by apply, confirm, rollback and the rollback guard; holds the holder's PID
  snapshot.nft     the nftc table as it was before the last apply (`nft list table` text); absent table: no file
  snapshot.json    {"family", "table", "existed", "time", "applied": the applied record it replaced or null}
  applied.json     {"policy", "digest", "family", "table", "time"}: what the last apply (or rollback) loaded
  applied.script   the script that loaded it (status and diff list it in a private namespace to find drift)
  pending.json     {"token", "deadline", "guard_pid"}: a `--confirm` apply waiting for `nftc confirm`
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass

DEFAULT_STATE_DIR = "/var/lib/nftc"
STATE_DIR_VARIABLE = "NFTC_STATE_DIR"


class StateError(Exception):
    """A state directory that cannot be used, or a lock that stayed taken; one line."""


def state_dir_path(option: str | None) -> str:
    return option or os.environ.get(STATE_DIR_VARIABLE) or DEFAULT_STATE_DIR


@dataclass(frozen=True)
class StateDir:
    path: str

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def ensure(self) -> None:
        """Create the directory (mode 0700) and prove it is writable before anything touches the kernel."""
        try:
            os.makedirs(self.path, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise StateError(f"cannot create state directory {self.path}: {exc.strerror}") from None
        if not os.access(self.path, os.W_OK | os.X_OK):
            raise StateError(f"state directory {self.path} is not writable (use --state-dir or NFTC_STATE_DIR)")

    def read_text(self, name: str) -> str | None:
        try:
            with open(self.file(name), encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
        except UnicodeDecodeError:
            raise StateError(f"{self.file(name)} is corrupt (not UTF-8 text); remove it to continue") from None
        except OSError as exc:
            raise StateError(f"cannot read {self.file(name)}: {exc.strerror}") from None

    def read_json(self, name: str) -> dict | None:
        text = self.read_text(name)
        if text is None:
            return None
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise StateError(f"{self.file(name)} is corrupt; remove it to continue")
        return data

    def write_text(self, name: str, text: str) -> None:
        self.stage({name: text}).commit()

    def write_json(self, name: str, data: dict) -> None:
        self.write_text(name, as_json(data))

    def stage(self, files: dict[str, str]) -> "Staged":
        """Write each file beside its final name: proves there is room before the kernel changes; commit renames."""
        staged = Staged({})
        for name, text in files.items():
            temporary = self.file(f".{name}.tmp{os.getpid()}")
            staged.temporaries[self.file(name)] = temporary
            try:
                with open(temporary, "w", encoding="utf-8") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as exc:
                staged.discard()
                raise StateError(f"cannot write {self.file(name)}: {exc.strerror}") from None
        return staged

    def remove(self, name: str) -> bool:
        try:
            os.unlink(self.file(name))
            return True
        except FileNotFoundError:
            return False


class Lock:
    """An exclusive flock on `lock` in the state dir; the kernel frees it when the holder dies, however it dies."""

    def __init__(self, state: StateDir, wait_seconds: float):
        self.state, self.wait_seconds, self.fd = state, wait_seconds, -1

    def __enter__(self) -> "Lock":
        path = self.state.file("lock")
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open lock file {path}: {exc.strerror}") from None
        deadline = time.monotonic() + self.wait_seconds
        while not self._try_lock():
            if time.monotonic() >= deadline:
                holder = self._holder()
                os.close(self.fd)
                raise StateError(f"another nftc process (pid {holder or 'unknown'}) holds {path}; "
                                 f"gave up after {self.wait_seconds:g} s (use --wait SECONDS to wait longer)")
            time.sleep(0.1)
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(self.fd)
            raise StateError(f"cannot write lock file {path}: {exc.strerror}") from None
        return self

    def _try_lock(self) -> bool:
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return False
            raise

    def _holder(self) -> str:
        return os.pread(self.fd, 32, 0).decode(errors="replace").strip()

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # closing the descriptor releases the flock


@dataclass(frozen=True)
class Staged:
    """Files written under temporary names (final path -> temporary path), not yet in place."""

    temporaries: dict[str, str]

    def commit(self) -> None:
        """Rename every file into place; a rename needs no room, so this works on a full disk."""
        for final, temporary in self.temporaries.items():
            try:
                os.replace(temporary, final)
            except OSError as exc:
                self.discard()
                raise StateError(f"cannot write {final}: {exc.strerror}") from None

    def discard(self) -> None:
        for temporary in self.temporaries.values():
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass


def as_json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
