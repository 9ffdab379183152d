"""Issue 12, "Proof on a fresh machine": the package and the README's quick start, each in a fresh Debian 12 root.

These machines cannot boot a VM, so each test builds the next best thing: a Debian 12 root made by `mmdebstrap`
from the distribution's archive (minbase, plus what a fresh server has and the quick start needs: git, sudo,
ca-certificates), entered with `pivot_root` inside a private mount and PID namespace (`unshare`), where /proc,
/sys, /dev and /run are mounted; nothing is ever mounted over the host's own files, and the namespace's mounts and
processes end with it. Same kernel and network namespace as the host: the roots reach the archive and PyPI, and
every kernel test inside makes network namespaces of its own, as on the host. Each root has a `policy-rc.d` that
lets no service start: a fail2ban started by its package would add its jail's rules to the host's firewall.

The base root is cached as a tarball in CACHE (root's, 0700; refused if anyone else could write it or a directory
above it) for MAX_AGE, and unpacked afresh for each test; `apt-get update` runs in each root, so every package
still comes from today's archive.

They run only with NFTC_FRESHROOT=1 (.ci/run sets it; tests/conftest.py deselects them otherwise, so the suite
the README's test command runs inside a root does not recurse into them). Run them alone with
`sudo NFTC_FRESHROOT=1 .venv/bin/python -m pytest -q -s tests/test_freshroot.py` (-s shows each step's time).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import re
import shutil
import stat
import subprocess
import time
from dataclasses import dataclass

import pytest

from helpers import tree_changes, tree_state, under_ci, unavailable

pytestmark = [pytest.mark.freshroot, pytest.mark.kernel, pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path("/var/cache/nftc-tests")
MAX_AGE = 7 * 24 * 3600  # a week: the roots run `apt-get update` anyway, the base only saves its download
SUITE = "bookworm"
ARCHIVE = ("deb http://deb.debian.org/debian bookworm main",
           "deb http://deb.debian.org/debian bookworm-updates main",
           "deb http://deb.debian.org/debian-security bookworm-security main")
FRESH_MACHINE = ("ca-certificates", "git", "sudo")  # a server's, beyond minbase: clone over https, the README's sudo
BOOTED_MACHINE = ("man-db", "systemd")  # what a booted Debian has and minbase lacks: `man`, `systemd-analyze`
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NO_SERVICES = "#!/bin/sh\n# tests/test_freshroot.py: no service starts in this root (it shares the host's network)\nexit 101\n"
UNITS = ("nftc.service", "nftc-refresh.service", "nftc-refresh.timer")
# The roots share the host's network, so they take its network settings: the resolver, the host names (sudo looks
# its own up), and the trust an egress proxy that inspects TLS needs (local CA certificates, pip's `cert`).
HOST_NETWORK = ("/etc/resolv.conf", "/etc/hosts", "/etc/pip.conf")
LOCAL_CAS = pathlib.Path("/usr/local/share/ca-certificates")
# Inside the private mount namespace: mount what a root needs, then make it the namespace's root with pivot_root and
# detach the host's tree (not chroot: the kernel refuses a user namespace to a chrooted process, and the suite makes
# some). The root is first bound onto itself, because pivot_root and `ip netns exec` need / to be a mount point.
ENTER = """set -e
root=$1; command=$2
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mkdir -p "$root/run/host"
cd "$root"
pivot_root . run/host
umount -l /run/host
rmdir /run/host
exec /usr/bin/env -i PATH="$PATH_IN" HOME=/root LANG=C.UTF-8 ${CI_IN:+CI=$CI_IN} /bin/bash -c "cd /root && $command"
"""


@dataclass(frozen=True)
class Step:
    """One command's outcome in a root, with how long it took (the report prints the times)."""

    command: str
    returncode: int
    output: str
    seconds: float


@dataclass(frozen=True)
class FreshRoot:
    """An unpacked Debian root under the test's tmp_path."""

    path: pathlib.Path

    def run(self, command: str, timeout: float = 600) -> Step:
        """`command` in bash, as root in /root of this root, stdout and stderr together. The namespace's processes
        all die with it (--kill-child: a timeout kills unshare, which takes PID 1 of the namespace with it)."""
        environment = {"PATH": PATH, "PATH_IN": PATH, "CI_IN": os.environ.get("CI", "") if under_ci() else ""}
        started = time.monotonic()
        result = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--kill-child", "--propagation", "private",
                                 "/bin/sh", "-c", ENTER, "enter", str(self.path), command],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=environment,
                                timeout=timeout)
        step = Step(command, result.returncode, result.stdout, time.monotonic() - started)
        print(f"freshroot: {step.seconds:7.1f} s  rc={step.returncode}  {command.splitlines()[0][:100]}")
        with open(self.log, "a", encoding="utf-8") as log:
            log.write(f"$ {command}\n{step.output}[rc={step.returncode}, {step.seconds:.1f} s]\n\n")
        return step

    @property
    def log(self) -> pathlib.Path:
        """Every step's whole output, next to the root (kept by pytest after the root is removed)."""
        return self.path.parent / "freshroot-steps.log"

    def ok(self, command: str, timeout: float = 600) -> str:
        """run(), which must succeed: its output."""
        step = self.run(command, timeout)
        assert step.returncode == 0, \
            f"in the fresh root, `{command}` failed ({step.returncode}; all of it: {self.log}):\n{step.output[-6000:]}"
        return step.output


