"""`nftc lab`: build a throwaway topology of network namespaces from a policy, load the policy into the server
namespace the way `nftc apply` does, probe every (zone, service, protocol, family) with real connections, and
compare with what the policy says.

Topology: one server namespace; one client namespace per zone (localhost is probed from inside the server), each
wired to the server by its own veth pair with /32 and /128 host routes, nothing else: no default route, no
bridge, no link to the machine's own namespace. Everything is deleted on the way out, also on Ctrl-C and SIGTERM,
unless the user asks to keep it (`--keep`).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ElementTree
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator

from ..errors import EXIT_POLICY, NftcError
from ..system import child
from . import netns
from . import probe as prober
from . import plan as labplan
from .plan import LOOPBACK, Probe, Topology
from ..semantics.resolve import LOCALHOST, MEMCACHED_UDP, CheckedPolicy

PREFIX_STEM = netns.LAB_STEM
KEPT_MARK = "kept"  # a file in the state directory of a lab kept on purpose (--keep): sweep_orphans leaves it
MEMCACHED_PORT = MEMCACHED_UDP.first  # a real memcached serves TCP and UDP on the one port


class LabError(NftcError):
    """The lab could not be built or loaded; one line for the user."""


class NotALabPrefix(LabError):
    """`lab --down` given a name that is not a lab's: a usage error."""

    exit_code = EXIT_POLICY


@dataclass
class LiveLab:
    """A built lab: the namespaces, the topology and the processes started in it (killed by PID on close)."""

    lab: netns.Lab
    topology: Topology
    server: str
    clients: dict  # zone -> namespace
    state_dir: str
    pids: list[int] = field(default_factory=list)
    memcached: bool = False

    def namespace_of(self, zone: str) -> str:
        return self.server if zone == LOCALHOST else self.clients[zone]

    def exec(self, namespace: str, *args: str, check: bool = True, input: str | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess:
        return self.lab.exec(namespace, *args, check=check, input=input, timeout=timeout)


# Building


def prepare_namespace(lab: netns.Lab, role: str) -> str:
    name = lab.namespace(role)
    lab.exec(name, "sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
             check=False)
    return name


def _wire_client(live: LiveLab, client: labplan.Client, namespace: str) -> None:
    live.lab.wire_hosts(live.server, namespace, live.topology.server_addresses, client.addresses,
                        left_if=client.interface)


def build(lab: netns.Lab, topology: Topology, state_dir: str) -> LiveLab:
    server = prepare_namespace(lab, "-server")
    live = LiveLab(lab, topology, server, {}, state_dir)
    for client in topology.clients:
        namespace = prepare_namespace(lab, f"-{client.zone}")
        live.clients[client.zone] = namespace
        _wire_client(live, client, namespace)
    return live


# Processes


def _start(live: LiveLab, namespace: str, args: list[str], log_name: str) -> subprocess.Popen:
    log = open(os.path.join(live.state_dir, log_name), "ab")
    try:
        process = subprocess.Popen(["ip", "netns", "exec", namespace, *args], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=log, start_new_session=True, cwd=child.CWD)
    finally:
        log.close()
    live.pids.append(process.pid)
    return process


def start_listeners(live: LiveLab, ports: dict[str, dict[str, tuple[int, ...]]]) -> None:
    """The server's listeners (plan.listener_ports: bind -> protocol -> ports)."""
    live.memcached = start_listeners_in(live, live.server, tuple(live.topology.server_addresses.values()), ports)


def start_listeners_in(live, namespace: str, addresses: tuple[str, ...],
                       ports: dict[str, dict[str, tuple[int, ...]]], log: str = "") -> bool:
    """The echo listener on every port, bound where Zimbra binds it (every address, or 127.0.0.1 and ::1); a real
    memcached (TCP and UDP: the drop of UDP 11211 is proven against one that answers) on `addresses` and loopback
    when installed. True when memcached serves 11211. `live`: what records the PIDs and logs (LiveLab or a
    cluster lab)."""
    every, loopback = dict(ports["all"]), ports["loopback"]
    memcached = shutil.which("memcached")
    served = bool(memcached) and (MEMCACHED_PORT in every["tcp"] or MEMCACHED_PORT in every["udp"])
    if served:
        listen = ",".join(f"[{a}]" if ":" in a else a for a in (LOOPBACK[4], LOOPBACK[6], *addresses))
        _start(live, namespace, [memcached, "-u", "nobody", "-U", str(MEMCACHED_PORT), "-p", str(MEMCACHED_PORT),
                                 "-l", listen, "-m", "16"], f"memcached{log}.log")
        every = {p: tuple(x for x in every[p] if x != MEMCACHED_PORT) for p in every}
    listener = _start(live, namespace, child.python_module(
        prober.__name__, "listen", *(f"--{p}={','.join(map(str, every[p]))}" for p in every),
        *(f"--{p}-loopback={','.join(map(str, loopback[p]))}" for p in loopback)), f"listener{log}.log")
    ready, _, _ = select.select([listener.stdout], [], [], 20)
    if not ready or listener.stdout.readline().strip() != b"ready":
        raise LabError(f"the lab's listener did not start: see {live.state_dir}/listener{log}.log")
    if served:
        _wait_for_memcached(live, namespace, log)
    return served


def _wait_for_memcached(live, namespace: str, log: str = "") -> None:
    target = [{"address": LOOPBACK[4], "protocol": "tcp", "port": MEMCACHED_PORT}]
    for _ in range(20):
        if run_scan(live, namespace, target, timeout=0.5)[0]["state"] == labplan.OPEN:
            return
    raise LabError(f"memcached did not start: see {live.state_dir}/memcached{log}.log")


def stop_processes(pids: list[int]) -> None:
    """SIGTERM, then SIGKILL, only the processes the lab started, by PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [pid for pid in pids if _signal(pid, sig)]
        for pid in alive:
            _reap(pid, timeout=2.0)
        if not alive:
            break
    pids.clear()


def _signal(pid: int, sig: int) -> bool:
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def _reap(pid: int, timeout: float) -> None:
    """Wait for `pid` to end: reap it when it is our child, else poll until it is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                return
        except ChildProcessError:
            if not _signal(pid, 0):
                return
        time.sleep(0.05)


# Loading the ruleset


def load_policy(live: LiveLab, policy_path: str, host: str | None = None) -> None:
    """Load `policy_path` into the server namespace through `nftc apply` (the same code path as an admin's);
    `host`: the cluster host whose ruleset it is (--host)."""
    apply_in(live.server, os.path.join(live.state_dir, "apply"), policy_path, host)


def apply_in(namespace: str, state_dir: str, policy_path: str, host: str | None = None) -> None:
    """`nftc apply [--host HOST] POLICY` inside `namespace`, with its own state directory."""
    command = ["ip", "netns", "exec", namespace,
               *child.python_module("nftc", "apply", "--state-dir", state_dir,
                                    *(("--host", host) if host else ()), os.path.abspath(policy_path))]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=netns.without_admin_session(),
                            cwd=child.CWD)
    if result.returncode != 0:
        raise LabError(f"loading {policy_path} into the lab failed: {(result.stderr or result.stdout).strip()}")


