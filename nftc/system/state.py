"""The state directory of `nftc apply` (default /var/lib/nftc): how it is opened, checked, read, written, locked.

What the files hold is records.py's and snapshot.py's business (snapshot, applied record and script, pending
confirm); this module adds `lock` (flock'ed by apply, confirm, rollback and the guard; the holder's PID) and
`guard.log` (appended by the rollback guards). Every other file is written atomically: a new temporary file
`.NAME.tmpPID`, flushed to disk, then renamed into place.

Root loads what this directory holds into the kernel, so nothing in it is trusted blindly:
- the directory is opened once, walking from / one component at a time with O_NOFOLLOW (a symlink on the way
  only if root or the user running nftc owns it), and every file operation is relative to that descriptor:
  swapping a path after the check changes nothing;
- every directory on the way is owned by root (or the user running nftc) and not writable by group or others
  unless sticky (/tmp); the state directory itself and every file in it are owned by the user running nftc
  (root in production), not writable by group or others; files are regular files with one link;
- files are opened with O_NOFOLLOW (a symlink is an error, never followed) and created with O_EXCL, mode 0600;
- anything else is one StateError naming the path, what is wrong and the fix.
Names read back from the JSON files are checked by records.py with the language's own rules.

A second lock, per network namespace (nftables rulesets are per namespace), lives in /run/nftc: every nftc that
changes the kernel takes it first, so two state directories cannot undo each other's work.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import json
import os
import re
import stat
import time
from dataclasses import dataclass, field

from ..errors import NftcError

DEFAULT_STATE_DIR = "/var/lib/nftc"
STATE_DIR_VARIABLE = "NFTC_STATE_DIR"
HOST_LOCK_DIR = "/run/nftc"  # tmpfs, root's: one lock file per network namespace
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO cannot hang a reader
_SHARED_WRITE = stat.S_IWGRP | stat.S_IWOTH
_TEMPORARY = re.compile(r"\..+\.tmp(?P<pid>[0-9]+)")  # what `stage` writes: .NAME.tmpPID


class StateError(NftcError):
    """A state directory that cannot be used, or a lock that stayed taken; one line."""


def state_dir_path(option: str | None) -> str:
    """The state directory, absolute: the rollback guard runs in / and must find the same one (issue 7 item 5)."""
    return os.path.abspath(option or os.environ.get(STATE_DIR_VARIABLE) or DEFAULT_STATE_DIR)


# Who may own what, and the one-line errors that say how to fix it.


def _user() -> str:
    return "root" if os.geteuid() == 0 else f"uid {os.geteuid()} (the user running nftc)"


def _chown_to() -> str:
    return "root:root" if os.geteuid() == 0 else str(os.geteuid())


def _ownership_problem(info: os.stat_result, owners: tuple[int, ...], sticky_may_share: bool) -> str | None:
    """What makes a file or directory writable by someone other than the trusted owners, or None."""
    if info.st_uid not in owners:
        return f"owned by uid {info.st_uid}, not {_user()}"
    if info.st_mode & _SHARED_WRITE and not (sticky_may_share and info.st_mode & stat.S_ISVTX):
        return f"writable by group or others (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _at(label: str, target: str, path: str) -> str:
    """How an error names where it is: the directory nftc was asked for, and the path on its way if different."""
    return f"{label} {path}" if path == target else f"{label} {target}: {path}"


def _check_ancestor(fd: int, path: str, label: str, target: str) -> None:
    """A directory on the way: whoever can write it can swap what lies below (a sticky one like /tmp is fine)."""
    problem = _ownership_problem(os.fstat(fd), (0, os.geteuid()), sticky_may_share=True)
    if problem:
        raise StateError(f"{_at(label, target, path)} is {problem}, so others could swap what is in it: "
                         f"fix with 'chown root:root {path} && chmod go-w {path}', or use another directory")


def _check_directory(fd: int, path: str, label: str, target: str) -> None:
    problem = _ownership_problem(os.fstat(fd), (os.geteuid(),), sticky_may_share=False)
    if problem:
        raise StateError(f"{_at(label, target, path)} is {problem}: "
                         f"fix with 'chown {_chown_to()} {path} && chmod 700 {path}', or remove it")


def _check_file(fd: int, path: str) -> None:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise StateError(f"{path} is not a regular file: remove it")
    if info.st_nlink != 1:
        raise StateError(f"{path} has {info.st_nlink} hard links, so it is also another file: remove it")
    problem = _ownership_problem(info, (os.geteuid(),), sticky_may_share=False)
    if problem:
        raise StateError(f"{path} is {problem}: "
                         f"fix with 'chown {_chown_to()} {path} && chmod 600 {path}', or remove it")


def _refused_open(exc: OSError, path: str, label: str) -> StateError:
    if exc.errno == errno.ELOOP:
        return StateError(f"{path} is a symbolic link; nftc never follows links in its {label}: remove it")
    return StateError(f"cannot open {path}: {exc.strerror}{_root_hint(exc)}")


def _root_hint(exc: OSError) -> str:
    """Not being root is the likely cause of a refusal by the file system: say so on the same line."""
    if exc.errno in (errno.EACCES, errno.EPERM) and os.geteuid() != 0:
        return ": changing the ruleset needs root (CAP_NET_ADMIN)"
    return ""


# Opening a directory safely.

MAX_LINKS = 40  # on the way to a directory, as the kernel allows


def open_trusted_directory(path: str, label: str, create: bool) -> int | None:
    """A descriptor of the directory `path` (absolute), checked; None when it is missing and `create` is False.

    Walks from / one name at a time with O_NOFOLLOW, checking each directory before looking into it, so what is
    checked is what is opened. A symlink on the way (/var/run -> /run) is followed by hand, and only if its owner
    is trusted (the directory it sits in was checked already). Missing directories are created: the last one
    0700, those above it 0755 (the umask can only narrow them).
    """
    names = collections.deque(path.split("/"))
    opened = [(os.open("/", _DIRECTORY_FLAGS), "/")]  # the directories walked so far, for ".." in a link
    links = 0
    try:
        while names:
            name = names.popleft()
            parent, current = opened[-1]
            if name in ("", "."):
                continue
            if name == "..":
                if len(opened) > 1:
                    os.close(opened.pop()[0])
                continue
            _check_ancestor(parent, current, label, path)
            child_path = os.path.join(current, name)
            link = _trusted_link(parent, name, child_path, label, path)
            if link is not None:
                links += 1
                if links > MAX_LINKS:
                    raise StateError(f"cannot use {label} {path}: too many symbolic links on the way")
                while link.startswith("/") and len(opened) > 1:
                    os.close(opened.pop()[0])
                names.extendleft(reversed(link.split("/")))
                continue
            last = not any(rest not in ("", ".") for rest in names)
            child = _open_child(parent, name, child_path, label, path, create, 0o700 if last else 0o755)
            if child is None:
                return None
            opened.append((child, child_path))
        fd, current = opened[-1]
        _check_directory(fd, current, label, path)
        opened.pop()
        return fd
    finally:
        for fd_left, _ in opened:
            os.close(fd_left)


def _trusted_link(parent: int, name: str, path: str, label: str, target: str) -> str | None:
    """The target of `name` if it is a symlink its owner may make (root or us), None if it is not a symlink."""
    try:
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _refused_open(exc, path, label) from None
    if not stat.S_ISLNK(info.st_mode):
        return None
    if info.st_uid not in (0, os.geteuid()):
        raise StateError(f"{_at(label, target, path)} is a symbolic link owned by uid {info.st_uid}, not {_user()}: "
                         "remove it, or use another directory")
    return os.readlink(name, dir_fd=parent)


def _open_child(parent: int, name: str, path: str, label: str, target: str, create: bool,
                mode: int) -> int | None:
    for _attempt in range(2):  # one retry: another nftc may create it between our open and our mkdir
        try:
            return os.open(name, _DIRECTORY_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                return None
        except NotADirectoryError:  # a file, or a symlink that appeared since we looked
            raise StateError(f"cannot use {label} {target}: {path} is not a directory") from None
        except OSError as exc:
            raise _refused_open(exc, path, label) from None
        try:
            os.mkdir(name, mode, dir_fd=parent)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StateError(f"cannot create {_at(label, target, path)}: {exc.strerror}{_root_hint(exc)}") from None
    raise StateError(f"cannot create {_at(label, target, path)}: it keeps changing")


class _Descriptor:
    """The state directory's descriptor once opened and checked (-1 before): opened once per StateDir."""

    def __init__(self):
        self.fd = -1


