"""Issue 9, the apply side: an unchanged policy is not applied again, the live table is read without fetching
every set element, drift needs no private namespace, large tables are snapshot from the recorded script, and a
reload keeps the dynamic sets in place. Every safety property of issue 7 still holds (test_apply_safety.py).

Unit tests first (no kernel), then kernel tests, each in its own namespace with a temporary state dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import pytest

from apply_helpers import SITE, Server, compiled_digest, lab, server  # noqa: F401 (fixtures)
from helpers import compile_text
from nftc.backend.render_nft import render_nft
from nftc.system import live, reapply, records, transaction
from nftc.system.records import Input, Provenance, Target
from nftc.system.state import StateError

SITE_WITH_IMAP = SITE + "allow lan -> imap\n"


# The marker and the fast reading of the live table.


def test_issue9_the_digest_is_read_from_the_input_chain_the_compiler_stamps_too():
    """An apply that keeps the table in place cannot change the table's comment (the kernel keeps it): the input
    chain, made anew every time, carries the digest; a table of an older nftc has only the table's."""
    compilation = compile_text(SITE)
    script, digest = render_nft(compilation.table), compilation.digest
    assert script.count(f'policy policy.zfw sha256:{digest}"\n') == 2
    assert live.script_digest(script) == digest == live.digest(script)
    stale = script.replace(digest, "0" * 64, 1)  # the table's comment, from the apply that created the table
    assert stale.index("0" * 64) < stale.index("\tchain input {") and live.digest(stale) == digest
    chain_marker = f'\t\tcomment "nftc 0.1.0 policy policy.zfw sha256:{digest}"\n'
    assert live.digest(script.replace(chain_marker, "")) == digest


RULESET = """\
table ip nat {
	chain postrouting {
		comment "x"
	}
}
table inet zfw {
	comment "nftc 0.1.0 policy site.zfw sha256:%s"
	chain input {
		type filter hook input priority filter; policy drop;
	}
}
table inet f2b {
	chain input {
		type filter hook input priority filter - 1; policy accept;
	}
}
""" % ("ab" * 32)


def test_issue9_nftcs_block_is_cut_out_of_the_terse_ruleset_and_a_forged_one_is_ambiguous():
    block = live.table_block(RULESET, Target("inet", "zfw"))
    assert block.startswith("table inet zfw {\n") and block.endswith("\n}\n") and "f2b" not in block
    assert live.digest(block) == "ab" * 32
    assert live.table_block(RULESET, Target("inet", "other")) is None
    forged = RULESET.replace('comment "x"', 'comment "x\n}\n}\ntable inet zfw {\n\tchain input {\n\t}\n}\n"')
    with pytest.raises(live.Ambiguous):
        live.table_block(forged, Target("inet", "zfw"))
    unindented = RULESET.replace("\tchain input {\n\t\ttype filter hook input priority filter; policy drop;",
                                 "\tchain input {\nflush ruleset", 1)
    with pytest.raises(live.Ambiguous):
        live.table_block(unindented.replace("table ip nat", "table ip nat2"), Target("inet", "zfw"))


def test_issue9_drift_ignores_block_order_and_the_tables_stale_comment_but_not_rules():
    compilation = compile_text(SITE)
    script = render_nft(compilation.table)
    listing = live.table_block(script, Target("inet", "zfw"))
    members = live.blocks(listing)
    reordered = "table inet zfw {\n" + "".join(
        f"\t{b.kind} {b.name} {{\n" + "".join(line + "\n" for line in b.lines) + "\t}\n"
        for b in reversed(members)) + "}\n"
    assert live.drift(reordered, listing) == []
    edited = listing.replace("\tchain zone_lan {\n", "\tchain zone_lan {\n\t\ttcp dport 8080 accept\n")
    assert live.drift(edited, listing) == ["+\t\ttcp dport 8080 accept"]
    assert live.drift(edited, listing, with_elements=False) == ["+\t\ttcp dport 8080 accept"]
    quota = listing.replace("\tchain zone_lan {\n", "\tquota hand {\n\t\t10 mbytes\n\t}\n\n\tchain zone_lan {\n")
    assert live.drift(quota, listing) == ["+\tquota hand {", "+\t\t10 mbytes", "+\t}"]  # a kind nftc never makes