Loader = Callable[[LiveLab], None]


@contextmanager
def session(checked: CheckedPolicy, load: Loader, keep: bool = False) -> Iterator[LiveLab]:
    """A built, listening, loaded lab; torn down on the way out unless `keep` (and never on a failure to build)."""
    topology = labplan.plan_topology(checked)
    probes = labplan.plan_probes(checked, topology)
    lab = netns.Lab(prefix=netns.unique_prefix(PREFIX_STEM))
    state_dir = tempfile.mkdtemp(prefix=f"{lab.prefix}-")
    live = LiveLab(lab, topology, "", {}, state_dir)
    kept = False
    try:
        live = build(lab, topology, state_dir)
        start_listeners(live, labplan.listener_ports(probes))
        live.lab.flush_neighbours()
        load(live)
        yield live
        if keep:
            open(os.path.join(state_dir, KEPT_MARK), "x").close()
        kept = keep
    finally:
        if not kept:
            tear_down_live(live.pids, lab, state_dir)


def tear_down_live(pids: list[int], lab: netns.Lab, state_dir: str) -> None:
    """Kill what the lab started (by PID), delete its namespaces and its directory, whatever signal comes."""
    with _signals_held():
        stop_processes(pids)
        lab.close()
        shutil.rmtree(state_dir, ignore_errors=True)


@contextmanager
def _signals_held() -> Iterator[None]:
    """The teardown runs to its end: a second Ctrl-C (or SIGTERM) during it would leave namespaces behind."""
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


# Probing


def run_scan(live: LiveLab, namespace: str, targets: list[dict], timeout: float = 1.5) -> list[dict]:
    command = ["ip", "netns", "exec", namespace, *child.python_module(prober.__name__, "scan", "--timeout", str(timeout))]
    result = subprocess.run(command, input=json.dumps(targets), capture_output=True, text=True, timeout=120,
                            check=True, cwd=child.CWD)
    return json.loads(result.stdout)


def _targets(live: LiveLab, probes: list[Probe]) -> list[dict]:
    return [{"address": live.topology.target(p.zone, p.family), "protocol": p.protocol, "port": p.port}
            for p in probes]


