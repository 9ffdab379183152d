"""New TCP connections per second, for workload 6. Standard library only; bounded in count and in time.

- `server PORT`: accept and close, forever (run.py kills it by PID); prints `ready` once listening.
- `client ADDRESS PORT COUNT SECONDS`: COUNT connections one after another (connect, then close with an RST so
  no TIME_WAIT piles up), stopping early at SECONDS; prints JSON {"connections", "seconds", "failures"}.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

CONNECT_TIMEOUT = 1.0


def server(port: int) -> None:
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


def main(argv: list[str]) -> int:
    if argv[0] == "server":
        server(int(argv[1]))
        return 0
    count = max(1, min(int(argv[3]), 20000))
    seconds = max(0.1, min(float(argv[4]), 20.0))
    print(json.dumps(client(argv[1], int(argv[2]), count, seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
