"""Issue 9 (apply, 200k addresses <= 1.3x `nft -f`): the address lists apply keeps in the state directory
(nftc.system.addresslists). A compile with the lists kept must give what a fresh one gives, byte for byte; a kept
file that is not exactly what nftc writes (hand-edited, corrupted, a link, writable by others) is never used."""

from __future__ import annotations

import hashlib
import os
import pathlib

import pytest

from bench import generate
from nftc.backend.render_json import render_json
from nftc.backend.render_nft import render_nft
from nftc.cli.main import main
from nftc.compiler import compile_policy
from nftc.language import loader
from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.system import addresslists
from nftc.system.reapply import provenance
from nftc.system.state import StateDir

from apply_helpers import lab, server  # noqa: F401 (fixtures)

SMALL_V4 = "192.0.2.0/24\n198.51.100.7\n203.0.113.0/25\n"
SMALL_V6 = "2001:db8::/48\n2001:db8:1::1\n"
MIXED = "198.18.0.0/15\n2001:db8:ff::/48\n100.64.0.1\n"  # both versions in one file


def _policy(tmp_path: pathlib.Path, rule: str = "allow lan -> ssh", lists: dict[str, str] | None = None) -> str:
    """A policy with one file zone per list (name -> text), each denied; `rule` varies between applies."""
    lists = lists if lists is not None else {"v4": SMALL_V4, "v6": SMALL_V6}
    zones = "".join(f'zone {name} = file "{name}.txt"\n' for name in lists)
    denies = "".join(f"deny {name} -> ssh\n" for name in lists)
    for name, text in lists.items():
        (tmp_path / f"{name}.txt").write_text(text)
    policy = tmp_path / "policy.zfw"
    policy.write_text(f"zone lan = 10.99.0.0/24, fd99::/64\nzone internet = any\n{zones}{denies}{rule}\n")
    return str(policy)


def _compiled(policy: str, lists: addresslists.AddressLists | None = None):
    """(nft text, JSON, digest, warnings, provenance) of a compile, with `lists` kept or without any."""
    sources: dict[str, str] = {}
    c = compile_policy(policy, sources, lists=lists.cache() if lists else None)
    return render_nft(c.table), render_json(c.table), c.digest, c.warnings, provenance(sources, False, len(c.warnings))


def _state(tmp_path: pathlib.Path) -> StateDir:
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    return state


def _kept(state: StateDir) -> list[str]:
    return sorted(n for n in os.listdir(state.path) if n.startswith("addresses-"))


def _applied_twice(state: StateDir, policy: str):
    """Compile and store (an empty cache or not), then compile again with what was stored: both results and the
    second compile's AddressLists (which says, in `used`, what it found kept: None)."""
    first = addresslists.AddressLists(state)
    fresh = _compiled(policy, first)
    first.store()
    second = addresslists.AddressLists(state)
    return fresh, _compiled(policy, second), second


@pytest.mark.slow
def test_issue9_a_cached_compile_is_byte_identical_to_a_fresh_one(tmp_path):
    """The issue's 'a cached compile must give byte-identical output to a fresh one': several file zones, IPv4
    and IPv6, a generated list of thousands; nft text, JSON, digest, warnings and provenance compared."""
    big = "\n".join(generate.addresses(4000)) + "\n"
    policy = _policy(tmp_path, lists={"big": big, "v4": SMALL_V4, "v6": SMALL_V6, "mixed": MIXED})
    state = _state(tmp_path)
    fresh, warm, second = _applied_twice(state, policy)
    assert len(_kept(state)) == 4
    assert second.used and all(v is None for v in second.used.values())  # every list came from the cache
    assert warm == fresh == _compiled(policy)


