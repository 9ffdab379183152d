"""What many tests share: compiling inline policy text, running `nftc` in this process, the positioned-error
pattern, the fast/slow split of property tests, the fuzz seed, and skipping or failing when a tool is missing.

nftc is imported inside the functions that need it: tests/conftest.py imports this module, and a broken nftc
must fail the tests that use it, not the whole session.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import pathlib
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from nftc.compiler import Compilation

# `FILE:LINE:COL: error: MESSAGE`, the first line of every diagnostic about a policy.
POSITIONED = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<column>\d+): error: (?P<message>.+)$")

CI_FUZZ_SEED = 8  # the fuzz seed under CI=true when NFTC_FUZZ_SEED is not set: a red CI reproduces
DEFAULT_FUZZ_SECONDS = 10.0  # the slow fuzz test's budget; NFTC_FUZZ_SECONDS asks for longer


def under_ci() -> bool:
    """CI sets CI=true: then nothing may skip, and every random test is reproducible."""
    return os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str):
    """A tool or kernel feature a kernel test needs is missing: skip here, fail under CI=true (CI installs all)."""
    if under_ci():
        pytest.fail(f"under CI=true this cannot be skipped: {reason}", pytrace=False)
    pytest.skip(reason)


def first_error(stderr: str) -> re.Match | None:
    """The parts of the first line of `stderr` when it is `FILE:LINE:COL: error: MESSAGE`, else None."""
    return POSITIONED.match(stderr.split("\n", 1)[0])


def write_files(directory: pathlib.Path, files: dict[str, str | bytes]) -> pathlib.Path:
    """Write `files` under `directory`; return the path of the first one (the policy)."""
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8", newline="")
    return directory / next(iter(files))


def compile_text(text: str, extra_files: dict[str, str] | None = None) -> Compilation:
    from nftc.compiler import compile_policy

    with tempfile.TemporaryDirectory() as directory:
        policy = write_files(pathlib.Path(directory), {"policy.zfw": text, **(extra_files or {})})
        return compile_policy(str(policy), {})


@dataclass(frozen=True)
class CliRun:
    """How an in-process `nftc` ended: its exit code, standard output and standard error."""

    code: int
    out: str
    err: str


def run_cli(*args: str, cwd: pathlib.Path | None = None) -> CliRun:
    """`nftc ARGS` in this process (no interpreter start-up), in `cwd` if given: the one in-process runner."""
    from nftc.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(args))
    finally:
        os.chdir(previous)
    return CliRun(code, out.getvalue(), err.getvalue())


def compile_files(files: dict[str, str | bytes], *options: str, directory: pathlib.Path | None = None) -> CliRun:
    """`nftc compile POLICY OPTIONS` in this process on `files` (the first is the policy), written to `directory`
    or to a fresh temporary one (hypothesis tests cannot use tmp_path: it is one directory for all examples)."""
    if directory is not None:
        return run_cli("compile", str(write_files(directory, files)), *options)
    with tempfile.TemporaryDirectory() as fresh:
        return run_cli("compile", str(write_files(pathlib.Path(fresh), files)), *options)


_CLUSTER = re.compile(r"nftc: compile: .* declares hosts (\w+)[,:]")  # a cluster policy needs --host (issue 11)


def compile_files_as_a_host(files: dict[str, str | bytes], *options: str) -> tuple[CliRun, tuple[str, ...]]:
    """`compile_files`; a cluster policy (one with hosts) is compiled for its first host. Also returns the
    --host options used, for a second compile of the same files."""
    result = compile_files(files, *options)
    cluster = _CLUSTER.match(result.err)
    chosen = ("--host", cluster.group(1)) if cluster else ()
    return (compile_files(files, *options, *chosen) if chosen else result), chosen


def examples(few: int, many: int):
    """Run a property test twice: `few` examples in the fast loop, `many` marked slow (issue 8)."""
    return pytest.mark.parametrize("examples", [pytest.param(few, id=f"{few}-examples"),
                                                pytest.param(many, id=f"{many}-examples", marks=pytest.mark.slow)])


def check_property(check, examples: int, *strategies) -> None:
    """Run `check` on `examples` inputs drawn from `strategies`, with the session's hypothesis profile (conftest)."""
    from hypothesis import given, settings

    settings(max_examples=examples)(given(*strategies)(check))()


