"""Every shipped ruleset compiles to exactly its golden text and JSON.

Regenerate after an intended change, then review the diff like code:
    .venv/bin/python -m pytest tests/test_golden.py --update-golden && git diff tests/golden
"""

from __future__ import annotations

import pathlib

import pytest

from nftc.cli.main import main

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULESETS = sorted((ROOT / "rulesets").glob("*.zfw"))
GOLDEN = ROOT / "tests" / "golden"


def compiled(policy: pathlib.Path, fmt: str, capsys) -> str:
    assert main(["compile", str(policy), "--format", fmt]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("fmt", ["nft", "json"])
@pytest.mark.parametrize("policy", RULESETS, ids=lambda p: p.stem)
def test_shipped_ruleset_compiles_to_its_golden_output(policy, fmt, capsys, update_golden):
    output = compiled(policy, fmt, capsys)
    golden = GOLDEN / f"{policy.stem}.{fmt}"
    if update_golden:
        golden.write_text(output)
    assert golden.exists(), f"no golden file {golden.name}: run with --update-golden"
    assert output == golden.read_text()


@pytest.mark.parametrize("policy", RULESETS, ids=lambda p: p.stem)
def test_output_is_the_same_from_any_working_directory(policy, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    relative = compiled(policy.relative_to(ROOT), "nft", capsys)
    monkeypatch.chdir(tmp_path)
    assert compiled(policy, "nft", capsys) == relative


def test_every_shipped_ruleset_has_a_golden_file():
    expected = {f"{p.stem}.{fmt}" for p in RULESETS for fmt in ("nft", "json")}
    assert {p.name for p in GOLDEN.iterdir()} == expected
