"""Issue 9 (apply, 200k addresses <= 1.3x `nft -f`), recording: a table that is exactly its applied record is
saved as that record's script, which snapshot.applied.script holds anyway; its block is no longer copied into
snapshot.nft (7.5 MB written once, not twice). A rollback reads it back out of snapshot.applied.script, checked
as a block of snapshot.nft is: the recorded sha256 covers it, so a swapped, truncated or edited script is never
trusted (nftc.system.snapshot). No kernel: the snapshot's files are written and read in a temporary directory."""

from __future__ import annotations

import json
import pathlib

import pytest

from apply_helpers import SITE, lab, server  # noqa: F401 (fixtures)
from helpers import compile_text
from nftc.backend.render_nft import render_nft
from nftc.system import live, snapshot
from nftc.system.records import Applied, Snapshot, TableState, Target
from nftc.system.state import StateDir, StateError, now_iso

TARGET = Target("inet", "zfw")


def _script(policy: str = SITE) -> tuple[str, str]:
    compilation = compile_text(policy)
    return render_nft(compilation.table), compilation.digest


def _state(tmp_path: pathlib.Path, as_script: bool = True) -> tuple[StateDir, str]:
    """A snapshot of one table that is its applied record: given as the record's script itself (as an apply
    gives a table it found exactly as recorded), or as its block (a listing); written, and its script."""
    script, digest = _script()
    record = Snapshot((TableState(TARGET, True),), "", now_iso(), Applied("/p/policy.zfw", digest, TARGET, now_iso()))
    listing = script if as_script else live.table_block(script, TARGET)
    state = StateDir(str(tmp_path / "state"))
    state.ensure()
    state.stage(snapshot.files(record, {TARGET: listing}, {}, script)).commit()
    return state, script


def _file(state: StateDir, name: str) -> pathlib.Path:
    return pathlib.Path(state.path, name)


def test_issue9_a_table_saved_as_its_script_is_not_copied_into_snapshot_nft(tmp_path):
    state, script = _state(tmp_path)
    assert _file(state, snapshot.NFT_FILE).read_text() == ""
    assert json.loads(_file(state, snapshot.JSON_FILE).read_text())["tables"][0]["script"] is True
    assert _file(state, snapshot.SCRIPT_FILE).read_text() == script


def test_issue9_a_rollback_reads_the_same_block_either_way(tmp_path):
    """The block read back from the script is the one snapshot.nft would have held (and still holds for a table
    saved from a listing): a rollback loads the same text."""
    from_script = snapshot.read(_state(tmp_path / "a")[0])
    state, script = _state(tmp_path / "b", as_script=False)
    listed = snapshot.read(state)
    assert _file(state, snapshot.NFT_FILE).read_text() == live.table_block(script, TARGET)
    assert from_script.listings == listed.listings == {TARGET: live.table_block(script, TARGET)}
    assert from_script.applied_script == listed.applied_script == script
    assert [t.script for t in from_script.record.tables] == [True]
    assert [t.script for t in listed.record.tables] == [False]


def _json_edit(edit):
    def damage(state: StateDir) -> None:
        path = _file(state, snapshot.JSON_FILE)
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return damage


def _text_edit(name: str, edit):
    def damage(state: StateDir) -> None:
        path = _file(state, name)
        path.write_text(edit(path.read_text()))
    return damage


def _marker_renamed(script: str) -> str:
    """The table's marker line names another policy: outside the script's digest (live.script_digest), inside the
    snapshot's sha256."""
    edited = script.replace("policy policy.zfw sha256:", "policy other.zfw sha256:", 1)
    assert edited != script and live.script_digest(edited) == live.script_digest(script)
    return edited


def _other_script(_: str) -> str:
    return _script(SITE + "allow lan -> imap\n")[0]


