"""The lab's two small programs, run inside lab namespaces with `python -m nftc.probe`:

- `listen --tcp PORTS --udp PORTS [--tcp-loopback PORTS --udp-loopback PORTS]`: one process accepting TCP and
  echoing UDP on many ports, on every address (IPv4 and IPv6) or, for the loopback lists, on 127.0.0.1 and ::1
  only, as Zimbra binds them; prints `ready` once every socket is bound.
- `scan`: reads targets as JSON on stdin, probes them concurrently, prints one state per target as JSON:
  open (connected / UDP reply), dropped (timeout), refused (RST or ICMP error).
- `burst ADDRESS PORT`: a bounded burst of new TCP connections, to measure a rate limit.

Standard library only; nothing here chooses where traffic goes: the lab passes its own namespaces' addresses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import time

OPEN, DROPPED, REFUSED = "open", "dropped", "refused"
# A memcached UDP frame (request id 1, sequence 0, 1 datagram) asking for the version: a real memcached
# answers it, and the lab's echo listener echoes it.
MEMCACHED_VERSION = b"\x00\x01\x00\x00\x00\x01\x00\x00version\r\n"
WARM_UP_PORT = 9  # discard: one datagram per target resolves neighbours before the timed probes


def _dual_stack(kind: int, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, kind)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    sock.setblocking(False)
    return sock


def _loopback(kind: int, port: int) -> list[socket.socket]:
    """Sockets on 127.0.0.1 and ::1 only: a connection to any other address of the host finds nothing there."""
    sockets = []
    for family, address in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        sock = socket.socket(family, kind)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((address, port))
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, address) -> None:
        self.transport.sendto(data or b"nftc-lab\n", address)


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"nftc-lab\n")
    try:
        await writer.drain()
    finally:
        writer.close()


async def listen(tcp_ports: list[int], udp_ports: list[int], tcp_loopback: list[int] = (),
                 udp_loopback: list[int] = ()) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    tcp = [_dual_stack(socket.SOCK_STREAM, p) for p in tcp_ports]
    tcp += [s for p in tcp_loopback for s in _loopback(socket.SOCK_STREAM, p)]
    for sock in tcp:
        sock.listen(256)
        servers.append(await asyncio.start_server(_answer, sock=sock))
    udp = [_dual_stack(socket.SOCK_DGRAM, p) for p in udp_ports]
    udp += [s for p in udp_loopback for s in _loopback(socket.SOCK_DGRAM, p)]
    for sock in udp:
        await loop.create_datagram_endpoint(_Echo, sock=sock)
    print("ready", flush=True)
    await asyncio.Event().wait()  # until the lab kills this process by its PID


async def probe_tcp(address: str, port: int, timeout: float) -> dict:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except asyncio.TimeoutError:
        return {"state": DROPPED, "detail": "timeout"}
    except OSError as exc:
        return {"state": REFUSED, "detail": exc.strerror or str(exc)}
    writer.close()
    return {"state": OPEN, "detail": "connected"}


class _Reply(asyncio.DatagramProtocol):
    def __init__(self, done: asyncio.Future):
        self.done = done

    def datagram_received(self, data: bytes, address) -> None:
        if not self.done.done():
            self.done.set_result({"state": OPEN, "detail": data[8:48].decode("ascii", "replace").strip()})

    def error_received(self, exc: Exception) -> None:
        if not self.done.done():
            self.done.set_result({"state": REFUSED, "detail": getattr(exc, "strerror", None) or str(exc)})


async def probe_udp(address: str, port: int, timeout: float, payload: bytes = MEMCACHED_VERSION) -> dict:
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Reply(done), remote_addr=(address, port))
    try:
        transport.sendto(payload)
        return await asyncio.wait_for(done, timeout)
    except asyncio.TimeoutError:
        return {"state": DROPPED, "detail": "no reply"}
    finally:
        transport.close()


async def _warm_up(addresses: set[str]) -> None:
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(b"", (address, WARM_UP_PORT))
            except OSError:
                pass
    await asyncio.sleep(0.3)


async def scan(targets: list[dict], timeout: float, concurrency: int = 64) -> list[dict]:
    """Each target: {"address", "protocol", "port"}; results in the same order."""
    await _warm_up({t["address"] for t in targets})
    gate = asyncio.Semaphore(concurrency)

    async def one(target: dict) -> dict:
        async with gate:
            probe = probe_tcp if target["protocol"] == "tcp" else probe_udp
            return await probe(target["address"], target["port"], timeout)

    return list(await asyncio.gather(*(one(t) for t in targets)))


async def burst(address: str, port: int, count: int, seconds: float, timeout: float) -> dict:
    """`count` new TCP connections started evenly over `seconds`; each waits at most `timeout`."""
    await _warm_up({address})
    started = time.monotonic()
    tasks = []
    for index in range(count):
        delay = started + index * seconds / count - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(probe_tcp(address, port, timeout)))
    window = time.monotonic() - started
    results = await asyncio.gather(*tasks)
    states = [r["state"] for r in results]
    return {"attempts": count, "window_seconds": round(window, 3), "accepted": states.count(OPEN),
            "dropped": states.count(DROPPED), "refused": states.count(REFUSED)}


def _ports(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nftc.probe")
    commands = parser.add_subparsers(dest="command", required=True)
    listen_cmd = commands.add_parser("listen")
    listen_cmd.add_argument("--tcp", type=_ports, default=[])
    listen_cmd.add_argument("--udp", type=_ports, default=[])
    listen_cmd.add_argument("--tcp-loopback", type=_ports, default=[])
    listen_cmd.add_argument("--udp-loopback", type=_ports, default=[])
    scan_cmd = commands.add_parser("scan")
    scan_cmd.add_argument("--timeout", type=float, default=1.5)
    burst_cmd = commands.add_parser("burst")
    burst_cmd.add_argument("address")
    burst_cmd.add_argument("port", type=int)
    burst_cmd.add_argument("--count", type=int, default=300)
    burst_cmd.add_argument("--seconds", type=float, default=2.0)
    burst_cmd.add_argument("--timeout", type=float, default=0.5)
    args = parser.parse_args(argv)
    if args.command == "listen":
        asyncio.run(listen(args.tcp, args.udp, args.tcp_loopback, args.udp_loopback))
    elif args.command == "scan":
        print(json.dumps(asyncio.run(scan(json.load(sys.stdin), args.timeout))))
    else:
        count = max(1, min(args.count, 5000))  # bounded whatever the caller asks
        seconds = max(0.1, min(args.seconds, 10.0))
        print(json.dumps(asyncio.run(burst(args.address, args.port, count, seconds, args.timeout))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
