"""Session set-up shared by every test.

- Kernel tests need root and network namespaces; outside CI they skip, under CI=true a skip is a failure.
- Hypothesis runs under one profile, printed at the start: `ci` (CI=true: derandomised, so a red CI is the same
  red on a rerun) or `dev` (fresh random examples each run). Neither keeps an example database, which would be
  written into the checkout (.hypothesis/).
- A kernel session first removes the namespaces a killed run left (their maker's pid is gone); a namespace of a
  running process (another run, another user) is never touched.
- Nothing is written into the checkout (issue 8): hypothesis keeps its cache under ~/.cache, not in .hypothesis/,
  and when this process writes no bytecode (`python -B`, PYTHONDONTWRITEBYTECODE) neither does any Python the tests
  start (nftc's own children pass -B on: tests/test_checkout_clean.py).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.configuration import set_hypothesis_home_dir

from helpers import fuzz_run, under_ci

if sys.dont_write_bytecode:
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                         "nftc-hypothesis"))
settings.register_profile("dev", deadline=None, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
settings.register_profile("ci", settings.get_profile("dev"), derandomize=True)
settings.load_profile("ci" if under_ci() else "dev")


@functools.lru_cache(maxsize=None)
def kernel_unavailable() -> str:
    """Why kernel tests cannot run here, or '' when they can."""
    if os.geteuid() != 0:
        return "needs root"
    for tool in ("ip", "nft", "unshare"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    try:
        import nftables  # noqa: F401
    except ImportError:
        return "needs python3-nftables"
    if subprocess.run(["unshare", "--net", "true"], capture_output=True).returncode != 0:
        return "cannot create network namespaces"
    return ""


def pytest_runtest_setup(item):
    if "kernel" not in item.keywords:
        return
    reason = kernel_unavailable()
    if not reason:
        return
    if under_ci():
        pytest.fail(f"kernel test cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"kernel test: {reason}")


def pytest_collection_modifyitems(config, items):
    """The freshroot tests (tests/test_freshroot.py, issue 12) build whole Debian roots and run the suite inside one:
    only with NFTC_FRESHROOT=1 (.ci/run sets it). Without it they are deselected, not skipped (under CI=true a skip
    fails), and the suite run inside a root, which has no NFTC_FRESHROOT, never recurses into them."""
    if os.environ.get("NFTC_FRESHROOT") == "1":
        return
    fresh = [item for item in items if "freshroot" in item.keywords]
    if fresh:
        config.hook.pytest_deselected(items=fresh)
        items[:] = [item for item in items if "freshroot" not in item.keywords]


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/* from the current compiler output (review the diff!)")


def pytest_collection_finish(session):
    """Say how random tests will run (and sweep) before the first test, also under -q."""
    items = session.items
    if any(item.path.name in ("test_properties.py", "fuzz_policy.py") for item in items):
        fuzz = fuzz_run()
        _say(session, f"hypothesis profile '{settings.get_current_profile_name()}' "
                      f"({'derandomised' if settings.default.derandomize else 'random examples'}); "
                      f"fuzz: NFTC_FUZZ_SEED={fuzz.seed} NFTC_FUZZ_SECONDS={fuzz.seconds:g}")
    if any("kernel" in item.keywords for item in items) and not kernel_unavailable():
        from nftc.lab.session import sweep_orphans

        swept = sweep_orphans()
        if swept:
            _say(session, f"removed {len(swept)} namespaces left by killed runs: {' '.join(swept)}")


def _say(session, line: str) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    else:
        print(line, file=sys.stderr)


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")


@pytest.fixture
def fresh_cli_parser():
    """main() builds its parser once per process (nftc.cli.main._parser), holding each command's handler: a test
    that patches a handler needs a parser built after the patch, and the tests after it one built without it."""
    from nftc.cli.main import _parser
    _parser.cache_clear()
    yield
    _parser.cache_clear()
