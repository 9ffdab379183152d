"""Address files as an earlier apply parsed them, kept in the state directory (issue 9: a 200,000-line list took
0.15 s of a compile to parse, and the usual edit is to the policy, not to the list).

One file per address file the last compile of an apply read: `addresses-SHA256.list`, SHA256 being that of the
address file's bytes. Plain text, never pickle: a header naming the nftc version and the compiler's fingerprint
(`reapply.code_fingerprint`: another nftc never reads it), then per IP version a count line and the packed
networks (`model.pack`), one decimal number a line, in increasing order: the order the zone map sorts them into
(nftc.semantics.zones), so a compile from a kept list sorts nothing (two sorts of 10^5 took 35 ms; the order of a
file's entries changes nothing a compile gives). Reading it checks it whole, at C speed (one regex, `map`):
anything unexpected (a number out of order or repeated included) and it is not used, the address file is parsed,
and the next store replaces it. The files are data, read through StateDir (root's, never through a link, not
writable by others).

Only lists that parsed without a warning are kept (a warning is said at every compile), and only lists without a
repeated network (kept sorted and without repeats, such a list would hold fewer networks than the file, and the
address budget counts the file's); a store leaves only the lists of the last compile. A store that fails fails
nothing: the next compile parses again.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from itertools import islice, repeat

from ..language import model as m
from ..language.loader import ListCache
from .state import Lock, StateDir, StateError

_NAME = re.compile(r"addresses-(?P<sha256>[0-9a-f]{64})\.list")
_COUNT = re.compile(r"ipv([46]) (0|[1-9][0-9]{0,6})\n")  # at most 9,999,999: more than the loader allows in all
_NOT_DIGITS = " \t\r\x0b\x0c+-_"  # what int() takes of ASCII besides digits and the newline (else: ValueError)
_LEADING_ZERO = re.compile(r"\n0[0-9]")  # on any line but the first (a literal prefix: searched fast)
_LENGTH_MASK = (1 << m.PREFIX_BITS) - 1
# by prefix length: the bits of a packed network that must be clear: its host bits, and every bit above its
# version's address (a negative mask: all of them); a longer length: IndexError
_MUST_BE_CLEAR = {v: [host | -(1 << (m.BITS[v] + m.PREFIX_BITS)) for host in m.HOST_BITS[v]] for v in m.BITS}


def file_name(sha256: str) -> str:
    return f"addresses-{sha256}.list"


def header() -> str:
    """The first line: the nftc and the compiler that parsed the list (another one parses it again)."""
    from .. import __version__
    from .reapply import code_fingerprint

    return f"nftc {__version__} address list, compiler sha256:{code_fingerprint()}\n"


def as_text(networks: m.AddressList) -> str | None:
    """The kept file of a list: each version's networks sorted; None for a list holding a network twice (not
    kept: see the module's docstring)."""
    v4, v6 = sorted(networks.v4), sorted(networks.v6)
    if not _increasing(v4) or not _increasing(v6):
        return None
    return (header() + f"ipv4 {len(v4)}\n" + "".join(f"{n}\n" for n in v4)
            + f"ipv6 {len(v6)}\n" + "".join(f"{n}\n" for n in v6))


def _increasing(values) -> bool:
    """Each value above the one before it: sorted, nothing repeated."""
    return all(map(operator.lt, values, islice(values, 1, None)))


def from_text(text: str) -> m.AddressList | None:
    """The list a file holds, checked whole: None unless it is exactly what `as_text` writes for this nftc."""
    first = header()
    if not text.startswith(first) or not text.isascii():
        return None
    found = {}
    position = len(first)
    for version in (4, 6):
        counted = _COUNT.match(text, position)
        if counted is None or counted.group(1) != str(version):
            return None
        end = text.find("\nipv6 ", counted.end() - 1) + 1 if version == 4 else len(text)
        if end == 0:  # no IPv6 count line
            return None
        found[version] = _networks(text[counted.end():end], int(counted.group(2)), version)
        position = end
    return m.AddressList(found[4], found[6]) if found[4] is not None and found[6] is not None else None


def _networks(lines: str, count: int, version: int) -> tuple[int, ...] | None:
    """`count` packed networks of `version`, one a line, each in plain decimal (no sign, blank, `_` or leading
    zero; the text is ASCII: `from_text` saw to it) and valid: its length at most the version's bits, its host bits
    clear, its address within the version's; each above the one before it; else None."""
    if not lines or count == 0:
        return () if not lines and count == 0 else None
    if lines[-1] != "\n" or any(c in lines for c in _NOT_DIGITS) or (lines[0] == "0" and lines[1] != "\n") \
            or _LEADING_ZERO.search(lines):
        return None
    try:
        values = tuple(map(int, lines[:-1].split("\n")))  # an empty line: ValueError
        lengths = map(operator.and_, values, repeat(_LENGTH_MASK))
        masks = map(_MUST_BE_CLEAR[version].__getitem__, lengths)
        valid = len(values) == count and not any(map(operator.and_, values, masks)) and _increasing(values)
        return values if valid else None
    except (IndexError, ValueError):  # a length beyond the version's bits; not a number; one too long to read
        return None


@dataclass(frozen=True)
class AddressLists:
    """The lists kept in `state`, for one compile: what it found (to keep) and what it parsed (to store)."""

    state: StateDir
    used: dict[str, m.AddressList | None] = field(default_factory=dict)  # sha256 -> parsed now (None: found kept)

    def cache(self) -> ListCache:
        """What the loader calls (nftc.language.loader.ListCache)."""
        return ListCache(self.find, self.keep)

    def find(self, sha256: str) -> m.AddressList | None:
        """The list kept for that address file, when it reads as one; None otherwise (it is then parsed)."""
        try:
            text = self.state.read_text(file_name(sha256)) if self.state.exists() else None
        except StateError:  # a link, a file others may write, not text: not used, replaced at the next store
            return None
        networks = from_text(text) if text is not None else None
        if networks is not None:
            self.used.setdefault(sha256, None)
        return networks

    def keep(self, sha256: str, networks: m.AddressList) -> None:
        self.used[sha256] = networks

    def store(self) -> None:
        """Write the lists parsed now, remove those the compile did not use; after a compile that succeeded. Taken
        under the state directory's lock when it is free (only its holder writes there): busy, nothing is kept."""
        try:
            self.state.ensure()
            with Lock(self.state, 0):
                texts = {file_name(k): as_text(v) for k, v in self.used.items() if v is not None}
                fresh = {name: text for name, text in texts.items() if text is not None}
                self.state.stage(fresh, durable=False).commit()  # a list lost to a crash is parsed again
                kept = {file_name(k) for k, v in self.used.items() if v is None} | set(fresh)
                for name in self.state.names():
                    if _NAME.fullmatch(name) and name not in kept:
                        self.state.remove(name)
        except (StateError, OSError):
            pass  # a cache: the next compile parses the file
