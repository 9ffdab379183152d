"""How nftc starts a child Python: the one place, because nftc runs as root.

`python -m nftc.kernel` would import an `nftc/` folder from the working directory before the installed
package, and one from $PYTHONPATH or from a user site (~/.local, $PYTHONUSERBASE) too: whoever can create a
folder where root stands (`cd /tmp`) or set root's environment (`su` without `-`) would run code as root.
So every child interpreter is

- isolated (`-I`): neither the working directory nor a script's directory is on sys.path, no PYTHON*
  variable is read (PYTHONPATH, PYTHONHOME, PYTHONSTARTUP, PYTHONINSPECT...), no user site-packages;
- started in a fixed working directory, `CWD`, so nothing it does with a relative path lands in the user's;
- given the very `nftc` package this process runs, by location, rather than whichever `nftc` it would find:
  a checkout, or a copy on PYTHONPATH (as an unprivileged `nftc check` may run), starts children of itself,
  and an installed nftc of another version never answers for it.

The child still inherits the environment (the lab and the guard need PATH, LANG); `-I` makes the interpreter
ignore the variables that steer imports. `-B` is passed on when this process writes no bytecode, because -I
also ignores PYTHONDONTWRITEBYTECODE.
"""

from __future__ import annotations

import os
import sys

CWD = "/"

# Puts the package's parent folder first on sys.path only while `import nftc` runs, then takes it off again, so
# nothing else there can stand in for a standard module; the submodules come from nftc.__path__.
_RUN_MODULE = ("import runpy, sys; sys.path.insert(0, sys.argv.pop(1)); import nftc; del sys.path[0]; "
               "runpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)")


def package_parent() -> str:
    """The folder that holds the `nftc` package this process imported."""
    import nftc
    return os.path.dirname(os.path.dirname(os.path.abspath(nftc.__file__)))


def python(*args: str) -> list[str]:
    """An isolated interpreter with `args` (a script by absolute path, or -c/-X options): run it with cwd=CWD."""
    return [sys.executable, "-I", *(["-B"] if sys.dont_write_bytecode else []), *args]


def python_module(module: str, *args: str, parent: str | None = None) -> list[str]:
    """`python -m MODULE ARGS`, isolated, where MODULE (`nftc`, `nftc.kernel`...) is from this process's nftc, or
    from the `nftc` package in folder `parent` (the benchmark runs an installed copy, bench/installed.py)."""
    return python("-c", _RUN_MODULE, parent or package_parent(), module, *args)
