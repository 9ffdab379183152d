"""Issue 11, "Roll-out on an existing engine: Ansible": deploy/ansible/ run for real.

A controller namespace runs `ansible-playbook` (ansible-core from the venv) over SSH to the five hosts of
rulesets/zimbra-cluster.zfw, each a namespace with its own sshd (host key, client key and config made here, in
tmp_path; the machine's own sshd and /etc/ssh are never used), its own state directory and policy directory. All
of them hang off one bridge; the controller is an admin workstation (10.9.0.10, in the policy's `admins` zone).
ldap1 answers the controller by another link than the one the controller talks to it on (asymmetric routing), so
the policy says `rpfilter loose`: without that line, strict reverse-path filtering drops the controller's new SSH
connections to ldap1, which the lockout guard's static check cannot see, and only the rollback guard saves it.

Also here: `nftc diff --exit-code` and `nftc apply --format json`, which the role reads.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from apply_helpers import ROOT, compiled_digest, lab, server  # noqa: F401  (fixtures)
from nftc.lab.netns import Lab
from nftc.system import child

pytestmark = pytest.mark.kernel

CLUSTER = ROOT / "rulesets" / "zimbra-cluster.zfw"
PLAYBOOK = ROOT / "deploy" / "ansible" / "site.yml"
ANSIBLE_PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
CONTROLLER = {4: "10.9.0.10", 6: "fd00:9::10"}  # inside the policy's `admins` zone
ASYMMETRIC = "ldap1"  # answers the controller over a second link
CONFIRM_SECONDS = 20  # the guard's deadline: covers a busy 2-core machine's checks; a failure waits it out
SSH_TIMEOUT = 5
REQUIRED = [  # what the cluster needs, whatever the policy says (group_vars of the example inventory)
    {"from": "mta1", "to": "mbox1", "ports": [7025]},
    {"from": "mta1", "to": "mbox2", "ports": [7025]},
    {"from": "proxy1", "to": "mbox1", "ports": [7072, 8443]},
    {"from": "mbox1", "to": "ldap1", "ports": [389]},
]


def good_policy() -> str:
    """The shipped cluster policy, plus `rpfilter loose` (ldap1's routes are asymmetric)."""
    return CLUSTER.read_text() + "rpfilter loose\n"


def cut_7025_policy() -> str:
    """The good policy with mta1 -> mbox1 7025 denied, written on the blank line before `allow cluster` (so no
    other line moves), and mbox1 taken out of the assertion that mta1 delivers there (which would refuse it at
    compile time): it compiles, and only a check from mta1 finds the cut."""
    lines = good_policy().splitlines(keepends=True)
    index = next(i for i, line in enumerate(lines) if line.startswith("allow cluster"))
    assert lines[index - 1].strip() == ""
    lines[index - 1] = "deny mta1 -> lmtp on mbox1\n"
    text = "".join(lines)
    assertion = "assert mta1     -> lmtp on mbox1, mbox2"
    assert assertion in text
    return text.replace(assertion, "assert mta1     -> lmtp on mbox2")


def cluster_hosts() -> dict[str, tuple[str, ...]]:
    """Host name -> its addresses, from the shipped policy (their one home)."""
    from nftc.language.loader import load_policy

    return {host.name: tuple(str(a.network_address) for a in host.addresses)
            for host in load_policy(str(CLUSTER), {}).hosts}


class Cluster:
    """The namespaces, their sshds, and what ansible-playbook needs, all under tmp."""

    def __init__(self, lab: Lab, tmp: pathlib.Path):
        self.lab, self.tmp, self.hosts = lab, tmp, cluster_hosts()
        self.sshd: dict[str, subprocess.Popen] = {}
        self.ns: dict[str, str] = {}
        self._network()
        self._keys()
        for name in self.hosts:
            self._start_sshd(name)

    def _network(self) -> None:
        lab = self.lab
        switch = lab.namespace("sw")
        lab.exec(switch, "ip", "link", "add", "br0", "type", "bridge")
        lab.exec(switch, "ip", "link", "set", "br0", "up")
        self.controller = lab.namespace("ctl")
        members = [("ctl", self.controller, CONTROLLER, ("10.0.0.0/24", "fd00:10::/64"))]
        for name, addresses in self.hosts.items():
            self.ns[name] = lab.namespace(name)
            members.append((name, self.ns[name], {6 if ":" in a else 4: a for a in addresses},
                            ("10.9.0.0/24", "fd00:9::/64")))
        for index, (_, namespace, addresses, routes) in enumerate(members):
            port = f"p{index}"
            lab.wire(switch, namespace, (), tuple(f"{a}/{64 if v == 6 else 24}" for v, a in addresses.items()),
                     left_if=port)
            lab.exec(switch, "ip", "link", "set", port, "master", "br0")
            for route in routes:
                lab.exec(namespace, "ip", "-6" if ":" in route else "-4", "route", "add", route, "dev", "eth0")
        lab.exec(self.controller, "sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0")
        # ldap1 answers the controller over a second link: the controller's packets come in on eth0, the route
        # back leaves by eth1 (a static neighbour: the second link has no addresses).
        asymmetric = self.ns[ASYMMETRIC]
        lab.wire(self.controller, asymmetric, (), (), left_if="eth1", right_if="eth1")
        mac = json.loads(lab.exec(self.controller, "ip", "-j", "link", "show", "eth1").stdout)[0]["address"]
        lab.exec(asymmetric, "ip", "route", "add", f"{CONTROLLER[4]}/32", "dev", "eth1")
        lab.exec(asymmetric, "ip", "neigh", "replace", CONTROLLER[4], "lladdr", mac, "dev", "eth1", "nud", "permanent")

    def _keys(self) -> None:
        keygen = ("ssh-keygen", "-q", "-t", "ed25519", "-N", "")
        self.client_key = self.tmp / "id_ed25519"
        subprocess.run([*keygen, "-f", str(self.client_key), "-C", "controller"], check=True, timeout=30)
        (self.tmp / "authorized_keys").write_text(self.client_key.with_suffix(".pub").read_text())
        known = []
        for name, addresses in self.hosts.items():
            key = self.tmp / name / "ssh_host_ed25519_key"
            key.parent.mkdir()
            subprocess.run([*keygen, "-f", str(key), "-C", name], check=True, timeout=30)
            public = " ".join(key.with_suffix(".pub").read_text().split()[:2])
            known += [f"{address} {public}" for address in addresses]
        (self.tmp / "known_hosts").write_text("\n".join(known) + "\n")

    def _start_sshd(self, name: str) -> None:
        """sshd in the host's namespace, in a mount namespace of its own whose /run is a fresh tmpfs: sshd needs
        /run/sshd (privilege separation), and the machine's /run is left alone."""
        home = self.tmp / name
        config = home / "sshd_config"
        config.write_text(
            f"Port 22\nHostKey {home / 'ssh_host_ed25519_key'}\nPidFile none\n"
            f"AuthorizedKeysFile {self.tmp / 'authorized_keys'}\nPermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PrintMotd no\nSubsystem sftp internal-sftp\n")
        script = ("mount -t tmpfs -o mode=0755 c11d-sshd /run && mkdir -m 0755 /run/sshd && "
                  f"exec /usr/sbin/sshd -D -e -f {config}")
        log = open(home / "sshd.log", "wb")
        self.sshd[name] = subprocess.Popen(
            ["ip", "netns", "exec", self.ns[name], "unshare", "--mount", "--propagation", "private", "sh", "-c",
             script], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 20
        while ":22 " not in self.lab.exec(self.ns[name], "ss", "-Hltn").stdout:
            assert self.sshd[name].poll() is None, (home / "sshd.log").read_text()
            assert time.monotonic() < deadline, f"sshd in {name} did not listen"
            time.sleep(0.1)

    def close(self) -> None:
        """End what this cluster started, by PID: the sshds, then every process left in its namespaces (SSH
        sessions, nftc's guards, ssh's connection masters on the controller)."""
        for process in self.sshd.values():
            process.terminate()
        for process in self.sshd.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for namespace in self.lab.namespaces:
            _end_processes(namespace)

    def policy(self, name: str, text: str) -> pathlib.Path:
        path = self.tmp / "policies" / name / "policy.zfw"  # the name the hosts give it (nftc_policy_name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def inventory(self, policy: pathlib.Path, check_matrix: bool) -> pathlib.Path:
        """The example inventory's shape, for these namespaces: every host its own state and policy directory
        (they share this machine's file system), nftc run from this checkout, no install."""
        hosts = {name: {"ansible_host": addresses[0], "nftc_addresses": list(addresses),
                        "nftc_state_dir": str(self.tmp / name / "state"),
                        "nftc_policy_dir": str(self.tmp / name / "etc")}
                 for name, addresses in self.hosts.items()}
        variables = {"ansible_user": "root", "ansible_python_interpreter": "/usr/bin/python3",
                     "nftc_policy": str(policy), "nftc_command": child.python_module("nftc"),
                     "nftc_install": "none", "nftc_confirm_seconds": CONFIRM_SECONDS,
                     "nftc_required_paths": REQUIRED, "nftc_check_matrix": check_matrix}
        path = self.tmp / "inventory.json"
        path.write_text(json.dumps({"zimbra": {"hosts": hosts, "vars": variables}}))
        return path

    def play(self, policy: pathlib.Path, check_matrix: bool = False) -> subprocess.CompletedProcess:
        """ansible-playbook site.yml with this cluster's inventory; `check_matrix`: also check every path the
        policy opens between hosts (slower: every caller of a host connects to it)."""
        config = self.tmp / "ansible.cfg"
        config.write_text(
            "[defaults]\n"
            f"remote_tmp = {self.tmp / 'ansible-remote'}\nlocal_tmp = {self.tmp / 'ansible-local'}\n"
            f"private_key_file = {self.client_key}\ntimeout = {SSH_TIMEOUT}\nforks = 5\n"
            "host_key_checking = True\nretry_files_enabled = False\n"
            "[connection]\npipelining = True\n"
            "[ssh_connection]\n"
            f"ssh_args = -F /dev/null -o UserKnownHostsFile={self.tmp / 'known_hosts'} -o IdentitiesOnly=yes "
            "-o ControlMaster=auto -o ControlPersist=30s\n"
            f"control_path_dir = {self.tmp / 'cp'}\n")
        environment = {k: v for k, v in os.environ.items()
                       if k not in ("SSH_CONNECTION", "SSH_CLIENT", "SSH_AUTH_SOCK", "SSH_TTY")}
        environment.update(ANSIBLE_CONFIG=str(config), ANSIBLE_HOME=str(self.tmp / "ansible-home"),
                           PYTHONDONTWRITEBYTECODE="1", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
        return subprocess.run(
            ["ip", "netns", "exec", self.controller, str(ANSIBLE_PLAYBOOK), "-i", str(self.inventory(policy, check_matrix)),
             str(PLAYBOOK)], cwd=self.tmp, env=environment, capture_output=True, text=True, timeout=300)

    def digest(self, name: str) -> str | None:
        """The digest of nftc's table loaded in the host's namespace."""
        from nftc.system import live

        return live.digest(self.lab.exec(self.ns[name], "nft", "list", "table", "inet", "zimbra", check=False).stdout)

    def pending(self, name: str) -> bool:
        """An apply still waiting for its confirm (the guard armed)."""
        return (self.tmp / name / "state" / "pending.json").exists()


def _end_processes(namespace: str) -> None:
    """Every process in one of our namespaces, by PID: TERM, then KILL after a bounded wait."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
        for pid in map(int, pids):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and subprocess.run(
                ["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split():
            time.sleep(0.1)


def recap(result: subprocess.CompletedProcess) -> dict[str, dict[str, int]]:
    """PLAY RECAP: host -> {"ok": n, "changed": n, "unreachable": n, "failed": n, ...}."""
    rows = re.findall(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", result.stdout, re.MULTILINE)
    return {host: {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", counts)} for host, counts in rows}


def host_digests(policy: pathlib.Path) -> dict[str, str]:
    from nftc.compiler import compile_policy

    return {name: compile_policy(str(policy), {}, host=name).digest for name in cluster_hosts()}


def said(result: subprocess.CompletedProcess) -> str:
    return f"rc={result.returncode}\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not ANSIBLE_PLAYBOOK.exists() or shutil.which("sshd", path="/usr/sbin:/usr/bin") is None:
        pytest.fail("needs ansible-core in the venv and openssh-server: scripts/setup.sh test installs both")
    with Lab() as lab:
        made = Cluster(lab, tmp_path_factory.mktemp("ansible"))
        try:
            yield made
        finally:
            made.close()


def rolled_out(cluster: Cluster, policy: pathlib.Path) -> subprocess.CompletedProcess | None:
    """Run the playbook unless every host already has `policy` loaded and confirmed (a test's starting point)."""
    wanted = host_digests(policy)
    if all(cluster.digest(n) == d and not cluster.pending(n) for n, d in wanted.items()):
        return None
    result = cluster.play(policy)
    assert result.returncode == 0, said(result)
    return result


@pytest.mark.slow
def test_item_ansible_first_run_changes_every_host_second_run_changes_nothing(cluster):
    """Issue 11, Ansible: the first run applies and confirms each host's ruleset (changed on every host), the
    second changes nothing (changed=0 everywhere: nftc diff --exit-code says so)."""
    policy = cluster.policy("good", good_policy())
    first = cluster.play(policy)
    assert first.returncode == 0, said(first)
    assert set(recap(first)) == set(cluster.hosts), said(first)
    assert all(counts["changed"] > 0 for counts in recap(first).values()), said(first)
    for name, digest in host_digests(policy).items():
        assert cluster.digest(name) == digest, name
        assert not cluster.pending(name), f"{name}: the role did not confirm"
        assert (cluster.tmp / name / "etc" / "policy.zfw").read_text() == good_policy()
    second = cluster.play(policy)
    assert second.returncode == 0, said(second)
    assert {name: counts["changed"] for name, counts in recap(second).items()} == dict.fromkeys(cluster.hosts, 0), \
        said(second)


@pytest.mark.slow
def test_item_ansible_policy_cutting_controller_ssh_is_rolled_back_and_stops_the_play(cluster):
    """Issue 11, Ansible: a policy that cuts the controller's SSH (here: strict reverse-path filtering on ldap1,
    whose routes are asymmetric; the lockout check at apply cannot see routes) is rolled back by the guard, that
    host fails, and the play stops: no other host is touched, and the kept policy is still the good one."""
    good = cluster.policy("good", good_policy())
    rolled_out(cluster, good)
    before = host_digests(good)
    bad = cluster.policy("strict", CLUSTER.read_text())
    assert host_digests(bad)[ASYMMETRIC] != before[ASYMMETRIC]
    result = cluster.play(bad)
    assert result.returncode != 0, said(result)
    counts = recap(result)
    assert counts[ASYMMETRIC]["failed"] == 1, said(result)
    assert "cannot open a new SSH connection" in result.stdout, said(result)
    assert "The guard rolled the table back" in result.stdout, said(result)
    assert all(counts.get(name, {}).get("ok", 0) == 0 for name in cluster.hosts if name != ASYMMETRIC), said(result)
    for name, digest in before.items():
        assert cluster.digest(name) == digest, name
    assert (cluster.tmp / ASYMMETRIC / "etc" / "policy.zfw").read_text() == good_policy()


@pytest.mark.slow
def test_item_ansible_policy_dropping_the_controllers_ssh_is_refused_before_loading(cluster):
    """Issue 11, Ansible: a policy with no SSH rule for the admins (the controller's zone) is refused by nftc's
    lockout check through Ansible's SSH session and sudo (it finds $SSH_CONNECTION in sudo's environment):
    nothing is loaded, the first host fails, the play stops."""
    good = cluster.policy("good", good_policy())
    rolled_out(cluster, good)
    before = host_digests(good)
    rule = "allow admins   -> ssh"
    assert good_policy().count(rule) == 1
    result = cluster.play(cluster.policy("nossh", good_policy().replace(rule, "# (no ssh for the admins)")))
    assert result.returncode != 0, said(result)
    assert recap(result)["ldap1"]["failed"] == 1, said(result)
    assert "refusing: the admin connection from 10.9.0.10 to tcp port 22" in result.stdout, said(result)
    for name, digest in before.items():
        assert cluster.digest(name) == digest and not cluster.pending(name), name


@pytest.mark.slow
def test_item_ansible_policy_cutting_mta_to_mailbox_lmtp_fails_the_peer_check_and_rolls_back(cluster):
    """Issue 11, Ansible: a policy that cuts mta1 -> mbox1 7025 compiles and keeps the controller's SSH, but the
    check from mta1 to mbox1 (a required path; the policy's own matrix, checked too here, no longer has it) finds
    the drop: mbox1 is rolled back by the guard and fails, and the play stops before mbox2. The cut changes only
    mbox1's ruleset, so the hosts before it are unchanged."""
    good = cluster.policy("good", good_policy())
    rolled_out(cluster, good)
    before = host_digests(good)
    cut = cluster.policy("cut", cut_7025_policy())
    after = host_digests(cut)
    assert [name for name in after if after[name] != before[name]] == ["mbox1"]
    result = cluster.play(cut, check_matrix=True)
    assert result.returncode != 0, said(result)
    counts = recap(result)
    assert counts["mbox1"]["failed"] == 1, said(result)
    assert re.search(r"dropped: 10\.0\.0\.14 port 7025 \(no answer", result.stdout), said(result)
    assert "The guard rolled the table back" in result.stdout, said(result)
    assert cluster.digest("mbox1") == before["mbox1"]
    assert cluster.digest("mbox2") == before["mbox2"] and counts.get("mbox2", {}).get("ok", 0) == 0
    for name in ("ldap1", "mta1", "proxy1"):
        assert cluster.digest(name) == after[name], name  # the policy file changed there, not the ruleset
    assert result.stdout.count("TASK [nftc : Apply") == 1, said(result)  # mbox1's: diff said no change before
    assert (cluster.tmp / "mbox1" / "etc" / "policy.zfw").read_text() == good_policy()


@pytest.mark.slow
def test_item_ansible_matrix_paths_are_the_tcp_paths_between_hosts():
    """Issue 11: the role's filter turns `nftc matrix --format json` into the TCP paths it checks between hosts:
    mta1 -> mbox1 7025, not proxy1 -> mbox1 7025; no zone as a source, no UDP (514 to the logger)."""
    sys.path.insert(0, str(ROOT / "deploy" / "ansible" / "roles" / "nftc" / "filter_plugins"))
    try:
        from nftc_matrix import nftc_matrix_paths
    finally:
        sys.path.pop(0)
    out = subprocess.run(child.python_module("nftc", "matrix", str(CLUSTER), "--format", "json"), cwd=child.CWD,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    paths = {(p["from"], p["to"]): p["ports"] for p in nftc_matrix_paths(json.loads(out))}
    assert 7025 in paths["mta1", "mbox1"] and 7025 not in paths["proxy1", "mbox1"]
    assert 7072 in paths["proxy1", "mbox1"] and 7072 not in paths.get(("mta1", "mbox1"), [])
    assert {name for pair in paths for name in pair} <= set(cluster_hosts())
    assert all(514 not in ports and pair[0] != pair[1] for pair, ports in paths.items())


def test_item_ansible_diff_exit_code_says_whether_apply_would_change_anything(server):
    """Issue 11: `nftc diff --exit-code` exits 1 while the live table differs from the policy, 0 once applied, and
    2 on an error (1 is taken), as git diff --exit-code does; the role decides "changed" with it."""
    from apply_helpers import SITE

    policy = server.policy("site.zfw", SITE)
    assert server.nftc("diff", policy, "--exit-code").returncode == 1
    assert server.nftc("diff", policy).returncode == 0  # without the option: 0 whatever the difference
    assert server.nftc("apply", policy).returncode == 0
    same = server.nftc("diff", policy, "--exit-code")
    assert same.returncode == 0, same.stdout + same.stderr
    other = server.policy("other.zfw", SITE.replace("smtp, ssh", "smtp"))
    assert server.nftc("diff", other, "--exit-code").returncode == 1
    server.nft("add", "rule", "inet", "zfw", "input", "accept")  # a hand edit: drift, which apply would undo
    assert server.nftc("diff", policy, "--exit-code").returncode == 1
    assert server.nftc("diff", str(server.dir / "missing.zfw"), "--exit-code").returncode == 2


def test_item_ansible_apply_format_json_says_changed_or_unchanged(server):
    """Issue 11: `nftc apply --format json` prints one JSON object (the human lines go to standard error):
    changed true with the digest and the guard's deadline, then changed false, result "unchanged"."""
    from apply_helpers import SITE

    policy = server.policy("site.zfw", SITE)
    first = server.nftc("apply", policy, "--format", "json", "--confirm", "30")
    assert first.returncode == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["changed"] is True and document["result"] == "ok"
    assert document["digest"] == compiled_digest(policy) and document["table"] == "inet zfw"
    assert time.time() < document["confirm_deadline"] <= time.time() + 30
    assert "rolling back at" in first.stderr
    assert server.nftc("confirm").returncode == 0
    again = server.nftc("apply", policy, "--format", "json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {**document, "changed": False, "result": "unchanged", "confirm_deadline": None,
                                        "policy": document["policy"]}
