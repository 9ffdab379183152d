"""The benchmark's namespace plumbing on top of the lab's (nftc.lab.netns.Lab wires the namespaces, the lab session
stops processes): running timed jobs and profiles inside a namespace, and starting the small servers the workloads
need (killed by PID)."""

from __future__ import annotations

import json
import os
import select
import subprocess

from nftc.lab import netns, session
from nftc.system import child

from .measure import Sample

BENCH = os.path.dirname(os.path.abspath(__file__))


def wire_pair(lab: netns.Lab, server: str, client: str, server_addresses: dict[int, str],
              client_addresses: dict[int, str], server_if: str = "eth0") -> None:
    """The lab's wiring of a server to a client: host addresses and host routes to each other only."""
    lab.wire_hosts(server, client, server_addresses, client_addresses, left_if=server_if)


def timed_jobs(namespace: str | None, rounds: int, jobs: list[dict]) -> dict[str, list[Sample]]:
    """Run bench/measure.py (inside `namespace` unless None): the jobs alternate, round after round.

    A small process of its own also keeps peak RSS honest: a child forked from the big benchmark process
    would count the parent's pages it shares before exec."""
    request = json.dumps({"rounds": rounds, "jobs": jobs})
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    result = subprocess.run([*prefix, *child.python(os.path.join(BENCH, "measure.py"))], input=request,
                            capture_output=True, text=True, timeout=1800, env=netns.without_admin_session(),
                            cwd=child.CWD)
    if result.returncode != 0:
        raise RuntimeError(f"timed jobs failed in {namespace}: {result.stderr.strip()[-600:]}")
    return {name: [Sample(**s) for s in runs] for name, runs in json.loads(result.stdout).items()}


def profile(namespace: str | None, parent: str, nftc_args: list[str], top: int = 12) -> dict | None:
    """pyinstrument's view of one nftc command, run from the nftc package in folder `parent` (the installed copy);
    None when pyinstrument is not installed."""
    try:
        import pyinstrument  # noqa: F401
    except ImportError:
        return None
    prefix = ["ip", "netns", "exec", namespace] if namespace else []
    script = child.python(os.path.join(BENCH, "profile.py"), parent, str(top), "--", *nftc_args)
    result = subprocess.run([*prefix, *script], capture_output=True, text=True, timeout=1800,
                            env=netns.without_admin_session(), cwd=child.CWD)
    if result.returncode != 0:
        raise RuntimeError(f"profiling nftc {' '.join(nftc_args)} failed: {result.stderr.strip()[-600:]}")
    found = json.loads(result.stdout)
    if not found["nftc_file"].startswith(parent.rstrip("/") + "/"):
        raise RuntimeError(f"the profile ran {found['nftc_file']}, not the installed nftc in {parent}")
    return found


def generation(namespace: str) -> int:
    """The namespace's nftables generation id (bench/generation.py): it grows by one per committed transaction."""
    return int(in_namespace(namespace, *child.python(os.path.join(BENCH, "generation.py"))))


def in_namespace(namespace: str, *argv: str, input: str | None = None, timeout: float = 600) -> str:
    result = subprocess.run(["ip", "netns", "exec", namespace, *argv], input=input, capture_output=True, text=True,
                            timeout=timeout, env=netns.without_admin_session(), cwd=child.CWD)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed in {namespace}: {(result.stderr or result.stdout).strip()[-600:]}")
    return result.stdout


def start_ready(namespace: str, argv: list[str], pids: list[int]) -> subprocess.Popen:
    """Start a server that prints `ready` once listening; its PID goes into `pids` (killed by stop())."""
    process = subprocess.Popen(["ip", "netns", "exec", namespace, *argv], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, cwd=child.CWD)
    pids.append(process.pid)
    ready, _, _ = select.select([process.stdout], [], [], 20)
    if not ready or process.stdout.readline().strip() != b"ready":
        raise RuntimeError(f"{' '.join(argv)} did not start in {namespace}")
    return process


def stop(pids: list[int]) -> None:
    """End the processes this benchmark started, by PID, as the lab ends its own (SIGTERM, then SIGKILL; reaped)."""
    session.stop_processes(pids)
