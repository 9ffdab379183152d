"""Fuzz target for the parser and the compiler: hypothesis rounds from a printed seed (issue 8).

Inputs: mutated seeds (shipped rulesets, a policy with every statement, generated valid policies), token soup,
raw unicode, and valid generated policies. The target fails on any exception, an exit code other than 0 or 2, an
exit 2 without `FILE:LINE:COL: error:`, or nft text that is not sound.

The seed is $NFTC_FUZZ_SEED, fixed under CI=true and random elsewhere; the session prints it at the start
(`fuzz: NFTC_FUZZ_SEED=...`). Round k draws from seed + k. The fast loop checks one short round; the slow test
runs rounds for $NFTC_FUZZ_SECONDS (default 10). A failure shows the falsifying input, shrunk, and the seed of
its round: `NFTC_FUZZ_SEED=THAT .venv/bin/python -m pytest tests/fuzz_policy.py` replays it. Then add the input
to the regression cases of tests/test_properties.py. Fuzz longer:
    NFTC_FUZZ_SECONDS=600 .venv/bin/python -m pytest tests/fuzz_policy.py
"""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from helpers import compile_files, compile_files_as_a_host, fuzz_run
from strategies import SINK_FILES, diagnostic_problems, mutants, nft_text_problems, policies, token_soup

EXAMPLES_PER_ROUND = 200
FAST_ROUND = 10  # examples of the fast loop's one round

inputs = st.one_of(
    mutants(),
    mutants(),
    token_soup(),
    st.text(max_size=400).map(lambda text: {"policy.zfw": text, **SINK_FILES}),
    policies().map(lambda spec: spec.files()),
)


def check_one(files: dict) -> None:
    result, chosen = compile_files_as_a_host(files)  # a cluster policy: the ruleset of its first host
    undecodable = any(isinstance(c, bytes) for c in files.values())
    assert diagnostic_problems(result.code, result.err, undecodable) == []
    if result.code != 0:
        return
    table = next(line.split()[2] for line in result.out.split("\n") if line.startswith("table inet "))
    assert nft_text_problems(result.out, table) == []
    as_json = compile_files(files, "--format", "json", *chosen)
    assert as_json.code == 0, as_json.err
    assert json.loads(as_json.out)["nftables"][1] == {"add": {"table": {"family": "inet", "name": table}}}


def fuzz_round(round_seed: int, examples: int, deadline: float = float("inf")) -> int:
    """One hypothesis run from `round_seed` (printed: pytest shows it with a failure); returns the inputs checked."""
    print(f"fuzz round: NFTC_FUZZ_SEED={round_seed}")
    checked = []

    @seed(round_seed)  # decides the examples, also under the derandomised profile
    @settings(max_examples=examples)
    @given(inputs)
    def one(files):
        if time.monotonic() < deadline:  # past the budget, the round's remaining examples are skipped
            check_one(files)
            checked.append(1)

    one()
    return len(checked)


def test_fuzz_one_short_round():
    assert fuzz_round(fuzz_run().seed, FAST_ROUND) == FAST_ROUND


@pytest.mark.slow
def test_fuzz_parser_and_compiler_within_the_time_budget():
    run = fuzz_run()
    deadline = time.monotonic() + run.seconds
    checked, rounds = 0, 0
    while time.monotonic() < deadline:
        checked += fuzz_round(run.seed + rounds, EXAMPLES_PER_ROUND, deadline)
        rounds += 1
    print(f"fuzz: {checked} inputs in {rounds} rounds, {run.seconds:g} s")
