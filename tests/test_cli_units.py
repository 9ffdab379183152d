"""Issue 8, CLI and error items, without root or a kernel: one error base class carrying its exit code, caught
once in `main`; the decisions the apply command used to make itself (what to load at boot, the dynamic sets of
a compilation), now plain functions of nftc.system.apply."""

from __future__ import annotations

import pathlib
import signal

import pytest

from nftc.backend.render_nft import render_nft
from nftc.cli.common import interrupted_exit_code
from nftc.errors import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_POLICY, NftcError
from nftc.lab.session import LabError, NotALabPrefix, tear_down
from nftc.language.diagnostics import Diagnostic, PolicyError
from nftc.system import live
from nftc.system.apply import compiled_from, last_applied, roll_back_unconfirmed
from nftc.system.records import APPLIED, SCRIPT, read_applied
from nftc.system.restore import ApplyError
from nftc.system.guard import GuardNotArmed
from nftc.system.kernel import KernelError
from nftc.system.lockout import EndpointError
from nftc.system.records import Applied, Target
from nftc.system.state import StateDir, StateError, as_json

from helpers import compile_text, run_cli

ROOT = pathlib.Path(__file__).resolve().parent.parent
MINIMAL = ROOT / "rulesets" / "minimal.zfw"
DYNAMIC = "zone internet = any\nzone blocklist = dynamic\nallow internet -> smtp\n"

USER_ERRORS = [(PolicyError, EXIT_POLICY), (KernelError, EXIT_FAILURE), (StateError, EXIT_FAILURE),
               (ApplyError, EXIT_FAILURE), (GuardNotArmed, EXIT_FAILURE), (EndpointError, EXIT_POLICY),
               (LabError, EXIT_FAILURE), (NotALabPrefix, EXIT_POLICY)]


# One error base class carrying its exit code.


@pytest.mark.parametrize("error, code", USER_ERRORS, ids=[e.__name__ for e, _ in USER_ERRORS])
def test_item8_every_user_error_is_an_nftc_error_with_its_exit_code(error, code):
    assert issubclass(error, NftcError) and error.exit_code == code


@pytest.mark.parametrize("error, code", USER_ERRORS, ids=[e.__name__ for e, _ in USER_ERRORS])
def test_item8_main_says_any_nftc_error_in_one_line_with_its_exit_code(error, code, monkeypatch, fresh_cli_parser):
    """The one catch in `main`: whatever command raises it, `nftc: COMMAND: message` and the error's code."""
    def failing(args):
        raise (error([Diagnostic("error", "the message")]) if error is PolicyError else error("the message"))
    monkeypatch.setattr("nftc.cli.compile._compile", failing)
    run = run_cli("compile", str(MINIMAL))
    assert (run.code, run.out, run.err) == (code, "", "nftc: compile: the message\n")


def test_item8_a_bad_admin_from_is_a_usage_error_before_the_kernel(tmp_path):
    """EndpointError reaches `main` (no catch of its own in the apply command): exit 2, nothing written."""
    state = tmp_path / "state"
    run = run_cli("apply", str(MINIMAL), "--admin-from", "nonsense", "--state-dir", str(state))
    assert run.code == EXIT_POLICY
    assert run.err.endswith("nftc: apply: --admin-from 'nonsense' is not ADDR, ADDR:PORT or [IPV6]:PORT\n")
    assert not state.exists()


def test_item8_lab_down_with_a_name_that_is_not_a_lab_exits_2(monkeypatch):
    """A usage error, as before the one catch (other lab errors exit 1); refused before any command runs."""
    with pytest.raises(NotALabPrefix):
        tear_down("eth0")
    monkeypatch.setattr("nftc.cli.lab.os.geteuid", lambda: 0)
    run = run_cli("lab", "--down", "eth0")
    assert run.code == EXIT_POLICY
    assert run.err.startswith("nftc: lab: 'eth0' is not a lab prefix") and run.err.count("\n") == 1


def test_item8_an_interrupted_command_exits_128_plus_the_signal():
    assert interrupted_exit_code(KeyboardInterrupt()) == EXIT_INTERRUPTED == 130
    stopped = KeyboardInterrupt()
    stopped.signum = signal.SIGTERM
    assert interrupted_exit_code(stopped) == 143


# Decisions moved out of the CLI into nftc.system.apply.


def test_item8_compiled_from_carries_the_dynamic_zones_sets():
    compilation = compile_text(DYNAMIC)
    compiled = compiled_from(compilation, "/etc/nftc/policy.zfw")
    assert compiled.target == Target("inet", compilation.table.name)
    assert compiled.script == render_nft(compilation.table) and compiled.digest == compilation.digest
    assert compiled.dynamic_sets == ("dyn_blocklist_v4", "dyn_blocklist_v6")
    assert compiled.policy == "/etc/nftc/policy.zfw"
    assert compiled_from(compile_text("zone internet = any\nallow internet -> smtp\n"), "p").dynamic_sets == ()


def _applied_state(tmp_path, script: str, digest: str) -> StateDir:
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    applied = Applied("/etc/nftc/policy.zfw", digest, Target("inet", "zfw"), "2024-01-01T00:00:00Z")
    state.stage({APPLIED: as_json(applied.as_dict()), SCRIPT: script}).commit()
    return state


def test_item8_last_applied_is_the_recorded_script_with_its_dynamic_sets(tmp_path):
    compilation = compile_text(DYNAMIC)
    script = render_nft(compilation.table)
    state = _applied_state(tmp_path, script, live.script_digest(script))
    last = last_applied(state)
    assert (last.target, last.script, last.digest, last.policy) == (
        Target("inet", "zfw"), script, compilation.digest, "/etc/nftc/policy.zfw")
    assert last.dynamic_sets == ("dyn_blocklist_v4", "dyn_blocklist_v6")


def test_item8_last_applied_refuses_a_script_that_is_not_what_was_recorded(tmp_path):
    script = render_nft(compile_text(DYNAMIC).table)
    state = _applied_state(tmp_path, script + "add table inet other\n", live.script_digest(script))
    assert read_applied(state) is not None
    assert last_applied(state) is None


def test_item8_last_applied_needs_a_state_directory_and_a_record(tmp_path):
    assert last_applied(StateDir(str(tmp_path / "absent"))) is None
    empty = StateDir(str(tmp_path / "empty"))
    empty.ensure()
    assert last_applied(empty) is None


def test_item8_nothing_to_roll_back_at_boot_without_a_pending_record(tmp_path):
    """The kernel is not asked: a state directory with no pending record (or none at all) decides it alone."""
    assert roll_back_unconfirmed(StateDir(str(tmp_path / "absent")), 0.0) is None
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    assert roll_back_unconfirmed(state, 0.0) is None
