"""Profile one nftc command in-process with pyinstrument; print the functions with the most self time.

`python bench/profile.py PARENT TOP -- nftc-arguments...`: imports the `nftc` package in folder PARENT (the
installed copy the benchmark times, bench/installed.py); prints JSON {"seconds", "nftc_file", "top": [[seconds,
function], ...], "nftc": [[seconds, function], ...]} (self time, and cumulative time of nftc's own functions), so
run.py can write the profile into docs/benchmarks.md. Runs wherever it is started (inside a namespace).
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import sys


def _walk(frame, own: collections.Counter, total: collections.Counter, stack: tuple[str, ...], parent: str) -> None:
    """Self time per function (pyinstrument's synthetic `[self]` children belong to their parent)."""
    name = f"{frame.function} ({_short(frame.file_path or '', parent)}:{frame.line_no})"
    if name not in stack:  # recursion counts once
        total[name] += frame.time
    for child in frame.children:
        if child.function == "[self]":
            own[name] += child.time
        else:
            _walk(child, own, total, stack + (name,), parent)
    if not frame.children:
        own[name] += frame.time


def _short(path: str, parent: str) -> str:
    for marker in ("site-packages/", parent.rstrip("/") + "/", "python3.11/"):
        path = path.rsplit(marker, 1)[-1]
    return path


def main(argv: list[str]) -> int:
    parent, top = argv[0], int(argv[1])
    nftc_args = argv[argv.index("--") + 1:]
    from pyinstrument import Profiler

    sys.path.insert(0, parent)  # only for `import nftc`, as nftc.system.child does; submodules follow nftc.__path__
    import nftc
    del sys.path[0]
    from nftc.cli.main import main as nftc_main

    profiler = Profiler(interval=0.0005)
    with contextlib.redirect_stdout(io.StringIO()):
        profiler.start()
        code = nftc_main(nftc_args)
        profiler.stop()
    own: collections.Counter = collections.Counter()
    total: collections.Counter = collections.Counter()
    session = profiler.last_session
    _walk(profiler.last_session.root_frame(), own, total, (), parent)
    nftc_total = [(round(t, 3), n) for n, t in total.most_common() if "nftc/" in n][:top]
    print(json.dumps({"exit": code, "seconds": round(session.duration, 3), "nftc_file": nftc.__file__,
                      "top": [(round(t, 3), n) for n, t in own.most_common(top)], "nftc": nftc_total}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
