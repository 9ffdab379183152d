"""Workload 7: foomuuri side by side with nftc (issue 9: "ahead of foomuuri at every size"), with `--foomuuri PATH`.

foomuuri (github.com/FoobarOy/foomuuri) is one Python script, neither in Debian 12 nor on PyPI: a user passes the
`src/foomuuri` of a clone. It runs as root, reads /etc/foomuuri and /usr/share/foomuuri, writes /var/lib/foomuuri and
/run/foomuuri, signals the processes named by pid files there, may talk to systemd and D-Bus, and loads its table with
`nft` into whatever network namespace it runs in. So every run of it here

- has every folder it uses (`--set=etc_dir=`, `share_dir`, `state_dir`, `run_dir`) in the run's temporary folder,
  share_dir holding copies of what `make install` puts in /usr/share/foomuuri (`etc/` of the clone);
- runs only inside a throwaway namespace (`ip netns exec`), with an empty environment but PATH (`env -i`): no
  NOTIFY_SOCKET, no D-Bus address;
- is checked, after the workload, not to have changed the host: its nftables ruleset, the sysctls foomuuri's package
  sets (etc/50-foomuuri.conf), and the absence of foomuuri's default folders (`host_state`).

The policies are nftc's (rulesets/zimbra-single.zfw; bench/generate.py's zone policy) written as foomuuri config: the
ports each nftc zone opens are read from nftc's compiled table, the zones become foomuuri zones (`internet = any` the
catch-all interface zone, the others `zonemap` entries by source address), the address file of a zone an `iplist`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from nftc.backend import ir
from nftc.compiler import compile_policy
from nftc.lab import netns
from nftc.system import child

from . import generate
from .measure import Sample
from .namespaces import in_namespace, timed_jobs
from .report import CLONE, QUOTED, Section, Target
from .workloads import SINGLE, UNCHANGED, Config, _compiled, _never_unchanged, _seconds, _target

_ACCEPTED_PORTS = re.compile(r"tcp dport (\{ [^}]* \}|\S+) accept")  # in the ruleset foomuuri writes
SHARE_FILES = ("default.services.conf", "static.nft")  # what start reads from /usr/share/foomuuri (its Makefile)
ENVIRONMENT = ("env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")  # every job of the workload
ZONES = {"internet": "public", "lan": "lan", "blocked": "blocked"}  # nftc's zone -> foomuuri's
DEFAULT_FOLDERS = ("/etc/foomuuri", "/usr/share/foomuuri", "/var/lib/foomuuri", "/run/foomuuri")
SYSCTLS = ("net/ipv4/conf/all/arp_announce", "net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_filter",
           "net/ipv4/conf/all/accept_redirects", "net/ipv4/conf/all/send_redirects", "net/ipv6/conf/all/accept_redirects",
           "net/ipv4/conf/all/forwarding", "net/ipv6/conf/all/forwarding", "net/ipv4/conf/all/rp_filter",
           "kernel/printk")  # etc/50-foomuuri.conf's, the forwarding it mentions, and rp_filter


@dataclass(frozen=True)
class Foomuuri:
    """foomuuri's script and the share folder made for it in the run's temporary folder."""

    script: str
    share: str

    def argv(self, etc: str, home: str, *command: str) -> list[str]:
        """`foomuuri COMMAND` reading its config from `etc` and keeping its state and pid files in `home`, with the
        interpreter and flags nftc's children run with (nftc.system.child); every job of the workload starts through
        ENVIRONMENT."""
        return [*ENVIRONMENT, *child.python(self.script), f"--set=etc_dir={etc}",
                f"--set=share_dir={self.share}", f"--set=state_dir={home}", f"--set=run_dir={home}", *command]


def prepare(script: str, directory: str) -> Foomuuri:
    """The share folder (copies of the clone's etc/ files that `make install` puts in /usr/share/foomuuri)."""
    script = os.path.abspath(script)
    source = os.path.join(os.path.dirname(os.path.dirname(script)), "etc")
    missing = [name for name in SHARE_FILES if not os.path.isfile(os.path.join(source, name))]
    if not os.path.isfile(script) or missing:
        raise RuntimeError(f"--foomuuri {script}: not the src/foomuuri of a clone ({CLONE}): "
                           f"no {', '.join(missing) or 'script'} in {source}")
    share = tempfile.mkdtemp(prefix="foomuuri-share-", dir=directory)
    for name in SHARE_FILES:
        shutil.copy(os.path.join(source, name), share)
    return Foomuuri(script, share)


def open_ports(table: ir.Table, zone: str) -> dict[str, list[str]]:
    """The ports nftc's table opens to `zone`, by protocol ("22", "7071-7074"), from its port map."""
    ports: dict[str, list[str]] = {}
    for element in next(s for s in table.sets if s.name == f"ports_{zone}").elements:
        protocol, port = element.key.parts
        ports.setdefault(protocol, []).append(f"{port.first}-{port.last}" if isinstance(port, ir.Range)
                                              else str(port))
    return ports


def _logs(table: ir.Table) -> bool:
    return any(isinstance(s, ir.Log) for chain in table.chains for rule in chain.rules for s in rule.statements)


def config_text(table: ir.Table, lan: tuple[str, ...], blocked: str | None) -> str:
    """foomuuri's config for nftc's compiled `table`: its zones internet (every interface), lan (`lan`'s sources)
    and, when `blocked` names an address file, blocked (an iplist of it, allowed nothing); loopback accepted, as nftc
    accepts it; everything out accepted, as nftc's output chain does; drops logged when nftc's are."""
    zones = ["internet", "lan"] + (["blocked"] if blocked else [])
    final = "drop log" if _logs(table) else "drop"
    lines = ["# Written by nftc's bench/foomuuri.py from nftc's compiled policy: the same zones and open ports.",
             "zone {", "  localhost", "  public *", *(f"  {ZONES[z]}" for z in zones[1:]), "}"]
    if blocked:
        lines += ["iplist {", f"  @blocked {blocked}", "}"]
    lines += ["zonemap {", *(["  saddr @blocked szone public new_szone blocked"] if blocked else []),
              f"  saddr {' '.join(lan)} szone public new_szone lan", "}"]
    for zone in zones:
        ports = open_ports(table, zone) if zone != "blocked" else {}
        lines += [f"{ZONES[zone]}-localhost {{", *(f"  {p} {' '.join(n)}" for p, n in sorted(ports.items())),
                  f"  {final}", "}"]
    lines += ["localhost-localhost {", "  accept", "}"]
    for zone in zones:
        lines += [f"localhost-{ZONES[zone]} {{", "  accept", "}"]
    return "\n".join(lines) + "\n"


def write_config(directory: str, name: str, policy: str, lan_v4: str, blocked: str | None) -> str:
    """foomuuri's etc folder for nftc's `policy`, whose LAN is `lan_v4` and generate.LAN_V6 (a folder of its own:
    foomuuri reads every *.conf in it)."""
    etc = os.path.join(directory, f"foomuuri-etc-{name}")
    os.makedirs(etc)
    with open(os.path.join(etc, "foomuuri.conf"), "w", encoding="utf-8") as handle:
        handle.write(config_text(compile_policy(policy, {}).table, (lan_v4, generate.LAN_V6), blocked))
    return etc


def host_state() -> dict:
    """What foomuuri could change on the host, read in the host's namespace (read only): compared before and after
    the workload. Its script writes no sysctl (its package's sysctl.d file does, which is never installed here)."""
    sysctls = {}
    for name in SYSCTLS:
        try:
            with open(os.path.join("/proc/sys", name), encoding="utf-8") as handle:
                sysctls[name] = handle.read().strip()
        except OSError:
            sysctls[name] = None
    ruleset = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True, timeout=120)
    return {"ruleset": ruleset.stdout, "sysctls": sysctls, "folders": [f for f in DEFAULT_FOLDERS if os.path.exists(f)]}


