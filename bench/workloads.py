"""The six workloads of issue 4. Each takes a Config and returns a report.Section; kernel work in namespaces."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from nftc.system import child
from nftc.backend import ir
from nftc.lab import netns
from nftc.lab import probe as prober
from nftc.compiler import compile_policy
from nftc.backend.render_nft import render_nft

from . import generate
from .measure import Sample, alternate, stats
from .namespaces import in_namespace, profile, start_ready, stop, timed_jobs, wire_pair
from .report import Section

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SINGLE = os.path.join(ROOT, "rulesets", "zimbra-single.zfw")
NFTC = child.python_module("nftc")


@dataclass(frozen=True)
class Config:
    quick: bool
    directory: str  # generated policies, compiled rulesets, state directories

    def pick(self, quick, full):
        return quick if self.quick else full


def _seconds(samples: list[Sample]):
    return stats([s.seconds for s in samples])


def _compiled(config: Config, policy: str) -> str:
    """`nftc compile POLICY` into the run's directory (the already compiled ruleset `nft -f` loads); never next to
    the policy, which may be in the checkout (rulesets/)."""
    out = os.path.join(config.directory, os.path.splitext(os.path.basename(policy))[0] + ".nft")
    with open(out, "w", encoding="utf-8") as handle:
        subprocess.run([*NFTC, "compile", policy], stdout=handle, check=True, timeout=600, cwd=child.CWD)
    return out


def _marginal_rows(label: str, sizes: list[int], samples: dict[int, list[Sample]]) -> list[list[str]]:
    """Time, memory, and the marginal cost per item over the smallest size, with its ratio to the previous size."""
    base = _seconds(samples[sizes[0]]).median
    rows, previous = [], None
    for size in sizes:
        time = _seconds(samples[size])
        memory = stats([s.max_rss_kb / 1024 for s in samples[size]])
        per_item = (time.median - base) / (size - sizes[0]) * 1e6 if size != sizes[0] else None
        ratio = f"{per_item / previous:.2f}" if per_item and previous else "-"
        rows.append([f"{size:,}", time.text(), memory.text(digits=0), f"{time.median / size * 1e6:,.1f}",
                     f"{per_item:,.1f}" if per_item is not None else "-", ratio])
        previous = per_item or previous
    return rows


# 1. Compile time and peak memory against policy size.


def _by_size(runs: dict[str, list[Sample]]) -> dict[int, list[Sample]]:
    return {int(name): samples for name, samples in runs.items()}


def compile_sizes(config: Config) -> Section:
    section = Section("1. Compile time and peak memory against policy size")
    sizes = config.pick([10, 1000], [10, 1_000, 10_000, 100_000, 200_000])
    counts = config.pick([10, 100], [10, 100, 1_000])
    zones = {n: generate.zone_policy(config.directory, n) for n in sizes}
    services = {n: generate.service_policy(config.directory, n) for n in counts}
    section.commands = [f"nftc compile {os.path.basename(zones[sizes[-1]])} > /dev/null   "
                        f"(one process per measurement; peak RSS from wait4)"]
    zone_runs = _by_size(timed_jobs(None, config.pick(1, 3),
                                    [{"name": str(n), "argv": [*NFTC, "compile", p]} for n, p in zones.items()]))
    service_runs = _by_size(timed_jobs(None, config.pick(1, 5),
                                       [{"name": str(n), "argv": [*NFTC, "compile", p]} for n, p in services.items()]))
    headers = ["seconds", "peak RSS MiB", "µs per item (total)", "µs per item (marginal over the smallest)",
               "marginal ratio to the previous size"]
    section.table(["addresses in the zone", *headers], _marginal_rows("addresses", sizes, zone_runs))
    section.table(["user services", *headers], _marginal_rows("services", counts, service_runs))
    section.notes.append("A zone of N networks is N/4 each of IPv4 /32, IPv4 /24, IPv6 /128 and IPv6 /64, "
                         "distinct and never adjacent (bench/generate.py, fixed seed), loaded with `file \"...\"`; "
                         "the rest of the policy is the single-server policy. The services are `service userI = "
                         "tcp 20000+I`, all allowed from the LAN by one rule. Growth is linear when the marginal "
                         "ratio stays near 1.")
    if not config.quick:
        section.profiles.append((f"nftc compile, {sizes[-1]:,} addresses",
                                 profile(None, ["compile", zones[sizes[-1]]])))
    return section


# 2. Rules a packet traverses.


def _port_map_target(table: ir.Table, zone: str, protocol: str, port: int) -> str:
    """The action chain the zone's port map sends (protocol, port) to."""
    found = next(s for s in table.sets if s.name == f"ports_{zone}")
    for element in found.elements:
        key_protocol, key_port = element.key.parts
        low, high = (key_port.first, key_port.last) if isinstance(key_port, ir.Range) else (key_port, key_port)
        if key_protocol == protocol and low <= port <= high:
            return element.verdict.target
    raise LookupError(f"{protocol}/{port} is not opened to zone {zone}")


