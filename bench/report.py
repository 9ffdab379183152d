"""What a workload returns, and the markdown docs/benchmarks.md is made of: machine, date, commands, tables."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Target:
    """One row of issue 9's table of targets: what is measured, its figure before the issue, the goal, today's."""

    workload: str
    before: str
    goal: str
    measured: str
    met: bool

    def row(self) -> list[str]:
        return [self.workload, self.before, self.goal, self.measured, verdict(self.met)]


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


@dataclass
class Section:
    """One workload's result: a heading, the commands it timed, one or more tables, and what they mean."""

    title: str
    commands: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[tuple[str, dict | None]] = field(default_factory=list)  # None: pyinstrument is not installed
    targets: list[Target] = field(default_factory=list)  # shown again, together, at the top of the document
    peer: str = ""  # what the document says of foomuuri under the targets, when this section measured it

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.tables.append((headers, rows))


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def profile_text(title: str, profile: dict | None) -> str:
    if profile is None:
        return (f"Profile: {title}: not taken, pyinstrument is not installed "
                "(`.venv/bin/python -m pip install pyinstrument`).")
    lines = [f"Profile: {title} ({profile['seconds']} s under pyinstrument). Most self time:", ""]
    lines += [f"    {seconds:7.3f} s  {name}" for seconds, name in profile["top"]]
    lines += ["", "nftc functions by cumulative time:", ""]
    lines += [f"    {seconds:7.3f} s  {name}" for seconds, name in profile["nftc"]]
    return "\n".join(lines)


def section_text(section: Section) -> str:
    parts = [f"## {section.title}"]
    if section.commands:
        parts.append("Commands:\n\n" + "\n".join(f"    {c}" for c in section.commands))
    parts += [markdown_table(headers, rows) for headers, rows in section.tables]
    parts += section.notes
    parts += [profile_text(title, profile) for title, profile in section.profiles]
    return "\n\n".join(parts)


def _first_line(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.SubprocessError):
        return "unknown"


def machine() -> list[str]:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor() or "unknown")
    memory_kb = next(int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal"))
    return [f"- date: {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {cpu}, {os.cpu_count()} CPUs, {memory_kb >> 20} GiB RAM",
            f"- kernel: {platform.system()} {platform.release()}; {_first_line(['nft', '--version'])}",
            f"- python: {platform.python_version()} ({platform.python_implementation()})"]


QUOTED = ("foomuuri 0.33 `start` of a single-server policy 121 ms = 5.0x `nft -f`; with 200k addresses `start` 3.1 s "
          "against 2.5 s for its `nft -f` (1.24x); compile only, 200k addresses, 0.55 s; `reload` keeping a 200k set "
          "12.8 s.")  # issue 9's figures, measured elsewhere on this kind of machine
CLONE = "git clone https://github.com/FoobarOy/foomuuri"
HOW = f"`{CLONE}`, then `sudo .venv/bin/python bench/run.py --foomuuri foomuuri/src/foomuuri` (workload 7)"
PEER = ("Peer, for scale (quoted from issue 9, measured elsewhere on this kind of machine, not by this run: "
        "foomuuri is not installable here, being neither in Debian 12 nor on PyPI; to measure it side by side with "
        f"nftc: {HOW}): " + QUOTED)


def targets_text(sections: list[Section]) -> str:
    """Every target of the run in one table (each also stands in its workload's section, with its profile)."""
    rows = [target.row() for section in sections for target in section.targets]
    return "\n\n".join(["## Targets (issue 9)",
                         markdown_table(["workload", "before issue 9", "target", "measured", ""], rows),
                         next((s.peer for s in sections if s.peer), PEER)])


def document(sections: list[Section], command: str, mode: str, installed: str) -> str:
    header = ["# nftc benchmarks", "",
              "Written by `bench/run.py`; do not edit by hand. Regenerate with:", "",
              f"    {command}", "",
              *machine(), f"- mode: {mode}", f"- {installed}", "",
              "Every kernel measurement runs in throwaway network namespaces wired only to each other. Commands "
              "compared in one table run side by side in the same run, alternating, one round after another; "
              "figures are the median and, in parentheses, the minimum-maximum over the rounds. Times are wall "
              "times of the whole process (Python start-up included), measured from inside the namespace. nftc "
              "runs as a user runs it: installed with pip and bytecode compiled, not from this checkout (whose "
              "sources would be recompiled in every process where PYTHONDONTWRITEBYTECODE is set); a child started "
              "as the workloads start theirs is checked (`python -v`) to load every nftc module from that "
              "folder's .pyc files."]
    body = [targets_text(sections), *(section_text(s) for s in sections)]
    return "\n".join(header) + "\n\n" + "\n\n".join(body) + "\n"