def _unchanged_host(before: dict) -> None:
    after = host_state()
    changed = [key for key in before if before[key] != after[key]]
    if changed:
        raise RuntimeError(f"the host changed during the foomuuri workload: {', '.join(changed)}")


@dataclass(frozen=True)
class Case:
    """One policy, nftc's and foomuuri's, with its variant (its LAN moved): every timed load is a change."""

    label: str
    policy: str  # nftc's
    blocked: str | None  # the address file of its zone `blocked`
    rounds: int


@dataclass(frozen=True)
class Measured:
    label: str
    runs: dict[str, list[Sample]]  # start, foomuuri_nft, apply, nftc_nft; check_only, check, compile


def _copy(path: str, to: str) -> str:
    shutil.copy(path, to)
    return to


def _loads(config: Config, tool: Foomuuri, case: Case, lab: netns.Lab, index: int) -> Measured:
    """Alternating rounds, each: in foomuuri's namespace `foomuuri start` A, `nft -f` of the ruleset it loaded, the
    same with B; then in nftc's `nftc apply` A, `nft -f` of its compiled A, the same with B. Then compile only."""
    variant = generate.variant(case.policy, config.directory)
    stem = f"{index}-{os.path.splitext(os.path.basename(case.policy))[0]}"
    etc = {"A": write_config(config.directory, f"{stem}-A", case.policy, generate.LAN_V4, case.blocked),
           "B": write_config(config.directory, f"{stem}-B", variant, generate.OTHER_LAN_V4, case.blocked)}
    home = tempfile.mkdtemp(prefix="foomuuri-state-", dir=config.directory)
    state = tempfile.mkdtemp(prefix="state-", dir=config.directory)
    start = {k: tool.argv(e, home, "start") for k, e in etc.items()}
    apply = {"A": config.nftc("apply", "--state-dir", state, case.policy),
             "B": config.nftc("apply", "--state-dir", state, variant)}
    nftc_rulesets = {"A": _compiled(config, case.policy), "B": _compiled(config, variant)}
    ours, theirs = lab.namespace(f"-n{index}"), lab.namespace(f"-f{index}")
    in_namespace(theirs, *start["B"])
    if case.blocked:  # start loads an iplist from foomuuri's cache; `iplist refresh` reads the file into it
        in_namespace(theirs, *tool.argv(etc["B"], home, "iplist", "refresh"))
    good = os.path.join(home, "good.fw")
    foomuuri_rulesets = {}
    for key in ("A", "B"):
        in_namespace(theirs, *start[key])
        foomuuri_rulesets[key] = _copy(good, os.path.join(config.directory, f"foomuuri-{stem}-{key}.fw"))
    in_namespace(ours, *ENVIRONMENT, *apply["B"])
    runs: dict[str, list[Sample]] = {}
    for _ in range(case.rounds):
        for namespace, jobs in (
                (theirs, [job for k in "AB" for job in ({"name": f"start{k}", "argv": start[k]},
                                                        {"name": f"foomuuri_nft{k}",
                                                         "argv": [*ENVIRONMENT, "nft", "-f", foomuuri_rulesets[k]]})]),
                (ours, [job for k in "AB" for job in ({"name": f"apply{k}", "argv": [*ENVIRONMENT, *apply[k]],
                                                       "watch": UNCHANGED},
                                                      {"name": f"nftc_nft{k}",
                                                       "argv": [*ENVIRONMENT, "nft", "-f", nftc_rulesets[k]]})])):
            for name, samples in timed_jobs(namespace, 1, jobs).items():
                runs.setdefault(name, []).extend(samples)
    _never_unchanged({k: v for k, v in runs.items() if k.startswith("apply")}, f"{case.label}, beside foomuuri")
    if case.blocked:  # the last load was `nft -f`: one more start, then its sets are read
        in_namespace(theirs, *start["A"])
        _elements_loaded(theirs, _lines(case.blocked))
    runs.update(_compile_only(config, tool, case, theirs, etc["A"], home))
    return Measured(case.label, {name: runs[f"{name}A"] + runs[f"{name}B"]
                                 for name in ("start", "foomuuri_nft", "apply", "nftc_nft")}
                    | {k: v for k, v in runs.items() if k in ("check_only", "check", "compile")})