def path_length(table: ir.Table, zone: str, protocol: str, port: int) -> tuple[int, int]:
    """(input rules up to the IPv4 source dispatch, rules in the zone chain and the rule's chain up to the accept)
    for a new IPv4 connection from `zone` to `port`."""
    chains = {c.name: c for c in table.chains}
    dispatch = next(i for i, r in enumerate(chains["input"].rules)
                    if any(isinstance(s, ir.VerdictMap) and s.key == ir.Payload("ip", "saddr") for s in r.statements))
    zone_rules = chains[f"zone_{zone}"].rules
    lookup = next(i for i, r in enumerate(zone_rules) if any(isinstance(s, ir.VerdictMap) for s in r.statements))
    action = chains[_port_map_target(table, zone, protocol, port)].rules
    accept = next(i for i, r in enumerate(action) if any(isinstance(s, ir.Verdict) and s.kind == "accept"
                                                           for s in r.statements))
    return dispatch + 1, lookup + 1 + accept + 1


def rule_path(config: Config) -> Section:
    section = Section("2. Rules a packet traverses on the path of a new connection")
    sizes = config.pick([10, 1000], [10, 1_000, 10_000, 100_000, 200_000])
    counts = config.pick([10, 100], [10, 100, 1_000])
    cases = [(f"zone of {n:,} addresses", generate.zone_policy(config.directory, n), ((("internet", 25)),
                                                                                    ("lan", 22))) for n in sizes]
    cases += [(f"{n:,} user services", generate.service_policy(config.directory, n),
               (("lan", 20000), ("lan", 20000 + n - 1))) for n in counts]
    rows, paths = [], {}
    for label, policy, connections in cases:
        table = compile_policy(policy, {}).table
        elements = sum(len(s.elements) for s in table.sets)
        for role, (zone, port) in enumerate(connections):
            before, in_zone = path_length(table, zone, "tcp", port)
            paths.setdefault((label.split()[-1], role), {})[label] = before + in_zone
            rows.append([label, f"{zone} -> {port}/tcp", str(before), str(in_zone), str(before + in_zone),
                         f"{elements:,}"])
    section.table(["policy", "new connection", "input rules (to the dispatch)", "zone and rule chains (to the accept)",
                   "rules in all", "set/map elements"], rows)
    section.notes.append("Counted on the compiled IR (nftc.compiler.compile_policy): the rules of `input` up to "
                         "and including the IPv4 source verdict map, then the zone chain's rules up to its port "
                         "map, then the rules of the chain that map sends the port to, up to the accept. Set and "
                         "map lookups are one rule each whatever their size.")
    growing = sorted({label for by_label in paths.values() for label, length in by_label.items()
                      if length > min(by_label.values())})
    section.notes.append("The path grows for: " + ", ".join(growing) + "."
                         if growing else "The path does not grow with the number of addresses, ports or services.")
    return section


# 3. Apply vs nft -f.


def _importtime(argv: list[str], top: int = 8) -> list[tuple[int, str]]:
    """`python -X importtime`: the biggest top-level imports (cumulative µs)."""
    result = subprocess.run(child.python("-X", "importtime", *argv), capture_output=True, text=True, timeout=60,
                            cwd=child.CWD)
    rows = []
    for line in result.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):
            rows.append((int(parts[1]), parts[2].strip()))
    return sorted(rows, reverse=True)[:top]