# Every way a kept file can differ from what nftc writes: (label, edit of the file's text).
_V4_LINE = f"{(192 << 24 | 2 << 8) << 8 | 24}\n"  # 192.0.2.0/24 packed
_V4_NEXT = f"{(198 << 24 | 51 << 16 | 100 << 8 | 7) << 8 | 32}\n"  # 198.51.100.7, the line after it
_V4_LAST = f"{(203 << 24 | 113 << 8) << 8 | 25}\n"  # 203.0.113.0/25, the last
_TAMPERED = [
    ("wrong header", lambda t: t.replace("address list", "address lists", 1)),
    ("other fingerprint", lambda t: t.replace("sha256:", "sha256:0", 1)),
    ("other version", lambda t: t.replace("nftc ", "nftc 9", 1)),
    ("host bits set", lambda t: t.replace(_V4_LINE, f"{(192 << 24 | 2 << 8 | 1) << 8 | 24}\n")),
    ("prefix 33 for IPv4", lambda t: t.replace(_V4_LINE, f"{(192 << 24 | 2 << 8) << 8 | 33}\n")),
    ("IPv4 address beyond 32 bits", lambda t: t.replace(_V4_LINE, f"{(1 << 32) << 8 | 32}\n")),
    ("non-digits", lambda t: t.replace(_V4_LINE, "0x1\n")),
    ("plus sign", lambda t: t.replace(_V4_LINE, "+" + _V4_LINE)),
    ("underscore", lambda t: t.replace(_V4_LINE, _V4_LINE[:2] + "_" + _V4_LINE[2:])),
    ("blank before", lambda t: t.replace(_V4_LINE, " " + _V4_LINE)),
    ("leading zero", lambda t: t.replace(_V4_LINE, "0" + _V4_LINE)),
    ("extra blank line", lambda t: t.replace(_V4_LINE, _V4_LINE + "\n")),
    ("blank line at the end", lambda t: t + "\n"),
    ("trailing garbage", lambda t: t + "x"),
    ("no final newline", lambda t: t[:-1]),
    ("count too high", lambda t: t.replace("ipv4 3\n", "ipv4 4\n")),
    ("count too low", lambda t: t.replace("ipv4 3\n", "ipv4 2\n")),
    ("a line dropped", lambda t: t.replace(_V4_LINE, "")),
    ("IPv6 section missing", lambda t: t[:t.index("ipv6 ")]),
    ("sections swapped", lambda t: t.replace("ipv4 3", "ipvX").replace("ipv6 0", "ipv4 3").replace("ipvX", "ipv6 0")),
    ("non-ASCII digit", lambda t: t.replace(_V4_LINE, "\u0661" + _V4_LINE)),
    ("information separator", lambda t: t.replace(_V4_LINE, _V4_LINE[:-1] + "\x1c\n")),  # int() skips it
    ("tab", lambda t: t.replace(_V4_LINE, _V4_LINE[:-1] + "\t\n")),
    # issue 9: kept sorted, so a compile from it sorts nothing; the reader takes nothing else
    ("two lines swapped", lambda t: t.replace(_V4_LINE + _V4_NEXT, _V4_NEXT + _V4_LINE)),
    ("last line first", lambda t: t.replace("ipv4 3\n" + _V4_LINE, "ipv4 3\n" + _V4_LAST + _V4_LINE)
     .replace(_V4_NEXT + _V4_LAST, _V4_NEXT)),
    ("a line repeated, counted", lambda t: t.replace(_V4_LINE, _V4_LINE * 2).replace("ipv4 3\n", "ipv4 4\n")),
    ("a line repeated in place of the next", lambda t: t.replace(_V4_NEXT, _V4_LINE)),
]


def test_issue9_what_nftc_writes_reads_back():
    """The round trip the attack tests below edit: without it they would prove nothing. A list reads back sorted
    (the order the zone map needs: a compile from a kept list sorts nothing), whatever the file's order."""
    networks = loader.read_address_list(SMALL_V4 + SMALL_V6 + "0.0.0.0/0\n::/0\n", "x").networks
    back = addresslists.from_text(addresslists.as_text(networks))
    assert back == m.AddressList(tuple(sorted(networks.v4)), tuple(sorted(networks.v6)))
    assert back.v4 != networks.v4 and back.v6 != networks.v6  # the file's order was not sorted: this proves it
    empty = loader.read_address_list("", "x").networks
    assert addresslists.from_text(addresslists.as_text(empty)) == empty


def test_issue9_what_nftc_writes_is_sorted():
    """Every version's lines in increasing order, as the reader demands (a generated list of thousands)."""
    text = addresslists.as_text(loader.read_address_list("\n".join(generate.addresses(400)) + "\n", "x").networks)
    v4, v6 = (section.split("\n")[1:-1] for section in text.split("ipv")[1:])
    assert len(v4) == len(v6) == 200
    assert list(map(int, v4)) == sorted(map(int, v4)) and list(map(int, v6)) == sorted(map(int, v6))


