"""Run nftc's benchmarks and write docs/benchmarks.md: `sudo .venv/bin/python bench/run.py [--quick]`.

Needs root (network namespaces; every kernel measurement happens in throwaway namespaces wired only to each
other). nftc is first installed with pip into the run's temporary folder and bytecode compiled, and every nftc
command runs from there (bench/installed.py), as a user's would. `--quick` is a smoke run of a few seconds with
small sizes that writes no document unless --output is given; the full run takes about four minutes on two cores.
`--foomuuri PATH` (the src/foomuuri of a clone of github.com/FoobarOy/foomuuri) adds workload 7, foomuuri side by
side with nftc (bench/foomuuri.py); without it the document quotes issue 9's figures for foomuuri.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench import foomuuri, installed, report  # noqa: E402
from bench.workloads import WORKLOADS, Config  # noqa: E402

DOCUMENT = os.path.join(ROOT, "docs", "benchmarks.md")


def _interrupted(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, one round: a smoke run of seconds")
    parser.add_argument("--output", metavar="FILE", help=f"where to write the markdown (full run: {DOCUMENT})")
    parser.add_argument("--only", metavar="N", type=int, action="append", help="run only workload N (1-7)")
    parser.add_argument("--foomuuri", metavar="PATH", help="foomuuri's script (src/foomuuri of a clone): adds "
                                                           "workload 7, foomuuri side by side with nftc")
    args = parser.parse_args(argv)
    workloads = WORKLOADS + ((foomuuri.side_by_side,) if args.foomuuri else ())
    if args.only and max(args.only) > len(workloads):
        parser.error(f"no workload {max(args.only)}" + ("" if args.foomuuri else " (7 needs --foomuuri PATH)"))
    if args.foomuuri and not os.path.isfile(args.foomuuri):
        parser.error(f"--foomuuri {args.foomuuri}: no such file (the src/foomuuri of a clone of foomuuri)")
    if os.geteuid() != 0:
        print("bench/run.py: needs root (network namespaces)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, _interrupted)  # so every namespace and temporary file is removed on the way out
    output = args.output or (None if args.quick or args.only else DOCUMENT)
    directory = tempfile.mkdtemp(prefix="nftc-bench-")
    sections = []
    try:
        nftc = installed.install(ROOT, directory)
        print(f"nftc as installed (bytecode compiled): a benchmark child imports {installed.verify(nftc)}\n",
              flush=True)
        config = Config(args.quick, directory, nftc, args.foomuuri and os.path.abspath(args.foomuuri))
        for number, workload in enumerate(workloads, start=1):
            if args.only and number not in args.only:
                continue
            started = time.monotonic()
            section = workload(config)
            print(report.section_text(section), flush=True)
            print(f"({time.monotonic() - started:.0f} s)\n", flush=True)
            sections.append(section)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if output:
        command = ("sudo .venv/bin/python bench/run.py" + (" --quick" if args.quick else "")
                   + (f" --foomuuri {args.foomuuri}" if args.foomuuri else ""))
        with open(output, "w", encoding="utf-8") as handle:
            handle.write(report.document(sections, command, "quick" if args.quick else "full", nftc.description()))
        print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