def test_issue9_counters_are_read_from_the_listing():
    listing = ("table inet zfw {\n\tcounter lan/ssh/r2 {\n\t\tcomment \"x\"\n\t\tpackets 7 bytes 420\n\t}\n\n"
               "\tcounter drop/no-zone {\n\t\tpackets 0 bytes 0\n\t}\n}\n")
    assert live.counters(listing) == [{"name": "lan/ssh/r2", "packets": 7, "bytes": 420},
                                      {"name": "drop/no-zone", "packets": 0, "bytes": 0}]


# The in-place transaction.


def test_issue9_in_place_deletes_all_but_the_kept_sets_maps_before_chains_then_adds_the_new_table():
    compilation = compile_text(SITE)
    script = render_nft(compilation.table)
    listing = live.table_block(script, Target("inet", "zfw"))
    kept = transaction.kept(("dyn_blocklist_v4", "dyn_blocklist_v6"), script, script, listing).sets
    assert kept == ("dyn_blocklist_v4", "dyn_blocklist_v6")
    text = transaction.in_place(Target("inet", "zfw"), listing, transaction.Kept(kept), script)
    lines = text.splitlines()
    assert not any("dyn_blocklist" in line for line in lines if line.startswith(("delete", "flush")))
    first_chain_delete = next(i for i, line in enumerate(lines) if line.startswith("delete chain"))
    assert all(i < first_chain_delete for i, line in enumerate(lines) if line.startswith("delete map"))
    assert "delete table" not in text and text.endswith(live.table_block(script, Target("inet", "zfw")))
    other = script.replace("\tset dyn_blocklist_v6 {\n\t\ttype ipv6_addr\n",
                           "\tset dyn_blocklist_v6 {\n\t\ttype ipv6_addr\n\t\tsize 100\n")
    assert transaction.kept(("dyn_blocklist_v4", "dyn_blocklist_v6"), other, script, listing).sets == (
        "dyn_blocklist_v4",)
    forged = listing.replace("\tchain zone_lan {", "\tchain zone_lan;flush {")
    assert transaction.in_place(Target("inet", "zfw"), forged, transaction.Kept(kept), script) is None


# What the record says the compile read, and checking it without compiling.


def test_issue9_the_inputs_are_recorded_and_read_back_checked(tmp_path):
    provenance = Provenance("0.1.0", "ab" * 32, True, 0, (Input("/etc/nftc/p.zfw", "/etc/nftc/p.zfw", "cd" * 32),))
    applied = records.Applied("/etc/nftc/p.zfw", "ef" * 32, Target("inet", "zfw"), "t", False, 12, provenance)
    assert records.applied_from(json.loads(json.dumps(applied.as_dict())), "x") == applied
    for damage in ({"path": "relative.zfw"}, {"sha256": "nothex"}, {"path": "/a\0b"}):
        data = applied.as_dict()
        data["provenance"]["inputs"][0].update(damage)
        with pytest.raises(StateError):
            records.applied_from(data, "applied.json")


def test_issue9_inputs_unchanged_hashes_the_files_as_the_loader_reads_them(tmp_path):
    policy, addresses = tmp_path / "p.zfw", tmp_path / "blocked.txt"
    policy.write_text('table zfw\nzone internet = any\nzone blocked = file "blocked.txt"\nallow internet -> smtp\n')
    addresses.write_text("192.0.2.0/24\n")
    sources: dict[str, str] = {}
    from nftc.compiler import compile_policy
    compile_policy(str(policy), sources)
    recorded = reapply.provenance(sources, False, 0)
    assert {i.path for i in recorded.inputs} == {str(policy), str(addresses)}
    assert reapply.inputs_unchanged(recorded)
    addresses.write_bytes(b"\xef\xbb\xbf" + addresses.read_bytes())  # the loader drops a byte order mark
    assert reapply.inputs_unchanged(recorded)
    addresses.write_text("192.0.2.0/25\n")
    assert not reapply.inputs_unchanged(recorded)
    addresses.write_text("192.0.2.0/24\n")
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("192.0.2.0/24\n")
    addresses.unlink()
    addresses.symlink_to(elsewhere)  # same bytes, another file: a fresh compile could differ (duplicate include)
    assert not reapply.inputs_unchanged(recorded)
    addresses.unlink()
    os.mkfifo(addresses)  # a FIFO planted there is not read (a blocking open would hang)
    assert not reapply.inputs_unchanged(recorded)
    other_version = Provenance("0.0.1", recorded.code, False, 0, recorded.inputs)
    assert not reapply.inputs_unchanged(other_version)


