"""Generate the man pages nftc(8) and zfw(5): `python3 -B scripts/generate_manpages.py --output-dir DIR`.

nftc(8) is written from the argparse definitions (`nftc.cli.main.build_parser`) at build time: every command and
option, with its help text, appears because the parser has it, so the page cannot drift from the command line.
zfw(5) is the README's policy-language reference, the regions of README.md between `<!-- zfw(5) -->` and
`<!-- /zfw(5) -->`, converted from the small Markdown subset the README uses: the README stays the one home of
the language's text. Exit codes come from nftc/errors.py, their one home.

Standard library only (no python3-argparse-manpage: Debian 12's 1.2.2 writes one flat option list with no
per-command sections, and cannot render zfw(5) from Markdown at all), so the Debian build needs nothing more.
The nftc package imported is this tree's (its folder goes first on sys.path), never an installed one. Nothing is
written but the two files in DIR. SOURCE_DATE_EPOCH (set by dpkg-buildpackage) gives the date; without it the
pages carry none, so two runs give the same bytes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pathlib
import re
import sys
import time
from typing import Iterator

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
ERRORS = ROOT / "nftc" / "errors.py"
UNIT = ROOT / "systemd" / "nftc.service"
BEGIN, END = "<!-- zfw(5) -->", "<!-- /zfw(5) -->"  # around each README region that zfw(5) is made of
sys.path.insert(0, str(ROOT))  # this tree's nftc, whatever is installed

from nftc import __version__  # noqa: E402  (after the path: this tree's package)
from nftc.cli.main import build_parser  # noqa: E402

# ---------------------------------------------------------------------------------------------- roff text


def escaped(text: str, code: bool = False) -> str:
    """Text for a roff text line: backslashes as \\e, non-ASCII as \\[uXXXX] (no preconv needed), and in code
    (options, examples) '-' as \\- so a copied option is typed with a real minus."""
    text = text.replace("\\", "\\e")
    if code:
        text = text.replace("-", "\\-")
    return "".join(c if c.isascii() else f"\\[u{ord(c):04X}]" for c in text)


def text_line(line: str) -> str:
    """A line that roff must not read as a request: a leading '.' or "'" is guarded with \\&."""
    return "\\&" + line if line[:1] in (".", "'") else line


def bold(text: str) -> str:
    return f"\\fB{escaped(text, code=True)}\\fP"


def italic(text: str) -> str:
    return f"\\fI{escaped(text)}\\fP"


def title(name: str, section: int, manual: str) -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    date = time.strftime("%Y-%m-%d", time.gmtime(int(epoch))) if epoch else ""
    return f'.TH {name.upper()} {section} "{date}" "nftc {__version__}" "{manual}"\n.nh\n.ad l'  # no hyphens


# ---------------------------------------------------------------------------------------------- nftc(8)


@dataclasses.dataclass(frozen=True)
class Command:
    """One command as argparse defines it: its words (`nftc catalog`), one-line help and parser."""

    words: tuple[str, ...]
    help: str
    parser: argparse.ArgumentParser


def commands(parser: argparse.ArgumentParser, words: tuple[str, ...] = ("nftc",)) -> Iterator[Command]:
    """Every command under `parser`, nested ones too, in the order the parser lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:  # the (name, help) pairs argparse keeps for its own --help
                sub = action.choices[choice.dest]
                yield Command(words + (choice.dest,), choice.help or "", sub)
                yield from commands(sub, words + (choice.dest,))


def usage(parser: argparse.ArgumentParser) -> str:
    """argparse's own usage line, unwrapped (no terminal width enters the page)."""
    formatter = argparse.HelpFormatter(parser.prog, width=1 << 16)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return " ".join(formatter.format_help().split())


def usage_roff(line: str, prog: str = "") -> str:
    """The usage line with the command (`prog`, its start) and options in bold, metavariables in italics."""
    if prog and line.startswith(prog):
        return bold(prog) + usage_roff(line[len(prog):])
    parts = re.split(r"((?<![\w-])--?[A-Za-z][\w-]*|\b[A-Z][A-Z0-9_]+\b)", line)
    return "".join(bold(p) if p.startswith("-") else italic(p) if p[:1].isupper() else escaped(p, code=True)
                   for p in parts)


def option_lines(parser: argparse.ArgumentParser, with_help_option: bool) -> list[str]:
    """A .TP entry for each option and each positional argument that has a help text."""
    formatter = parser._get_formatter()
    lines: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._HelpAction) and not with_help_option:
            continue
        if not action.option_strings and not action.help:
            continue  # a positional without help is said by the usage line
        body = _body(action, formatter)
        lines += [".TP", text_line(_tag(action)), *([text_line(body)] if body else [])]
    return lines


