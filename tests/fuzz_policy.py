"""Fuzz target for the parser and the compiler: hypothesis rounds until a time budget is spent.

Budget: $NFTC_FUZZ_SECONDS seconds; by default 60 under CI=true and 10 elsewhere. Run longer on demand:
    NFTC_FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/fuzz_policy.py
Each round draws a fresh random seed. Inputs: mutated seeds (shipped rulesets, a policy with every statement,
generated valid policies), token soup, raw unicode, and valid generated policies. The target fails on any
exception, an exit code other than 0 or 2, an exit 2 without `FILE:LINE:COL: error:`, or nft text that is not
sound; hypothesis then shrinks the input and prints it: add it to the regression cases of
tests/test_properties.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import tempfile
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nftc.cli.main import main

from strategies import SINK_FILES, diagnostic_problems, mutants, nft_text_problems, policies, token_soup, write_files

DEFAULT_SECONDS = 60 if os.environ.get("CI", "").lower() == "true" else 10
BUDGET_SECONDS = float(os.environ.get("NFTC_FUZZ_SECONDS") or DEFAULT_SECONDS)
EXAMPLES_PER_ROUND = 200

inputs = st.one_of(
    mutants(),
    mutants(),
    token_soup(),
    st.text(max_size=400).map(lambda text: {"policy.zfw": text, **SINK_FILES}),
    policies().map(lambda spec: spec.files()),
)


def run_nftc(path: pathlib.Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["compile", str(path), *extra])
    return code, out.getvalue(), err.getvalue()


def check_one(files: dict) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write_files(pathlib.Path(directory), files)
        code, text, err = run_nftc(path)
        undecodable = any(isinstance(c, bytes) for c in files.values())
        assert diagnostic_problems(code, err, undecodable) == []
        if code != 0:
            return
        table = next(line.split()[2] for line in text.split("\n") if line.startswith("table inet "))
        assert nft_text_problems(text, table) == []
        json_code, document, json_err = run_nftc(path, "--format", "json")
        assert json_code == 0, json_err
        assert json.loads(document)["nftables"][1] == {"add": {"table": {"family": "inet", "name": table}}}


def fuzz_round(deadline: float) -> int:
    """One hypothesis run with a fresh seed; returns how many inputs it checked."""
    checked = []

    @settings(max_examples=EXAMPLES_PER_ROUND, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(inputs)
    def one(files):
        if time.monotonic() < deadline:  # past the budget, the round's remaining examples are skipped
            check_one(files)
            checked.append(1)

    one()
    return len(checked)


def test_fuzz_parser_and_compiler_within_the_time_budget():
    deadline = time.monotonic() + BUDGET_SECONDS
    checked = 0
    while time.monotonic() < deadline:
        checked += fuzz_round(deadline)
    print(f"fuzz: {checked} inputs in {BUDGET_SECONDS:g} s")