def _written() -> str:
    return addresslists.as_text(loader.read_address_list(SMALL_V4, "x").networks)


@pytest.mark.parametrize("label, edit", _TAMPERED, ids=[t[0] for t in _TAMPERED])
def test_issue9_a_kept_list_not_exactly_as_written_reads_as_nothing(label, edit):
    """Attack, fast: every edit of what nftc writes is refused by the reader itself."""
    written = _written()
    assert edit(written) != written, label
    assert addresslists.from_text(written) is not None and addresslists.from_text(edit(written)) is None


@pytest.mark.slow
@pytest.mark.parametrize("label, edit", _TAMPERED, ids=[t[0] for t in _TAMPERED])
def test_issue9_a_kept_list_not_exactly_as_written_is_never_used(tmp_path, label, edit):
    """Attack: a corrupted or hand-edited kept list is parsed afresh (the compile equals the fresh one), and the
    next store replaces it with what nftc writes."""
    policy = _policy(tmp_path, lists={"v4": SMALL_V4})
    state = _state(tmp_path)
    fresh, _, _ = _applied_twice(state, policy)
    (name,) = _kept(state)
    path = pathlib.Path(state.path, name)
    written = path.read_text()
    assert written == _written()
    tampered = edit(written)
    assert tampered != written, label
    path.write_text(tampered)
    assert addresslists.from_text(tampered) is None
    lists = addresslists.AddressLists(state)
    assert _compiled(policy, lists) == fresh
    assert lists.used and all(v is not None for v in lists.used.values())  # parsed afresh, to be stored
    lists.store()
    assert path.read_text() == written


def _one_list_kept(tmp_path):
    """A policy of one address file, applied twice: (policy, state, its fresh compile, the kept list's path)."""
    policy = _policy(tmp_path, lists={"v4": SMALL_V4})
    state = _state(tmp_path)
    fresh, _, _ = _applied_twice(state, policy)
    (name,) = _kept(state)
    return policy, state, fresh, pathlib.Path(state.path, name)


def test_issue9_a_symlink_in_place_of_a_kept_list_is_never_followed(tmp_path):
    """Attack: a link where a kept list belongs (StateDir refuses it), pointing at a list of other addresses."""
    policy, state, fresh, path = _one_list_kept(tmp_path)
    other = tmp_path / "other.list"
    other.write_text(addresslists.as_text(loader.read_address_list("10.1.2.0/24\n", "x").networks))
    other.chmod(0o600)
    path.unlink()
    path.symlink_to(other)
    lists = addresslists.AddressLists(state)
    assert _compiled(policy, lists) == fresh
    lists.store()
    assert not path.is_symlink() and addresslists.from_text(path.read_text()) is not None
    assert "10.1.2.0" not in path.read_text() and other.exists()


def test_issue9_a_kept_list_others_may_write_is_never_used(tmp_path):
    """Attack: a kept list made group-writable (someone else could have changed it) is not read."""
    policy, state, fresh, path = _one_list_kept(tmp_path)
    path.chmod(0o620)
    lists = addresslists.AddressLists(state)
    assert _compiled(policy, lists) == fresh
    assert all(v is not None for v in lists.used.values())
    lists.store()
    assert path.stat().st_mode & 0o777 == 0o600


def test_issue9_a_list_that_warns_is_never_kept_and_warns_at_every_compile(tmp_path):
    """A list whose host bits were cleared warns; kept, its warning would be said once and then never again."""
    policy = _policy(tmp_path, lists={"v4": "192.0.2.1/24\n"})
    state = _state(tmp_path)
    fresh, warm, _ = _applied_twice(state, policy)
    assert fresh[3] and warm == fresh
    assert _kept(state) == []


def test_issue9_a_list_with_a_repeated_network_is_never_kept(tmp_path):
    """Kept sorted and without repeats, such a list would hold fewer networks than the file, which the address
    budget counts: it is parsed at every compile, and a file found under its name is removed."""
    policy = _policy(tmp_path, lists={"v4": SMALL_V4 + "192.0.2.0/24\n"})
    state = _state(tmp_path)
    stale = pathlib.Path(state.path, addresslists.file_name(hashlib.sha256(
        (tmp_path / "v4.txt").read_bytes()).hexdigest()))
    stale.write_text("not a kept list\n")
    stale.chmod(0o600)
    fresh, warm, second = _applied_twice(state, policy)
    assert warm == fresh == _compiled(policy)
    assert second.used and all(v is not None for v in second.used.values())  # parsed again
    assert _kept(state) == [] and addresslists.as_text(second.used[stale.name[10:-5]]) is None