@dataclass(frozen=True)
class StateDir:
    """The state directory, opened once by a trusted walk from / (`open_trusted_directory`): every file nftc keeps between
    runs is read and written through it, never by path."""

    path: str  # absolute: from state_dir_path
    _opened: _Descriptor = field(default_factory=_Descriptor, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not os.path.isabs(self.path):
            raise ValueError(f"StateDir needs an absolute path (state_dir_path makes one), not {self.path!r}")

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def ensure(self) -> None:
        """Create the directory (mode 0700) and prove it is ours and writable before anything touches the kernel."""
        fd = self._descriptor(create=True)
        if not os.access(".", os.W_OK | os.X_OK, dir_fd=fd):
            raise StateError(f"state directory {self.path} is not writable (use --state-dir or NFTC_STATE_DIR)")

    def exists(self) -> bool:
        """Whether the directory is there (and checked), without creating it: for confirm, rollback, status.
        A directory that is there but not safe to use is a StateError, not False."""
        return self._descriptor(create=False) is not None

    def still_linked(self) -> bool:
        """Whether the directory opened earlier still has a name (moved is fine: it is used by descriptor)."""
        return self._opened.fd >= 0 and os.fstat(self._opened.fd).st_nlink > 0

    def _descriptor(self, create: bool) -> int | None:
        if self._opened.fd < 0:
            fd = open_trusted_directory(self.path, "state directory", create)
            if fd is None:
                return None
            self._opened.fd = fd
        return self._opened.fd

    def _existing(self) -> int:
        """The directory's descriptor where it must be there already (ensure() creates it)."""
        fd = self._descriptor(create=False)
        if fd is None:
            raise StateError(f"there is no state directory {self.path}")
        return fd

    def _open(self, name: str, flags: int, reading: bool = False) -> int | None:
        """Open `name` in the directory, never following a link, checked before use. None when it is missing,
        or when `reading` and the whole directory is missing (nothing recorded yet)."""
        directory = self._descriptor(create=False) if reading else self._existing()
        if directory is None:
            return None
        try:
            fd = os.open(name, flags | _FILE_FLAGS, 0o600, dir_fd=directory)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise _refused_open(exc, self.file(name), "state directory") from None
        try:
            _check_file(fd, self.file(name))
        except BaseException:
            os.close(fd)
            raise
        return fd

    def read_text(self, name: str) -> str | None:
        fd = self._open(name, os.O_RDONLY, reading=True)
        if fd is None:
            return None
        try:
            with os.fdopen(fd, "rb") as handle:
                return handle.read().decode("utf-8")
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

    def write_text(self, name: str, text: str, durable: bool = True) -> None:
        """Replace `name` atomically; `durable`: on disk before this returns (not needed for what nftc can
        rebuild, such as the listing drift compares against)."""
        self.stage({name: text}, durable).commit()

    def write_json(self, name: str, data: dict) -> None:
        self.write_text(name, as_json(data))

    def open_log(self, name: str):
        """An append handle (text) on `name`: created 0600, never through a link, checked like every file."""
        fd = self._open(name, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return os.fdopen(fd, "a", encoding="utf-8")

    def stage(self, files: dict[str, str], durable: bool = True) -> "Staged":
        """Write each file beside its final name: proves there is room before the kernel changes; commit renames."""
        staged = Staged(self, {}, durable)
        for name, text in files.items():
            temporary = f".{name}.tmp{os.getpid()}"
            staged.temporaries[name] = temporary
            try:
                self._write_new(temporary, text.encode("utf-8"), durable)
            except OSError as exc:
                staged.discard()
                raise StateError(f"cannot write {self.file(name)}: {exc.strerror}") from None
        return staged

    def _write_new(self, temporary: str, data: bytes, durable: bool) -> None:
        """Create `temporary` (O_EXCL, 0600) and write it (to disk, if `durable`); a leftover of the same name is
        removed first."""
        directory = self._existing()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _FILE_FLAGS
        try:
            fd = os.open(temporary, flags, 0o600, dir_fd=directory)
        except FileExistsError:  # left by a killed process that had our PID: nobody else writes here
            os.unlink(temporary, dir_fd=directory)
            fd = os.open(temporary, flags, 0o600, dir_fd=directory)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())

    def names(self) -> list[str]:
        """Every name in the directory (none when it is missing): for a module that keeps files of its own."""
        directory = self._descriptor(create=False)
        return os.listdir(directory) if directory is not None else []

    def remove(self, name: str) -> bool:
        directory = self._descriptor(create=False)
        if directory is None:
            return False
        try:
            os.unlink(name, dir_fd=directory)
            return True
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"cannot remove {self.file(name)}: {exc.strerror}") from None

    def remove_stale_temporaries(self) -> None:
        """Remove `.NAME.tmpPID` files another process left (killed mid-write): only the lock holder writes, so
        under the lock they are stale (issue 7 item 12). Regular files only; links are not followed."""
        directory = self._existing()
        for name in os.listdir(directory):
            found = _TEMPORARY.fullmatch(name)
            if not found or int(found.group("pid")) == os.getpid():
                continue
            try:
                if stat.S_ISREG(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode):
                    os.unlink(name, dir_fd=directory)
            except FileNotFoundError:
                pass


