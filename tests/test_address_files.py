"""Issue 9, "The compile at 200k": an address file is read on a fast path (inet_pton, integers, no ipaddress
object per line) that must mean exactly what the line-by-line reading means: the same networks, and for any
file it cannot take, the same errors at the same lines and columns. The reference below is that reading written
out plainly: per line, the text before `#` or `;` (issue 10), stripped, through `parse_network`.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import strategies as st

from nftc.language import model as m
from nftc.language.diagnostics import PolicyError
from nftc.language.loader import parse_address_file
from nftc.language.parser import parse_network
from nftc.language.text import MAX_SHOWN

from helpers import check_property, examples


def reference(text: str) -> tuple[str, object]:
    """("ok", networks of each version in file order) or ("errors", [(line, column, message, hint), ...])."""
    networks, errors = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = re.split("[#;]", line, maxsplit=1)[0].strip()
        if entry:
            network, message, hint = parse_network(entry)
            if message and network is not None:  # issue 10: host bits set are cleared (with a warning)
                networks.append(network)
            elif message:
                errors.append((number, line.index(entry) + 1, message, hint))
            else:
                networks.append(network)
    if errors:
        return "errors", errors[:MAX_SHOWN]  # what a message shows: the reader stops there
    return "ok", [[n for n in networks if n.version == v] for v in (4, 6)]


def outcome(text: str) -> tuple[str, object]:
    try:
        found = parse_address_file(text, "list.txt")
    except PolicyError as exc:
        return "errors", [(d.span.line, d.span.column, d.message, d.hint) for d in exc.diagnostics]
    assert isinstance(found, m.AddressList)
    return "ok", [[m.unpack(p, v) for p in found.packed(v)] for v in (4, 6)]


def same_as_reference(text: str) -> None:
    got, expected = outcome(text), reference(text)
    assert got == expected, text


CASES = {
    "canonical": "192.0.2.1\n192.0.2.0/24\n2001:db8::1\n2001:db8::/32\n",
    "full-length prefixes": "192.0.2.1/32\n2001:db8::1/128\n0.0.0.0/0\n::/0\n",
    "comments, blanks, CRLF, tabs": "# list\n\n 192.0.2.1 \t# a\r\n\t2001:db8::/32\r\n\n",
    "upper-case and expanded IPv6": "2001:DB8::1\n2001:0db8:0000:0000:0000:0000:0000:0002\nFD00::/8\n",
    "IPv4 in IPv6": "::ffff:192.0.2.1\n::ffff:c000:202\n::192.0.2.3\n64:ff9b::192.0.2.4\n",
    "netmask and leading-zero length": "10.0.0.0/255.0.0.0\n10.1.0.0/016\n",
    "no-break space around an entry": "\xa0192.0.2.1\xa0\n",
    "duplicates": "192.0.2.1\n192.0.2.1\n2001:db8::1\n2001:db8::1\n",
    "host bits": "192.0.2.1\n192.0.2.1/24\n",
    "Spamhaus DROP (issue 10)": "; Spamhaus DROP List 2026/11/30\n1.10.16.0/20 ; SBL256894\n2.56.192.0/22;SBL459831\n",
    "two entries on a line": "192.0.2.1 192.0.2.2\n",
    "two entries split by a form feed": "192.0.2.1\x0c192.0.2.2\n",
    "a bare carriage return between entries": "192.0.2.1\r192.0.2.2\n",
    "a no-break space between entries": "192.0.2.1\xa0192.0.2.2\n",
    "a line separator between entries": "192.0.2.1\u2028192.0.2.2\n",
    "leading zero in IPv4": "192.0.2.01\n",
    "trailing slash": "192.0.2.1/\n",
    "length out of range": "192.0.2.0/33\n2001:db8::/129\n",
    "scope": "fe80::1%eth0\n",
    "host name": "mail.example.org\n",
    "three octets": "192.0.2\n",
    "IPv4 too long in IPv6": "1:2:3:4:5:6:7:1.2.3.4\n",
    "empty :: expansion": "1:2:3:4:5:6:7::8\n",
    "non-ASCII digits": "١٩٢.0.2.1\n",
    "NUL": "192.0.2.1\x00\n",
}


@pytest.mark.parametrize("case", CASES)
def test_issue9_an_address_file_means_what_the_line_by_line_reading_means(case):
    same_as_reference(CASES[case])


def test_issue9_the_fast_path_takes_a_clean_file_and_packs_it_by_version():
    found = parse_address_file("2001:db8::/32\n192.0.2.0/24\n192.0.2.7\n", "list.txt")
    assert found == m.AddressList((m.pack(ipaddress.ip_network("192.0.2.0/24")),
                                   m.pack(ipaddress.ip_network("192.0.2.7/32"))),
                                  (m.pack(ipaddress.ip_network("2001:db8::/32")),))
    assert len(found) == 3


def test_issue9_a_file_over_the_limit_is_refused_before_it_is_read():
    assert parse_address_file("192.0.2.1\n192.0.2.2\n192.0.2.3\n", "list.txt", limit=2) is None
    assert parse_address_file("192.0.2.1\n192.0.2.2\n# 192.0.2.3\n", "list.txt", limit=2) is not None


# Random files: entries in canonical and other spellings, some wrong, one or two a line, with the blanks,
# line ends and comments people's lists have.

BLANKS = st.sampled_from(["", " ", "\t", "\r", "\x0c", "\xa0", "  "])
JUNK = st.sampled_from(["", "/", "01.2.3.4", "1.2.3", "256.1.1.1", "1.2.3.4%lo", "host.example", "::ffff:01.2.3.4",
                        ":::", "1::2::3", "10.0.0.0/255.0.0.0", "10.0.0.0/0.255.0.0", "+1.2.3.4", "1.2.3.4/+8"])


@st.composite
def entries(draw):
    version = draw(st.sampled_from((4, 6)))
    bits = 32 if version == 4 else 128
    address = draw(st.ip_addresses(v=version))
    length = draw(st.integers(0, bits + 1))
    if length <= bits and draw(st.booleans()):  # mostly without host bits, so most files are valid
        address = ipaddress.ip_network((int(address), min(length, bits)), strict=False).network_address
    text = draw(st.sampled_from([str(address), address.exploded, str(address).upper()]))
    suffix = draw(st.sampled_from(["", f"/{length}", f"/0{length}", f"/{length}"]))
    return draw(JUNK) if draw(st.integers(0, 3)) == 0 else text + suffix


@st.composite
def address_files(draw):
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        words = draw(st.lists(entries(), min_size=0, max_size=2))
        line = draw(BLANKS) + draw(BLANKS).join(words) + draw(BLANKS)
        if draw(st.integers(0, 4)) == 0:
            line += draw(st.sampled_from(["#", "# note", " # 1.2.3.4 x", "#\xe9"]))
        lines.append(line)
    return draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))


@examples(few=20, many=3000)
def test_issue9_random_address_files_mean_what_the_line_by_line_reading_means(examples):
    check_property(same_as_reference, examples, address_files())