def intervals(addresses: list[str]) -> int:
    """How many intervals the networks make once adjacent ones are merged (nftables' auto-merge, which foomuuri's
    sets have: neighbouring /24s of the generated zone become one range)."""
    spans = sorted((n.version, int(n.network_address), int(n.broadcast_address))
                   for n in map(ipaddress.ip_network, addresses))
    merged, last = 0, None
    for version, first, end in spans:
        if last is None or last[1] != version or first > last[0] + 1:
            merged += 1
            last = [end, version]
        else:
            last[0] = max(last[0], end)
    return merged


def _elements_loaded(namespace: str, addresses: list[str]) -> None:
    """foomuuri's start loaded the iplist: its two sets (IPv4, IPv6) hold the zone's addresses, as intervals."""
    found = 0
    for family in (4, 6):
        listing = json.loads(in_namespace(namespace, "nft", "-j", "list", "set", "inet", "foomuuri",
                                          f"blocked_{family}"))
        found += sum(len(item["set"].get("elem", [])) for item in listing["nftables"] if "set" in item)
    if found != intervals(addresses):
        raise RuntimeError(f"foomuuri's start loaded {found:,} intervals, not the {intervals(addresses):,} of the "
                           f"zone's {len(addresses):,} addresses: it measured another policy")


def _compile_only(config: Config, tool: Foomuuri, case: Case, namespace: str, etc: str, home: str) -> dict:
    """`foomuuri check` with `nft_bin=true` (foomuuri's own stand-in for nft when testing: it builds and writes the
    ruleset, nothing is loaded or checked), `foomuuri check` (and `nft --check` of it), `nftc compile`; foomuuri's
    from a copy of its state (the iplist cache), so the live one is untouched."""
    checks = tempfile.mkdtemp(prefix="foomuuri-check-", dir=config.directory)
    cache = os.path.join(home, "iplist-cache.json")
    if os.path.exists(cache):
        shutil.copy(cache, checks)
    jobs = [{"name": "check_only", "argv": tool.argv(etc, checks, "--set=nft_bin=true", "check")},
            {"name": "check", "argv": tool.argv(etc, checks, "check")},
            {"name": "compile", "argv": [*ENVIRONMENT, *config.nftc("compile", case.policy)]}]
    runs = timed_jobs(namespace, config.pick(1, 5), jobs)
    with open(os.path.join(checks, "next.fw"), encoding="utf-8") as handle:
        ruleset = handle.read()
    opened = {port for ports in _ACCEPTED_PORTS.findall(ruleset)
              for port in ports.strip("{ }").replace(",", " ").split()}
    table = compile_policy(case.policy, {}).table
    expected = {port for zone in ZONES if zone != "blocked" for port in open_ports(table, zone).get("tcp", [])}
    if opened != expected:
        raise RuntimeError(f"foomuuri check's ruleset opens tcp {sorted(opened)}, nftc's policy "
                           f"{sorted(expected)}: it measured another policy")
    if case.blocked:
        addresses = set(_lines(case.blocked))
        written = {word for word in (line.split()[0].rstrip(",") for line in ruleset.splitlines() if line.strip())
                   if word in addresses}  # `ADDRESS[ timeout Ns],` lines
        if written != addresses:
            raise RuntimeError(f"foomuuri check's ruleset has {len(written):,} of the zone's {len(addresses):,} "
                               "addresses: it measured another policy")
    return runs


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def side_by_side(config: Config) -> Section:
    """Workload 7 (run by bench/run.py with --foomuuri): foomuuri and nftc loading the same policy, and compiling it."""
    section = Section("7. foomuuri side by side with nftc")
    size = config.pick(1000, 200_000)
    tool = prepare(config.foomuuri, config.directory)
    zone = generate.zone_policy(config.directory, size)
    cases = [Case("zimbra-single.zfw", SINGLE, None, config.pick(1, 8)),
             Case(f"{size:,} addresses", zone, os.path.join(config.directory, f"blocked-{size}.txt"),
                  config.pick(1, 5))]
    before = host_state()
    try:
        with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
            version = in_namespace(lab.namespace("-v"), *tool.argv(tool.share, tool.share, "--version")).strip()
            measured = [_loads(config, tool, case, lab, index) for index, case in enumerate(cases)]
    finally:
        _unchanged_host(before)
    _report(section, version, measured)
    return section


