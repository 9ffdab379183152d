"""Malicious policy files: each is refused with a clear limit message and a position, exit 2, no traceback, in
bounded time and memory (deep include chains, a zone of 10 million addresses, more than 1,000,000 addresses in
all, group cycles, a 1 MB policy line).

`nftc compile` runs in this process (tests/helpers.py `run_cli`): no interpreter start-up per case. The cases
at full scale that take seconds are marked `slow`; the fast loop checks the same limit at a smaller scale (a
lowered address limit, a shorter line of unknown zones). The elapsed-time bounds are guards against hangs, not
benchmarks; `pytest -s` prints the measured figures.
"""

from __future__ import annotations

import os
import re
import time

import pytest

from nftc.language import loader

from helpers import first_error, run_cli

FILE_NAMED = re.compile(r"^error: (?P<message>.*'(?P<file>[^']+)'.*)$")  # a file too big to open has no line yet


def compile_refused(policy) -> tuple[str, float]:
    """`nftc compile` from the policy's folder: returns standard error and the elapsed seconds; must exit 2."""
    started = time.monotonic()
    result = run_cli("compile", policy.name, cwd=policy.parent)
    elapsed = time.monotonic() - started
    assert result.code == 2, result.err[-2000:]
    assert result.out == ""
    assert "Traceback" not in result.err
    return result.err, elapsed


def positioned(stderr: str) -> re.Match:
    match = first_error(stderr)
    assert match, f"first line is not FILE:LINE:COL: error: ...: {stderr.splitlines()[0][:300]!r}"
    return match


def dotted(value: int) -> str:
    return ".".join(str(value >> shift & 255) for shift in (24, 16, 8, 0))


def address_lines(first: int, count: int) -> str:
    """`count` distinct /32 addresses from `first` on, one a line: the shortest lines a list of hosts has."""
    return "".join(f"{dotted(value)}\n" for value in range(first, first + count))


def test_a_deep_include_chain_stops_at_the_nesting_limit(tmp_path):
    depth = 20
    for level in range(depth):
        body = f'include "level{level + 1}.zfw"\n' if level < depth - 1 else "zone deep = 10.0.0.0/8\n"
        (tmp_path / f"level{level}.zfw").write_text(body)
    stderr, elapsed = compile_refused(tmp_path / "level0.zfw")
    print(f"\ninclude chain of {depth} files: refused in {elapsed:.2f} s: {stderr.splitlines()[0]}")
    error = positioned(stderr)
    assert error["message"] == f"includes nested deeper than {loader.MAX_INCLUDE_DEPTH} levels"
    assert error["file"] == f"level{loader.MAX_INCLUDE_DEPTH - 1}.zfw"
    assert elapsed < 10


@pytest.mark.slow  # writes a file of 10^7 lines
def test_a_zone_file_of_ten_million_addresses_is_refused_by_its_size(tmp_path):
    """10,000,000 distinct addresses need at least 8 bytes a line (`1.2.3.4\\n`): 80 MB, over the 64 MiB limit.
    The file starts with real addresses and is extended sparsely, so the test writes a few KiB to disk."""
    addresses = 10_000_000
    size = addresses * len("1.2.3.4\n")
    assert size > loader.MAX_ADDRESS_FILE_BYTES
    huge = tmp_path / "ten-million.txt"
    huge.write_text(address_lines(1 << 24, 1000))
    os.truncate(huge, size)
    policy = tmp_path / "policy.zfw"
    text = 'zone huge = file "ten-million.txt"\nallow huge -> ssh\n'
    policy.write_text(text)
    stderr, elapsed = compile_refused(policy)
    print(f"\nzone file of {size} bytes ({addresses} addresses): refused in {elapsed:.2f} s: {stderr.splitlines()[0]}")
    error = positioned(stderr)
    assert (error["file"], error["line"], error["column"]) == ("policy.zfw", "1", str(text.index('"ten') + 1))
    assert error["message"] == "address file 'ten-million.txt' is larger than 64 MiB"
    assert elapsed < 2


@pytest.mark.parametrize("limit", [pytest.param(1_000, id="limit-lowered-to-1000"),
                                   pytest.param(loader.MAX_ADDRESSES, id="one-million", marks=pytest.mark.slow)])