def apply_vs_nft(config: Config) -> Section:
    section = Section("3. Apply, whole process, against `nft -f` of the same compiled ruleset")
    size = config.pick(1000, 200_000)
    cases = [("zimbra-single.zfw", SINGLE, 3.0, config.pick(2, 7)),
             (f"{size:,} addresses", generate.zone_policy(config.directory, size), 1.3, config.pick(1, 3))]
    section.commands = ["nft -f RULESET.nft", "nftc apply --state-dir DIR POLICY.zfw   "
                        "(both inside one namespace, alternating; each replaces the table the other loaded)"]
    rows = []
    with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
        namespace = lab.namespace("-apply")
        for label, policy, target, rounds in cases:
            ruleset = _compiled(config, policy)
            state = tempfile.mkdtemp(prefix="state-", dir=config.directory)
            jobs = [{"name": "nft", "argv": ["nft", "-f", ruleset]},
                    {"name": "nftc", "argv": [*NFTC, "apply", "--state-dir", state, policy]}]
            timed_jobs(namespace, 1, jobs)  # warm-up: both load once, so every timed run is a replace
            runs = timed_jobs(namespace, rounds, jobs)
            nft, nftc = _seconds(runs["nft"]), _seconds(runs["nftc"])
            ratio = nftc.median / nft.median
            met = "met" if ratio <= target else "MISSED"
            rows.append([label, nft.text(), nftc.text(), f"{ratio:.2f}", f"<= {target}", met])
            if ratio > target and not config.quick:
                section.profiles.append((f"nftc apply {label}",
                                         profile(namespace, ["apply", "--state-dir", state, policy])))
            in_namespace(namespace, "nft", "flush", "ruleset")
    section.table(["policy", "nft -f (s)", "nftc apply (s)", "ratio", "target", ""], rows)
    if any(row[-1] == "MISSED" for row in rows):
        section.notes.append(APPLY_GAP)
    startup = alternate(config.pick(1, 5), [{"name": "pass", "argv": child.python("-c", "pass")},
                                            {"name": "version", "argv": [*NFTC, "--version"]}])
    section.table(["process", "seconds"], [["python -c pass", _seconds(startup["pass"]).text()],
                                          ["python -m nftc --version", _seconds(startup["version"]).text()]])
    imports = _importtime(["-c", "import nftc.cli.main, nftc.cli.apply, nftc.system.apply, nftc.compiler, "
                                 "nftc.backend.render_nft, nftc.system.lockout, nftc.system.kernel, "
                                 "nftc.system.live, nftables"])
    version_imports = _importtime(["-m", "nftc", "--version"], top=5)
    section.table(["import (what `nftc apply` loads)", "cumulative ms"],
                  [[name, f"{us / 1000:.1f}"] for us, name in imports])
    section.table(["import (`python -X importtime -m nftc --version`)", "cumulative ms"],
                  [[name, f"{us / 1000:.1f}"] for us, name in version_imports])
    return section


# 4. The article's ufw recipe vs nftc apply.

UFW_RECIPE = ("ufw default deny incoming", "ufw allow from 192.168.1.0/24", "ufw allow Zimbra", "ufw --force enable")
REACH_PROBES = (("internet", 4, 7071), ("internet", 4, 25), ("lan", 4, 389), ("lan", 4, 11211), ("lan", 4, 7306),
                ("lan", 4, 22), ("lan", 6, 22))


def _ufw_helpers():
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    import test_ufw_recipe  # the test's helpers: private copies of ufw's files, bind-mounted in a mount namespace
    return test_ufw_recipe


