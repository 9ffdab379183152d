"""Issue 8, item "a test enforces the direction": the imports of every module of nftc, read with `ast` (also those
inside functions, relative ones made absolute), point one way:

    language <- semantics <- backend <- compiler <- system <- lab <- cli

A package imports only itself and packages to its left; `nftc` (the package's __init__) and `nftc.errors` are
importable by all; nothing imports `nftc.cli` but `nftc/__main__.py`; there is no import cycle between modules;
no module imports another module's private name; every package says what it owns in its __init__ docstring.
bench/ and tests/ may import anything: only nftc/ is read.
"""

from __future__ import annotations

import ast
import functools
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "nftc"
ORDER = ("language", "semantics", "backend", "compiler", "system", "lab", "cli")
EVERYONE_MAY_IMPORT = {"nftc", "nftc.errors"}


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


@functools.cache
def _tree(module: str) -> ast.Module:
    """Each module parsed once (the import graphs, the private names and the docstrings all read it)."""
    return ast.parse(MODULES[module].read_text(encoding="utf-8"))


def _imported(module: str, with_typing: bool = True) -> set[str]:
    """The nftc modules `module` imports anywhere in its body, as absolute names of modules in MODULES; with
    `with_typing` False, not those under `if TYPE_CHECKING:` (they are never imported when nftc runs)."""
    found: set[str] = set()
    for node in _statements(_tree(module).body, with_typing):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, node.module, node.level)
            found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names)
    return {_existing(name) for name in found if name == "nftc" or name.startswith("nftc.")}


_NESTED = ("body", "orelse", "finalbody", "handlers", "cases")  # the fields that hold statements (or handlers)


def _statements(body: list[ast.stmt], with_typing: bool):
    """Every statement in `body` and nested in it (in functions, classes, if/try/with/for/while/match), without
    `with_typing` not those in the body of an `if TYPE_CHECKING:`. An import is a statement, and no expression
    holds a statement, so expressions are not walked: the whole tree of every module, twice, took 0.7 s."""
    stack = list(body)
    while stack:
        node = stack.pop()
        yield node
        if not with_typing and isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            stack.extend(node.orelse)
            continue
        for field in _NESTED:
            nested = getattr(node, field, None)
            if isinstance(nested, list):
                stack.extend(nested)


def _absolute(module: str, name: str | None, level: int) -> str:
    if level == 0:
        return name or ""
    package = module.split(".") if _is_package(module) else module.split(".")[:-1]
    base = package[:len(package) - level + 1]
    return ".".join(base + ([name] if name else []))


def _existing(name: str) -> str:
    """`nftc.system.kernel.KernelError` -> `nftc.system.kernel`: the longest prefix that is a module."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _private_names(module: str) -> list[str]:
    """`from nftc.x import _name` where `_name` is not a module: a private name of another module."""
    found = []
    for node in ast.walk(_tree(module)):
        if isinstance(node, ast.ImportFrom):
            base = _absolute(module, node.module, node.level)
            found += [f"{base}.{a.name}" for a in node.names if base.startswith("nftc") and a.name.startswith("_")
                      and not a.name.startswith("__") and f"{base}.{a.name}" not in MODULES]
    return found


GRAPH = {module: _imported(module) - {module} for module in MODULES}
RUNTIME_GRAPH = {module: _imported(module, with_typing=False) - {module} for module in MODULES}

def _stage(module: str) -> str | None:
    """The package (or, for compiler.py, the module) of ORDER that `module` belongs to; None for the root ones."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in ORDER else None


def test_issue8_layout_reads_the_imports_it_is_meant_to_judge():
    """The reader itself: relative imports resolved, imports inside functions found, names cut to modules."""
    assert "nftc.cli.main" in GRAPH["nftc.__main__"]
    assert "nftc.system.kernel" in GRAPH["nftc.system.apply"]  # `from . import kernel`
    assert "nftc.system.guard" in GRAPH["nftc.system.apply"]  # imported inside _arm_guard
    assert "nftc.compiler" in GRAPH["nftc.cli.common"]  # `from ..compiler import compile_policy`, in a function
    assert "nftc" in GRAPH["nftc.cli.main"]  # `from .. import __version__`


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _stage(m)))
def test_issue8_each_package_imports_only_packages_to_its_left(module):
    allowed = set(ORDER[:ORDER.index(_stage(module)) + 1])
    wrong = sorted(i for i in GRAPH[module] if i not in EVERYONE_MAY_IMPORT and _stage(i) not in allowed)
    assert not wrong, f"{module} ({_stage(module)}) imports {wrong}: only {' <- '.join(sorted(allowed, key=ORDER.index))}"


def test_issue8_nothing_imports_the_cli_but_main():
    importers = sorted(m for m, imports in GRAPH.items()
                       if _stage(m) != "cli" and any(_stage(i) == "cli" for i in imports))
    assert importers == ["nftc.__main__"]


def test_issue8_root_modules_import_nothing_of_nftc():
    """nftc/__init__.py and nftc/errors.py are importable by everyone, so they import no other nftc module."""
    assert {m: GRAPH[m] for m in EVERYONE_MAY_IMPORT} == {m: set() for m in EVERYONE_MAY_IMPORT}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the cycle it closes (first module repeated at the end)."""
    cycles, state = [], {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for imported in sorted(graph[module]):
            if state.get(imported) == "open":
                cycles.append((path + [module])[(path + [module]).index(imported):] + [imported])
            elif imported not in state:
                visit(imported, path + [module])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [])
    return cycles


def test_issue8_the_cycle_finder_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_issue8_no_import_cycles_between_modules():
    """Imports under `if TYPE_CHECKING:` do not count: they never run."""
    cycles = _cycles(RUNTIME_GRAPH)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


@pytest.mark.slow  # parses every module: 0.25 s
def test_issue8_no_module_imports_a_private_name_of_another():
    found = {m: names for m in MODULES if (names := _private_names(m))}
    assert not found


@pytest.mark.parametrize("package", [m for m in MODULES if _is_package(m)])
def test_issue8_each_package_says_what_it_owns(package):
    assert ast.get_docstring(_tree(package))
