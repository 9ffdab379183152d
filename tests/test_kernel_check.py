"""The kernel accepts what nftc compiles, in text and in JSON alike, and check reports what it rejects."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import lark
import pytest

import nftc

from nftc.cli.main import main
from nftc.language.loader import load_policy
from nftc.system.kernel import check_script
from nftc.lab.netns import Lab

from helpers import unavailable

ROOT = pathlib.Path(__file__).resolve().parent.parent
RULESETS = sorted((ROOT / "rulesets").glob("*.zfw"))

pytestmark = pytest.mark.kernel


def compiled(policy: pathlib.Path, fmt: str, capsys, host: str | None = None) -> str:
    assert main(["compile", str(policy), "--format", fmt, *(["--host", host] if host else [])]) == 0
    return capsys.readouterr().out


def _host_cases() -> list:
    """(policy, host) for every ruleset: each host of a cluster policy, None for a one-server policy."""
    cases = []
    for policy in RULESETS + [ROOT / "tests" / "policies" / "everything.zfw"]:
        hosts = load_policy(str(policy), {}).hosts
        cases += [pytest.param(policy, h.name, id=f"{policy.stem}.{h.name}") for h in hosts] or \
            [pytest.param(policy, None, id=policy.stem)]
    return cases


@pytest.mark.parametrize("policy", RULESETS + [ROOT / "tests" / "policies" / "everything.zfw"], ids=lambda p: p.stem)
def test_check_accepts_every_shipped_ruleset_and_every_construct(policy, capsys):
    assert main(["check", str(policy)]) == 0
    assert "ok: the kernel accepts table inet" in capsys.readouterr().out


def test_check_reports_a_kernel_rejection_with_the_policy_line():
    script = (
        "table inet zfwtest {\n"
        "\tchain input {\n"
        '\t\ttcp dport @no_such_set accept comment "site.zfw:7 r3"\n'
        "\t}\n"
        "}\n"
    )
    result = check_script(script)
    assert not result.ok
    assert "line 3 (from site.zfw:7 r3)" in result.error
    assert "no_such_set" in result.error


def _listing_without_unsupported_comments(listing: str) -> list:
    """nft 1.0.6 drops table, set and chain comments given in JSON: compare everything else."""
    objects = json.loads(listing)["nftables"]
    for item in objects:
        for kind in ("table", "set", "map", "chain"):
            if kind in item:
                item[kind].pop("comment", None)
                item[kind].pop("handle", None)
        if "rule" in item:
            item["rule"].pop("handle", None)
        for kind in ("counter", "limit"):
            if kind in item:
                item[kind].pop("handle", None)
    return [o for o in objects if "metainfo" not in o]


@pytest.mark.parametrize(("policy", "host"), _host_cases())
def test_text_and_json_load_to_the_same_kernel_ruleset(policy, host, capsys, tmp_path):
    text, document = tmp_path / "ruleset.nft", tmp_path / "ruleset.json"
    text.write_text(compiled(policy, "nft", capsys, host))
    document.write_text(compiled(policy, "json", capsys, host))
    with Lab() as lab:
        from_text, from_json = lab.namespace("t"), lab.namespace("j")
        lab.exec(from_text, "nft", "-f", str(text))
        lab.exec(from_json, "nft", "-j", "-f", str(document))
        listings = [lab.exec(ns, "nft", "-j", "list", "ruleset").stdout for ns in (from_text, from_json)]
    assert _listing_without_unsupported_comments(listings[0]) == _listing_without_unsupported_comments(listings[1])


def test_loading_twice_replaces_the_table_and_leaves_foreign_tables_alone(capsys, tmp_path):
    script = tmp_path / "ruleset.nft"
    script.write_text(compiled(ROOT / "rulesets" / "zimbra-single.zfw", "nft", capsys))
    foreign = "table ip nat {\n\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\tmasquerade\n\t}\n}\n"
    with Lab() as lab:
        server = lab.namespace("s")
        lab.exec(server, "nft", "-f", "-", input=foreign)
        before = lab.exec(server, "nft", "list", "table", "ip", "nat").stdout
        lab.exec(server, "nft", "-f", str(script))
        first = lab.exec(server, "nft", "list", "table", "inet", "zimbra").stdout
        lab.exec(server, "nft", "-f", str(script))
        second = lab.exec(server, "nft", "list", "table", "inet", "zimbra").stdout
        after = lab.exec(server, "nft", "list", "table", "ip", "nat").stdout
    assert first == second
    assert before == after


def test_check_works_for_an_unprivileged_user(tmp_path):
    """As nobody, with the distribution's python3 and a world-readable copy of nftc and lark (the clone and its
    venv may live where nobody cannot read, /root for one)."""
    if shutil.which("runuser") is None:
        unavailable("runuser is not installed")
    probe = subprocess.run(["runuser", "-u", "nobody", "--", "unshare", "--user", "--map-root-user", "--net", "true"],
                           capture_output=True)
    if probe.returncode != 0:
        unavailable("unprivileged user namespaces are disabled on this kernel")
    directory = pathlib.Path(tempfile.mkdtemp(prefix="nftc-check-"))
    try:
        for package in (nftc, lark):
            shutil.copytree(os.path.dirname(package.__file__), directory / package.__name__)
        policy = directory / "p.zfw"
        policy.write_text("zone internet = any\nallow internet -> smtp\n")
        subprocess.run(["chmod", "-R", "a+rX", str(directory)], check=True)
        environment = {"PATH": os.environ["PATH"], "PYTHONPATH": str(directory), "HOME": str(directory)}
        result = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-m", "nftc", "check",
                                 str(policy)], capture_output=True, text=True, cwd="/", env=environment)
    finally:
        shutil.rmtree(directory)
    assert result.returncode == 0, result.stderr
    assert "ok: the kernel accepts" in result.stdout
