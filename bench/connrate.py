"""New TCP connections per second, for workload 6. Standard library only; bounded in count and in time.

- `server PORT [one-cpu]`: accept and close, forever (run.py kills it by PID); prints `ready` once listening;
  `one-cpu`: on the CPU `interleave` runs on.
- `client ADDRESS PORT COUNT SECONDS`: COUNT connections one after another (connect, then close with an RST so
  no TIME_WAIT piles up), stopping early at SECONDS; prints JSON {"connections", "seconds", "failures"}.
- `interleave PORT SECONDS BATCH NAMESPACE ADDRESS [NAMESPACE ADDRESS ...]`: for SECONDS, BATCH connections to
  each namespace's ADDRESS in turn (every other pass backwards), the socket made in that namespace (setns);
  prints JSON {"seconds": [per target: the seconds of each pass], "batch", "failures"}. Passes of a few tens of
  milliseconds share every moment's machine speed, so a drift of the machine (other work on two cores) cancels
  out of the comparison, where runs seconds apart keep it. Needs root; run it inside one of the namespaces.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import struct
import sys
import time

CONNECT_TIMEOUT = 1.0
CLONE_NEWNET = 0x40000000


def _one_cpu() -> None:
    """The client, every server and the softirq work of their packets on one CPU (the last): where the
    scheduler happens to put each server would otherwise favour one condition over another by several %."""
    os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})


def server(port: int, one_cpu: bool = False) -> None:
    if one_cpu:
        _one_cpu()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(4096)
    print("ready", flush=True)
    while True:
        connection, _ = listener.accept()
        connection.close()


def client(address: str, port: int, count: int, seconds: float) -> dict:
    linger = struct.pack("ii", 1, 0)
    done = failures = 0
    started = time.perf_counter()
    deadline = started + seconds
    while done + failures < count and time.perf_counter() < deadline:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((address, port))
            done += 1
        except OSError:
            failures += 1
        finally:
            sock.close()
    return {"connections": done, "seconds": time.perf_counter() - started, "failures": failures}


def _batch(address: str, port: int, count: int) -> int:
    """`count` connections (connect, RST close); the number that failed."""
    linger = struct.pack("ii", 1, 0)
    failures = 0
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((address, port))
        except OSError:
            failures += 1
        finally:
            sock.close()
    return failures


def interleave(targets: list[tuple[str, str]], port: int, seconds: float, batch: int) -> dict:
    _one_cpu()
    libc = ctypes.CDLL(None, use_errno=True)
    handles = [os.open(f"/run/netns/{namespace}", os.O_RDONLY) for namespace, _ in targets]
    times: list[list[float]] = [[] for _ in targets]
    failures = 0
    deadline = time.perf_counter() + seconds
    try:
        while time.perf_counter() < deadline:
            order = list(range(len(targets)))
            for index in order[::-1] if len(times[0]) % 2 else order:
                if libc.setns(handles[index], CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {targets[index][0]}")
                started = time.perf_counter()
                failures += _batch(targets[index][1], port, batch)
                times[index].append(time.perf_counter() - started)
    finally:
        for handle in handles:
            os.close(handle)
    return {"seconds": times, "batch": batch, "failures": failures}


def main(argv: list[str]) -> int:
    if argv[0] == "server":
        server(int(argv[1]), one_cpu=argv[2:] == ["one-cpu"])
        return 0
    if argv[0] == "interleave":
        seconds = max(0.1, min(float(argv[2]), 300.0))
        batch = max(1, min(int(argv[3]), 20000))
        targets = list(zip(argv[4::2], argv[5::2]))
        print(json.dumps(interleave(targets, int(argv[1]), seconds, batch)))
        return 0
    count = max(1, min(int(argv[3]), 20000))
    seconds = max(0.1, min(float(argv[4]), 20.0))
    print(json.dumps(client(argv[1], int(argv[2]), count, seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