@dataclass(frozen=True)
class FuzzRun:
    """The fuzz target's first seed and its time budget."""

    seed: int
    seconds: float


@functools.lru_cache(maxsize=None)
def fuzz_run() -> FuzzRun:
    """Chosen once per session (the report header prints it): $NFTC_FUZZ_SEED, else CI_FUZZ_SEED under CI=true,
    else a random seed; $NFTC_FUZZ_SECONDS, else DEFAULT_FUZZ_SECONDS."""
    seed = os.environ.get("NFTC_FUZZ_SEED") or (CI_FUZZ_SEED if under_ci() else random.randrange(1 << 32))
    return FuzzRun(int(seed), float(os.environ.get("NFTC_FUZZ_SECONDS") or DEFAULT_FUZZ_SECONDS))


ROOT = pathlib.Path(__file__).resolve().parent.parent


def copy_checkout(destination: pathlib.Path) -> pathlib.Path:
    """A copy of the checkout's files as they are now (tracked and untracked, not what .gitignore names): writers run
    there, so a check that they write nothing is not disturbed by others editing the real checkout meanwhile."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout
    for name in sorted({n for n in listed.decode().split("\0") if n}):
        source = ROOT / name
        if source.is_file():  # a tracked file someone deleted is still listed
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def man_pages(manual: pathlib.Path) -> dict[str, str]:
    """nftc(8) and zfw(5) generated (scripts/generate_manpages.py) into `manual`/man8, man5 as the package installs
    them; the environment in which `man` (and systemd-analyze verify's Documentation= check, which runs
    `man --where` and knows nothing of --root) finds them. Issue 12."""
    generated = manual.parent / "generated-man"
    subprocess.run([sys.executable, "-B", str(ROOT / "scripts" / "generate_manpages.py"), "--output-dir",
                    str(generated)], check=True, timeout=120, cwd="/")
    for page in generated.iterdir():
        (manual / f"man{page.suffix[1:]}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(page, manual / f"man{page.suffix[1:]}" / page.name)
    return dict(os.environ, MANPATH=f"{manual}:/usr/share/man")


def tree_state(root: pathlib.Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under `root`: (size, modification time in ns). A rewrite with the same bytes shows."""
    state = {}
    for folder, folders, files in os.walk(root):
        for name in folders + files:
            path = os.path.join(folder, name)
            info = os.lstat(path)
            state[os.path.relpath(path, root)] = (info.st_size, info.st_mtime_ns)
    return state


def tree_changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """`+ created`, `- deleted` and `~ changed` paths between two tree_state()s, sorted."""
    return sorted([f"+ {p}" for p in after.keys() - before.keys()] + [f"- {p}" for p in before.keys() - after.keys()]
                  + [f"~ {p}" for p in before.keys() & after.keys() if before[p] != after[p]])


@contextlib.contextmanager
def readable_nftc(*files: pathlib.Path):
    """A world-readable temporary copy of the nftc package and of `files`, for tests that run nftc as nobody: the
    clone and its venv may live where nobody cannot read (/root, as in issue 12's fresh-root run of the README's
    quick start). Yields (the distribution's interpreter, PYTHONPATH, {file: its copy})."""
    import nftc

    directory = pathlib.Path(tempfile.mkdtemp(prefix="nftc-readable-"))
    try:
        shutil.copytree(pathlib.Path(nftc.__file__).parent, directory / "nftc",
                        ignore=shutil.ignore_patterns("__pycache__"))
        copies = {file: pathlib.Path(shutil.copy(file, directory / file.name)) for file in files}
        subprocess.run(["chmod", "-R", "a+rX", str(directory)], check=True)
        yield os.path.realpath(sys.executable), str(directory), copies
    finally:
        shutil.rmtree(directory)
