"""Compile policy text written inline in a test."""

from __future__ import annotations

import pathlib
import tempfile

from nftc.compiler import Compilation, compile_policy


def compile_text(text: str, extra_files: dict[str, str] | None = None) -> Compilation:
    with tempfile.TemporaryDirectory() as directory:
        root = pathlib.Path(directory)
        for name, content in (extra_files or {}).items():
            (root / name).write_text(content)
        policy = root / "policy.zfw"
        policy.write_text(text)
        return compile_policy(str(policy), {})