def _tag(action: argparse.Action) -> str:
    metavar = " ".join(argparse.HelpFormatter("x")._format_args(action, action.dest.upper()).split()) \
        if action.nargs != 0 else ""
    if not action.option_strings:
        return italic(metavar)
    names = ", ".join(bold(o) for o in action.option_strings)
    return names + (" " + usage_roff(metavar) if metavar else "")


def _body(action: argparse.Action, formatter: argparse.HelpFormatter) -> str:
    text = formatter._expand_help(action) if action.help else ""
    if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text and action.nargs != 0:
        text += f" (default: {action.default})"
    return markdown_inline(text.strip())


def _sentence_part(text: str) -> str:
    """'Compile X.' -> 'compile X', as NAME lines read (`nftc - compile X`)."""
    return text[:1].lower() + text[1:].rstrip(".")


def exit_codes() -> list[tuple[str, str]]:
    """(code, meaning) from nftc/errors.py's `EXIT_NAME = N  # meaning` lines, their one home."""
    found = re.findall(r"^EXIT_(\w+) = (\d+)[ \t]*(?:#[ \t]*(.*))?$", ERRORS.read_text(encoding="utf-8"), re.MULTILINE)
    return [(code, meaning or name.lower()) for name, code, meaning in found]


def unit_paths() -> tuple[str, str]:
    """The policy the boot unit applies (ConditionPathExists=) and its state directory (NFTC_STATE_DIR): their
    home is systemd/nftc.service."""
    text = UNIT.read_text(encoding="utf-8")
    return (re.search(r"^ConditionPathExists=(\S+)$", text, re.M).group(1),
            re.search(r"^Environment=NFTC_STATE_DIR=(\S+)$", text, re.M).group(1))


def nftc_page() -> str:
    """nftc(8): the parser's description, every command's usage, description and options, the exit codes."""
    parser = build_parser()
    found = list(commands(parser))
    lines = [title("nftc", 8, "System Administration"), ".SH NAME",
             f"nftc \\- {escaped(_sentence_part(parser.description or ''))}", ".SH SYNOPSIS"]
    for each in [parser] + [c.parser for c in found]:
        lines += [".PP", text_line(usage_roff(usage(each), each.prog))]
    lines += [".SH DESCRIPTION", text_line(escaped(parser.description or "")),
              "The policy language is described in", ".BR zfw (5).",
              "Every command takes", bold("-h") + ",", bold("--help") + ":", "its usage and options.",
              ".SH OPTIONS", *option_lines(parser, with_help_option=True), ".SH COMMANDS"]
    for command in found:
        lines += _command_section(command)
    return "\n".join(lines + _exit_status() + _files() + _see_also()) + "\n"


def _command_section(command: Command) -> list[str]:
    return [".SS", text_line(escaped(" ".join(command.words))),
            text_line(usage_roff(usage(command.parser), command.parser.prog)),
            ".PP", text_line(markdown_inline(command.parser.description or command.help)),
            *option_lines(command.parser, with_help_option=False)]


def _exit_status() -> list[str]:
    lines = [".SH EXIT STATUS"]
    for code, meaning in exit_codes():
        lines += [".TP", bold(code), text_line(markdown_inline(meaning))]
    return lines


def _files() -> list[str]:
    policy, state = unit_paths()
    return [".SH FILES", ".TP", bold(policy), "the policy the systemd unit", bold(UNIT.name), "applies at boot",
            ".TP", bold(state), "the state directory: snapshots, the applied record, the lock, kept blocklists"]


def _see_also() -> list[str]:
    return [".SH SEE ALSO", ".BR zfw (5),", ".BR nft (8),", ".BR systemctl (1),", ".BR fail2ban\\-client (1)"]


# ---------------------------------------------------------------------------------------------- zfw(5)


def readme_regions(text: str) -> list[str]:
    """The lines of each region between BEGIN and END, in order; an unbalanced marker is an error."""
    regions, inside = [], None
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip() == BEGIN:
            if inside is not None:
                raise SystemExit(f"README.md:{number}: {BEGIN} inside a region")
            inside = []
        elif line.strip() == END:
            if inside is None:
                raise SystemExit(f"README.md:{number}: {END} without {BEGIN}")
            regions.append("\n".join(inside))
            inside = None
        elif inside is not None:
            inside.append(line)
    if inside is not None or not regions:
        raise SystemExit(f"README.md: no complete {BEGIN} ... {END} region")
    return regions


