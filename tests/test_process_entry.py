"""Issue 9 (performance), "apply, zimbra-single, whole process <= 3x nft -f": the `nftc` process runs `main` with
fewer garbage collections and freezes what is left before exiting (nftc.cli.main.run), about 10 ms of a small apply.
Both ways a user starts nftc go through it: the console script and `python -m nftc` (as the benchmark, the lab and
the guard start it)."""

from __future__ import annotations

import gc
import runpy
import tomllib

import pytest

from apply_helpers import ROOT
from nftc.cli import main as cli_main


def test_issue9_the_console_script_is_the_process_entry():
    with open(ROOT / "pyproject.toml", "rb") as handle:
        scripts = tomllib.load(handle)["project"]["scripts"]
    assert scripts == {"nftc": "nftc.cli.main:run"}


def test_issue9_python_m_nftc_runs_main_with_fewer_collections_then_freezes(monkeypatch):
    """`main` sees the raised threshold and its code is the exit code; the freeze comes after `main`."""
    seen = []
    monkeypatch.setattr(cli_main, "main", lambda: seen.append(("main", gc.get_threshold()[0])) or 3)
    monkeypatch.setattr(gc, "freeze", lambda: seen.append(("freeze", None)))
    before = gc.get_threshold()
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_module("nftc", run_name="__main__")
    finally:
        gc.set_threshold(*before)
    assert exited.value.code == 3
    assert seen == [("main", cli_main.GC_THRESHOLD), ("freeze", None)]
    assert cli_main.GC_THRESHOLD > before[0]
