"""Text -> policy statements. The Lark tree never leaves this module."""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re

from . import model as m
from . import zfw_parser
from .zfw_parser import (Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken,
                         VisitError, v_args)
from .diagnostics import Diagnostic, PolicyError, did_you_mean, error, quoted
from .reserved import MAX_NAME_LENGTH, NAME_CHARACTERS, TABLE_NAME_HINTS, table_name_problem

MAX_STRING_LENGTH = 100
MAX_URL_LENGTH = 1000
MIN_REFRESH_SECONDS, MAX_REFRESH_SECONDS = 60, 30 * 86400
MIN_TIMEOUT_SECONDS, MAX_TIMEOUT_SECONDS = 1, 365 * 86400  # `dynamic timeout`: the kernel takes far more
_UNIT_NS = {"second": 10**9, "minute": 60 * 10**9, "hour": 3600 * 10**9, "day": 86400 * 10**9}
MAX_LOG_PREFIX = 64  # nftc appends a rule id; the kernel's limit for the whole prefix is 127

# What to call a terminal in "expected ..." hints; keywords and punctuation show as written, in quotes.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "SERVICE_NAME": "a service name",
    "ADDRESS": "an address or CIDR",
    "IFNAME": "an interface name",
    "STRING": 'a "quoted string"',
    "PORTS": "a port or port range",
    "PROTOCOL": "'tcp' or 'udp'",
    "RATE": "a rate such as 10/second",
    "INT": "a number",
    "ACTION": "'allow', 'deny' or 'reject'",
    "ARROW": "'->'",
    "NOT_ARROW": "'!->'",
    "ANY": "'any'",
    "OFF": "'off'",
    "PER_SOURCE": "'per source'",
    "VERSION": "a version such as 10.1 or 8.8.15",
    "_NL": "end of line",
    "$END": "end of file",
}
_STATEMENT_KEYWORDS = ("zone", "service", "group", "allow", "deny", "reject", "assert", "include", "table",
                       "log", "icmp", "rpfilter", "host", "zimbra")
_STATEMENTS = "zone, service, group, allow, deny, reject, assert, include, table, log drops, icmp echo, rpfilter, " \
              "host or zimbra"
_STRING_RULE = "strings hold printable ASCII without quotes or backslashes: nothing in one can read as nft syntax"


@functools.lru_cache(maxsize=None)
def _lark() -> zfw_parser.Lark:
    """The LALR parser of grammar/zfw.lark, generated into nftc/language/zfw_parser.py (scripts/generate_parser.py).

    Its tables are Python literals in the package: nothing is built at start-up, and nothing is read from a cache,
    which Lark would unpickle (root must never unpickle a file another user could write or swap).
    """
    return zfw_parser.Lark_StandAlone()


def largest_burst(rate: m.Rate) -> int:
    """The kernel keeps a limit's bucket in nanoseconds: (unit in ns / rate) * burst must fit in 63 bits."""
    return ((1 << 63) - 1) // (_UNIT_NS[rate.unit] // rate.count or 1)


def parse_text(text: str, file: str) -> tuple[m.Statement, ...]:
    """Parse one file's text; raise PolicyError with every problem found in it."""
    if "\0" in text:
        raise PolicyError([error("the file contains a NUL byte", _offset_span(text, text.index("\0"), file),
                                 hint="a policy is a text file; is this a binary file?")])
    try:
        tree = _lark().parse(text if text.endswith("\n") else text + "\n")
    except UnexpectedInput as exc:
        raise PolicyError([_syntax_error(exc, file, text)]) from None
    builder = _StatementBuilder(file)
    try:
        statements = builder.transform(tree)
    except VisitError as exc:  # a bug in the builder, not in the policy: let the CLI report it
        raise exc.orig_exc from None
    if builder.errors:
        raise PolicyError(builder.errors)
    return statements


