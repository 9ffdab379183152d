"""Issue 11 (`apply`, `check`, `diff`, `lab` take `--host`): each command says, about the host of a cluster policy,
what that command can do. `nftc refresh` takes no host: it compiles the host the last apply recorded, also when
it redraws a policy's errors; `compile` alone has `--all -o DIR`. Each message is checked whole. Fast: no root,
no kernel (refresh stops at the compile, before any lock or download).
"""

from __future__ import annotations

import pathlib

import pytest

from nftc.cli.main import main
from nftc.system.records import APPLIED, Applied, Provenance, Target
from nftc.system.state import StateDir, as_json

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLUSTER = str(ROOT / "rulesets" / "zimbra-cluster.zfw")
PLAIN = str(ROOT / "rulesets" / "zimbra-multi.zfw")
HOSTS = "ldap1, mta1, proxy1, mbox1, mbox2"

# A two-host cluster whose mbox1 names a service that does not exist: only mbox1's compile fails.
BROKEN = """\
host mta1  = 10.0.0.12 roles mta
host mbox1 = 10.0.0.14 roles mailbox
zone admins = 10.9.0.0/24
allow cluster -> zimbra.roles
allow admins -> nosuch on mbox1
"""


def _nftc(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _state(tmp_path, host: str | None) -> str:
    """A state directory whose last apply recorded `host` (None: an apply that recorded no host)."""
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    provenance = Provenance("0.1.0", "ab" * 32, False, 0, (), host)
    applied = Applied("/etc/nftc/policy.zfw", "cd" * 32, Target("inet", "zimbra"), "2026-11-30T00:00:00Z",
                      provenance=provenance)
    state.stage({APPLIED: as_json(applied.as_dict())}).commit()
    return state.path


def test_issue11_refresh_draws_the_errors_of_the_host_it_compiled(tmp_path, capsys):
    """Refresh compiles the recorded host (mbox1); when that fails, the errors it draws are that host's, with the
    line and the caret, not a request for a --host that refresh does not take."""
    path = tmp_path / "cluster.zfw"
    path.write_text(BROKEN)
    code, out, err = _nftc(capsys, "refresh", str(path), "--state-dir", _state(tmp_path, "mbox1"))
    assert (code, out) == (2, "")
    assert err == (f"{path}:5:17: error: unknown service 'nosuch'\n"
                   "  allow admins -> nosuch on mbox1\n"
                   "                  ^~~~~~\n")


def test_issue11_refresh_without_a_recorded_host_says_to_apply_first(tmp_path, capsys):
    """A cluster policy and a last apply that recorded no host of it (an older record, another policy): refresh
    has neither --host nor --all, so it says what does help, whole."""
    code, out, err = _nftc(capsys, "refresh", CLUSTER, "--state-dir", _state(tmp_path, None))
    assert (code, out) == (2, "")
    assert err == (f"nftc: refresh: {CLUSTER} declares hosts {HOSTS}, and the last apply recorded none of them: "
                   "refresh reloads the blocklists of the host last applied; run nftc apply first\n")


def test_issue11_compile_without_host_offers_host_and_all(capsys):
    """`compile` is the one command with --all -o DIR."""
    assert _nftc(capsys, "compile", CLUSTER) == (2, "", (
        f"nftc: compile: {CLUSTER} declares hosts {HOSTS}: choose one with --host NAME (or --all -o DIR)\n"))


@pytest.mark.parametrize("args, said", [
    (("--host", "mbox1", PLAIN), f"{PLAIN} declares no hosts: --host mbox1 is for a cluster policy "
                                 "(host NAME = ADDRESS, ... roles ROLE, ...)"),
    (("--host", "mbox9", CLUSTER), f"{CLUSTER} has no host 'mbox9'; did you mean 'mbox2'?"),
    (("--scanner", "nmap", CLUSTER), "the cluster lab probes with the built-in prober (--scanner nmap: with --host)"),
], ids=["host-without-hosts", "unknown-host", "cluster-with-nmap"])
def test_issue11_lab_host_messages_name_only_what_lab_takes(capsys, args, said):
    """`nftc lab` on a cluster policy runs every host without --host, so no message sends it to --all -o DIR;
    each is refused before root is needed, in one line."""
    assert _nftc(capsys, "lab", *args) == (2, "", f"nftc: lab: {said}\n")