_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")


def markdown_inline(text: str) -> str:
    """`code` in bold with real minus signs, **strong** in bold, [text](#anchor) as its text and other links as
    `text <target>`; everything escaped."""
    if text.count("`") % 2:
        raise SystemExit(f"generate_manpages.py: a code span is not closed: {text[:80]!r}")
    out, strong = [], False
    for number, piece in enumerate(text.split("`")):
        if number % 2:
            out.append(bold(piece))
            continue
        piece = _LINK.sub(lambda l: l.group(1) if l.group(2).startswith("#") else f"{l.group(1)} <{l.group(2)}>",
                          piece)
        for index, part in enumerate(piece.split("**")):
            if index:
                strong = not strong
                out.append("\\fB" if strong else "\\fR")
            out.append(escaped(part))
    return "".join(out) + ("\\fR" if strong else "")


def markdown_roff(markdown: str) -> list[str]:
    """The README's Markdown subset as man(7) requests: headings, paragraphs, lists, code blocks and tables."""
    lines, out, index = markdown.splitlines(), [], 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
            out += [".PP", ".RS 4", ".nf", *(text_line(escaped(c, code=True)) for c in lines[index + 1:end]),
                    ".fi", ".RE"]
            index = end + 1
        elif line.startswith("#"):
            level, heading = len(line) - len(line.lstrip("#")), line.lstrip("#").strip()
            out += [".SH" if level <= 2 else ".SS", text_line(markdown_inline(heading))]
            index += 1
        elif line.startswith("|"):
            end = next((i for i in range(index, len(lines)) if not lines[i].startswith("|")), len(lines))
            out += _table(lines[index:end])
            index = end
        elif not line.strip() or line.strip().startswith("<!--"):
            index += 1
        else:
            end = _block_end(lines, index)
            out += _block(lines[index:end])
            index = end
    return out


_ITEM = re.compile(r"^(\s*)(-|\d+\.)\s+")


def _block_end(lines: list[str], start: int) -> int:
    end = start + 1
    while end < len(lines) and lines[end].strip() and not lines[end].startswith(("```", "#", "|")):
        end += 1
    return end


def _block(lines: list[str]) -> list[str]:
    """A paragraph, or list items (a line starting `- ` or `1. `; the lines after it continue it). Each paragraph
    or item is converted whole: a code span may run over a line break, as Markdown allows."""
    parts: list[tuple[str, list[str]]] = [] if _ITEM.match(lines[0]) else [(".PP", [])]
    for line in lines:
        item = _ITEM.match(line)
        if item:
            marker = "\\(bu 2" if item.group(2) == "-" else f"{item.group(2)} 4"
            parts.append((f".IP {marker}", [line[item.end():]]))
        else:
            parts[-1][1].append(line.strip())
    return [request_or_text for request, text in parts
            for request_or_text in (request, text_line(markdown_inline(" ".join(text))))]


def _cells(row: str) -> list[str]:
    """A table row's cells; `\\|` is a literal bar."""
    row = re.sub(r"^\||(?<!\\)\|$", "", row.strip())
    cells = re.split(r"(?<!\\)\|", row)
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(rows: list[str]) -> list[str]:
    """A table as tagged paragraphs: the first cell is the tag; with more than two columns each other cell is
    prefixed by its column's heading (no tbl: its long cells do not fit 80 columns)."""
    heading, body = _cells(rows[0]), [_cells(r) for r in rows[2:]]
    out = [".PP"]
    for cells in body:
        rest = cells[1:]
        text = rest[0] if len(rest) == 1 else "; ".join(f"{h}: {c}" for h, c in zip(heading[1:], rest))
        out += [".TP", text_line(markdown_inline(cells[0])), text_line(markdown_inline(text))]
    return out


def zfw_page() -> str:
    body = [line for region in readme_regions(README.read_text(encoding="utf-8")) for line in markdown_roff(region)]
    lines = [title("zfw", 5, "File Formats"), ".SH NAME", "zfw \\- the nftc policy language", ".SH SYNOPSIS",
             italic("POLICY") + bold(".zfw"), ".SH DESCRIPTION", *body, ".SH SEE ALSO", ".BR nftc (8),",
             ".BR nft (8)"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--output-dir", required=True, type=pathlib.Path, help="where nftc.8 and zfw.5 go")
    args = options.parse_args(argv)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "nftc.8").write_text(nftc_page(), encoding="ascii")
    (args.output_dir / "zfw.5").write_text(zfw_page(), encoding="ascii")
    return 0


if __name__ == "__main__":
    sys.exit(main())