def test_more_addresses_in_all_than_the_limit_are_refused_with_the_address_limit(tmp_path, monkeypatch, limit):
    """Two files of 0.6 x the limit each: each passes alone, the second one breaks the budget of all zones."""
    monkeypatch.setattr(loader, "MAX_ADDRESSES", limit)
    per_file = limit * 6 // 10
    first = 1 << 24
    for index in range(2):
        (tmp_path / f"part{index}.txt").write_text(address_lines(first + index * per_file, per_file))
    sizes = [(tmp_path / f"part{index}.txt").stat().st_size for index in range(2)]
    assert max(sizes) < loader.MAX_ADDRESS_FILE_BYTES  # each file passes the size check
    policy = tmp_path / "policy.zfw"
    text = 'zone many = file "part0.txt", file "part1.txt"\nallow many -> ssh\n'
    policy.write_text(text)
    stderr, elapsed = compile_refused(policy)
    print(f"\ntwo address files of {per_file} /32 lines ({sum(sizes)} bytes): refused in {elapsed:.2f} s: "
          f"{stderr.splitlines()[0]}")
    error = positioned(stderr)
    over_budget = str(text.index('"part1.txt"') + 1)
    assert (error["file"], error["line"], error["column"]) == ("policy.zfw", "1", over_budget)
    assert error["message"] == f"zones hold more than {limit} addresses in all"
    assert elapsed < 60


@pytest.mark.parametrize("groups, message, line", [
    ("group loop = ssh, loop\n", "group 'loop' contains itself", 2),
    ("group a = ssh, b\ngroup b = smtp, c\ngroup c = imap, a\n", "group 'a' contains itself", 2),
], ids=["self", "three-groups"])
def test_a_group_that_contains_itself_is_refused(tmp_path, groups, message, line):
    policy = tmp_path / "policy.zfw"
    policy.write_text("zone lan = 10.0.0.0/8\n" + groups + "allow lan -> ssh\n")
    stderr, elapsed = compile_refused(policy)
    print(f"\ngroup cycle ({groups.count('group')} groups): refused in {elapsed:.2f} s: {stderr.splitlines()[0]}")
    error = positioned(stderr)
    assert error["message"] == message
    assert int(error["line"]) == line
    assert elapsed < 10


MEGABYTE = 1_000_000


@pytest.mark.parametrize("line, message", [
    ("zone z" + "a" * MEGABYTE + " = any", f"name 'z{'a' * 19}...' is longer than 32 characters"),
    ('service s = tcp 22 "' + "a" * MEGABYTE + '"', "string longer than 100 characters"),
    pytest.param("allow " + "x, " * (MEGABYTE // 3) + "x -> ssh", "zone 'x' is listed twice", marks=pytest.mark.slow),
    ("zone z = " + "!" * MEGABYTE, None),  # garbage: whatever the parser says, with a position
], ids=["name", "string", "repeated-zone", "garbage"])
def test_a_one_megabyte_policy_line_ends_in_a_positioned_error(tmp_path, line, message):
    policy = tmp_path / "policy.zfw"
    policy.write_text("zone x = 10.0.0.0/8\n" + line + "\n")
    stderr, elapsed = compile_refused(policy)
    print(f"\n1 MB policy line ({line[:12]}...): refused in {elapsed:.2f} s, {len(stderr)} bytes of message: "
          f"{stderr.splitlines()[0][:120]}")
    error = positioned(stderr)
    assert error["file"] == "policy.zfw"
    if message is not None:
        assert error["message"] == message
    assert max(len(s) for s in stderr.splitlines()) < 400  # the source line is shown clipped, not a megabyte
    assert len(stderr) < 100_000  # a bounded number of messages
    assert elapsed < 60


# Many errors on one long line: each is rendered from a clipped window of the line, and only the first few are
# printed (with a count of the rest), so the output and the time stay bounded. 2,000 errors shown in full would
# be about a megabyte of messages.
@pytest.mark.parametrize("zones", [pytest.param(2_000, id="2000"),
                                   pytest.param(125_000, id="1MB", marks=pytest.mark.slow)])
def test_a_long_line_of_unknown_zones_ends_in_a_bounded_error(tmp_path, zones):
    policy = tmp_path / "policy.zfw"
    policy.write_text("allow " + ", ".join(f"u{index:x}" for index in range(zones)) + " -> ssh\n")
    stderr, elapsed = compile_refused(policy)
    print(f"\n{policy.stat().st_size} byte line of {zones} unknown zones: refused in {elapsed:.2f} s, {len(stderr)} "
          "bytes of messages")
    assert positioned(stderr)["message"] == "unknown zone 'u0'"
    assert len(stderr) < 100_000
    assert elapsed < 20


def test_a_policy_line_over_the_policy_size_limit_is_refused_by_size(tmp_path):
    policy = tmp_path / "policy.zfw"
    policy.write_text("zone x = any\nallow x -> ssh\n# " + "a" * loader.MAX_POLICY_BYTES + "\n")
    stderr, elapsed = compile_refused(policy)
    print(f"\npolicy file with a {loader.MAX_POLICY_BYTES} byte comment line: refused in {elapsed:.2f} s: "
          f"{stderr.strip()}")
    match = FILE_NAMED.match(stderr.splitlines()[0])
    assert match and match["file"] == "policy.zfw"
    assert match["message"] == "policy file 'policy.zfw' is larger than 1 MiB"
    assert elapsed < 10