# On the kernel.

INCLUDED = "service webmail = tcp 8443\n"
MAIN = ('include "services.zfw"\nzone blocked = file "blocked.txt"\n' + SITE
        + "allow lan -> webmail\ndeny blocked -> smtp\n")
PROBE = ("import sys\nfrom nftc.cli.main import main\ncode = main(sys.argv[1:])\n"
         "print('compiler imported' if 'nftc.compiler' in sys.modules else 'compiler not imported')\nsys.exit(code)\n")


def site_files(server: Server) -> str:
    server.policy("services.zfw", INCLUDED)
    server.policy("blocked.txt", "192.0.2.0/24\n2001:db8:bad::/48\n")
    return server.policy("main.zfw", MAIN)


def probe(server: Server, *args: str):
    """nftc in the namespace, in a Python that says afterwards whether the compiler was imported."""
    return server.lab.exec(server.ns, "env", "-u", "SSH_CONNECTION", sys.executable, "-c", PROBE, *args,
                           "--state-dir", str(server.state), check=False, timeout=120)


def state_files(server: Server) -> dict[str, tuple]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino, hashlib.sha256(p.read_bytes()).hexdigest())
            for p in server.state.iterdir()}


def recorded_digest(server: Server) -> str:
    return json.loads((server.state / "applied.json").read_text())["digest"]


def loopback_packets(server: Server) -> None:
    """A few packets through the input chain (zone localhost), so counters are not zero."""
    server.lab.exec(server.ns, sys.executable, "-c", "import socket\nfor _ in range(3):\n"
                    "    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', 9))\n")


@pytest.mark.kernel
def test_issue9_an_unchanged_apply_says_so_and_changes_nothing_not_even_counters(server):
    policy = site_files(server)
    assert server.nftc("apply", policy).returncode == 0
    server.nft("add", "element", "inet", "zfw", "dyn_blocklist_v4", "{ 198.51.100.66 }")
    loopback_packets(server)
    before, files = server.nft("list", "ruleset"), state_files(server)
    assert "packets 0 bytes 0" != before and "198.51.100.66" in before
    result = probe(server, "apply", policy)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (f"unchanged: table inet zfw sha256:{recorded_digest(server)[:16]} ({policy})\n"
                             "compiler not imported\n")
    assert server.nft("list", "ruleset") == before
    assert state_files(server) == files  # not even the lock file: nothing is written
    assert compiled_digest(policy) == recorded_digest(server) == server.digest()


CHANGES = {
    "edited include": lambda s: s.policy("services.zfw", INCLUDED + "# reviewed\n"),
    "edited address file": lambda s: s.policy("blocked.txt", "192.0.2.0/25\n2001:db8:bad::/48\n"),
    "hand edit": lambda s: s.nft("add", "rule", "inet", "zfw", "zone_lan", "tcp", "dport", "8080", "accept"),
    "other nftc version": lambda s: rewrite_provenance(s, nftc="0.0.9"),
    "other compiler sources": lambda s: rewrite_provenance(s, code="00" * 32),
    "pending confirmation": lambda s: s.nftc("apply", str(s.dir / "main.zfw"), "--confirm", "600"),
    "table deleted": lambda s: s.nft("delete", "table", "inet", "zfw"),
}


def rewrite_provenance(server: Server, **changes) -> None:
    path = server.state / "applied.json"
    data = json.loads(path.read_text())
    data["provenance"].update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.kernel
@pytest.mark.parametrize("change", sorted(CHANGES))
def test_issue9_anything_changed_means_a_real_apply_and_then_unchanged_again(server, change):
    """Each change leads to a transaction; the apply after it finds nothing to do, and what it says unchanged
    is what a fresh compile gives."""
    policy = site_files(server)
    assert server.nftc("apply", policy).returncode == 0
    CHANGES[change](server)
    result = server.nftc("apply", policy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"applied {policy}: table inet zfw sha256:"), result.stdout
    if change == "hand edit":
        assert "discarded 1 hand-edited lines" in result.stderr
        assert "tcp dport 8080 accept" not in server.nft("list", "ruleset")
    again = server.nftc("apply", policy)
    assert again.stdout.startswith("unchanged: "), again.stdout
    assert compiled_digest(policy) == recorded_digest(server) == server.digest()
    assert "drift:   none" in server.nftc("status").stdout
    if change == "pending confirmation":
        assert not (server.state / "pending.json").exists()  # the plain apply kept the table: its guard exits


