"""Two small programs the kernel tests run inside namespaces (tests/test_bans.py, tests/test_fail2ban.py):

- `serve PORT SECONDS`: echo every line on every connection to PORT (IPv4 and IPv6); prints `ready` once
  listening, and exits by itself after SECONDS without a new connection (bounded even if a test forgets it);
- `session SOURCE SERVER PORT`: one TCP session from SOURCE; prints `connected` (or `refused ERROR` and exits),
  then for each line on stdin (a number of seconds) sends a line and prints `ok` when the echo comes back in
  time, else `timeout`, `closed` or `error ERROR`. A ban shows as `ok` turning into `timeout`.

Standard library only; run as `python -B tests/echo_session.py ...` (-B: no bytecode written into the checkout).
"""

from __future__ import annotations

import socket
import sys
import threading


def serve(port: int, seconds: float) -> None:
    server = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True)
    server.settimeout(seconds)
    print("ready", flush=True)

    def echo(connection: socket.socket) -> None:
        with connection:
            while data := connection.recv(100):
                connection.sendall(data)

    try:
        while True:
            threading.Thread(target=echo, args=(server.accept()[0],), daemon=True).start()
    except socket.timeout:
        return


def session(source: str, server: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in server else socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(3)
        try:
            sock.connect((server, port))
        except OSError as exc:
            print("refused", type(exc).__name__, flush=True)
            return
        print("connected", flush=True)
        for line in sys.stdin:
            sock.settimeout(float(line))
            try:
                sock.sendall(b"hello\n")
                print("ok" if sock.recv(100) else "closed", flush=True)
            except socket.timeout:
                print("timeout", flush=True)
            except OSError as exc:
                print("error", type(exc).__name__, flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]), float(sys.argv[3]))
    elif sys.argv[1] == "session":
        session(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        sys.exit(f"echo_session.py: unknown mode {sys.argv[1]!r}")