def scan_builtin(live: LiveLab, probes: tuple[Probe, ...]) -> dict[Probe, str]:
    """One prober process per zone, all zones at once; each probe waits at most its timeout."""
    by_zone: dict[str, list[Probe]] = {}
    for probe in probes:
        by_zone.setdefault(probe.zone, []).append(probe)
    results = scan_groups({f"zone {zone}": (live.namespace_of(zone), _targets(live, zone_probes))
                           for zone, zone_probes in by_zone.items()})
    observed: dict[Probe, str] = {}
    for zone, zone_probes in by_zone.items():
        observed.update((p, r["state"]) for p, r in zip(zone_probes, results[f"zone {zone}"]))
    return observed


def scan_groups(groups: dict[str, tuple[str, list[dict]]]) -> dict[str, list[dict]]:
    """label -> (namespace, targets): one prober process per group, all at once; label -> results in order."""
    running = {}
    for label, (namespace, targets) in groups.items():
        command = ["ip", "netns", "exec", namespace, *child.python_module(prober.__name__, "scan")]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, cwd=child.CWD)
        running[label] = (process, targets)
    # each prober reads its targets before it starts: feed them all at once, or they would run one after another
    with ThreadPoolExecutor(max_workers=max(1, len(running))) as pool:
        done = {label: pool.submit(process.communicate, json.dumps(targets), timeout=300)
                for label, (process, targets) in running.items()}
    results = {}
    for label, future in done.items():
        out, err = future.result()
        if running[label][0].returncode != 0:
            raise LabError(f"the prober failed in {label}: {err.strip()[-300:]}")
        results[label] = json.loads(out)
    return results


NMAP_STATES = {"open": labplan.OPEN, "closed": labplan.REFUSED, "filtered": labplan.DROPPED,
               "open|filtered": labplan.DROPPED, "closed|filtered": labplan.DROPPED}


def nmap_command(address: str, family: int, tcp: list[int], udp: list[int]) -> list[str]:
    ports = ",".join([f"T:{p}" for p in tcp] + [f"U:{p}" for p in udp])
    scans = (["-sT"] if tcp else []) + (["-sU"] if udp else [])
    return ["nmap", "-Pn", "-n", *scans, "-p", ports, "--max-retries", "1", "--host-timeout", "30s", "-T4",
            *(["-6"] if family == 6 else []), "-oX", "-", address]


def parse_nmap(xml_text: str) -> dict[tuple[str, int], str]:
    """(protocol, port) -> lab state, from nmap's XML report: listed ports and the collapsed `extraports`."""
    root = ElementTree.fromstring(xml_text)
    states = {}
    for extra in root.iter("extraports"):
        for reason in extra.iter("extrareasons"):
            for port in _nmap_port_list(reason.get("ports", "")):
                states[(reason.get("proto"), port)] = _nmap_state(extra.get("state"))
    for port in root.iter("port"):
        states[(port.get("protocol"), int(port.get("portid")))] = _nmap_state(port.find("state").get("state"))
    return states


def _nmap_state(state: str) -> str:
    return NMAP_STATES.get(state, state)


def _nmap_port_list(text: str) -> list[int]:
    """`1-3,7` -> [1, 2, 3, 7]."""
    ports = []
    for item in filter(None, text.split(",")):
        first, _, last = item.partition("-")
        ports.extend(range(int(first), int(last or first) + 1))
    return ports


def scan_nmap(live: LiveLab, probes: tuple[Probe, ...]) -> dict[Probe, str]:
    if shutil.which("nmap") is None:
        raise LabError("--scanner nmap needs nmap: apt install nmap")
    observed: dict[Probe, str] = {}
    groups: dict[tuple[str, int], list[Probe]] = {}
    for probe in probes:
        groups.setdefault((probe.zone, probe.family), []).append(probe)
    for (zone, family), group in groups.items():
        tcp = sorted({p.port for p in group if p.protocol == "tcp"})
        udp = sorted({p.port for p in group if p.protocol == "udp"})
        address = live.topology.target(zone, family)
        result = live.exec(live.namespace_of(zone), *nmap_command(address, family, tcp, udp), timeout=120)
        states = parse_nmap(result.stdout)
        observed.update((p, states.get((p.protocol, p.port), "unscanned")) for p in group)
    return observed


SCANNERS = {"builtin": scan_builtin, "nmap": scan_nmap}