def _timed_shell(namespace: str, setup: list[str], commands: tuple[str, ...]) -> float:
    """Run `commands` in a private mount namespace after `setup`; the shell reads the clock around them."""
    script = "\n".join(["set -e", *setup, "start=$(date +%s%N)", *(f"{c} >/dev/null" for c in commands),
                        "end=$(date +%s%N)", "echo $((end - start))"])
    output = in_namespace(namespace, "unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                          timeout=300)
    return int(output.split()[-1]) / 1e9


def _reach_lab(lab: netns.Lab, role: str, pids: list[int]) -> dict:
    server = lab.namespace(f"-{role}")
    clients = {"internet": lab.namespace(f"-{role}i"), "lan": lab.namespace(f"-{role}l")}
    wire_pair(lab, server, clients["internet"], generate.SERVER, generate.INTERNET_CLIENT, server_if="inet0")
    wire_pair(lab, server, clients["lan"], generate.SERVER, generate.LAN_CLIENT, server_if="lan0")
    ports = ",".join(str(p) for p in sorted({p for _, _, p in REACH_PROBES}))
    start_ready(server, child.python_module(prober.__name__, "listen", "--tcp", ports), pids)
    return {"server": server, **clients}


def _reachability(lab_names: dict) -> dict[tuple, str]:
    states = {}
    for zone in ("internet", "lan"):
        probes = [p for p in REACH_PROBES if p[0] == zone]
        targets = [{"address": generate.SERVER[f], "protocol": "tcp", "port": port} for _, f, port in probes]
        output = in_namespace(lab_names[zone], *child.python_module(prober.__name__, "scan", "--timeout", "1"),
                              input=json.dumps(targets))
        states.update((p, r["state"]) for p, r in zip(probes, json.loads(output)))
    return states


def ufw_recipe(config: Config) -> Section:
    section = Section("4. The article's ufw recipe against nftc apply")
    if shutil.which("ufw") is None:
        section.notes.append("ufw is not installed: skipped.")
        return section
    helpers = _ufw_helpers()
    section.commands = [" && ".join(UFW_RECIPE) + "   (ufw in a private mount namespace with copies of its files)",
                        "nftc apply --state-dir DIR rulesets/zimbra-single.zfw   (same set-up)"]
    times: dict[str, list[float]] = {"ufw": [], "nftc": []}
    reach: dict[str, dict] = {}
    pids: list[int] = []
    try:
        for round_index in range(config.pick(1, 3)):
            with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
                for tool in ("ufw", "nftc"):
                    names = _reach_lab(lab, tool, pids)
                    directory = tempfile.mkdtemp(prefix=f"{tool}-", dir=config.directory)
                    if tool == "ufw":
                        setup = [*helpers.private_ufw_config(directory), "ufw --force reset >/dev/null"]
                        commands = UFW_RECIPE
                    else:
                        setup, commands = [], (shlex.join([*NFTC, "apply", "--state-dir", directory, SINGLE]),)
                    times[tool].append(_timed_shell(names["server"], setup, commands))
                    if round_index == 0:
                        reach[tool] = _reachability(names)
                stop(pids)
    finally:
        stop(pids)
    ufw, nftc = stats(times["ufw"]), stats(times["nftc"])
    speedup = ufw.median / nftc.median
    section.table(["tool", "seconds", "speed-up of nftc", "target"],
                  [["ufw recipe", ufw.text(), "", ""],
                   ["nftc apply", nftc.text(), f"{speedup:.1f}x", f">= 5x: {'met' if speedup >= 5 else 'MISSED'}"]])
    section.table(["probe (new TCP connection)", "ufw recipe", "zimbra-single.zfw", ""],
                  [[f"{zone} -> {port}/tcp IPv{family}", reach["ufw"][(zone, family, port)],
                    reach["nftc"][(zone, family, port)],
                    "differs" if reach["ufw"][(zone, family, port)] != reach["nftc"][(zone, family, port)] else ""]
                   for zone, family, port in REACH_PROBES])
    if speedup < 5:
        section.notes.append("Gap: nftc apply of this policy is a whole Python process (see workload 3: start-up "
                             "and imports are about 0.07 s of it); ufw runs iptables-restore for IPv4 and IPv6. "
                             "Next step: the compiled-ruleset cache of workload 3.")
    section.notes.append("open: connected; dropped: no answer within 1 s; refused: reset or ICMP error. The recipe "
                         "opens the admin console 7071 to the internet and LDAP, memcached and MySQL to the LAN; "
                         "it says nothing for IPv6, so ssh from the LAN over IPv6 is dropped.")
    return section


# 5. Reload with dynamic blocklist elements kept.


def _element_count(namespace: str, set_name: str) -> list[str]:
    output = in_namespace(namespace, "nft", "-j", "list", "set", "inet", "bench", set_name)
    found = next(item["set"] for item in json.loads(output)["nftables"] if "set" in item)
    return sorted(str(e if isinstance(e, str) else e.get("prefix", e)) for e in found.get("elem", []))


def dynamic_reload(config: Config) -> Section:
    count = config.pick(1000, 100_000)
    section = Section(f"5. Reload with {count:,} dynamic blocklist elements kept")
    policy = generate.dynamic_policy(config.directory)
    elements = generate.host_addresses(count)
    fill = os.path.join(config.directory, "fill.nft")
    with open(fill, "w", encoding="utf-8") as handle:
        handle.write(generate.add_elements_script("bench", "dyn_blocklist_v4", elements))
    baseline = os.path.join(config.directory, "dynamic-with-elements.nft")
    with open(_compiled(config, policy), encoding="utf-8") as compiled, open(baseline, "w") as handle:
        handle.write(compiled.read() + open(fill).read())
    state = tempfile.mkdtemp(prefix="state-", dir=config.directory)
    section.commands = [f"nft -f fill.nft   (one `add element inet bench dyn_blocklist_v4 {{ ... }}` of {count:,})",
                        "nftc apply --state-dir DIR dynamic.zfw   (the reload: carries the elements over)",
                        "nft -f dynamic-with-elements.nft   (the physical limit: the same table and elements)"]
    with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
        namespace = lab.namespace("-dyn")
        in_namespace(namespace, *NFTC, "apply", "--state-dir", state, policy)
        in_namespace(namespace, "nft", "-f", fill)
        before = _element_count(namespace, "dyn_blocklist_v4")
        runs = timed_jobs(namespace, config.pick(1, 3),
                          [{"name": "nftc", "argv": [*NFTC, "apply", "--state-dir", state, policy]},
                           {"name": "nft", "argv": ["nft", "-f", baseline]}])
        in_namespace(namespace, *NFTC, "apply", "--state-dir", state, policy)  # the last load is nftc's
        after = _element_count(namespace, "dyn_blocklist_v4")
        profiled = profile(namespace, ["apply", "--state-dir", state, policy]) if not config.quick else None
    nftc, nft = _seconds(runs["nftc"]), _seconds(runs["nft"])
    kept = "all kept" if before == after == sorted(elements) else "LOST ELEMENTS"
    section.table(["reload", "seconds", "elements before", "elements after", ""],
                  [["nftc apply (carries them over)", nftc.text(), f"{len(before):,}", f"{len(after):,}", kept],
                   ["nft -f table + elements", nft.text(), "", "", f"ratio {nftc.median / nft.median:.2f}"]])
    section.notes.append("Before and after are the set's elements as `nft -j list set` prints them, compared one "
                         "by one with the generated list, after every timed reload.")
    if profiled:
        section.profiles.append((f"nftc apply with {count:,} dynamic elements", profiled))
    return section


# 6. New-connection rate.


def connection_rate(config: Config) -> Section:
    size = config.pick(1000, 100_000)
    count, seconds = config.pick(200, 3000), config.pick(2.0, 5.0)
    section = Section(f"6. New-connection rate through the ruleset with a {size:,}-address zone")
    conntrack_only = os.path.join(config.directory, "conntrack-only.nft")
    with open(conntrack_only, "w") as handle:
        handle.write(CONNTRACK_ONLY)
    conditions = {"no ruleset": None, "conntrack only (nft -f)": conntrack_only,
                  "zone of 10 addresses": generate.zone_policy(config.directory, 10),
                  f"zone of {size:,} addresses": generate.zone_policy(config.directory, size)}
    section.commands = [f"python bench/connrate.py client {generate.SERVER[4]} 25 {count} {seconds}   "
                        "(client namespace, zone internet; connect + RST close, one after another)"]
    rates: dict[str, list[float]] = {name: [] for name in conditions}
    pids: list[int] = []
    with netns.Lab(prefix=netns.unique_prefix(netns.BENCH_STEM)) as lab:
        try:
            pairs = {}
            for index, (name, policy) in enumerate(conditions.items()):
                server, client = lab.namespace(f"-s{index}"), lab.namespace(f"-c{index}")
                wire_pair(lab, server, client, {4: generate.SERVER[4]}, {4: generate.INTERNET_CLIENT[4]})
                if policy and policy.endswith(".nft"):
                    in_namespace(server, "nft", "-f", policy)
                elif policy:
                    state = tempfile.mkdtemp(prefix="state-", dir=config.directory)
                    in_namespace(server, *NFTC, "apply", "--state-dir", state, policy)
                start_ready(server, child.python(os.path.join(ROOT, "bench", "connrate.py"), "server", "25"), pids)
                pairs[name] = client
            for _ in range(config.pick(1, 5)):
                for name, client in pairs.items():
                    output = in_namespace(client, *child.python(os.path.join(ROOT, "bench", "connrate.py"), "client"),
                                          generate.SERVER[4], "25", str(count), str(seconds), timeout=60)
                    result = json.loads(output)
                    if result["failures"]:
                        raise RuntimeError(f"{name}: {result['failures']} connections failed")
                    rates[name].append(result["connections"] / result["seconds"])
        finally:
            stop(pids)
    empty = stats(rates["no ruleset"]).median
    tracked = stats(rates["conntrack only (nft -f)"]).median
    rows = []
    for name, values in rates.items():
        rate = stats(values)
        change = (rate.median - empty) / empty * 100
        versus_tracked = (rate.median - tracked) / tracked * 100
        rows.append([name, rate.text(digits=0), "" if name == "no ruleset" else f"{change:+.1f}%",
                     f"{versus_tracked:+.1f}%" if name.startswith("zone") else "", ""])
    last = (stats(rates[list(rates)[-1]]).median - empty) / empty * 100
    rows[-1][-1] = f"within 10%: {'met' if last >= -10 else 'MISSED'}"
    section.table(["server namespace", "connections per second", "vs no ruleset", "vs conntrack only", "target"],
                  rows)
    section.notes.append(f"Each run: up to {count:,} connections, at most {seconds} s, from 203.0.113.10 (zone "
                         "internet: its lookup goes through the whole IPv4 interval map) to port 25 (allowed). "
                         "The 10-address row separates the cost of conntrack and the rule path from the cost "
                         "of the map size; the conntrack-only row (a table that only accepts established "
                         "traffic) is the cost any stateful firewall pays before its first rule.")
    if last < -10:
        section.notes.append("Gap: most of the difference to no ruleset is connection tracking itself (the "
                             "conntrack-only row); the rules nftc adds on the path cost the difference between "
                             "that row and the zone rows. Next step: none in nftc's rules (the path is 17 rules, "
                             "constant); a host that cannot pay for conntrack needs a stateless design.")
    return section


APPLY_GAP = ("Gap, from the profiles below: for the small policy, `nftc apply` is a Python process: interpreter "
             "start-up and imports (table below) are about half of it, the compile and a listing of the live table "
             "(the rollback snapshot) most of the rest; `nft -f` is one C process. At 200k addresses, the compile "
             "(workload 1) and the snapshot cost as much as the load: nft 1.0.6 lists a table of 320k interval "
             "elements more slowly than it loads it. Next steps: when the live table's digest is the one recorded "
             "at the last apply, take the recorded script as the snapshot and list only the `dyn_` sets; keep a "
             "cache of compiled rulesets keyed by the sha256 of the policy's files, so re-applying an unchanged "
             "policy (boot, reload) skips the compiler and its imports.")

CONNTRACK_ONLY = """table inet conntrack_only {
\tchain input {
\t\ttype filter hook input priority filter; policy accept;
\t\tct state established,related accept
\t\tct state invalid drop
\t}
}
"""

WORKLOADS = (compile_sizes, rule_path, apply_vs_nft, ufw_recipe, dynamic_reload, connection_rate)