def statement_start_hint(entry: str) -> str:
    """'' when `entry` (a line, comment removed) starts with a statement keyword; otherwise a hint about it.

    The loader quotes nothing of a file whose first statement fails this (`include "/etc/shadow"`, a binary): the
    hint names at most a keyword, never the word it found."""
    word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", entry)
    if word and word.group() in _STATEMENT_KEYWORDS:
        return ""
    close = did_you_mean(word.group()[:MAX_NAME_LENGTH], _STATEMENT_KEYWORDS) if word else ""
    return close or f"a statement starts with {_STATEMENTS}"


def parse_network(text: str) -> tuple[m.IPNetwork | None, str, str]:
    """An address or CIDR -> (network, "", ""), or (best guess or None, message, hint) when it is wrong."""
    if "%" in text:  # ipaddress takes a scope (fe80::1%eth0, of any length); nft addresses have none
        return None, f"{quoted(text)} is not an address: it has a %scope", "to match an interface, use: iface NAME"
    try:
        return ipaddress.ip_network(text, strict=True), "", ""
    except ValueError:
        pass
    try:
        loose = ipaddress.ip_network(text, strict=False)
        return loose, f"{quoted(text)} has host bits set", f"did you mean {loose}?"
    except ValueError:
        pass
    address, slash, prefix = text.partition("/")
    version = _address_version(address)
    if version and slash:
        return None, f"{quoted(text)} has a bad prefix length '/{prefix[:10]}'", \
            f"an IPv{version} prefix length is a number from 0 to {32 if version == 4 else 128}"
    return None, f"{quoted(text)} is not an IPv4 or IPv6 address or CIDR", \
        "zones take addresses such as 192.0.2.1, 192.0.2.0/24 or 2001:db8::/32 (no host names)"


def url_problem(url: str) -> str:
    """'' for a blocklist URL nftc fetches (http or https, a host, no credentials), else what is wrong with it."""
    import urllib.parse  # here: only a policy with a url zone needs it (2 ms of every compile otherwise)

    if len(url) > MAX_URL_LENGTH:
        return f"URL longer than {MAX_URL_LENGTH} characters"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"{quoted(url)} is not a URL: {exc}"
    if parts.scheme not in ("http", "https"):
        return f"{quoted(url)} is not an http or https URL"
    if not parts.hostname or " " in url:
        return f"{quoted(url)} has no host name"
    if parts.username is not None or parts.password is not None:
        return f"{quoted(url)} holds credentials: a policy is no place for a password"
    if port == 0:
        return f"{quoted(url)} has port 0"
    return ""


MAX_DIGITS = 18  # a longer number is out of every range nftc checks; Python refuses to read more than 4300 digits


def _int(digits: str) -> int:
    """What a digit string means; one of more than MAX_DIGITS digits (a 1 MB token) reads as 10**MAX_DIGITS."""
    digits = digits.lstrip("0")
    return int(digits or "0") if len(digits) <= MAX_DIGITS else 10**MAX_DIGITS


def _digits(text: str) -> str:
    """A number as a message shows it: without leading zeros, and cut after MAX_DIGITS digits."""
    digits = text.lstrip("0") or "0"
    return digits if len(digits) <= MAX_DIGITS else digits[:MAX_DIGITS] + "..."


def _address_version(text: str) -> int:
    try:
        return ipaddress.ip_address(text).version
    except ValueError:
        return 0


def _offset_span(text: str, offset: int, file: str) -> m.Span:
    line_start = text.rfind("\n", 0, offset) + 1
    return m.Span(file, text.count("\n", 0, offset) + 1, offset - line_start + 1)


def _syntax_error(exc: UnexpectedInput, file: str, text: str) -> Diagnostic:
    span = m.Span(file, max(exc.line, 1), max(exc.column, 1))
    lines = text.split("\n")
    line = lines[span.line - 1] if span.line <= len(lines) else ""
    if isinstance(exc, UnexpectedCharacters):
        return _bad_character(exc, span, line)
    if isinstance(exc, UnexpectedEOF):
        return error("unexpected end of file", span, hint=_expected(exc.expected))
    return _unexpected_token(exc, span, line)


