"""Reads a policy from disk: the main file, its includes and the address files its zones name.

The only module of the compiler that touches the file system; everything after it works on the model.
"""

from __future__ import annotations

import codecs
import dataclasses
import fnmatch
import hashlib
import ipaddress
import os
import re
import socket
from dataclasses import dataclass
from itertools import compress, repeat
from operator import not_
from typing import Callable, MutableMapping, TypeVar

from . import model as m
from .diagnostics import Diagnostic, PolicyError, error, quoted, warning
from .parser import parse_network, parse_text, statement_start_hint
from .text import MAX_SHOWN

MAX_INCLUDE_DEPTH = 16
MAX_POLICY_BYTES = 1 << 20
MAX_ADDRESS_FILE_BYTES = 64 << 20
MAX_ADDRESSES = 1_000_000
T = TypeVar("T")


# The last good copy of a url zone's blocklist: (zone, url) -> (the path it is kept at, its text or None when none
# is kept there). Given by the caller that may read it (apply, as root, from the state directory:
# nftc.system.blocklists); without it a url zone compiles with no address, and the digest is the same
# (nftc.compiler leaves blocklists out of it).
Feeds = Callable[[str, str], "tuple[str, str | None]"]


@dataclass(frozen=True)
class ListCache:
    """Address files parsed by an earlier compile, by the sha256 of their bytes (issue 9: parsing a 200,000-line
    list is most of a compile, and the usual edit is to the policy, not to the list). Given by the caller that
    keeps them (apply, as root, in the state directory: nftc.system.addresslists), which checks what it gives
    back; without it every file is parsed. A list that warned is never kept: its warning is said at every
    compile."""

    find: Callable[[str], "m.AddressList | None"]  # sha256 of the file's bytes -> its networks, as parsed
    keep: Callable[[str, m.AddressList], None]  # a list parsed afresh without a warning, by that sha256


def load_policy(path: str, sources: MutableMapping[str, str], feeds: Feeds | None = None,
                lists: ListCache | None = None) -> m.Policy:
    """Load `path` and everything it includes; `sources` receives each file's text, for diagnostics."""
    statements = _load_statements(os.path.normpath(path), sources, chain=(), limit_bytes=MAX_POLICY_BYTES)
    warnings: list[Diagnostic] = []
    statements = _read_zone_files(statements, sources, feeds, warnings, lists)
    return _assemble(statements, source=os.path.normpath(path), warnings=tuple(warnings))


def _read(path: str, limit_bytes: int, what: str, span: m.Span | None) -> bytes:
    """The file's bytes; errors about the file itself (missing, a directory, too large) name only its path."""
    if os.path.isdir(path):
        raise PolicyError([error(f"{what} '{path}' is a directory", span, hint="name a file")])
    if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or a device would block or never end
        raise PolicyError([error(f"{what} '{path}' is not a regular file", span, hint="name a file")])
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit_bytes + 1)
    except FileNotFoundError:
        raise PolicyError([error(f"{what} '{path}' does not exist", span,
                                 hint="paths are relative to the file that names them")]) from None
    except OSError as exc:
        raise PolicyError([error(f"cannot read {what} '{path}': {exc.strerror}", span)]) from None
    if len(data) > limit_bytes:
        raise PolicyError([error(f"{what} '{path}' is larger than {limit_bytes >> 20} MiB", span)])
    return data.removeprefix(codecs.BOM_UTF8)  # some editors start UTF-8 files with one; it is not text


@dataclass(frozen=True)
class _Kind:
    """What a file must show itself to be, by its first entry, before a diagnostic may quote any of it."""

    name: str  # "a policy"
    problem: Callable[[str], str]  # the first entry -> '' when it is of this kind, else a hint that quotes none of it
    message: str  # the one error about a file whose first entry is not
    comments: str = "#"  # what starts a comment in it (an address list also takes `;`: Spamhaus DROP)


def _address_problem(entry: str) -> str:
    return "" if parse_network(entry)[0] is not None else \
        "an address file holds one address or CIDR per line, and # comments"


_POLICY = _Kind("a policy", statement_start_hint, "not a policy: its first statement does not start with a keyword")
_ADDRESS_LIST = _Kind("an address list", _address_problem,
                      "not an address list: its first entry is not an IPv4 or IPv6 address or CIDR", "#;")


@dataclass(frozen=True)
class _Entry:
    """A file's first statement or address, comment removed, and where it starts."""

    line: int
    column: int
    text: str