# Every way the files of such a snapshot can differ from what nftc wrote: (label, damage of the state dir).
_DAMAGED = [
    ("applied script truncated", _text_edit(snapshot.SCRIPT_FILE, lambda t: t[: len(t) // 2])),
    ("applied script swapped for another compile", _text_edit(snapshot.SCRIPT_FILE, _other_script)),
    ("applied script's marker edited (outside its digest)", _text_edit(snapshot.SCRIPT_FILE, _marker_renamed)),
    ("applied script missing", lambda state: _file(state, snapshot.SCRIPT_FILE).unlink()),
    ("the block copied into snapshot.nft too",
     lambda state: _file(state, snapshot.NFT_FILE).write_text(
         live.table_block(_file(state, snapshot.SCRIPT_FILE).read_text(), TARGET))),
    ("script mark cleared", _json_edit(lambda d: d["tables"][0].update(script=False))),
    ("script mark not a boolean", _json_edit(lambda d: d["tables"][0].update(script="yes"))),
    ("script mark on a table that did not exist", _json_edit(lambda d: d["tables"][0].update(existed=False))),
    ("script mark on another table than the record's", _json_edit(lambda d: d["tables"][0].update(table="other"))),
    ("script mark without an applied record", _json_edit(lambda d: d.update(applied=None))),
]


@pytest.mark.parametrize("label, damage", _DAMAGED, ids=[d[0] for d in _DAMAGED])
def test_issue9_a_script_snapshot_not_as_written_is_never_trusted(tmp_path, label, damage):
    """Attack/fault: whatever was swapped, cut or edited, reading the snapshot is a StateError (a rollback then
    leaves the table alone, as for a damaged snapshot.nft: tests/test_apply_faults.py)."""
    state, _ = _state(tmp_path)
    assert snapshot.read(state).listings  # as written: read back
    damage(state)
    with pytest.raises(StateError):
        snapshot.read(state)


def test_issue9_a_pending_snapshot_extended_copies_the_block_into_snapshot_nft(tmp_path):
    """While a confirmation is pending the snapshot is extended from what was read back: the script table's block
    is then a listing like any other, written into snapshot.nft, and reads back the same."""
    state, script = _state(tmp_path)
    saved = snapshot.read(state)
    other = Target("inet", "other")
    state.stage(snapshot.extended(saved, {other: (None, ())})).commit()
    again = snapshot.read(state)
    assert _file(state, snapshot.NFT_FILE).read_text() == live.table_block(script, TARGET)
    assert again.listings == saved.listings and [t.script for t in again.record.tables] == [False, False]


@pytest.mark.kernel
@pytest.mark.parametrize("damage", ["truncated", "swapped"])
def test_issue9_a_rollback_from_a_damaged_script_snapshot_leaves_the_table_alone(server, damage):  # noqa: F811
    """Kernel, attack: a large table saved as its script (more elements than drift lists), then another policy
    applied; snapshot.applied.script cut in half, or replaced by the script of another compile: the rollback
    refuses in one line naming the state directory, and the live table stays as it is. Undamaged, it restores."""
    from nftc.system.records import LISTED_ELEMENTS

    many = server.policy("many.txt", "".join(f"100.64.{2 * i // 256}.{2 * i % 256}\n"
                                             for i in range(LISTED_ELEMENTS + 500)))
    large = server.policy("large.zfw", f'zone many = file "{pathlib.Path(many).name}"\n{SITE}deny many -> smtp\n')
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", large).returncode == 0 and server.nftc("apply", site).returncode == 0
    assert json.loads((server.state / snapshot.JSON_FILE).read_text())["tables"][0]["script"] is True
    before = server.ruleset()
    path = server.state / snapshot.SCRIPT_FILE
    good = path.read_text()
    path.write_text(good[: len(good) // 2] if damage == "truncated" else _other_script(good))
    result = server.nftc("rollback")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(server.state) in result.stderr and server.ruleset() == before
    path.write_text(good)
    assert server.nftc("rollback").returncode == 0 and server.ruleset() != before
