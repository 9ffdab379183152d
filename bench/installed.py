"""nftc as a user runs it: installed with pip into a temporary folder and bytecode compiled.

The checkout has no `.pyc` files (this machine sets PYTHONDONTWRITEBYTECODE), so a benchmark of the checkout
recompiles nftc's sources in every process, about 25-30 ms of a small apply that no installed package pays.
pip builds from a copy of the checkout (a build writes build/ and nftc.egg-info next to its sources, and nothing
may be written into the checkout); `compileall` then makes sure every module has its bytecode. Every nftc command
of the benchmark runs from that folder, and `verify` proves it on a child started as the workloads start theirs.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from nftc.system import child

SOURCES = ("pyproject.toml", "README.md", "nftc")  # what pip needs to build nftc's wheel
PIP = ("-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--no-cache-dir",
       "--disable-pip-version-check", "--target")
_LOADED = re.compile(r"^# code object from '?(?P<path>[^'\n]+)'?$", re.MULTILINE)  # quoted: bytecode; bare: source


@dataclass(frozen=True)
class Installed:
    """Where the installed nftc is, and how to start it."""

    parent: str  # the folder holding the `nftc` package (pip's --target)

    def nftc(self, *args: str) -> list[str]:
        """`nftc ARGS` from the installed copy (as a user's `nftc` runs `nftc.cli.main`)."""
        return self.module("nftc", *args)

    def module(self, name: str, *args: str) -> list[str]:
        return child.python_module(name, *args, parent=self.parent)

    def description(self) -> str:
        return (f"nftc as installed (bytecode compiled) from {self.parent}: `pip {' '.join(PIP[2:])} "
                f"{self.parent} COPY-OF-CHECKOUT`, then `python -m compileall`")


def install(checkout: str, directory: str) -> Installed:
    """pip-install the checkout's nftc into `directory`/installed, then compile every module's bytecode."""
    source = os.path.join(directory, "source")
    for name in SOURCES:
        origin, copy = os.path.join(checkout, name), os.path.join(source, name)
        if os.path.isdir(origin):
            shutil.copytree(origin, copy, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            os.makedirs(source, exist_ok=True)
            shutil.copy2(origin, copy)
    target = os.path.join(directory, "installed")
    _run(child.python(*PIP, target, source))
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    _run(child.python("-m", "compileall", "-q", os.path.join(target, "nftc")), environment)
    return Installed(target)


def _run(argv: list[str], environment: dict[str, str] | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=child.CWD, env=environment)
    if result.returncode != 0:
        raise RuntimeError(f"installing nftc failed: {' '.join(argv[2:6])}...: {result.stderr.strip()[-600:]}")


def _of_nftc(path: str) -> bool:
    """A file of a package named nftc: the folders after the last `nftc` folder are package names. A clone named
    nftc (the README's `git clone ... nftc`) holds .venv/, which is not one, so its venv's modules are not nftc's."""
    _, separator, rest = path.rpartition(f"{os.sep}nftc{os.sep}")
    return bool(separator) and all(folder.isidentifier() for folder in rest.split(os.sep)[:-1])


def verify(installed: Installed) -> str:
    """The `nftc.__file__` a benchmark child imports, after checking that every nftc module it loads comes from the
    installed folder's bytecode (`python -v` names each code object's file) and that every module has one."""
    package = os.path.join(installed.parent, "nftc")
    missing = [path for folder, _, files in os.walk(package) for path in (os.path.join(folder, f) for f in files)
               if path.endswith(".py") and not os.path.exists(importlib.util.cache_from_source(path))]
    if missing:
        raise RuntimeError(f"no bytecode for {', '.join(missing[:3])}")
    argv = installed.nftc("--version")
    result = subprocess.run([argv[0], "-v", *argv[1:]], capture_output=True, text=True, timeout=60, cwd=child.CWD)
    loaded = [m["path"] for m in _LOADED.finditer(result.stderr) if _of_nftc(m["path"])]
    strays = [path for path in loaded if not (path.startswith(package + os.sep) and path.endswith(".pyc"))]
    if result.returncode != 0 or not loaded or strays:
        raise RuntimeError(f"a benchmark child does not run the installed, compiled nftc: {strays[:3] or loaded[:3]}")
    return importlib.util.source_from_cache(loaded[0])  # the package's __init__, the first nftc module imported
