"""Compile policy text written inline in a test; skip or fail when a tool a kernel test needs is missing."""

from __future__ import annotations

import os
import pathlib
import tempfile

import pytest

from nftc.compiler import Compilation, compile_policy


def compile_text(text: str, extra_files: dict[str, str] | None = None) -> Compilation:
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        for name, content in (extra_files or {}).items():
            (root / name).write_text(content)
        policy = root / "policy.zfw"
        policy.write_text(text)
        return compile_policy(str(policy), {})


def unavailable(reason: str):
    """A tool or kernel feature a kernel test needs is missing: skip here, fail under CI=true (CI installs all)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"under CI=true this cannot be skipped: {reason}", pytrace=False)
    pytest.skip(reason)