def _bad_character(exc: UnexpectedCharacters, span: m.Span, line: str) -> Diagnostic:
    before = line[: span.column - 1]
    # The lexer's `allowed` merges LALR states (a rule would seem to take a group's "description"): ask the parser.
    allowed = exc.interactive_parser.accepts() if exc.interactive_parser else set(exc.allowed or ())
    if before.count('"') % 2 == 1 or (exc.char == '"' and "STRING" in allowed):
        start = before.rfind('"') if before.count('"') % 2 == 1 else span.column - 1
        return _bad_string(line, start, span)
    if exc.char == "\r":
        return error("a carriage return without a line feed", span, hint="save the file with LF or CRLF line ends")
    shown = repr(exc.char) if exc.char.isprintable() else f"U+{ord(exc.char):04X}"
    previous = (exc.token_history or [None])[-1]
    if previous is not None and previous.type == "NAME" and previous.end_pos == exc.pos_in_stream:
        return error(f"{shown} cannot appear in a name", span, hint=NAME_CHARACTERS)
    return error(f"unexpected character {shown}", span, hint=_expected(allowed))


def _bad_string(line: str, start: int, span: m.Span) -> Diagnostic:
    """Points at the first character a string may not hold; `start` is the index of its opening quote."""
    for index in range(start + 1, len(line.rstrip("\r"))):
        char = line[index]
        at = dataclasses.replace(span, column=index + 1)
        if char == "\\":
            return error("a string cannot hold a backslash", at, hint=_STRING_RULE)
        if not char.isascii():
            return error(f"a string cannot hold the non-ASCII character {char!r}", at, hint=_STRING_RULE)
        if not char.isprintable():
            return error(f"a string cannot hold the control character U+{ord(char):04X}", at, hint=_STRING_RULE)
        if char == '"':
            break
    return error("unterminated string", dataclasses.replace(span, column=start + 1),
                 hint='close it with " on the same line: a string cannot span lines')


def _unexpected_token(exc: UnexpectedToken, span: m.Span, line: str) -> Diagnostic:
    token = exc.token
    if token.type not in ("_NL", "$END") and token.end_line == token.line:
        span = dataclasses.replace(span, end_line=token.end_line, end_column=token.end_column)
    expected = set(exc.accepts or exc.expected)
    shown = "end of line" if token.type == "_NL" else "end of file" if token.type == "$END" else quoted(str(token))
    if "ACTION" in expected and "ZONE" in expected:
        close = did_you_mean(str(token), _STATEMENT_KEYWORDS) if _is_word(token) else ""
        return error(f"{shown} does not start a statement", span,
                     hint=close or f"a statement starts with {_STATEMENTS}")
    if "ARROW" in expected and _is_word(token):
        if "NOT_ARROW" in expected:
            return error(f"missing '->' or '!->' before {shown}", span,
                         hint="an assertion reads: assert ZONES -> SERVICES, or assert ZONES !-> SERVICES")
        return error(f"missing '->' before {shown}", span, hint="a rule reads: allow ZONES -> SERVICES")
    if "ADDRESS" in expected and re.search(r"[.:]", str(token)):
        return error(parse_network(str(token))[1], span, hint=parse_network(str(token))[2])
    if token.type in ("ARROW", "NOT_ARROW") and "NAME" in expected:
        return error(f"missing zone before {shown}", span, hint="name one or more zones, such as: allow lan -> ssh")
    if "_NL" in expected and re.search(r"(^|\s)trusted\s*$", line[: span.column - 1]):
        return error(f"unexpected {shown} after 'trusted'", span,
                     hint="'trusted' ends a zone, after its sources: zone admins = 10.9.0.0/24, fd00:9::/64 trusted")
    glued = token.type not in ("_NL", "$END") and not _is_word(token)
    if glued and re.search(r"(^|\s)[A-Za-z_][A-Za-z0-9_]*$", line[: span.column - 1]):
        return error(f"{str(token)[0]!r} cannot appear in a name", dataclasses.replace(span, end_column=0),
                     hint=NAME_CHARACTERS)
    if span.column > 1 and line[span.column - 2] == '"':
        return error(f"unexpected {shown} right after a string", span,
                     hint="a quote ends the string: strings cannot hold quotes")
    return error(f"unexpected {shown}", span, hint=_expected(expected))


