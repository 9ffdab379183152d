"""Issue 12, the small things found on the way: pip's license warning, what the sdist leaves out, the units'
Description= and Documentation=, `nftc catalog --groups` and its did-you-mean, a description for every command's
--help, and the README's citation of the article.

The builds run in a copy of the checkout (setuptools writes nftc.egg-info next to pyproject.toml), with the
sdist and the wheel written into tmp_path.
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tarfile

import pytest

from helpers import ROOT, copy_checkout
from nftc.cli.main import build_parser, main
from nftc.semantics import catalog

UNITS = sorted((ROOT / "systemd").glob("*.service"))


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> pathlib.Path:
    return copy_checkout(tmp_path_factory.mktemp("copy"))


def tracked(*folders: str) -> list[str]:
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", *folders], capture_output=True,
                            check=True).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (ROOT / name).is_file())


@pytest.mark.slow  # pip sets up an isolated build environment: seconds
def test_issue12_pip_builds_without_a_warning(checkout, tmp_path):
    """pip (as `pip install -e .` in setup.sh, with the newest setuptools) said `project.license` as a TOML table
    is deprecated, three times. The wheel still carries the license, as a License-File."""
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(tmp_path),
                             str(checkout)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    output = result.stdout + result.stderr
    warnings = [line.strip() for line in output.splitlines()
                if re.search(r"BuildBackendWarning|DeprecationWarning|^\s*warning:", line)
                and "byte-compiling is disabled" not in line]  # -B: this suite writes no bytecode
    assert warnings == []
    assert "adding 'nftc-" in output and "licenses/LICENSE'" in output


@pytest.fixture(scope="module")
def sdist(checkout, tmp_path_factory) -> tarfile.TarFile:
    """The sdist as `python -m build --sdist` makes it, with the setuptools installed (Debian's, in the venv)."""
    out = tmp_path_factory.mktemp("sdist")
    script = "import sys, setuptools.build_meta as b; print(b.build_sdist(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-B", "-c", script, str(out)], cwd=checkout, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return tarfile.open(out / result.stdout.split()[-1])


@pytest.mark.slow  # builds an sdist
def test_issue12_the_sdist_holds_what_a_build_and_the_tests_read(sdist):
    """Every tracked file of the shipped data (rulesets, units, grammar, generators, docs, integrations), the
    tests and the license; not the Debian packaging."""
    names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    wanted = tracked("rulesets", "systemd", "grammar", "scripts", "docs", "integrations", "tests") + ["LICENSE"]
    assert [name for name in wanted if name not in names] == []
    assert {"rulesets/zimbra-single.zfw", "systemd/nftc.service", "scripts/generate_manpages.py"} <= names
    assert not [name for name in names if name.startswith("debian/")]


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_issue12_the_units_name_documentation_that_is_installed(unit):
    """Documentation= names nftc(8) (scripts/generate_manpages.py writes it, the package installs it) and files the
    package installs uncompressed under /usr/share/doc/nftc (debian/nftc.docs, dh_compress -X)."""
    text = unit.read_text()
    links = [word for line in text.splitlines() if line.startswith("Documentation=")
             for word in line.split("=", 1)[1].split()]
    assert "man:nftc(8)" in links
    generator = (ROOT / "scripts" / "generate_manpages.py").read_text()
    for page in (link for link in links if link.startswith("man:")):
        name, section = re.fullmatch(r"man:([\w-]+)\((\d)\)", page).groups()
        assert name in ("nft", "nftc", "zfw") and (name == "nft" or f'"{name}.{section}"' in generator), page
    docs = (ROOT / "debian" / "nftc.docs").read_text().split()
    for link in (link for link in links if link.startswith("file://")):
        path = link[len("file://"):]
        assert path.startswith("/usr/share/doc/nftc/") and path[len("/usr/share/doc/nftc/"):] in docs, link
        assert f"-X {pathlib.Path(path).name}" in (ROOT / "debian" / "rules").read_text()


@pytest.mark.parametrize("unit", UNITS, ids=[u.name for u in UNITS])
def test_issue12_the_units_description_names_no_table(unit):
    """The table is the policy's (`table zimbra`): the unit cannot know it; it said `inet zfw`."""
    description = next(line for line in unit.read_text().splitlines() if line.startswith("Description="))
    assert not re.search(r"\binet\b|\btable \w+", description)
    assert "/etc/nftc/policy.zfw" in description


def test_issue12_catalog_lists_the_groups(capsys):
    assert main(["catalog", "--groups"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["GROUP", "DESCRIPTION", "PORTS"]
    assert [line.split()[0] for line in out[1:]] == [g.name for g in catalog.GROUPS]
    assert out[1].startswith("zimbra.public ") and out[1].endswith(" 25,80,110,143,443,465,587,993,995/tcp")


@pytest.mark.parametrize("wanted, message", [
    ("smpt", "nftc: catalog: no catalog entry for 'smpt' (did you mean 'smtp'?)"),
    ("zimbra.publik", "nftc: catalog: no catalog entry for 'zimbra.publik' (did you mean 'zimbra.public'?)"),
    ("qqqqqq", "nftc: catalog: no catalog entry for 'qqqqqq' (nftc catalog lists them, nftc catalog --groups the "
               "groups)"),
    ("1", "nftc: catalog: no catalog entry for '1' (nftc catalog lists them, nftc catalog --groups the groups)"),
])
def test_issue12_catalog_says_did_you_mean(capsys, wanted, message):
    assert main(["catalog", wanted]) == 2
    assert capsys.readouterr().err == message + "\n"


def test_issue12_catalog_groups_takes_no_entry(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["catalog", "--groups", "smtp"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == \
        "nftc: error: argument PORT|NAME: not allowed with argument --groups"


def commands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from commands(sub)


def test_issue12_every_command_help_has_a_description():
    """`nftc COMMAND --help` says what the command does, between the usage and the options."""
    found = list(commands(build_parser()))
    assert len(found) >= 10
    for name, sub in found:
        assert sub.description, name
        assert "\n\n" + sub.description.split()[0] in sub.format_help(), name


def test_issue12_the_readme_cites_the_article_not_a_path():
    """A clone has no ../shared/seed/: the README cites the article by what it is and how it begins."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "shared/seed" not in readme and "seed/" not in readme
    assert "Una de las principales herramientas de un cibercriminal moderno es un escáner de puertos" in readme