@dataclass(frozen=True)
class LabReport:
    """What a lab run saw: every observation, every assertion, and whether a real memcached served 11211."""

    observations: tuple[labplan.Observation, ...]
    assertions: tuple[labplan.AssertionCheck, ...]
    memcached: bool

    @property
    def mismatches(self) -> tuple[labplan.Observation, ...]:
        return tuple(o for o in self.observations if not o.matches)

    @property
    def ok(self) -> bool:
        return not self.mismatches and all(a.holds for a in self.assertions)

    def cell(self, zone: str, service: str, family: int, port: int | None = None,
             protocol: str = "tcp") -> labplan.Observation:
        """The observation for one probe; `port` defaults to the service's first probed port."""
        return next(o for o in self.observations if o.probe.zone == zone and o.probe.service == service
                    and o.probe.family == family and o.probe.protocol == protocol
                    and (port is None or o.probe.port == port))


def probe_lab(live: LiveLab, checked: CheckedPolicy, scanner: str = "builtin") -> LabReport:
    live.lab.flush_neighbours()
    probes = labplan.plan_probes(checked, live.topology)
    observations = labplan.observe(checked, SCANNERS[scanner](live, probes))
    return LabReport(observations, labplan.check_assertions(checked.assertions, observations), live.memcached)


# Reporting


def report_text(report: LabReport) -> str:
    lines = [labplan.format_matrix(report.observations), ""]
    lines += [labplan.format_mismatch(o) for o in report.mismatches]
    for check in report.assertions:
        verdict = "holds on the kernel" if check.holds else "FAILS on the kernel"
        lines.append(f"{check.text}: {verdict} ({check.probes} probes)")
        lines += [f"  {labplan.format_mismatch(o)}" for o in check.violations]
    total, bad = len(report.observations), len(report.mismatches)
    memcached = "a real memcached" if report.memcached else "the echo listener (memcached not installed)"
    lines.append(f"{total} probes, {bad} mismatches; {MEMCACHED_PORT} served by {memcached}")
    return "\n".join(lines)


def report_json(report: LabReport) -> str:
    def observation(o: labplan.Observation) -> dict:
        p = o.probe
        return {"zone": p.zone, "service": p.service, "protocol": p.protocol, "port": p.port,
                "family": p.family, "expected": o.expected, "observed": o.observed, "reason": o.reason}

    return json.dumps({
        "ok": report.ok,
        "observations": [observation(o) for o in report.observations],
        "mismatches": [observation(o) for o in report.mismatches],
        "assertions": [{"assertion": a.text, "holds": a.holds, "probes": a.probes} for a in report.assertions],
        "memcached": report.memcached,
    }, indent=2)


def enter_commands(live: LiveLab) -> str:
    lines = ["The lab is kept. Enter it with:"]
    lines.append(f"  ip netns exec {live.server} bash        # the server (nft list ruleset)")
    lines += [f"  ip netns exec {ns} bash        # a client in zone {zone} ({', '.join(c.addresses.values())})"
              for zone, ns in live.clients.items()
              for c in live.topology.clients if c.zone == zone]
    server = " and ".join(live.topology.server_addresses.values())
    lines.append(f"The server answers on {server}; 127.0.0.1 and ::1 inside the server are zone localhost.")
    lines.append(f"Tear it down with:\n  nftc lab --down {live.lab.prefix}")
    return "\n".join(lines)


# Tearing down a kept lab, or what a killed lab, benchmark or test run left


def lab_namespaces(prefix: str) -> list[str]:
    return netns.namespaces(prefix)


def tear_down(prefix: str) -> list[str]:
    """Kill the processes inside the namespaces of `prefix` (by PID) and delete them: a lab's (nftclab<pid>x<n>), or
    one a killed benchmark or test run left (nftcbench..., nftct...); no other name."""
    if netns.prefix_of(prefix) != prefix:
        raise NotALabPrefix(f"'{prefix}' is not a lab prefix: lab namespaces start with {PREFIX_STEM}<pid>")
    names = lab_namespaces(prefix)
    for name in names:
        pids = [int(p) for p in netns.run("ip", "netns", "pids", name, check=False).stdout.split()]
        stop_processes(pids)
        netns.run("ip", "netns", "del", name, check=False)
    for directory in _state_dirs(prefix):
        shutil.rmtree(directory, ignore_errors=True)
    return names


def _state_dirs(prefix: str) -> list[str]:
    base = tempfile.gettempdir()
    return [os.path.join(base, d) for d in os.listdir(base) if d.startswith(f"{prefix}-")]


def sweep_orphans() -> list[str]:
    """Tear down what runs killed half way left: namespaces whose maker is gone, but not a lab kept on purpose.
    The tests run it at the start of a session; the deleted names are returned."""
    deleted = []
    for prefix in netns.orphaned_prefixes():
        if not any(os.path.exists(os.path.join(d, KEPT_MARK)) for d in _state_dirs(prefix)):
            deleted += tear_down(prefix)
    return deleted