@pytest.mark.kernel
def test_issue9_force_and_confirm_apply_even_when_unchanged(server):
    policy = site_files(server)
    assert server.nftc("apply", policy).returncode == 0
    assert server.nftc("apply", policy, "--force").stdout.startswith("applied ")
    confirmed = server.nftc("apply", policy, "--confirm", "600")
    assert confirmed.stdout.startswith("applied ") and server.nftc("confirm").returncode == 0


@pytest.mark.kernel
def test_issue9_unchanged_inputs_load_the_recorded_script_without_compiling(server):
    """The table is gone (a boot, a `nft flush ruleset`): the recorded script is what a compile would give; no
    SSH client means nothing for the lockout guard to check, so nothing is compiled."""
    policy = site_files(server)
    assert server.nftc("apply", policy).returncode == 0
    server.nft("flush", "ruleset")
    result = probe(server, "apply", policy)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("compiler not imported\n") and result.stdout.startswith(f"applied {policy}")
    assert server.digest() == compiled_digest(policy)
    checked = probe(server, "apply", policy, "--admin-from", "10.99.0.7")  # an address to check: compiled
    assert checked.returncode == 0 and checked.stdout.endswith("compiler imported\n"), checked.stdout


@pytest.mark.kernel
def test_issue9_a_foreign_table_of_the_recorded_name_is_still_refused(server):
    policy = site_files(server)
    assert server.nftc("apply", policy).returncode == 0
    server.nft("delete", "table", "inet", "zfw")
    server.nft("-f", "-", input="table inet zfw {\n\tchain input {\n\t\ttype filter hook input priority filter - 1;"
                                " policy accept;\n\t}\n}\n")
    before = server.nft("list", "ruleset")
    result = server.nftc("apply", policy)
    assert result.returncode == 1 and "table inet zfw exists and is not nftc's" in result.stderr
    assert server.nft("list", "ruleset") == before


@pytest.mark.kernel
def test_issue9_a_reload_keeps_the_dynamic_sets_and_whatever_their_elements_carry(server):
    """In place: nftc neither reads nor re-sends the elements, so even what it would not carry (a comment) stays,
    and an element added at any moment is never lost. A rollback brings the previous table back around the same
    sets, kept in place again (issue 10)."""
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    before_digest = server.digest()
    command = {"nftables": [{"add": {"element": {"family": "inet", "table": "zfw", "name": "dyn_blocklist_v4",
                                                 "elem": [{"elem": {"val": "192.0.2.66", "comment": "fail2ban"}},
                                                          {"prefix": {"addr": "198.18.0.0", "len": 15}}]}}}]}
    server.nft("-j", "-f", "-", input=json.dumps(command))
    elements = server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4")
    reload = server.nftc("apply", server.policy("site2.zfw", SITE_WITH_IMAP))
    assert reload.returncode == 0, reload.stderr
    assert "dynamic sets kept in place with their elements: dyn_blocklist_v4, dyn_blocklist_v6" in reload.stdout
    assert server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4") == elements  # comment and all
    assert server.digest() == compiled_digest(str(server.dir / "site2.zfw"))
    assert "drift:   none" in server.nftc("status").stdout
    assert server.nftc("rollback").returncode == 0
    assert server.digest() == before_digest
    restored = server.nft("list", "set", "inet", "zfw", "dyn_blocklist_v4")
    assert restored == elements  # comment and all: in place, not carried as data


LARGE = records.LISTED_ELEMENTS + 500


def large_policy(server: Server) -> str:
    """A zone of more addresses than drift lists the elements of (separate /32s: one element each)."""
    server.policy("many.txt", "".join(f"100.64.{2 * i // 256}.{2 * i % 256}\n" for i in range(LARGE)))
    return server.policy("large.zfw", 'zone many = file "many.txt"\n' + SITE + "deny many -> smtp\n")