def test_issue9_a_store_keeps_only_the_last_compiles_lists(tmp_path):
    """Bound: the state directory holds only the lists the last compile read."""
    state = _state(tmp_path)
    _applied_twice(state, _policy(tmp_path, lists={"v4": SMALL_V4, "v6": SMALL_V6}))
    assert len(_kept(state)) == 2
    _applied_twice(state, _policy(tmp_path, lists={"v4": "203.0.113.9\n"}))
    (name,) = _kept(state)
    assert addresslists.from_text(pathlib.Path(state.path, name).read_text()).v4 == \
        loader.read_address_list("203.0.113.9\n", "x").networks.v4


def test_issue9_a_kept_list_beyond_the_address_budget_is_parsed_and_refused(tmp_path, monkeypatch):
    """A kept list is used only within the loader's remaining budget: over it, parsing gives the error a fresh
    compile gives."""
    policy = _policy(tmp_path)
    state = _state(tmp_path)
    _applied_twice(state, policy)
    monkeypatch.setattr(loader, "MAX_ADDRESSES", 4)
    with pytest.raises(PolicyError) as fresh:
        _compiled(policy)
    with pytest.raises(PolicyError) as warm:
        _compiled(policy, addresslists.AddressLists(state))
    assert warm.value.diagnostics == fresh.value.diagnostics


def test_issue9_a_store_that_fails_fails_nothing(tmp_path):
    """A directory where a kept list goes: the rename fails, the store says nothing, the compile was done."""
    policy = _policy(tmp_path, lists={"v4": SMALL_V4})
    state = _state(tmp_path)
    lists = addresslists.AddressLists(state)
    _compiled(policy, lists)
    (sha256,) = lists.used
    os.mkdir(os.path.join(state.path, addresslists.file_name(sha256)))
    lists.store()
    assert os.path.isdir(os.path.join(state.path, addresslists.file_name(sha256)))


def test_issue9_compile_and_check_keep_no_list(tmp_path, monkeypatch, capsys):
    """`nftc compile` and `check` have no state directory: nothing is kept, even with NFTC_STATE_DIR set."""
    policy = _policy(tmp_path)
    monkeypatch.setenv("NFTC_STATE_DIR", str(tmp_path / "state"))
    assert main(["compile", policy]) == 0 and main(["check", policy]) == 0
    assert not (tmp_path / "state").exists()


@pytest.mark.kernel
def test_issue9_a_second_apply_with_other_rules_reads_the_kept_list(server, tmp_path):
    """Kernel: two applies of different rules over the same address file; the second reads the list kept by
    the first (a list parsed afresh is written anew: same inode, it was found) and loads what a fresh compile
    gives. A kept list then corrupted is parsed again and replaced."""
    big = "\n".join(generate.addresses(2000)) + "\n"
    policy = _policy(server.dir, lists={"big": big, "v6": SMALL_V6})
    assert server.nftc("apply", policy).returncode == 0
    state = StateDir(str(server.state))
    kept = {n: os.stat(os.path.join(state.path, n)).st_ino for n in _kept(state)}
    assert len(kept) == 2
    _policy(server.dir, rule="allow lan -> smtp, ssh", lists={"big": big, "v6": SMALL_V6})
    assert server.nftc("apply", policy).returncode == 0
    assert {n: os.stat(os.path.join(state.path, n)).st_ino for n in _kept(state)} == kept
    assert _applied_script(server) == _fresh_script(policy)
    corrupt = pathlib.Path(state.path, sorted(kept)[0])
    corrupt.write_text(corrupt.read_text().replace("ipv4 ", "ipv4 1"))
    _policy(server.dir, rule="allow lan -> ssh", lists={"big": big, "v6": SMALL_V6})
    assert server.nftc("apply", policy).returncode == 0
    assert addresslists.from_text(corrupt.read_text()) is not None
    assert _applied_script(server) == _fresh_script(policy)


def _applied_script(nftc_server) -> str:
    return (nftc_server.state / "applied.script").read_text()


def _fresh_script(policy: str) -> str:
    """What apply would record for `policy`, compiled afresh, without any kept list."""
    return render_nft(compile_policy(policy, {}).table)
