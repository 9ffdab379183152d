"""Text -> policy statements. The Lark tree never leaves this module."""

from __future__ import annotations

import functools
import ipaddress

from lark import Lark, Token, Transformer, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, v_args
from lark.exceptions import VisitError

from . import model as m
from .diagnostics import Diagnostic, PolicyError, error

MAX_NAME_LENGTH = 32
MAX_STRING_LENGTH = 100

# What to call a terminal in "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "SERVICE_NAME": "a service name",
    "ADDRESS": "an address or CIDR",
    "IFNAME": "an interface name",
    "STRING": 'a "quoted string"',
    "PORTS": "a port or port range",
    "PROTOCOL": "tcp or udp",
    "RATE": "a rate such as 10/second",
    "INT": "a number",
    "ACTION": "allow, deny or reject",
    "ARROW": "->",
    "NOT_ARROW": "!->",
    "_NL": "end of line",
    "$END": "end of file",
    "EQUAL": "'='",
    "COMMA": "','",
    "ANY": "any",
    "OFF": "off",
    "PER_SOURCE": "per source",
}


@functools.lru_cache(maxsize=None)
def _lark() -> Lark:
    return Lark.open_from_package(
        "nftc", "zfw.lark", parser="lalr", propagate_positions=True, maybe_placeholders=True, cache=False
    )


def parse_text(text: str, file: str) -> tuple[m.Statement, ...]:
    """Parse one file's text; raise PolicyError with every problem found in it."""
    if "\0" in text:
        line = text[: text.index("\0")].count("\n") + 1
        raise PolicyError([error("the file contains a NUL byte", m.Span(file, line, 1))])
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


def _syntax_error(exc: UnexpectedInput, file: str, text: str) -> Diagnostic:
    span = m.Span(file, max(exc.line, 1), max(exc.column, 1))
    if isinstance(exc, UnexpectedCharacters):
        line = text.splitlines()[span.line - 1] if span.line <= len(text.splitlines()) else ""
        if line[: span.column - 1].count('"') % 2 == 1 or exc.char == '"':
            return error(
                "bad string: strings hold printable ASCII only, without quotes or backslashes",
                span,
                hint="nothing in a string may look like nft syntax",
            )
        char = exc.char
        shown = repr(char) if char.isprintable() else f"U+{ord(char):04X}"
        return error(f"unexpected character {shown}", span, hint=_expected(exc.allowed or ()))
    if isinstance(exc, UnexpectedEOF):
        return error("unexpected end of file", span, hint=_expected(exc.expected))
    token = exc.token  # UnexpectedToken
    shown = "end of line" if token.type == "_NL" else "end of file" if token.type == "$END" else f"'{token}'"
    return error(f"unexpected {shown}", span, hint=_expected(exc.accepts or exc.expected))


def _expected(terminals) -> str:
    words = sorted({_TERMINAL_WORDS.get(t, _literal(t)) for t in terminals if not t.startswith("__")})
    return "expected " + ", ".join(words) if words else ""


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
        return m.TableName(self._name(items[0]), _span(self.file, meta))

    def zone(self, meta, items):
        return m.Zone(self._name(items[0]), tuple(items[1:]), _span(self.file, items[0]))

    def address_source(self, meta, items):
        return m.AddressSource(self._network(items[0]), _span(self.file, items[0]))

    def _network(self, token: Token) -> m.IPNetwork:
        text = str(token)
        try:
            return ipaddress.ip_network(text, strict=True)
        except ValueError:
            pass
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            self._fail(f"'{text}' is not an IPv4 or IPv6 address or CIDR", token)
            return ipaddress.ip_network("0.0.0.0/32")
        self._fail(f"'{text}' has host bits set", token, hint=f"did you mean {loose}?")
        return loose

    def any_source(self, meta, items):
        return m.AnySource(_span(self.file, meta))

    def interface_source(self, meta, items):
        token = items[0]
        if len(token.rstrip("*")) > 15:
            self._fail(f"interface name '{token}' is longer than 15 characters", token)
        return m.InterfaceSource(str(token), _span(self.file, token))

    def file_source(self, meta, items):
        return m.FileSource(self._string(items[0]), (), _span(self.file, items[0]))

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
        low, high = int(first), int(last or first)
        for port in (low, high):
            if not 1 <= port <= 65535:
                self._fail(f"port {port} is out of range (1-65535)", token)
        if low > high:
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
        action, zones, _arrow, services, limit, log_flag = items
        return m.Rule(str(action), zones, services, limit, log_flag is not None, _span(self.file, meta))

    def limit(self, meta, items):
        rate, per_source, burst = items
        parsed = self._rate(rate)
        burst_value = self._count(burst) if burst else parsed.count
        return m.Limit(parsed, per_source is not None, burst_value, _span(self.file, meta))

    def log_flag(self, meta, items):
        return True

    def assertion(self, meta, items):
        zones, reach, services = items
        return m.Assertion(zones, services, str(reach) == "->", _span(self.file, meta))

    def log_drops(self, meta, items):
        rate, burst, prefix = items
        parsed = self._rate(rate) if rate else m.Rate(10, "minute")
        burst_value = self._count(burst) if burst else 5
        text = self._string(prefix) if prefix else "nftc drop: "
        return m.LogDrops(parsed, burst_value, text, _span(self.file, meta))

    def icmp_echo(self, meta, items):
        if items[0].type == "OFF":
            return m.IcmpEcho(False, None, 0, _span(self.file, meta))
        rate, burst = items
        parsed = self._rate(rate)
        burst_value = self._count(burst) if burst else parsed.count
        return m.IcmpEcho(True, parsed, burst_value, _span(self.file, meta))

    def include(self, meta, items):
        return m.Include(self._string(items[0]), _span(self.file, items[0]))

    def _rate(self, token: Token) -> m.Rate:
        count, unit = str(token).split("/")
        return m.Rate(self._count(token, count), unit)

    def _count(self, token: Token, text: str | None = None) -> int:
        value = int(text if text is not None else token)
        if not 1 <= value <= 1_000_000_000:
            self._fail(f"{value} is out of range (1-1000000000)", token)
            return 1
        return value
