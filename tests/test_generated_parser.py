"""Issue 7 item 2: the parser reads no cache, and the generated parser (nftc/language/zfw_parser.py) is the grammar's.

Lark's cache is a pickle that Lark unpickles before any check; with XDG_CACHE_HOME or HOME pointing into a
user's folder (`sudo -E`, `su` without `-`), a swapped cache file ran code as root. nftc now parses with Lark's
standalone parser generated into the package by scripts/generate_parser.py: no cache, and no lark at run time.
"""

from __future__ import annotations

import hashlib
import pathlib
import re
import subprocess
import sys

import pytest

from nftc.system.child import CWD

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRAMMAR = ROOT / "grammar" / "zfw.lark"
MODULE = ROOT / "nftc" / "language" / "zfw_parser.py"
POLICY = "zone internet = any\nallow internet -> smtp\n"
PARSE = ("import sys; from nftc.language.parser import parse_text; "
         "sys.stdout.write(type(parse_text(sys.stdin.read(), 'p.zfw')[0]).__name__)")


def _recorded(field: str) -> str:
    found = re.search(rf"^# {field}: (\S+)$", MODULE.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"nftc/language/zfw_parser.py records no '{field}' line"
    return found.group(1)


def _parse_in_child(tmp_path: pathlib.Path, prelude: str = "") -> subprocess.CompletedProcess:
    """A fresh interpreter, HOME and XDG_CACHE_HOME in tmp_path, parses POLICY (after `prelude`)."""
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-B", "-c", prelude + PARSE], input=POLICY, capture_output=True, text=True,
                          env=environment, cwd=CWD, timeout=60)


def test_item2_the_generated_parser_is_the_grammars():
    """It records the sha256 of grammar/zfw.lark it was generated from: regenerate after a grammar change."""
    assert _recorded("grammar sha256") == hashlib.sha256(GRAMMAR.read_bytes()).hexdigest(), \
        "grammar/zfw.lark changed: run .venv/bin/python scripts/generate_parser.py"


@pytest.mark.slow  # runs Lark's generator; the grammar's hash is checked in the fast loop
def test_item2_regenerating_gives_the_same_bytes():
    """Generation is deterministic (Lark's own state numbering is not): with the recorded Lark and Python."""
    lark = pytest.importorskip("lark", reason="lark (the test extra) generates the parser")
    python = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if (lark.__version__, python) != (_recorded("lark"), _recorded("python")):
        pytest.skip(f"generated with lark {_recorded('lark')} on Python {_recorded('python')}, "
                    f"this is lark {lark.__version__} on Python {python}")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "generate_parser.py"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.slow  # a fresh interpreter
def test_item2_parsing_reads_no_cache_file(tmp_path):
    """A cache file where Lark kept one (XDG_CACHE_HOME/nftc) holding a hostile pickle is never opened."""
    marker = tmp_path / "unpickled"
    payload = (b"cos\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    cache = tmp_path / "cache" / "nftc"
    cache.mkdir(parents=True, mode=0o700)
    for version in ("1.1.5", "1.2.2", "1.3.1"):
        (cache / f"zfw-lark-{version}-nftc-0.1.0.cache").write_bytes(hashlib.md5(b"x").hexdigest().encode()
                                                                     + b"\n" + payload)
    result = _parse_in_child(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Zone"
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # and nothing was written there
    assert len(list(cache.iterdir())) == 3


@pytest.mark.slow  # a fresh interpreter
def test_item2_parsing_needs_neither_lark_nor_pickle(tmp_path):
    """The generated module is self-contained, and nothing on the parse path can unpickle."""
    result = _parse_in_child(tmp_path, "import sys; sys.modules['lark'] = sys.modules['pickle'] = None; ")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Zone"


def test_item2_the_test_extra_pins_the_lark_that_generated_the_parser():
    """pyproject's test extra installs the Lark the parser records (a system lark kept by --system-site-packages
    would make the byte-for-byte regeneration test skip)."""
    extra = re.search(r"^test = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.M | re.S).group(1)
    assert f'"lark=={_recorded("lark")}"' in extra  # tomllib is 3.11+; the tests run on 3.9 too