def unsafe(path: pathlib.Path) -> str:
    """Root unpacks the cached root and runs what it holds: `path` and every directory above it must be root's,
    not a symlink and writable by no one else. The first that is not, as one line; '' when all are."""
    for each in (path, *path.parents):
        info = os.lstat(each)
        if stat.S_ISLNK(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            return (f"freshroot cache: {each} must be root's, not a symlink, and writable by no one else "
                    f"(owner uid {info.st_uid}, mode {stat.filemode(info.st_mode)}): fix it or remove {CACHE}")
    return ""


def refuse_unsafe(path: pathlib.Path) -> None:
    """Stop the test, naming the problem, when `path` is unsafe()."""
    problem = unsafe(path)
    if problem:
        pytest.fail(problem, pytrace=False)


def base_command(output: pathlib.Path) -> list[str]:
    """The mmdebstrap command that makes the base root: its text is also the cache key."""
    return ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={','.join(FRESH_MACHINE)}", SUITE, str(output),
            *ARCHIVE]


@pytest.fixture(scope="session")
def base_tarball() -> pathlib.Path:
    """The cached base root, made again when missing, older than MAX_AGE or made by another command."""
    if shutil.which("mmdebstrap") is None:
        unavailable("mmdebstrap is not installed (NFTC_FRESHROOT=1 scripts/setup.sh test installs it)")
    if not CACHE.exists():
        CACHE.mkdir(mode=0o700)
    refuse_unsafe(CACHE)
    key = hashlib.sha256(json.dumps(base_command(pathlib.Path("OUT"))).encode()).hexdigest()[:16]
    tarball = CACHE / f"{SUITE}-{key}.tar"
    if tarball.exists():
        refuse_unsafe(tarball)
        if time.time() - tarball.stat().st_mtime < MAX_AGE:
            print(f"freshroot: base root from the cache, {tarball}")
            return tarball
    partial = CACHE / f".partial-{os.getpid()}.tar"
    started = time.monotonic()
    try:
        made = subprocess.run(base_command(partial), capture_output=True, text=True, timeout=1800)
        assert made.returncode == 0, f"mmdebstrap failed:\n{made.stderr[-4000:]}"
        partial.chmod(0o600)
        partial.replace(tarball)
    finally:
        partial.unlink(missing_ok=True)
    for old in CACHE.glob(f"{SUITE}-*.tar"):
        if old != tarball:
            old.unlink()
    print(f"freshroot: {time.monotonic() - started:7.1f} s  mmdebstrap of the base root into {tarball}")
    return tarball


@pytest.fixture
def fresh_root(base_tarball, tmp_path):
    """The base root unpacked into tmp_path, with the host's resolver and no service allowed to start; removed
    afterwards, once no mount is left under it (the namespaces that mounted /dev there have ended)."""
    path = tmp_path / "root"
    path.mkdir()
    started = time.monotonic()
    subprocess.run(["tar", "-C", str(path), "--numeric-owner", "-xpf", str(base_tarball)], check=True, timeout=600)
    for name in HOST_NETWORK:
        if os.path.exists(name):
            shutil.copyfile(name, path / name.lstrip("/"))
    (path / "usr/sbin/policy-rc.d").write_text(NO_SERVICES)
    (path / "usr/sbin/policy-rc.d").chmod(0o755)
    print(f"freshroot: {time.monotonic() - started:7.1f} s  unpack the base root")
    root = FreshRoot(path)
    certificates = sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []
    for certificate in certificates:
        shutil.copyfile(certificate, path / str(certificate).lstrip("/"))
    if certificates:
        root.ok("update-ca-certificates")
    yield root
    mounted = [line.split()[4] for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines()]
    assert not [point for point in mounted if point.startswith(str(path))], "a mount is left in the fresh root"
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def deb(tmp_path_factory) -> pathlib.Path:
    """nftc_VERSION_all.deb, built from the checkout by the README's command (in a copy of the checkout)."""
    checked = subprocess.run(["dpkg-checkbuilddeps", str(ROOT / "debian/control")], capture_output=True, text=True)
    if shutil.which("lintian") is None or checked.returncode != 0:
        unavailable(f"the package's build dependencies and lintian: {checked.stderr.strip()} "
                    "(NFTC_FRESHROOT=1 scripts/setup.sh test installs them)")
    output = tmp_path_factory.mktemp("deb")
    before = tree_state(ROOT / "debian")
    started = time.monotonic()
    built = subprocess.run([str(ROOT / "scripts/build-deb.sh"), str(output)], capture_output=True, text=True,
                           timeout=900)
    assert built.returncode == 0, f"scripts/build-deb.sh failed:\n{built.stderr[-6000:]}"
    assert tree_changes(before, tree_state(ROOT / "debian")) == [] and not (ROOT / ".pybuild").exists(), \
        "the build wrote into the checkout"
    print(f"freshroot: {time.monotonic() - started:7.1f} s  scripts/build-deb.sh (build, fast tests, lintian)")
    (package,) = output.glob("nftc_*_all.deb")
    return package