@dataclass(frozen=True)
class Staged:
    """Files written under temporary names (final name -> temporary name), not yet in place."""

    state: StateDir
    temporaries: dict[str, str]
    durable: bool = True

    def commit(self) -> None:
        """Rename every file into place; a rename needs no room, so this works on a full disk."""
        if not self.temporaries:
            return
        directory = self.state._existing()
        for final, temporary in self.temporaries.items():
            try:
                os.replace(temporary, final, src_dir_fd=directory, dst_dir_fd=directory)
            except OSError as exc:
                self.discard()
                raise StateError(f"cannot write {self.state.file(final)}: {exc.strerror}") from None
        if not self.durable:
            return
        try:
            os.fsync(directory)  # the renames themselves on disk
        except OSError:
            pass  # a file system that cannot sync a directory: the renames are done all the same

    def discard(self) -> None:
        directory = self.state._descriptor(create=False)
        if directory is None:
            return  # never unlink relative to the working directory
        for temporary in self.temporaries.values():
            try:
                os.unlink(temporary, dir_fd=directory)
            except FileNotFoundError:
                pass


# Locks.


def host_lock_path(host_dir: str = HOST_LOCK_DIR) -> str:
    """The lock every kernel-changing nftc in this network namespace takes (issue 7 item 6): rulesets are per
    network namespace, so the namespace's inode names it."""
    try:
        namespace = os.stat("/proc/self/ns/net").st_ino
    except OSError as exc:
        raise StateError(f"cannot tell which network namespace this is: /proc/self/ns/net: {exc.strerror}") from None
    return os.path.join(host_dir, f"netns-{namespace}.lock")


