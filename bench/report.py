"""What a workload returns, and the markdown docs/benchmarks.md is made of: machine, date, commands, tables."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from dataclasses import dataclass, field


@dataclass
class Section:
    """One workload's result: a heading, the commands it timed, one or more tables, and what they mean."""

    title: str
    commands: list[str] = field(default_factory=list)
    tables: list[tuple[list[str], list[list[str]]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    profiles: list[tuple[str, dict]] = field(default_factory=list)

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        self.tables.append((headers, rows))


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def profile_text(title: str, profile: dict) -> str:
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


def document(sections: list[Section], command: str, mode: str) -> str:
    header = ["# nftc benchmarks", "",
              "Written by `bench/run.py`; do not edit by hand. Regenerate with:", "",
              f"    {command}", "",
              *machine(), f"- mode: {mode}", "",
              "Every kernel measurement runs in throwaway network namespaces wired only to each other. Commands "
              "compared in one table run side by side in the same run, alternating, one round after another; "
              "figures are the median and, in parentheses, the minimum-maximum over the rounds. Times are wall "
              "times of the whole process (Python start-up included), measured from inside the namespace."]
    return "\n".join(header) + "\n\n" + "\n\n".join(section_text(s) for s in sections) + "\n"
