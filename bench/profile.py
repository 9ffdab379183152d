"""Profile one nftc command in-process with pyinstrument; print the functions with the most self time.

`python bench/profile.py TOP -- nftc-arguments...`: prints JSON {"seconds", "top": [[seconds, function], ...],
"nftc": [[seconds, function], ...]} (self time, and cumulative time of nftc's own functions), so run.py can
write the profile into docs/benchmarks.md. Runs wherever it is started (run.py starts it inside a namespace).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import sys


def _walk(frame, own: collections.Counter, total: collections.Counter, stack: tuple[str, ...]) -> None:
    """Self time per function (pyinstrument's synthetic `[self]` children belong to their parent)."""
    name = f"{frame.function} ({_short(frame.file_path or '')}:{frame.line_no})"
    if name not in stack:  # recursion counts once
        total[name] += frame.time
    for child in frame.children:
        if child.function == "[self]":
            own[name] += child.time
        else:
            _walk(child, own, total, stack + (name,))
    if not frame.children:
        own[name] += frame.time


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/main/", "python3.11/"):
        path = path.rsplit(marker, 1)[-1]
    return path


def main(argv: list[str]) -> int:
    top = int(argv[0])
    nftc_args = argv[argv.index("--") + 1:]
    from pyinstrument import Profiler

    from nftc.cli.main import main as nftc_main

    profiler = Profiler(interval=0.0005)
    with contextlib.redirect_stdout(io.StringIO()):
        profiler.start()
        code = nftc_main(nftc_args)
        profiler.stop()
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    session = profiler.last_session
    _walk(profiler.last_session.root_frame(), own, total, ())
    nftc_total = [(round(t, 3), n) for n, t in total.most_common() if "nftc/" in n][:top]
    print(json.dumps({"exit": code, "seconds": round(session.duration, 3),
                      "top": [(round(t, 3), n) for n, t in own.most_common(top)], "nftc": nftc_total}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