def _is_word(token: Token) -> bool:
    """Whether a token reads as a name (the error lexer may have called it by another terminal)."""
    return re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", str(token)) is not None


def _expected(terminals) -> str:
    terminals = set(terminals)
    if "ACTION" in terminals and "ZONE" in terminals:
        return f"a statement starts with {_STATEMENTS}"
    if "_NL" in terminals:
        terminals.discard("$END")  # a statement may end the file without a newline: say "end of line" only
    if "SERVICE_NAME" in terminals:
        terminals.discard("NAME")  # where a service is expected, both are service names to the user
    words = sorted({_TERMINAL_WORDS.get(t, _literal(t)) for t in terminals if not t.startswith("__")},
                   key=lambda w: (w in ("end of line", "end of file"), not w.startswith("'"), w))
    if not words:
        return ""
    return "expected " + (words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1])


def _literal(terminal: str) -> str:
    for term in _lark().terminals:
        if term.name == terminal and term.pattern.type == "str":
            return f"'{term.pattern.value}'"
    return terminal.lower()


def _span(file: str, item) -> m.Span:
    """A span from a Token or a tree's meta: both carry line, column, end_line and end_column."""
    return m.Span(file, item.line, item.column, item.end_line, item.end_column)


@v_args(meta=True)
class _StatementBuilder(Transformer):
    """Builds model objects; collects value errors (bad CIDR, port out of range...) instead of stopping."""

    def __init__(self, file: str):
        super().__init__()
        self.file = file
        self.errors: list[Diagnostic] = []

    def __default__(self, data, children, meta):
        """A grammar rule with no method here (Lark would keep it as a Tree, and the statement would compile to
        nothing): a bug in nftc, raised as is (Lark calls this outside its VisitError wrapper)."""
        raise NotImplementedError(f"parser: grammar rule '{data}' has no method in _StatementBuilder")

    def _fail(self, message: str, item, hint: str = "") -> None:
        self.errors.append(error(message, _span(self.file, item), hint))

    def _name(self, token: Token) -> str:
        if len(token) > MAX_NAME_LENGTH:
            self._fail(f"name '{token[:20]}...' is longer than {MAX_NAME_LENGTH} characters", token)
        return str(token)

    def _string(self, token: Token) -> str:
        value = str(token)[1:-1]
        if len(value) > MAX_STRING_LENGTH:
            self._fail(f"string longer than {MAX_STRING_LENGTH} characters", token)
        return value

    def start(self, meta, items):
        return tuple(items)

    def table_name(self, meta, items):
        name = self._name(items[0])
        problem = table_name_problem(name) if len(name) <= MAX_NAME_LENGTH else None  # _name said it is too long
        if problem:
            self._fail(f"table name '{name}' is {problem}", items[0], hint=TABLE_NAME_HINTS.get(problem, ""))
        return m.TableName(name, _span(self.file, meta))

    def zone(self, meta, items):
        name, *sources, trusted = items
        return m.Zone(self._name(name), tuple(sources), trusted is not None, _span(self.file, name))

    def address_source(self, meta, items):
        return m.AddressSource(self._network(items[0]), _span(self.file, items[0]))

    def _network(self, token: Token) -> m.IPNetwork:
        network, message, hint = parse_network(str(token))
        if message:
            self._fail(message, token, hint)
        return network or ipaddress.ip_network("0.0.0.0/32")

    def any_source(self, meta, items):
        return m.AnySource(_span(self.file, meta))

    def dynamic_source(self, meta, items):
        duration = items[0]
        seconds = m.parse_duration(str(duration)) if duration is not None else 0
        if duration is not None and not MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS:
            self._fail(f"timeout {_digits(duration[:-1])}{duration[-1]} is out of range", duration,
                       "run-time addresses expire after 1s to 365d, such as: zone f2b = dynamic timeout 1h")
        return m.DynamicSource(seconds, _span(self.file, meta))

    def interface_source(self, meta, items):
        token = items[0]
        if len(token.rstrip("*")) > 15:
            self._fail(f"interface name {quoted(str(token))} is longer than 15 characters", token)
        return m.InterfaceSource(str(token), _span(self.file, token))

    def file_source(self, meta, items):
        return m.FileSource(self._string(items[0]), (), _span(self.file, items[0]))

    def url_source(self, meta, items):
        token, duration = items
        url = str(token)[1:-1]
        problem = url_problem(url)
        if problem:
            self._fail(problem, token, "a blocklist is fetched over http or https, such as: "
                                       'url "https://www.spamhaus.org/drop/drop.txt" refresh 12h')
        seconds = m.parse_duration(str(duration)) if duration is not None else m.DEFAULT_REFRESH_SECONDS
        if duration is not None and not MIN_REFRESH_SECONDS <= seconds <= MAX_REFRESH_SECONDS:
            self._fail(f"refresh {duration} is out of range", duration,
                       "a blocklist is refreshed every 1m to 30d (Spamhaus asks for at most once an hour)")
        return m.UrlSource(url, seconds, m.AddressList(), _span(self.file, token))

    def service(self, meta, items):
        name, *specs, description = items
        ports = []
        protocol = None
        for spec_protocol, token in specs:
            protocol = spec_protocol or protocol
            if protocol is None:
                self._fail("a port list must start with its protocol", token, hint=f"write 'tcp {token}'")
                protocol = "tcp"
            ports.append(self._port_range(protocol, token))
        text = self._string(description) if description else ""
        return m.Service(self._name(name), tuple(ports), text, _span(self.file, name))

    def port_spec(self, meta, items):
        protocol, token = items
        return (str(protocol) if protocol else None, token)

    def _port_range(self, protocol: str, token: Token) -> m.PortRange:
        first, _, last = str(token).partition("-")
        low, high = _int(first), _int(last or first)
        wrong = sorted({(port, _digits(text)) for port, text in ((low, first), (high, last or first))
                        if not 1 <= port <= 65535})
        for _, shown in wrong:
            self._fail(f"port {shown} is out of range (1-65535)", token)
        if low > high and not wrong:
            self._fail(f"port range {token} is reversed", token, hint=f"write {high}-{low}")
        return m.PortRange(protocol, min(low, high), max(low, high))

    def group(self, meta, items):
        name, *members, description = items
        text = self._string(description) if description else ""
        return m.Group(self._name(name), tuple(members), text, _span(self.file, name))

    def zone_ref(self, meta, items):
        return m.Name(str(items[0]), _span(self.file, items[0]))

    def service_ref(self, meta, items):
        return m.Name(str(items[0]), _span(self.file, items[0]))

    def zone_list(self, meta, items):
        return tuple(items)

    service_list = zone_list

    def rule(self, meta, items):
        action, zones, _arrow, services, limit, log_flag, hosts = items
        return m.Rule(str(action), zones, services, limit, log_flag is not None, _span(self.file, meta),
                      hosts or ())

    def on_hosts(self, meta, items):
        return items[0]

    def name_list(self, meta, items):
        return tuple(m.Name(self._name(token), _span(self.file, token)) for token in items)

    def host(self, meta, items):
        name, *tokens, _roles, roles = items
        host = self._name(name)
        addresses = tuple(self._host_address(host, token) for token in tokens)
        return m.Host(host, addresses, roles or (), _span(self.file, name),
                      tuple(_span(self.file, token) for token in tokens))

    def _host_address(self, host: str, token: Token) -> m.IPNetwork:
        """One address of a host: a network (a prefix shorter than the whole address) is not a host's."""
        network, message, hint = parse_network(str(token))
        address = str(token).partition("/")[0]
        if network is not None and message:  # host bits set: an address written with its interface's prefix
            self._fail(f"host {host}: {token} is an address with a prefix length; a host has addresses", token,
                       hint=f"write {address}")
            return ipaddress.ip_network(address)
        if message:
            self._fail(message, token, hint)
        elif network.prefixlen != network.max_prefixlen:
            self._fail(f"host {host}: {token} is a network; a host has addresses", token,
                       hint=f"write its own addresses, such as {network.network_address + 1}")
        return ipaddress.ip_network(network.network_address if network else "0.0.0.0")

    def zimbra_release(self, meta, items):
        version, _features, features = items
        parts = str(version).split(".")
        if any(len(part) > 3 for part in parts) or len(parts) > 4:
            self._fail(f"{quoted(str(version))} is not a Zimbra version", version,
                       hint="a version reads like 10.1, 9.0 or 8.8.15")
            parts = ["0"]
        return m.ZimbraRelease(tuple(int(part) for part in parts), features or (), _span(self.file, meta))

    def limit(self, meta, items):
        rate, per_source, burst = items
        parsed = self._rate(rate)
        return m.Limit(parsed, per_source is not None, self._burst(parsed, burst, rate, parsed.count),
                       _span(self.file, meta))

    def log_flag(self, meta, items):
        return True

    def assertion(self, meta, items):
        zones, reach, services, hosts = items
        return m.Assertion(zones, services, str(reach) == "->", _span(self.file, meta), hosts or ())

    def log_drops(self, meta, items):
        rate, burst, prefix = items
        default = m.DEFAULT_LOG_DROPS
        parsed = self._rate(rate) if rate else default.rate
        burst_value = self._burst(parsed, burst, rate or meta, default.burst)
        text = self._string(prefix) if prefix else default.prefix
        if "$" in text:
            self._fail("'$' cannot appear in a log prefix: nft reads it as a variable", prefix)
        if len(text) > MAX_LOG_PREFIX:
            self._fail(f"log prefix longer than {MAX_LOG_PREFIX} characters", prefix,
                       hint="nftc appends the rule id, and the kernel keeps at most 127 characters")
        return m.LogDrops(parsed, burst_value, text, _span(self.file, meta))

    def icmp_echo(self, meta, items):
        if items[0].type == "OFF":
            return m.IcmpEcho(False, None, 0, _span(self.file, meta))
        rate, burst = items
        parsed = self._rate(rate)
        return m.IcmpEcho(True, parsed, self._burst(parsed, burst, rate, parsed.count), _span(self.file, meta))

    def rpfilter(self, meta, items):
        return m.RpFilter(str(items[0]), _span(self.file, meta))

    def include(self, meta, items):
        return m.Include(self._string(items[0]), _span(self.file, items[0]))

    def _rate(self, token: Token) -> m.Rate:
        count, unit = str(token).split("/")
        if _int(count) == 0:
            self._fail(f"a rate of 0/{unit} lets nothing through", token, hint="a rate counts from 1, as in 1/second")
            return m.Rate(1, unit)
        return m.Rate(self._count(token, count), unit)

    def _burst(self, rate: m.Rate, token: Token | None, where, default: int) -> int:
        """The burst given (or the default), within what the kernel can hold for this rate."""
        value = self._count(token) if token is not None else default
        largest = largest_burst(rate)
        if value > largest:
            self._fail(f"burst {value} is too large for a rate of {rate}", token if token is not None else where,
                       hint=f"the kernel holds at most {largest} at that rate")
            return 1
        return value

    def _count(self, token: Token, text: str | None = None) -> int:
        value = _int(text if text is not None else token)
        if not 1 <= value <= 1_000_000_000:
            self._fail(f"{_digits(text if text is not None else token)} is out of range (1-1000000000)", token)
            return 1
        return value
