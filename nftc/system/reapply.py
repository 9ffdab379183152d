"""Applying a policy again when nothing it was compiled from changed: without compiling, and without a transaction
when the live table already is it (boot, `systemctl reload`, Ansible runs apply again and again).

The applied record keeps what the compile read (each file's path, where it led, the sha256 of its bytes), the nftc
version and the sha256 of its compiler's sources, and whether the compile warned. When all of that is still so,
compiling again would give the recorded script, byte for byte: the compiler reads nothing else (no environment,
no clock; tests/test_apply_fast.py compiles afresh whenever 'unchanged' is said and compares). Hashing the files
costs a few milliseconds; importing the compiler and compiling costs about 0.1 s for a small policy and 0.5 s with
200,000 addresses here. A compile that warned is done again, so the warnings are said (and --strict refuses).

`unchanged` then asks the kernel, the fast way (reader.py): the table carries the recorded digest, and drift is
none (against the listing recorded right after the load; set elements are compared when the table has at most
`records.LISTED_ELEMENTS` of them). Nothing is written: no lock, no snapshot, no record.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from dataclasses import dataclass
from typing import Callable, Mapping

from . import live, reader
from .records import (LISTING, PENDING, SCRIPT, Applied, Input, Provenance, lists_elements, read_applied)
from .state import StateDir

# What the compiled script depends on besides the policy's files: the compile stages (nftc.compiler's pipeline)
# and the version. Hashed from the installed sources, so an edited or reinstalled nftc of the same version
# compiles again.
COMPILER_SOURCES = ("__init__.py", "compiler.py", "language", "semantics", "backend")
_BOM = b"\xef\xbb\xbf"  # the loader drops a UTF-8 byte order mark before reading a file
_CHUNK = 1 << 20


@functools.lru_cache(maxsize=None)
def code_fingerprint() -> str:
    """sha256 of the compiler's sources as installed (their paths and contents, in a fixed order); once a
    process."""
    import nftc

    package = os.path.dirname(os.path.abspath(nftc.__file__))
    digest = hashlib.sha256()
    for name in _source_files(package):
        digest.update(name.encode() + b"\0")
        with open(os.path.join(package, name), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def _source_files(package: str) -> list[str]:
    files = []
    for entry in COMPILER_SOURCES:
        if entry.endswith(".py"):
            files.append(entry)
        else:
            files += sorted(os.path.join(entry, f) for f in os.listdir(os.path.join(package, entry))
                            if f.endswith(".py"))
    return files


def provenance(sources: Mapping[str, str], strict: bool, warnings: int, host: str | None = None) -> Provenance:
    """What a compile that read `sources` (path -> text, as nftc.compiler fills it) was made from; `host`: the
    cluster host whose ruleset it compiled (another host of the same files is another script)."""
    from .. import __version__

    inputs = tuple(Input(os.path.abspath(path), os.path.realpath(path),
                         hashlib.sha256(text.encode("utf-8")).hexdigest()) for path, text in sources.items())
    return Provenance(__version__, code_fingerprint(), strict, warnings, inputs, host)


def inputs_unchanged(recorded: Provenance) -> bool:
    """Whether this nftc, reading these files now, would read what the recorded compile read.

    A file's text is what the loader decoded from its bytes (strict UTF-8, the byte order mark dropped; a compile
    that succeeded decoded every file), so the sha256 of its text then equals that of its bytes now when they did
    not change."""
    from .. import __version__

    if recorded.nftc != __version__ or recorded.code != code_fingerprint():
        return False
    return all(os.path.realpath(i.path) == i.real and _file_sha256(i.path) == i.sha256 for i in recorded.inputs)


def _file_sha256(path: str) -> str | None:
    """The sha256 of a regular file's bytes without a leading byte order mark; None if it is not one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO planted there cannot hang us
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        digest = hashlib.sha256()
        chunk = handle.read(_CHUNK)
        digest.update(chunk[len(_BOM):] if chunk.startswith(_BOM) else chunk)
        while chunk:
            chunk = handle.read(_CHUNK)
            digest.update(chunk)
        return digest.hexdigest()


def recorded(state: StateDir, policy: str, strict: bool,
             host: Callable[[str | None], str | None] = lambda kept: None) -> tuple[Applied, str] | None:
    """The applied record and its script when compiling `policy` (absolute) now would give that script: same
    files, same nftc, no warnings then (so none now, and --strict has nothing to refuse), and the same cluster
    host: `host(recorded host)` says which host a compile now would be for (apply reads the policy to pick it
    only when the record has one). None otherwise."""
    if not state.exists():
        return None
    applied = read_applied(state)
    if applied is None or applied.policy != policy or applied.provenance is None or applied.provenance.warnings:
        return None
    if not inputs_unchanged(applied.provenance):
        return None
    if host(applied.provenance.host) != applied.provenance.host:
        return None
    script = state.read_text(SCRIPT)
    if script is None or live.script_digest(script) != applied.digest:
        return None
    return applied, script


@dataclass(frozen=True)
class Unchanged:
    """The live table already is the recorded policy: what to say."""

    applied: Applied
    elements_checked: bool  # False: the table has more set elements than drift lists; only their sets' definitions


def unchanged(state: StateDir, applied: Applied) -> Unchanged | None:
    """Whether the live table is what `applied` loaded, untouched (counters and dynamic elements aside), with no
    confirmation pending: then an apply of the same policy has nothing to do."""
    if state.read_text(PENDING) is not None:
        return None
    reference = state.read_text(LISTING)
    if reference is None or live.digest(reference) != applied.digest:
        return None
    with_elements = lists_elements(applied.elements)
    current = reader.read_table(applied.target, with_elements)
    if current is None or live.digest(current) != applied.digest:
        return None
    if live.drift(current, reference, with_elements):
        return None
    return Unchanged(applied, with_elements)
