"""Issue 8, the pipeline: the checks are one ordered tuple, `nftc.compiler.CHECKS`, and it is what runs.

Each check is a plain function of the checked policy returning diagnostics; every check runs, every error is
collected, in the order of the tuple, and only then does compilation stop. Adding a check is one line.
"""

from __future__ import annotations

import pytest

from nftc import compiler
from nftc.language.diagnostics import PolicyError, error, warning
from nftc.semantics.resolve import CheckedPolicy
from helpers import compile_text

VALID = "zone lan = 192.168.1.0/24\nallow lan -> ssh\n"
# A dead rule (r2: r1 already decides 22/tcp) and a failing assertion: one error from each built-in check.
TWO_PROBLEMS = VALID + "allow lan -> ssh\nassert lan !-> ssh\n"


def _complaint(message: str, severity=error):
    """A check that says `message` once, pointing at the policy's first rule."""
    def check(checked: CheckedPolicy):
        return [severity(message, checked.policy.rules[0].span)]
    return check


def test_item_pipeline_a_check_added_to_CHECKS_runs(monkeypatch):
    monkeypatch.setattr(compiler, "CHECKS", compiler.CHECKS + (_complaint("added check"),))
    with pytest.raises(PolicyError) as raised:
        compile_text(VALID)
    assert [d.message for d in raised.value.diagnostics] == ["added check"]


def test_item_pipeline_only_CHECKS_run(monkeypatch):
    """With the tuple emptied, a policy the built-in checks refuse compiles: nothing else checks behind it."""
    with pytest.raises(PolicyError):
        compile_text(TWO_PROBLEMS)
    monkeypatch.setattr(compiler, "CHECKS", ())
    assert compile_text(TWO_PROBLEMS).table.name == "zfw"


def test_item_pipeline_every_check_runs_and_errors_come_in_tuple_order(monkeypatch):
    checks = (_complaint("first"),) + compiler.CHECKS + (_complaint("last"),)
    monkeypatch.setattr(compiler, "CHECKS", checks)
    with pytest.raises(PolicyError) as raised:
        compile_text(TWO_PROBLEMS)
    messages = [d.message for d in raised.value.diagnostics]
    assert messages[0] == "first" and messages[-1] == "last"
    assert messages[1] == "this rule can never match"
    assert messages[2].startswith("assertion fails: lan !-> ssh")
    assert len(messages) == 4


def test_item_pipeline_a_warning_from_a_check_is_a_warning_not_an_error(monkeypatch):
    monkeypatch.setattr(compiler, "CHECKS", compiler.CHECKS + (_complaint("just so you know", warning),))
    compilation = compile_text(VALID)
    assert [w.message for w in compilation.warnings] == ["just so you know"]


def test_item_pipeline_warnings_of_a_failed_compile_are_not_reported_as_errors(monkeypatch):
    monkeypatch.setattr(compiler, "CHECKS", (_complaint("a warning", warning), _complaint("an error")))
    with pytest.raises(PolicyError) as raised:
        compile_text(VALID)
    assert [(d.severity, d.message) for d in raised.value.diagnostics] == [("error", "an error")]