def _parsed(path: str, data: bytes, what: str, kind: _Kind, parse: Callable[[str], T],
            sources: MutableMapping[str, str]) -> T:
    """`parse` the file's text; `sources` keeps it (even when it is not valid UTF-8, so an error can show it).

    Until its first entry shows the file is of `kind`, an error in it is reported once, by position, and nothing
    of its text is shown: `include "/etc/shadow"` or `zone z = file "/proc/self/environ"`, run through sudo, must
    not print what they name."""
    text = data.decode("utf-8", errors="replace")
    sources[path] = text
    entry = _first_entry(text, kind.comments)
    problem = kind.problem(entry.text) if entry else ""
    try:
        return parse(_decoded(data, path, what))
    except PolicyError as exc:
        if entry and not problem:  # the file showed what it is: every diagnostic, with its source line
            raise
        del sources[path]
        if entry is None:  # only blanks and comments: the error is a byte that is not UTF-8, and quotes none of it
            raise PolicyError(exc.diagnostics[:1]) from None
        raise PolicyError([error(kind.message, m.Span(path, entry.line, entry.column),
                                 hint=f"{problem} (nftc shows nothing of a file that is not {kind.name})")]) from None


def _decoded(data: bytes, path: str, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError([error(f"{what} '{path}' is not valid UTF-8 (byte 0x{data[exc.start]:02x})",
                                 _byte_span(data, exc.start, path),
                                 hint="save it as UTF-8; outside comments a policy is plain ASCII")]) from None


def _first_entry(text: str, comments: str = "#") -> _Entry | None:
    """The first line holding more than blanks and a comment (started by any of `comments`), read as
    read_address_list reads lines."""
    start, number = 0, 1
    while start <= len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        line = text[start:end]
        entry = re.split(f"[{comments}]", line, maxsplit=1)[0].strip()
        if entry:
            return _Entry(number, line.index(entry) + 1, entry)
        start, number = end + 1, number + 1
    return None


def _byte_span(data: bytes, offset: int, path: str) -> m.Span:
    line_start = data.rfind(b"\n", 0, offset) + 1
    column = len(data[line_start:offset].decode("utf-8", errors="replace")) + 1
    return m.Span(path, data.count(b"\n", 0, offset) + 1, column, data.count(b"\n", 0, offset) + 1, column + 1)


def _load_statements(
    path: str, sources: MutableMapping[str, str], chain: tuple[str, ...], limit_bytes: int, span=None
) -> tuple[m.Statement, ...]:
    what = "policy file" if not chain else "included file"
    statements = _parsed(path, _read(path, limit_bytes, what, span), what, _POLICY,
                         lambda text: parse_text(text, path), sources)
    chain = chain + (os.path.realpath(path),)
    expanded: list[m.Statement] = []
    for statement in statements:
        if isinstance(statement, m.Include):
            expanded.extend(_include(statement, path, sources, chain))
        else:
            expanded.append(statement)
    return tuple(expanded)


def _include(include: m.Include, parent: str, sources, chain) -> tuple[m.Statement, ...]:
    if _WILDCARD.search(include.path):
        return _include_matches(include, parent, sources, chain)
    target = os.path.normpath(os.path.join(os.path.dirname(parent), include.path))
    if os.path.realpath(target) in chain:
        loop = chain[chain.index(os.path.realpath(target)):] + (target,)
        raise PolicyError([error("include loop: " + " -> ".join(os.path.basename(p) for p in loop), include.span,
                                 hint="a file cannot include itself, directly or through other files")])
    if os.path.realpath(target) in {os.path.realpath(p) for p in sources}:  # only policy files are read yet
        raise PolicyError([error(f"'{include.path}' is included a second time", include.span,
                                 hint="include a shared file once, from the top file: "
                                      "everything in it would be defined twice")])
    if len(chain) >= MAX_INCLUDE_DEPTH:
        raise PolicyError([error(f"includes nested deeper than {MAX_INCLUDE_DEPTH} levels", include.span)])
    return _load_statements(target, sources, chain, MAX_POLICY_BYTES, include.span)


_WILDCARD = re.compile(r"[*?[]")


def _include_matches(include: m.Include, parent: str, sources, chain) -> tuple[m.Statement, ...]:
    """`include "conf.d/*.zfw"`: each file of the folder whose name matches, sorted by name (code point order,
    whatever the locale), each included as if named alone, so every include check applies to it. Names starting
    with '.' match only a pattern that does (as in the shell). Wildcards only in the file name, and the folder
    must exist: a misspelt folder is an error, an empty one includes nothing (a package ships conf.d/ empty, and
    `--strict` at boot must not refuse that)."""
    folder, pattern = os.path.split(include.path)
    if _WILDCARD.search(folder):
        raise PolicyError([error(f"{quoted(include.path)} has a wildcard outside the file name", include.span,
                                 hint='only the last part of the path may hold *, ? or [...], '
                                      'such as include "conf.d/*.zfw"')])
    directory = os.path.normpath(os.path.join(os.path.dirname(parent), folder))
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        raise PolicyError([error(f"folder {quoted(folder)} of {quoted(include.path)} does not exist", include.span,
                                 hint="paths are relative to the file that names them; an empty folder includes "
                                      "nothing")]) from None
    except OSError as exc:
        raise PolicyError([error(f"cannot list folder {quoted(folder)}: {exc.strerror}", include.span)]) from None
    matched = sorted(n for n in names if fnmatch.fnmatchcase(n, pattern) and (pattern[:1] == "." or n[:1] != "."))
    return tuple(statement for name in matched
                 for statement in _include(dataclasses.replace(include, path=os.path.join(folder, name)), parent,
                                           sources, chain))


def _read_zone_files(statements, sources, feeds: Feeds | None, warnings: list[Diagnostic],
                     lists: ListCache | None = None) -> tuple[m.Statement, ...]:
    budget = [MAX_ADDRESSES]
    return tuple(
        dataclasses.replace(s, sources=tuple(_fill_file(s.name, src, sources, budget, feeds, warnings, lists)
                                             for src in s.sources))
        if isinstance(s, m.Zone) else s
        for s in statements
    )


def _fill_file(zone: str, source: m.ZoneSource, sources, budget: list[int], feeds: Feeds | None,
               warnings: list[Diagnostic], lists: ListCache | None = None) -> m.ZoneSource:
    if isinstance(source, m.UrlSource):
        return _fill_url(zone, source, sources, budget, feeds)
    if not isinstance(source, m.FileSource):
        return source
    path = os.path.normpath(os.path.join(os.path.dirname(source.span.file), source.path))
    data = _read(path, MAX_ADDRESS_FILE_BYTES, "address file", source.span)
    digest = hashlib.sha256(data).hexdigest() if lists else ""
    networks = _cached(path, data, digest, budget[0], sources, lists) if lists else None
    if networks is None:
        networks = _parsed(path, data, "address file", _ADDRESS_LIST,
                           lambda text: _noted(_kept(read_address_list(text, path, limit=budget[0]), digest, lists),
                                               warnings), sources)
    if networks is None:
        raise PolicyError([error(f"zones hold more than {MAX_ADDRESSES} addresses in all", source.span,
                                 hint="merge the list into wider prefixes")])
    budget[0] -= len(networks)
    return dataclasses.replace(source, networks=networks)


def _cached(path: str, data: bytes, digest: str, limit: int, sources, lists: ListCache) -> m.AddressList | None:
    """The file's list as an earlier compile parsed it (`digest`: the sha256 of `data`), when it holds at most
    `limit` networks (else None: parsing says why). Its text joins `sources` as `_parsed` puts it (the applied
    record hashes it)."""
    networks = lists.find(digest)
    if networks is None or len(networks) > limit:
        return None
    sources[path] = data.decode("utf-8", errors="replace")
    return networks


def _kept(found: ReadList, digest: str, lists: ListCache | None) -> ReadList:
    """`found`, given to `lists` to keep when it parsed without a warning (a warning is said at every compile)."""
    if lists and found.networks is not None and not found.warnings:
        lists.keep(digest, found.networks)
    return found


def _fill_url(zone: str, source: m.UrlSource, sources, budget: list[int], feeds: Feeds | None) -> m.UrlSource:
    """The zone's last good blocklist, when the caller gives one: parsed and checked again as any address file
    (a copy in the state directory is data, trusted no further than that). Its path and text ('' when none is
    kept) join `sources`, so the applied record hashes it and an apply after a refresh compiles again. Its
    warnings (host bits cleared) were said by the refresh that fetched it: not again at every compile, where
    `--strict` (the boot unit's) would refuse the policy for a list's spelling."""
    if feeds is None:
        return source
    path, text = feeds(zone, source.url)
    sources[path] = text or ""  # also when none is kept: the applied record then tells a list kept since
    if text is None:
        return source
    networks = read_address_list(text, path, limit=budget[0]).networks  # its warnings: said by the refresh
    if networks is None:
        raise PolicyError([error(f"zones hold more than {MAX_ADDRESSES} addresses in all", source.span,
                                 hint="merge the list into wider prefixes")])
    budget[0] -= len(networks)
    return dataclasses.replace(source, networks=networks)


@dataclass(frozen=True)
class ReadList:
    """An address list as read: its networks (None: more than the limit) and the warnings its reading gave."""

    networks: m.AddressList | None
    warnings: tuple[Diagnostic, ...] = ()


def _noted(found: ReadList, warnings: list[Diagnostic]) -> m.AddressList | None:
    warnings.extend(found.warnings)
    return found.networks


def parse_address_file(text: str, path: str, limit: int = MAX_ADDRESSES) -> m.AddressList | None:
    """`read_address_list`'s networks, its warnings dropped."""
    return read_address_list(text, path, limit).networks


def read_address_list(text: str, path: str, limit: int = MAX_ADDRESSES) -> ReadList:
    """One address, CIDR or FIRST-LAST range per line; blank lines and `#` or `;` comments are skipped (the
    Spamhaus DROP format: `192.0.2.0/24 ; SBL123`); host bits set are cleared, with one warning for the file.

    None when the file holds more than `limit` addresses: counted before parsing, so a huge list fails fast.
    A file of one entry per line, each valid, takes the fast path; any other file (an error anywhere in it
    included) is read line by line by `_parse_lines`, so a message is the same whichever path met the file."""
    entries = _one_entry_per_line(text)
    if entries is not None and len(entries) > limit:
        return ReadList(None)
    networks = _packed(entries) if entries is not None else None
    return ReadList(networks) if networks is not None else _parse_lines(text, path, limit)


_COMMENT = re.compile(r"[#;][^\n]*")
_BLANKS = " \t\r\x0b\x0c\x1c\x1d\x1e\x1f"  # what str.split() splits ASCII text on, besides the newline
_TWO_ON_A_LINE = re.compile(r"\S[^\S\n]+\S")  # two entries on one line: an error, only _parse_lines reports it
_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}
_LENGTHS = {v: {str(n): n for n in range(bits + 1)} for v, bits in m.BITS.items()}  # canonical spellings only
# by prefix length: the byte that packs the length after the address
_LENGTH_BYTES = [n.to_bytes(m.PREFIX_BITS // 8, "big") for n in range(max(m.BITS.values()) + 1)]


def _one_entry_per_line(text: str) -> list[str] | None:
    """The entries, when the text (comments removed) is ASCII with at most one entry per line; else None."""
    if "#" in text or ";" in text:
        text = _COMMENT.sub("", text)
    if not text.isascii():
        return None
    if any(blank in text for blank in _BLANKS):
        return None if _TWO_ON_A_LINE.search(text) else text.split()  # the search only when needed
    entries = text.split("\n")  # newlines are its only blanks: split as str.split() would, twice as fast
    return entries if "" not in entries else list(filter(None, entries))


def _packed(entries: list[str]) -> m.AddressList | None:
    """The entries as packed networks, or None at the first that is not a valid network."""
    is_ipv6 = list(map(str.__contains__, entries, repeat(":")))
    ipv4, ipv6 = list(compress(entries, map(not_, is_ipv6))), list(compress(entries, is_ipv6))
    packed = {4: _packed_version(ipv4, 4), 6: _packed_version(ipv6, 6)}
    if packed[4] is None or packed[6] is None:
        return None
    return m.AddressList(tuple(packed[4]), tuple(packed[6]))


def _packed_version(entries: list[str], version: int) -> list[int] | None:
    """Entries of one IP version -> packed networks; None at the first that is not a valid network.

    An address is read by inet_pton and taken only when inet_ntop writes it back identically (but for the case
    of hex digits): in that canonical form ipaddress reads it alike, so this path accepts nothing `parse_network`
    would refuse, whatever the C library. Other spellings (leading zeros, `::` not where inet_ntop puts it, a
    netmask) go through `parse_network` itself, ten times slower. The address's bytes and its length's byte are
    read as one integer: the packed network (`model.pack`) in one step (measured: a tenth faster)."""
    family, lengths, host_bits, bits = _FAMILIES[version], _LENGTHS[version], m.HOST_BITS[version], m.BITS[version]
    pton, ntop, from_bytes, length_bytes = socket.inet_pton, socket.inet_ntop, int.from_bytes, _LENGTH_BYTES
    packed: list[int] = []
    for entry in entries:
        address, slash, length = entry.partition("/")
        try:
            raw = pton(family, address)
        except (OSError, ValueError):
            raw = b""
        prefix = lengths.get(length) if slash else bits
        if not raw or prefix is None or (ntop(family, raw) != address and ntop(family, raw) != address.lower()):
            network, message, _ = parse_network(entry)
            if message or network.version != version:
                return None
            packed.append(m.pack(network))
            continue
        value = from_bytes(raw + length_bytes[prefix], "big")
        if value & host_bits[prefix]:
            return None
        packed.append(value)
    return packed


def _entry(line: str) -> str:
    """A line without its `#` or `;` comment, stripped."""
    return _COMMENT.sub("", line, count=1).strip()


def _parse_lines(text: str, path: str, limit: int) -> ReadList:
    """read_address_list line by line: every error with its line and column (at most MAX_SHOWN)."""
    networks = []
    errors: list[Diagnostic] = []
    normalised: list[Diagnostic] = []
    lines = text.split("\n")
    if len(lines) > limit and sum(1 for line in lines if _entry(line)) > limit:
        return ReadList(None)
    for number, line in enumerate(lines, start=1):
        entry = _entry(line)
        if not entry:
            continue
        found, message, hint = _parse_entry(entry)
        column = line.index(entry) + 1
        span = m.Span(path, number, column, number, column + len(entry))
        if found and message:  # host bits: the network they lie in, said once for the file
            normalised.append(warning(f"{message}: read as {found[0]}", span, hint))
        elif message:
            errors.append(error(message, span, hint))
            if len(errors) >= MAX_SHOWN:  # what a message shows; reading on would be wasted
                break
        networks.extend(found)
    if errors:
        raise PolicyError(errors)
    if len(networks) > limit:
        return ReadList(None)
    return ReadList(m.AddressList(*(tuple(m.pack(n) for n in networks if n.version == v) for v in (4, 6))),
                    _host_bits_warning(normalised))


def _host_bits_warning(normalised: list[Diagnostic]) -> tuple[Diagnostic, ...]:
    """One warning for a list's entries with host bits set (a country list may have thousands): the first."""
    if not normalised:
        return ()
    first = normalised[0]
    more = f" (and {len(normalised) - 1} more entries)" if len(normalised) > 1 else ""
    return (dataclasses.replace(first, message=first.message + more,
                                hint="the list is read so; fix the entry to silence this"),)


def _parse_entry(entry: str) -> tuple[list[m.IPNetwork], str, str]:
    """An entry -> (networks, "", ""); with host bits set -> ([the network they lie in], message, hint);
    else ([], message, hint). FIRST-LAST ranges (some country lists) become the networks that cover them."""
    if "-" in entry and "/" not in entry:
        return _parse_range(entry)
    network, message, hint = parse_network(entry)
    if message and network is not None:  # host bits set
        return [network], message, ""
    return ([network] if network is not None else []), message, hint


def _parse_range(entry: str) -> tuple[list[m.IPNetwork], str, str]:
    first_text, _, last_text = entry.partition("-")
    try:
        first, last = ipaddress.ip_address(first_text.strip()), ipaddress.ip_address(last_text.strip())
        if first.version != last.version or first > last:
            raise ValueError(entry)
    except ValueError:
        return [], f"{quoted(entry)} is not a range of addresses", \
            "a range is FIRST-LAST, both of one IP version, first not above last (such as 192.0.2.0-192.0.2.63)"
    return list(ipaddress.summarize_address_range(first, last)), "", ""


_SINGLETONS = {m.TableName: "table", m.LogDrops: "log drops", m.IcmpEcho: "icmp echo", m.RpFilter: "rpfilter",
               m.ZimbraRelease: "zimbra"}


def _assemble(statements: tuple[m.Statement, ...], source: str, warnings: tuple[Diagnostic, ...] = ()) -> m.Policy:
    errors: list[Diagnostic] = []
    first: dict[type, m.Statement] = {}
    for statement in statements:
        kind = type(statement)
        if kind in _SINGLETONS and kind in first:
            errors.append(error(f"'{_SINGLETONS[kind]}' is given twice", statement.span,
                                hint=f"the first is at {first[kind].span}"))
        first.setdefault(kind, statement)
    if errors:
        raise PolicyError(errors)

    def of(kind):
        return tuple(s for s in statements if isinstance(s, kind))

    table = first.get(m.TableName)
    return m.Policy(
        table=table.name if table else m.DEFAULT_TABLE,
        zones=of(m.Zone),
        services=of(m.Service),
        groups=of(m.Group),
        rules=of(m.Rule),
        assertions=of(m.Assertion),
        log_drops=first.get(m.LogDrops),
        icmp_echo=first.get(m.IcmpEcho, m.DEFAULT_ECHO),
        rpfilter=first.get(m.RpFilter, m.DEFAULT_RPFILTER),
        source=source,
        warnings=warnings,
        hosts=of(m.Host),
        zimbra=first.get(m.ZimbraRelease),
    )
