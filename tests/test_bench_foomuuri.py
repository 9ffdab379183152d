"""Issue 9, "ahead of foomuuri at every size": the foomuuri side of the benchmark (bench/foomuuri.py, workload 7).

The config written for foomuuri must open what nftc's policy opens, to the same zones. foomuuri is in neither
Debian nor PyPI, so not in CI, where no test may skip: that foomuuri itself builds a ruleset with those ports and
every address, and leaves the host as it was, is checked by the workload whenever it runs (bench/foomuuri.py). No
timing is asserted.
"""

from __future__ import annotations

import pathlib
import re
import sys


from nftc.compiler import compile_policy

ROOT = pathlib.Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # bench/ is a folder of the checkout, not an installed package

from bench import foomuuri, generate, workloads  # noqa: E402

PUBLIC = {"25", "80", "110", "143", "443", "465", "587", "993", "995"}  # zimbra.public (README, rulesets/)
LAN = PUBLIC | {"22", "7071", "9071"}  # plus zimbra.admin and ssh


def _sections(text: str) -> dict[str, list[str]]:
    """foomuuri config: section name -> its lines."""
    found = {}
    for name, body in re.findall(r"^(\S+(?: \S+)*) \{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL):
        found[name] = [line.strip() for line in body.splitlines() if line.strip()]
    return found


def _ports(lines: list[str]) -> set[str]:
    return {word for line in lines if line.startswith("tcp ") for word in line.split()[1:]}


def test_item9_foomuuri_config_opens_what_the_single_server_policy_opens():
    table = compile_policy(workloads.SINGLE, {}).table
    sections = _sections(foomuuri.config_text(table, (generate.LAN_V4, generate.LAN_V6), None))
    assert _ports(sections["public-localhost"]) == PUBLIC
    assert _ports(sections["lan-localhost"]) == LAN
    assert not any(line.startswith("udp") for line in sections["public-localhost"] + sections["lan-localhost"])
    assert sections["public-localhost"][-1] == sections["lan-localhost"][-1] == "drop log"  # `log drops`
    assert sections["zonemap"] == [f"saddr {generate.LAN_V4} {generate.LAN_V6} szone public new_szone lan"]
    assert "public *" in sections["zone"] and "iplist" not in sections


def test_item9_foomuuri_config_of_the_zone_policy_blocks_the_address_file(tmp_path):
    policy = generate.zone_policy(str(tmp_path), 8)
    listing = str(tmp_path / "blocked-8.txt")
    sections = _sections(foomuuri.config_text(compile_policy(policy, {}).table,
                                              (generate.OTHER_LAN_V4, generate.LAN_V6), listing))
    assert sections["iplist"] == [f"@blocked {listing}"]
    assert sections["zonemap"][0] == "saddr @blocked szone public new_szone blocked"
    assert generate.OTHER_LAN_V4 in sections["zonemap"][1]
    assert sections["blocked-localhost"] == ["drop"]  # a zone allowed nothing, no `log drops` in this policy
    assert _ports(sections["public-localhost"]) == PUBLIC and _ports(sections["lan-localhost"]) == LAN


def test_item9_intervals_merge_neighbours_as_nftables_auto_merge_does():
    """The count foomuuri's loaded sets are checked against: adjacent networks of one family become one interval
    (1.0.0.0-1.0.1.255; 1.0.2.7; 1.0.3.0/24; the two /64s; two hosts one address apart)."""
    assert foomuuri.intervals(["1.0.0.0/24", "1.0.1.0/24", "1.0.3.0/24", "1.0.2.7", "2a00::/64", "2a00:0:0:1::/64",
                               "100.64.0.2", "100.64.0.4"]) == 6
    assert foomuuri.intervals(["1.0.0.0/24", "1.0.0.128/25", "::1.0.1.0/120"]) == 2  # inside; another family
