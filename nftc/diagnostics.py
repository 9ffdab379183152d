"""One error type with a span, and the one function that draws it (file:line:col, the line, a caret)."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Mapping

from .model import Span


@dataclass(frozen=True)
class Diagnostic:
    severity: str  # "error" or "warning"
    message: str
    span: Span | None = None
    hint: str = ""


class PolicyError(Exception):
    """Every error a policy author can cause; carries all diagnostics found before stopping."""

    def __init__(self, diagnostics: Iterable[Diagnostic]):
        self.diagnostics = tuple(diagnostics)
        super().__init__(self.diagnostics[0].message if self.diagnostics else "policy error")


def error(message: str, span: Span | None = None, hint: str = "") -> Diagnostic:
    return Diagnostic("error", message, span, hint)


def warning(message: str, span: Span | None = None, hint: str = "") -> Diagnostic:
    return Diagnostic("warning", message, span, hint)


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else ""


def render_diagnostic(diagnostic: Diagnostic, sources: Mapping[str, str]) -> str:
    """`file:line:col: error: message`, then the source line with a caret under the span, then `hint: ...`."""
    span = diagnostic.span
    head = f"{diagnostic.severity}: {diagnostic.message}"
    if span is None:
        return head + (f"\n  hint: {diagnostic.hint}" if diagnostic.hint else "")
    lines = [f"{span}: {head}"]
    text = sources.get(span.file)
    if text is not None:
        source_lines = text.splitlines()
        if 0 < span.line <= len(source_lines):
            line = source_lines[span.line - 1].expandtabs(1)
            width = _caret_width(span, line)
            lines.append(f"  {line}")
            lines.append("  " + " " * (span.column - 1) + "^" + "~" * (width - 1))
    if diagnostic.hint:
        lines.append(f"  hint: {diagnostic.hint}")
    return "\n".join(lines)


def _caret_width(span: Span, line: str) -> int:
    if span.end_line == span.line and span.end_column > span.column:
        return span.end_column - span.column
    return max(1, min(1, len(line) - span.column + 1))
