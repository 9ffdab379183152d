"""Kernel tests need root and network namespaces; outside CI they skip, under CI=true a skip is a failure."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest


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
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"kernel test cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"kernel test: {reason}")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true",
                     help="rewrite tests/golden/* from the current compiler output (review the diff!)")


@pytest.fixture
def update_golden(request) -> bool:
    return request.config.getoption("--update-golden")
