"""Every shipped ruleset, and the test policies that show every construct, compile to exactly their golden text
and JSON; a cluster policy (issue 11) once per host, to `NAME.HOST.nft` and `NAME.HOST.json`.

Regenerate after an intended change, then review the diff like code:
    .venv/bin/python -m pytest tests/test_golden.py --update-golden && git diff tests/golden
"""

from __future__ import annotations

import functools
import json
import pathlib
import re

import pytest

from nftc.cli.main import main
from nftc.language.loader import load_policy
from nftc.semantics.cluster import host_names

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULESETS = sorted((ROOT / "rulesets").glob("*.zfw"))
# Every construct of the language (everything.zfw), and a dynamic zone with the variants it leaves out.
POLICIES = [ROOT / "tests" / "policies" / name for name in ("everything.zfw", "dynamic.zfw")]
GOLDEN = ROOT / "tests" / "golden"
FORMATS = ("nft", "json")
# (policy, host): a policy without hosts once (host None), a cluster policy once per host.
CASES = [(p, host) for p in RULESETS + POLICIES for host in (host_names(load_policy(str(p), {})) or (None,))]


def _case_id(case) -> str:
    policy, host = case
    return policy.stem + (f".{host}" if host else "")


def compiled(policy: pathlib.Path, fmt: str, capsys, host: str | None = None) -> str:
    assert main(["compile", str(policy), "--format", fmt, *(("--host", host) if host else ())]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_shipped_ruleset_compiles_to_its_golden_output(case, fmt, capsys, update_golden):
    output = compiled(*case[:1], fmt, capsys, case[1])
    golden = GOLDEN / f"{_case_id(case)}.{fmt}"
    if update_golden:
        golden.write_text(output)
    assert golden.exists(), f"no golden file {golden.name}: run with --update-golden"
    assert output == golden.read_text()


@pytest.mark.parametrize("case", [c for i, c in enumerate(CASES) if i == 0 or CASES[i - 1][0] != c[0]], ids=_case_id)
def test_output_is_the_same_from_any_working_directory(case, capsys, monkeypatch, tmp_path):
    """(A cluster policy's first host stands for the others: where a file is read from is not host business.)"""
    policy, host = case
    monkeypatch.chdir(ROOT)
    relative = compiled(policy.relative_to(ROOT), "nft", capsys, host)
    monkeypatch.chdir(tmp_path)
    assert compiled(policy, "nft", capsys, host) == relative


def test_every_shipped_ruleset_has_a_golden_file():
    expected = {f"{_case_id(case)}.{fmt}" for case in CASES for fmt in FORMATS}
    assert {p.name for p in GOLDEN.iterdir()} == expected


def test_issue11_the_shipped_cluster_has_a_golden_per_host():
    """Issue 11: rulesets/zimbra-cluster.zfw, the shipped example, has its goldens per host."""
    cluster = [host for policy, host in CASES if policy.name == "zimbra-cluster.zfw"]
    assert cluster == ["ldap1", "mta1", "proxy1", "mbox1", "mbox2"]


# Constructs the goldens must keep showing (issue 8), so their coverage cannot silently disappear: a pattern in
# the nft text, and one in the JSON written compactly (no spaces or newlines).
CONSTRUCTS = {
    "named_limit": (r'limit name "limit_r\d+"', r'\{"limit":"limit_r\d+"\}'),
    "reject_with_tcp_reset": (r"reject with tcp reset", r'\{"reject":\{"type":"tcp reset"\}\}'),
    "interface_map": (r"iifname vmap @zones_iface",
                      r'\{"vmap":\{"key":\{"meta":\{"key":"iifname"\}\},"data":"@zones_iface"\}\}'),
    "dynamic_zone_set": (r"ip6? saddr @dyn_\w+_v[46] (ip6? saddr != @trusted_v[46] )?goto zone_\w+",
                         r'"right":"@dyn_\w+_v[46]"\}\},(\{"match":\{"op":"!=",[^]]*"right":"@trusted_v[46]"\}\},)?'
                         r'\{"goto":\{"target":"zone_'),
    # issue 10: a blocking zone's run-time set, skipping trusted addresses, before conntrack; its ban chain
    "ban_of_a_dynamic_zone": (r"ip6? saddr @dyn_\w+_v[46] ip6? saddr != @trusted_v[46] goto ban_\w+",
                              r'"right":"@trusted_v[46]"\}\},\{"goto":\{"target":"ban_'),
    "ban_map": (r"ip6? saddr vmap @bans_v[46]", r'"data":"@bans_v[46]"'),
    # issue 10: `dynamic timeout 1h`: run-time addresses expire by themselves (an element may carry its own timeout)
    "dynamic_zone_timeout": (r"set dyn_\w+_v[46] \{\n\t\ttype ip(v6)?_addr\n\t\tflags interval,timeout\n\t\ttimeout \d+[smhd]\n",
                             r'"name":"dyn_\w+_v[46]","type":"ipv[46]_addr","flags":\["interval","timeout"\],"timeout":\d+'),
    "ban_chain": (r'ct state new goto zone_\w+ comment "[^"]*"\n\t\t(limit .*\n\t\t)?counter name "\w+/ban" drop',
                  r'\{"counter":"\w+/ban"\},\{"drop":null\}'),
    "broad_rule_match": (r"meta l4proto != \{ tcp, udp \} goto",
                         r'"op":"!=","left":\{"meta":\{"key":"l4proto"\}\},"right":\{"set":\["tcp","udp"\]\}'),
    "accept_logging": (r'log prefix "\w+ accept: r\d+ "', r'\{"log":\{"prefix":"\w+ accept: r\d+ "\}\}'),
}


@functools.cache
def _golden_text(fmt: str) -> dict[str, str]:
    """Each golden file of one format by name; JSON written compactly, so a pattern does not depend on indent.
    Read once per format: every construct searches them (read again each time, 0.1 s a run with the cluster's)."""
    texts = {path.name: path.read_text() for path in sorted(GOLDEN.glob(f"*.{fmt}"))}
    if fmt == "json":
        texts = {name: json.dumps(json.loads(text), separators=(",", ":")) for name, text in texts.items()}
    return texts


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("construct", CONSTRUCTS)
def test_item8_goldens_show_every_construct(construct, fmt):
    pattern = re.compile(CONSTRUCTS[construct][FORMATS.index(fmt)])
    assert any(pattern.search(text) for text in _golden_text(fmt).values()), \
        f"no golden .{fmt} file shows {construct} ({pattern.pattern}): which policy lost it?"