def _report(section: Section, version: str, measured: list[Measured]) -> None:
    section.commands = [
        "foomuuri --set=etc_dir=A --set=share_dir=S --set=state_dir=H --set=run_dir=H start; nft -f A.fw; "
        "the same with B   (in foomuuri's namespace)",
        "nftc apply --state-dir DIR A.zfw; nft -f A.nft; the same with B   (in nftc's namespace, right after)",
        "foomuuri --set=nft_bin=true check; foomuuri check; nftc compile A.zfw   (compile only)"]
    load_rows, compile_rows = [], []
    for m in measured:
        s = {name: _seconds(samples) for name, samples in m.runs.items()}
        ahead = s["start"].median / s["apply"].median
        load_rows.append([m.label, s["start"].text(), s["foomuuri_nft"].text(),
                          f"{s['start'].median / s['foomuuri_nft'].median:.2f}", s["apply"].text(),
                          s["nftc_nft"].text(), f"{s['apply'].median / s['nftc_nft'].median:.2f}", f"{ahead:.2f}x"])
        _target(section, Target(f"ahead of foomuuri {version}: a changed policy loaded, {m.label}, whole process",
                                "quoted only", "nftc apply faster than foomuuri start",
                                f"nftc {s['apply'].median:.3f} s, foomuuri {s['start'].median:.3f} s: {ahead:.2f}x",
                                ahead > 1))
        faster = s["check_only"].median / s["compile"].median
        compile_rows.append([m.label, s["check_only"].text(), s["check"].text(), s["compile"].text(),
                             f"{faster:.2f}x"])
        if m is measured[-1]:  # issue 9 quotes foomuuri's compile at 200k addresses
            _target(section, Target(f"ahead of foomuuri {version}: compile only, {m.label}", "quoted only", "nftc compile faster than foomuuri's",
                                    f"nftc {s['compile'].median:.3f} s, foomuuri {s['check_only'].median:.3f} s: "
                                    f"{faster:.2f}x", faster > 1))
    section.table(["policy", "foomuuri start (s)", "nft -f of its ruleset (s)", "its ratio", "nftc apply (s)",
                   "nft -f of nftc's ruleset (s)", "nftc's ratio", "nftc ahead by"], load_rows)
    section.table(["policy", "foomuuri check, nft_bin=true: compile only (s)", "foomuuri check, with nft --check (s)",
                   "nftc compile (s)", "nftc ahead by (compile only)"], compile_rows)
    section.notes.append(
        f"foomuuri {version}, run from the script given with --foomuuri, with the interpreter nftc runs with; "
        "every folder it reads or writes is in the run's temporary folder (`--set=...`), share_dir holding copies "
        f"of its clone's {' and '.join(SHARE_FILES)}. It and nftc run in namespaces of their own, one round of "
        "each after the other; every job (foomuuri, nftc, both `nft -f`) starts through `env -i PATH=... "
        "LANG=C.UTF-8` (no systemd or D-Bus address for foomuuri). The policies are nftc's written as foomuuri "
        "config (bench/foomuuri.py): the ports nftc opens to each zone, read from nftc's compiled table; zone "
        "internet the catch-all interface zone `public *`, the LAN a `zonemap` entry by source address, the "
        "addresses a file `iplist` and a `zonemap` entry to a zone that is allowed nothing; loopback and "
        "everything out accepted. A is the policy, B the same with its LAN moved (bench/generate.py variant), "
        "for both tools: every timed load changes the table. foomuuri's start loads an iplist from its cache (its "
        "`iplist refresh` reads the file into it, once, untimed); nftc reads the file or its own address cache "
        "(state directory). After the rounds, foomuuri's sets are checked to hold every address, and the ruleset "
        "its check writes to open the TCP ports nftc's policy opens and to hold every address. `nft -f` of "
        "foomuuri's ruleset is the file its start loaded (good.fw). Compile only: foomuuri's `check` with "
        "`nft_bin=true`, the stand-in foomuuri itself recognises for testing, builds and writes the ruleset and "
        "loads nothing; plain `check` adds `nft --check` of it.")
    section.notes.append("The host was checked before and after: its nftables ruleset, the sysctls "
                         "foomuuri's package sets, and the absence of " + ", ".join(DEFAULT_FOLDERS) + ": unchanged.")
    met = [t for t in section.targets if t.met]
    section.peer = (f"Peer: foomuuri {version}, measured side by side by this run (workload 7): nftc is ahead in "
                    f"{len(met)} of {len(section.targets)} comparisons. Issue 9 quoted, from elsewhere: "
                    + QUOTED)
