"""One error type with a span, and the one function that draws it (file:line:col, the line, a caret)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Mapping

from ..errors import EXIT_POLICY, NftcError
from .model import Span
from .text import MAX_SHOWN


MAX_SHOWN_COLUMNS = 160  # of a source line under a message
MAX_QUOTED = 48  # characters of a token a message quotes: every address or CIDR whole (43 at most), never a 1 MB token
MAX_MESSAGE = 1000  # characters of a message or hint: longer ones are a bug, and are cut rather than flood a terminal


@dataclass(frozen=True)
class Diagnostic:
    """One error or warning, with where it is in the policy and a hint: rendered with the line and a caret."""

    severity: str  # "error" or "warning"
    message: str
    span: Span | None = None
    hint: str = ""


class PolicyError(NftcError):
    """Every error a policy author can cause; carries all diagnostics found before stopping. The CLI renders them
    with their sources (cli/common.py), not as one line."""

    exit_code = EXIT_POLICY

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "policy error")


def quoted(text: str) -> str:
    """`'text'` for a message, cut after MAX_QUOTED characters: what a user wrote may be a 1 MB token."""
    return f"'{text}'" if len(text) <= MAX_QUOTED else f"'{text[:MAX_QUOTED]}...'"


def error(message: str, span: Span | None = None, hint: str = "") -> Diagnostic:
    return Diagnostic("error", message, span, hint)


def warning(message: str, span: Span | None = None, hint: str = "") -> Diagnostic:
    return Diagnostic("warning", message, span, hint)


STRICT_NOTE = "an error because of --strict"


def as_error(diagnostic: Diagnostic) -> Diagnostic:
    """A warning as --strict reports it: an error, the same text, and a hint that says why it is one."""
    hint = f"{diagnostic.hint} ({STRICT_NOTE})" if diagnostic.hint else STRICT_NOTE
    return replace(diagnostic, severity="error", hint=hint)




def render_diagnostics(diagnostics: Iterable[Diagnostic], sources: Mapping[str, str]) -> str:
    diagnostics = tuple(diagnostics)
    shown = [render_diagnostic(d, sources) for d in diagnostics[:MAX_SHOWN]]  # garbage: the first ones and a count
    hidden = len(diagnostics) - len(shown)
    if hidden:
        shown.append(f"... and {hidden} more {'error' if hidden == 1 else 'errors'} not shown")
    return "\n".join(shown)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    import difflib  # here: only a policy with an error needs it (issue 9: start-up)

    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def render_diagnostic(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    """`file:line:col: error: message`, then the source line with a caret under the span, then `hint: ...`."""
    span = diagnostic.span
    head = f"{diagnostic.severity}: {_escaped(_cut(diagnostic.message))}"
    hint = _escaped(_cut(diagnostic.hint))
    if span is None:
        return head + (f"\n  hint: {hint}" if hint else "")
    lines = [f"{_escaped(str(span))}: {head}"]  # a file name may hold anything, a newline or an escape too
    text = sources.get(span.file)
    if text is not None:
        source_lines = text.split("\n", span.line)  # as the parser counts: form feeds, lone CRs end no line
        if 0 < span.line <= len(source_lines):
            line = source_lines[span.line - 1].split("\n", 1)[0].rstrip("\r")
            width = min(_caret_width(span), MAX_SHOWN_COLUMNS)
            start = _window_start(len(line), span.column)
            lines.append(f"  {_printable(line[start:start + MAX_SHOWN_COLUMNS])}")
            lines.append("  " + " " * (span.column - 1 - start) + "^" + "~" * (width - 1))
    if hint:
        lines.append(f"  hint: {hint}")
    return "\n".join(lines)


def _window_start(length: int, column: int) -> int:
    """Where the shown part of a long line starts, so the column stays on screen (a binary file has huge lines)."""
    if length <= MAX_SHOWN_COLUMNS or column <= MAX_SHOWN_COLUMNS // 2:
        return 0
    return min(column - 1 - MAX_SHOWN_COLUMNS // 2, length - MAX_SHOWN_COLUMNS)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE] + "..."


def _escaped(text: str) -> str:
    """Messages quote what the user wrote: control characters in it are shown escaped, never sent to the terminal."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _printable(line: str) -> str:
    """The line as shown under the message: one visible character per column (tabs, NUL... become '?' or ' ')."""
    return "".join(c if c.isprintable() else " " if c == "\t" else "?" for c in line)


def _caret_width(span: Span) -> int:
    """Underline the span when it ends on its own line; one caret when its end is unknown or on a later line."""
    if span.end_line == span.line and span.end_column > span.column:
        return span.end_column - span.column
    return 1
