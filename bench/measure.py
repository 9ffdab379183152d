"""Timing processes: wall time and peak memory of one child, and alternating rounds of several commands.

Run as a program (`python bench/measure.py < jobs.json`) it does the same inside a network namespace, so the
time of `ip netns exec` itself is never in a figure. Jobs: {"rounds": R, "jobs": [{"name", "argv",
"setup": [argv...], "watch": WORD}]}; each round runs every job once, in order (alternating), each after its
untimed setup. With "watch", the job's output goes to a file instead of /dev/null, and each sample says whether
WORD was in it (the apply workloads watch for "unchanged").
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Sample:
    seconds: float
    max_rss_kb: int
    returncode: int
    said: bool | None = None  # whether the watched word was in the output; None when nothing was watched


@dataclass(frozen=True)
class Stats:
    median: float
    low: float
    high: float
    runs: int

    def text(self, scale: float = 1.0, digits: int = 3) -> str:
        return f"{self.median * scale:.{digits}f} ({self.low * scale:.{digits}f}-{self.high * scale:.{digits}f})"


def stats(values: list[float]) -> Stats:
    return Stats(statistics.median(values), min(values), max(values), len(values))


def run_timed(argv: list[str], stdin_path: str | None = None, timeout: float = 600, watch: str | None = None) -> Sample:
    """One child: wall time from spawn to reap, and its own peak RSS (wait4's rusage, not the children's max).

    Output goes to temporary files (stdout to /dev/null unless `watch`): a pipe nobody reads while the child
    runs would stall a child that writes more than the pipe holds."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    with tempfile.TemporaryFile() as errors, tempfile.TemporaryFile() as output:
        try:
            started = time.perf_counter()
            process = subprocess.Popen(argv, stdin=stdin, stdout=output if watch else subprocess.DEVNULL,
                                       stderr=errors)
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    process.kill()
                    pid, status, usage = os.wait4(process.pid, 0)
                    break
                time.sleep(0.0005)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        finally:
            if stdin_path:
                stdin.close()
        error = _read(errors)
        said = watch in _read(output) + error if watch else None
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {process.returncode}: {error.strip()[-400:]}")
    return Sample(seconds, usage.ru_maxrss, process.returncode, said)


def _read(handle) -> str:
    handle.seek(0)
    return handle.read().decode(errors="replace")


def alternate(rounds: int, jobs: list[dict]) -> dict[str, list[Sample]]:
    """Every job once per round, in order; setup commands run untimed right before their job."""
    samples: dict[str, list[Sample]] = {job["name"]: [] for job in jobs}
    for _ in range(rounds):
        for job in jobs:
            for setup in job.get("setup", ()):
                subprocess.run(setup, check=True, capture_output=True, timeout=600)
            samples[job["name"]].append(run_timed(job["argv"], job.get("stdin"), watch=job.get("watch")))
    return samples


def main() -> int:
    request = json.load(sys.stdin)
    samples = alternate(request["rounds"], request["jobs"])
    json.dump({name: [s.__dict__ for s in runs] for name, runs in samples.items()}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
