"""Issue 12, glob include: `include "conf.d/*.zfw"` takes every file of that folder whose name matches, in
sorted order, relative to the including file, so packages and admins can drop in fragments. An empty folder
includes nothing (the package ships `/etc/nftc/conf.d/` empty, and the boot unit's `--strict` must not refuse
that); a folder that does not exist is an error (a misspelt one would silently include nothing). The include
checks (loops, a file included twice, depth, files that are not policies) apply to each matched file.

Each case: the files (path -> text; `main.zfw` is loaded), then either the services in the order they were
declared, or the whole text of the diagnostics.
"""

from __future__ import annotations

import os

import pytest

from nftc.language.diagnostics import PolicyError, render_diagnostics
from nftc.language.loader import load_policy

HEAD = "zone lan = 10.0.0.0/8\n"


def service(name: str, port: int) -> str:
    return f"service {name} = tcp {port}\n"


LOADS = {
    "sorted by name, not by creation or directory order": (
        {"main.zfw": HEAD + 'include "conf.d/*.zfw"\n', "conf.d/20-b.zfw": service("b", 2002),
         "conf.d/10-a.zfw": service("a", 2001), "conf.d/9-c.zfw": service("c", 2003)},
        ["a", "b", "c"]),
    "in place: statements before and after the include keep their order": (
        {"main.zfw": service("first", 2000) + 'include "conf.d/*.zfw"\n' + service("last", 2009),
         "conf.d/a.zfw": service("a", 2001)},
        ["first", "a", "last"]),
    "only names that match: no other suffix, no hidden file, no editor backup": (
        {"main.zfw": 'include "conf.d/*.zfw"\n', "conf.d/a.zfw": service("a", 2001),
         "conf.d/a.zfw.dpkg-old": service("old", 2002), "conf.d/.b.zfw": service("hidden", 2003),
         "conf.d/a.zfw~": service("backup", 2004), "conf.d/README": "not a policy\n"},
        ["a"]),
    "an empty folder includes nothing": (
        {"main.zfw": service("a", 2001) + 'include "conf.d/*.zfw"\n', "conf.d/": None},
        ["a"]),
    "relative to the including file, not to the working directory": (
        {"main.zfw": 'include "sub/part.zfw"\n', "sub/part.zfw": 'include "frag/*.zfw"\n',
         "sub/frag/x.zfw": service("x", 2001)},
        ["x"]),
    "? and [...] match as in the shell": (
        {"main.zfw": 'include "conf.d/?[ab].zfw"\n', "conf.d/1a.zfw": service("a", 2001),
         "conf.d/1c.zfw": service("c", 2003), "conf.d/2b.zfw": service("b", 2002)},
        ["a", "b"]),
    "a matched file may include further (depth counts as usual)": (
        {"main.zfw": 'include "conf.d/*.zfw"\n', "conf.d/a.zfw": 'include "../more/*.zfw"\n',
         "more/m.zfw": service("m", 2001)},
        ["m"]),
}


ERRORS = {
    "the folder does not exist": (
        {"main.zfw": 'include "conf.dd/*.zfw"\n'},
        "main.zfw:1:9: error: folder 'conf.dd' of 'conf.dd/*.zfw' does not exist\n"
        '  include "conf.dd/*.zfw"\n'
        "          ^~~~~~~~~~~~~~~\n"
        "  hint: paths are relative to the file that names them; an empty folder includes nothing"),
    "wildcards in a folder name": (
        {"main.zfw": 'include "*/x.zfw"\n', "a/x.zfw": service("a", 2001)},
        "main.zfw:1:9: error: '*/x.zfw' has a wildcard outside the file name\n"
        '  include "*/x.zfw"\n'
        "          ^~~~~~~~~\n"
        '  hint: only the last part of the path may hold *, ? or [...], such as include "conf.d/*.zfw"'),
    "a glob that matches the including file is a loop": (
        {"main.zfw": 'include "*.zfw"\n'},
        "main.zfw:1:9: error: include loop: main.zfw -> main.zfw\n"
        '  include "*.zfw"\n'
        "          ^~~~~~~\n"
        "  hint: a file cannot include itself, directly or through other files"),
    "a fragment matched by two globs is included a second time": (
        {"main.zfw": 'include "conf.d/*.zfw"\ninclude "conf.d/a*"\n', "conf.d/a.zfw": service("a", 2001)},
        "main.zfw:2:9: error: 'conf.d/a.zfw' is included a second time\n"
        '  include "conf.d/a*"\n'
        "          ^~~~~~~~~~~\n"
        "  hint: include a shared file once, from the top file: everything in it would be defined twice"),
    "a matched file that is not a policy shows nothing of itself": (
        {"main.zfw": 'include "conf.d/*"\n', "conf.d/secret": "root:$6$hash:19000:0:99999:7:::\n"},
        "conf.d/secret:1:1: error: not a policy: its first statement does not start with a keyword\n"
        "  hint: a statement starts with zone, service, group, allow, deny, reject, assert, include, table, "
        "log drops, icmp echo, rpfilter, host or zimbra (nftc shows nothing of a file that is not a policy)"),
    "a matched folder is an error, as a named one is": (
        {"main.zfw": 'include "conf.d/*.zfw"\n', "conf.d/sub.zfw/": None},
        "main.zfw:1:9: error: included file 'conf.d/sub.zfw' is a directory\n"
        '  include "conf.d/*.zfw"\n'
        "          ^~~~~~~~~~~~~~\n"
        "  hint: name a file"),
}


def lay_out(root, files: dict) -> None:
    for name, text in files.items():
        path = root / name
        if name.endswith("/"):
            path.mkdir(parents=True, exist_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize("files, services", LOADS.values(), ids=LOADS.keys())
def test_issue12_glob_include_loads(tmp_path, monkeypatch, files, services):
    lay_out(tmp_path, files)
    monkeypatch.chdir(tmp_path / "conf.d" if (tmp_path / "conf.d").is_dir() else tmp_path)  # not the base
    policy = load_policy(str(tmp_path / "main.zfw"), {})
    assert [s.name for s in policy.services] == services


@pytest.mark.parametrize("files, expected", ERRORS.values(), ids=ERRORS.keys())
def test_issue12_glob_include_errors(tmp_path, monkeypatch, files, expected):
    lay_out(tmp_path, files)
    monkeypatch.chdir(tmp_path)  # relative paths in the messages, as an admin in /etc/nftc sees them
    sources: dict[str, str] = {}
    with pytest.raises(PolicyError) as raised:
        load_policy("main.zfw", sources)
    assert render_diagnostics(raised.value.diagnostics, sources) == expected


def test_issue12_glob_include_does_not_change_a_plain_include(tmp_path, monkeypatch):
    """A path without a wildcard is the file itself, as before (and may not exist: the same error as ever)."""
    lay_out(tmp_path, {"main.zfw": 'include "plain.zfw"\n'})
    monkeypatch.chdir(tmp_path)
    sources: dict[str, str] = {}
    with pytest.raises(PolicyError) as raised:
        load_policy("main.zfw", sources)
    assert render_diagnostics(raised.value.diagnostics, sources).splitlines()[0] == \
        "main.zfw:1:9: error: included file 'plain.zfw' does not exist"
    assert os.listdir(tmp_path) == ["main.zfw"]