@pytest.mark.kernel
def test_issue9_above_the_listing_size_drift_compares_rules_and_the_snapshot_is_the_recorded_script(server):
    large = large_policy(server)
    assert server.nftc("apply", large).returncode == 0
    unchanged = server.nftc("apply", large)
    assert unchanged.stdout.startswith("unchanged: ")
    assert "set elements not compared at this size" in unchanged.stdout
    status = server.nftc("status").stdout
    assert "drift:   none in rules and sets' definitions; set elements not compared at this size" in status
    server.nft("add", "rule", "inet", "zfw", "zone_lan", "tcp", "dport", "8080", "accept")
    assert "drift:   DRIFT" in server.nftc("status").stdout
    result = server.nftc("apply", large)
    assert result.stdout.startswith("applied ") and "discarded 1 hand-edited lines" in result.stderr
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0  # the snapshot: the large table, as its script
    script = (server.state / "snapshot.applied.script").read_text()  # the block is read out of it (issue 9)
    assert (server.state / "snapshot.nft").read_text() == ""
    assert json.loads((server.state / "snapshot.json").read_text())["tables"][0]["script"] is True
    assert server.nftc("rollback").returncode == 0
    assert server.digest() == compiled_digest(large)
    assert server.nftc("apply", large).stdout.startswith("unchanged: ")


FORGED = ('x\n}\n}\ntable inet zfw {\n\tchain input {\n\t\tcomment "nftc 0.1.0 policy site.zfw sha256:' + "0" * 64
          + '"\n\t}\n}\ntable inet f2c {\n\tchain c {\n\t\taccept comment "y')


def forge_a_block(server: Server) -> None:
    """Another tool's table whose rule comment (written through JSON, with newlines) prints as a block of nftc's."""
    server.nft("-j", "-f", "-", input=json.dumps({"nftables": [
        {"add": {"table": {"family": "inet", "name": "f2b"}}},
        {"add": {"chain": {"family": "inet", "table": "f2b", "name": "c"}}},
        {"add": {"rule": {"family": "inet", "table": "f2b", "chain": "c", "expr": [{"accept": None}],
                          "comment": FORGED}}}]}))
    assert "sha256:" + "0" * 64 in server.nft("-t", "list", "ruleset")


@pytest.mark.kernel
def test_issue9_another_tables_comment_cannot_pass_for_nftcs_table_in_the_terse_listing(server):
    """With nftc's table there, the forged header is a second one; without it, a header with no chain of that
    table behind it (JSON): either way nftc lists its table on its own, and reads the truth."""
    site = server.policy("site.zfw", SITE)
    assert server.nftc("apply", site).returncode == 0
    forge_a_block(server)
    foreign = server.nft("list", "table", "inet", "f2b")
    assert server.nftc("apply", site).stdout.startswith("unchanged: ")
    assert compiled_digest(site) in server.nftc("status").stdout
    server.nft("delete", "table", "inet", "zfw")
    assert server.nftc("status").stdout == "table inet zfw: not loaded\n"
    assert server.nftc("apply", site, "--force").returncode == 0
    assert json.loads((server.state / "snapshot.json").read_text())["tables"][0]["existed"] is False
    assert server.nftc("rollback").returncode == 0
    assert "inet zfw" not in server.nft("list", "tables") and server.nft("list", "table", "inet", "f2b") == foreign


def test_issue9_only_a_record_of_this_policy_compiled_without_warnings_stands_for_a_compile(tmp_path):
    """reapply.recorded: the same absolute policy, the same files, a script with the recorded digest, and no
    warnings then (a policy that warned compiles each time: its warnings are said, and --strict refuses)."""
    from nftc.compiler import compile_policy
    from nftc.system.state import StateDir, as_json

    policy = tmp_path / "p.zfw"
    policy.write_text(SITE)
    sources: dict[str, str] = {}
    compilation = compile_policy(str(policy), sources)
    script = render_nft(compilation.table)
    state = StateDir(str(tmp_path / "state"))
    state.ensure()

    def record(warnings: int, digest: str = compilation.digest, text: str = script) -> None:
        applied = records.Applied(str(policy), digest, Target("inet", "zfw"), "t", False, 0,
                                  reapply.provenance(sources, False, warnings))
        state.stage({records.APPLIED: as_json(applied.as_dict()), records.SCRIPT: text}).commit()

    record(0)
    assert reapply.recorded(state, str(policy), strict=True)[1] == script
    assert reapply.recorded(state, str(tmp_path / "other.zfw"), strict=False) is None
    record(1)
    assert reapply.recorded(state, str(policy), strict=False) is None
    record(0, text=script.replace("drop", "accept", 1))  # a script that is not the recorded digest's
    assert reapply.recorded(state, str(policy), strict=False) is None