def test_item_proof1_the_package_installs_from_the_archive_and_works(fresh_root, deb):
    """Issue 12, proof 1: `apt install ./nftc_*.deb` in a fresh root resolves every dependency from the archive
    (python3-lark is not one: the parser is generated), and the installed nftc, its man page, a shipped ruleset,
    the example policy and the units all work; the units are installed, not enabled, and /var/lib/nftc is root's."""
    shutil.copy(deb, fresh_root.path / "root")
    fresh_root.ok("apt-get update -qq")
    fresh_root.ok(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./{deb.name}")
    assert fresh_root.run("dpkg-query -W -f '${Status}' python3-lark").output != "install ok installed"
    fresh_root.ok(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q {' '.join(BOOTED_MACHINE)}")

    from nftc import __version__

    assert __version__ in fresh_root.ok("nftc --version")
    assert "nftc" in fresh_root.ok("MANPAGER=cat man nftc")
    fresh_root.ok("nftc check /usr/share/nftc/rulesets/zimbra-single.zfw")
    assert "table inet zimbra {" in fresh_root.ok("nftc compile /etc/nftc/policy.zfw.example")
    assert fresh_root.ok("ls -A /etc/nftc/conf.d") == ""
    (fresh_root.path / "etc/nftc/conf.d/50-extra.zfw").write_text("zone extra = 198.51.100.0/24\nallow extra -> ssh\n")
    assert "198.51.100.0/24" in fresh_root.ok("nftc compile /etc/nftc/policy.zfw.example"), "conf.d/ is not read"
    assert fresh_root.ok(f"systemd-analyze verify {' '.join(UNITS)} 2>&1") == ""
    assert fresh_root.ok("stat -c '%U %G %a' /var/lib/nftc").split() == ["root", "root", "700"]
    assert fresh_root.ok("find /etc/systemd -name 'nftc*'") == "", "the package enabled a unit"
    starts = fresh_root.run("grep -E 'deb-systemd-invoke|invoke-rc.d|systemctl' /var/lib/dpkg/info/nftc.postinst")
    assert starts.returncode == 1, f"the package starts a unit (this root's policy-rc.d would hide it):\n{starts.output}"


def quick_start(readme: str) -> list[str]:
    """The commands of the README's "Quick start" block, as written (comments and all)."""
    section = readme.split("\n## Quick start", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md's Quick start has no ```sh block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_item_proof2_the_readme_quick_start_runs_from_a_fresh_clone(fresh_root):
    """Issue 12, proof 2: in another fresh root, the README's quick start, exactly as written, from a clone of the
    checkout's HEAD (what is committed): the demo, then the whole test suite under CI=true (sudo keeps CI, as a
    CI machine's sudoers would), where no kernel test may skip."""
    bare = fresh_root.path / "srv/nftc.git"
    subprocess.run(["git", "clone", "--quiet", "--bare", "--no-hardlinks", str(ROOT), str(bare)], check=True,
                   timeout=300)
    commands = quick_start(subprocess.run(["git", "-C", str(bare), "show", "HEAD:README.md"], capture_output=True,
                                          text=True, check=True).stdout)
    assert commands[0].startswith("git clone <this repository> ") and len(commands) == 3, commands
    (fresh_root.path / "etc/sudoers.d/ci").write_text('Defaults env_keep += "CI"\n')
    (fresh_root.path / "etc/sudoers.d/ci").chmod(0o440)
    script = "set -e\n" + "\n".join(f"{command}\necho \"freshroot: step {number} done at $SECONDS s\""
                                     for number, command in enumerate(commands, 1))
    output = fresh_root.ok(script.replace("<this repository>", "/srv/nftc.git"), timeout=3600)
    print("\n".join(line for line in output.splitlines() if line.startswith("freshroot: ")))
    summaries = [line for line in output.splitlines() if re.search(r"^\d+ passed.* in [\d.]+s", line)]
    assert summaries, output[-2000:]
    summary = summaries[-1]  # pytest's last line; the script echoes its step after it
    assert re.search(r"\d+ passed", summary) and not re.search(r"failed|error|skipped", summary), summary


def test_item_cache_another_user_could_write_is_refused():
    """The cache check refuses a directory someone else could write (the base root in it would run as root), and
    accepts the same directory once it is root's alone."""
    probe = CACHE.parent / f"nftc-tests-probe-{os.getpid()}"
    probe.mkdir(mode=0o700)
    try:
        probe.chmod(0o777)
        assert str(probe) in unsafe(probe) and "drwxrwxrwx" in unsafe(probe)
        probe.chmod(0o700)
        assert unsafe(probe) == ""
    finally:
        probe.rmdir()