class Lock:
    """Exclusive flocks, always in this order: the host's lock for this network namespace, then the state dir's.

    The kernel frees a flock when its holder dies, however it dies. Taking the stale temporaries out is part of
    taking the lock: from here on only this process writes the directory.
    """

    def __init__(self, state: StateDir, wait_seconds: float, host_dir: str = HOST_LOCK_DIR):
        self.state, self.wait_seconds, self.host_dir, self.fds = state, wait_seconds, host_dir, []

    def __enter__(self) -> "Lock":
        deadline = time.monotonic() + self.wait_seconds
        # A rollback guard whose state directory was deleted under it still rolls back: the host lock alone
        # then keeps other nftc processes out (nobody else can reach a directory without a name).
        with_state = not self.state.exists() or self.state.still_linked()
        try:
            for opener in (self._open_host_lock, self._open_state_lock) if with_state else (self._open_host_lock,):
                fd, path = opener()
                self.fds.append(fd)
                self._take(fd, path, deadline)
            if with_state:
                self.state.remove_stale_temporaries()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _open_host_lock(self) -> tuple[int, str]:
        path = host_lock_path(self.host_dir)
        directory = open_trusted_directory(self.host_dir, "host lock directory", create=True)
        try:
            fd = os.open(os.path.basename(path), os.O_RDWR | os.O_CREAT | _FILE_FLAGS, 0o600, dir_fd=directory)
        except OSError as exc:
            raise _refused_open(exc, path, "host lock directory") from None
        finally:
            os.close(directory)
        return self._checked(fd, path), path

    def _open_state_lock(self) -> tuple[int, str]:
        if not self.state.exists():
            raise StateError(f"there is no state directory {self.state.path}")
        return self.state._open("lock", os.O_RDWR | os.O_CREAT), self.state.file("lock")

    @staticmethod
    def _checked(fd: int, path: str) -> int:
        try:
            _check_file(fd, path)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _take(self, fd: int, path: str, deadline: float) -> None:
        while not _try_lock(fd):
            if time.monotonic() >= deadline:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                raise StateError(f"another nftc process (pid {holder or 'unknown'}) holds {path}; "
                                 f"gave up after {self.wait_seconds:g} s (use --wait SECONDS to wait longer)")
            time.sleep(0.1)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            raise StateError(f"cannot write lock file {path}: {exc.strerror}") from None

    def __exit__(self, *exc) -> None:
        while self.fds:
            os.close(self.fds.pop())  # closing the descriptor releases the flock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise


def as_json(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
