"""Reading nftc's table as the kernel lists it: marker, sets, zone rules, drift, dynamic elements, counters.

Works on `nft list table` text, so the same functions read the live table, a snapshot, and the listing of a
compiled ruleset loaded in a private namespace (what `diff` compares against). The live table is read the fast way
(nftc.system.reader): nftc's block of the terse ruleset listing, the elements of its static sets spliced in.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..backend import names

_MARKER_TEXT = r'comment "nftc ([0-9A-Za-z.+-]+) policy ([A-Za-z0-9._-]*) sha256:([0-9a-f]{64})"'
_TABLE_MARKER = re.compile("\t" + _MARKER_TEXT)  # the table's comment: first lines of its block
_CHAIN_MARKER = re.compile("\t\t" + _MARKER_TEXT)  # the input chain's comment: its first line
_INPUT_CHAIN = f"\n\tchain {names.INPUT_CHAIN} {{\n"
_BLOCK = re.compile(r"^\t(set|map|chain|counter|limit) (\S+) \{$")
_COUNTER_VALUES = re.compile(r"^\s*packets \d+ bytes \d+\s*$")
_INLINE_COUNTER = re.compile(r"counter packets \d+ bytes \d+")
_COUNTER_OBJECT_VALUES = re.compile(r"^\t\tpackets (\d+) bytes (\d+)$")


@dataclass(frozen=True)
class Marker:
    """What nftc's marker says: the nftc version and policy file that compiled the table, and the digest."""

    version: str
    policy: str
    digest: str


@dataclass(frozen=True)
class Block:
    """One named object of the table: its kind, name and the lines between its braces."""

    kind: str
    name: str
    lines: tuple[str, ...]

    @property
    def dynamic(self) -> bool:
        """Elements that change at run time: the sets of dynamic zones, and meters (`flags dynamic`)."""
        return names.dynamic_set_version(self.name) is not None or any(
            line.strip().startswith("flags ") and "dynamic" in line for line in self.lines)


def marker(listing: str | None) -> Marker | None:
    """nftc's marker: the input chain's comment, else the table's. None: the table is not nftc's.

    The compiler stamps both. The kernel never changes a table's comment after it created the table, while every
    apply makes the input chain anew (also one that keeps the table and its dynamic sets in place), so the chain's
    says what is loaded now; the table's alone is read for a table an older nftc loaded. Reads a listing or a
    compiled script alike."""
    text = listing or ""
    start = text.find(_INPUT_CHAIN)
    if start >= 0:
        first = text[start + len(_INPUT_CHAIN):].split("\n", 1)[0]
        found = _CHAIN_MARKER.fullmatch(first)
        if found:
            return Marker(*found.groups())
    for line in text.split("\n", 5)[:5]:
        found = _TABLE_MARKER.fullmatch(line)
        if found:
            return Marker(*found.groups())
    return None


def digest(listing: str | None) -> str | None:
    """The sha256 in nftc's marker, or None: a table without the marker is not nftc's."""
    found = marker(listing)
    return found.digest if found else None


def script_digest(script: str) -> str:
    """The digest the compiler puts in the marker: the sha256 of the script without its marker lines, and without
    the elements of the url zones' sets (the compiler leaves blocklists out of the digest: nftc.system.refresh).
    Looks for them with str.find (a 10^5-address script is 8 MB, and a regular expression over it costs 40 ms)."""
    digest, start = hashlib.sha256(), 0
    for skip_start, skip_end in sorted(_marker_lines(script) + _blocklist_elements(script)):
        digest.update(script[start:skip_start].encode())
        start = skip_end
    digest.update(script[start:].encode())
    return digest.hexdigest()


def _marker_lines(script: str) -> list[tuple[int, int]]:
    """(start, end) of each marker line, its newline included."""
    found_lines, search = [], 0
    while (found := script.find('comment "nftc ', search)) >= 0:
        line_start = script.rfind("\n", 0, found) + 1
        line_end = script.find("\n", found)
        line_end = len(script) if line_end < 0 else line_end
        if _is_marker(script[line_start:line_end]):
            found_lines.append((line_start, line_end + 1))
        search = line_end
    return found_lines


_BLOCKLIST_SET = "\n\tset " + names.BLOCKLIST_PREFIX  # where a url zone's set may start
_ELEMENTS = "\n\t\telements = {"
_BLOCK_END = "\n\t}\n"


def has_blocklists(script: str) -> bool:
    """Whether the script declares a url zone's set: its elements may differ under one digest."""
    return _BLOCKLIST_SET in script


def _blocklist_elements(script: str) -> list[tuple[int, int]]:
    """(start, end) of the elements lines of each url zone's set, as nftc.backend.render_nft writes a set."""
    found, search = [], 0
    while (at := script.find(_BLOCKLIST_SET, search)) >= 0:
        end = script.find(_BLOCK_END, at)
        if end < 0:
            break
        header_end = script.find("\n", at + 1)
        if names.parse_blocklist_set(script[at + len("\n\tset "):header_end].removesuffix(" {")):
            elements = script.find(_ELEMENTS, at, end)
            if elements >= 0:
                found.append((elements + 1, end + 1))
        search = end
    return found


def _is_marker(line: str) -> bool:
    return bool(_TABLE_MARKER.fullmatch(line) or _CHAIN_MARKER.fullmatch(line))


def policy_name(listing: str | None) -> str | None:
    found = marker(listing)
    return found.policy if found else None


class Ambiguous(Exception):
    """nftc's table cannot be told apart in a listing of the whole ruleset (its header twice, an unindented line:
    another table's comment holding newlines); the caller lists the table on its own instead."""


def table_block(ruleset: str, target) -> str | None:
    """nftc's table out of a listing of the whole ruleset, as `nft list table` prints it; None when absent."""
    header = f"table {target} {{\n"
    start = 0 if ruleset.startswith(header) else ruleset.find("\n" + header) + 1  # 0 also when absent
    if start == 0 and not ruleset.startswith(header):
        return None
    if ruleset.find("\n" + header, start) >= 0:
        raise Ambiguous(f"table {target} appears twice")
    end = ruleset.find("\n}\n", start)
    if end < 0:
        raise Ambiguous(f"table {target} is not closed")
    if _UNINDENTED.search(ruleset, start, end):  # in C, in place: a compiled script can be 8 MB
        raise Ambiguous(f"table {target} holds an unindented line")
    return ruleset[start:end + 3]


_UNINDENTED = re.compile(r"\n[^\t\n]")  # a line inside a table block that is neither empty nor indented


def set_block_lines(listing: str, name: str) -> list[str] | None:
    """The lines of set or map `name` (`\tset NAME {` to `\t}`) in a listing or a script, or None."""
    found = re.search(f"^\t(?:set|map) {re.escape(name)} {{\n", listing, re.MULTILINE)
    end = listing.find("\n\t}\n", found.end() - 1) if found else -1
    return listing[found.start():end + 3].split("\n") if end >= 0 else None


def set_names(listing: str) -> list[str]:
    """The names of the sets (not maps) of a listing or a script, without parsing its every line."""
    return re.findall(r"^\tset (\S+) \{$", listing, re.MULTILINE)


def with_sets(block: str, sets: dict[str, list[str]]) -> str:
    """`block` with the blocks of the sets named in `sets` replaced by the lines given (their elements)."""
    out, skipping = [], False
    for line in block.split("\n"):
        opened = _BLOCK.match(line)
        if opened and opened.group(1) in ("set", "map") and opened.group(2) in sets:
            out += sets[opened.group(2)]
            skipping = True
        elif skipping:
            skipping = line != "\t}"
        else:
            out.append(line)
    return "\n".join(out)


def opens_block(line: str) -> bool:
    """Whether `line` opens a block `blocks` reads (a set, map, chain, counter or limit)."""
    return _BLOCK.match(line) is not None


def counter_values(line: str) -> bool:
    """Whether `line` is a counter's values (`packets P bytes B`): what changes at run time."""
    return _COUNTER_VALUES.match(line) is not None


def blocks(listing: str) -> list[Block]:
    out: list[Block] = []
    current: tuple[str, str, list[str]] | None = None
    for line in listing.splitlines():
        opened = _BLOCK.match(line)
        if opened and current is None:
            current = (opened.group(1), opened.group(2), [])
        elif current is not None and line == "\t}":
            out.append(Block(current[0], current[1], tuple(current[2])))
            current = None
        elif current is not None:
            current[2].append(line)
    return out


def elements(block: Block) -> tuple[str, ...]:
    """The elements of a set or map, as the kernel prints them (without `expires` countdowns)."""
    text = " ".join(line.strip() for line in block.lines)
    found = re.search(r"elements = \{(.*)\}", text)
    if not found:
        return ()
    return tuple(re.sub(r" expires \S+", "", item.strip()) for item in found.group(1).split(",") if item.strip())


def normalise(listing: str) -> str:
    """The listing without what changes at run time: counter values and the elements of dynamic sets."""
    return _without(listing, lambda block: block.kind in ("set", "map") and block.dynamic)


def terse(listing: str) -> str:
    """The normalised listing without any set's elements, as `nft -t` prints it: what drift compares at sizes
    where listing the static sets' elements would cost more than the load."""
    return _without(listing, lambda block: block.kind in ("set", "map"))


def _without(listing: str, elements_dropped) -> str:
    """The listing without counter values and without the elements of the blocks `elements_dropped` picks."""
    dropped = {b.name for b in blocks(listing) if elements_dropped(b)}
    out, skipping, current = [], False, None
    for line in listing.splitlines():
        opened = _BLOCK.match(line)
        if opened:
            current = opened.group(2)
        if _COUNTER_VALUES.match(line):
            continue
        if current in dropped and line.strip().startswith("elements = {"):
            skipping = True
        if skipping:
            skipping = not line.rstrip().endswith("}")
            continue
        out.append(_INLINE_COUNTER.sub("counter", line))
    return "\n".join(out) + "\n"


def canonical(listing: str, with_elements: bool = True) -> list[str]:
    """The lines drift compares: normalised (or terse), without the marker lines (the digest is compared on its
    own, and the table's comment keeps the digest of the apply that created the table), blocks in name order (an
    apply that keeps the dynamic sets in place re-creates everything else after them)."""
    text = normalise(listing) if with_elements else terse(listing)
    out = text.splitlines()[:1]
    for block in sorted(blocks(text), key=lambda b: (b.kind, b.name)):
        out.append(f"\t{block.kind} {block.name} {{")
        out += [line for line in block.lines if line and not _is_marker(line)]
        out.append("\t}")
    return out + _outside_blocks(text)


def _outside_blocks(text: str) -> list[str]:
    """Lines of the table outside the blocks `blocks` knows (an object nftc never makes, such as a quota), in
    their order: drift shows them too."""
    out, inside = [], False
    for line in text.splitlines()[1:]:
        if _BLOCK.match(line):
            inside = True
        elif inside:
            inside = line != "\t}"
        elif line and line != "}" and not _is_marker(line):
            out.append(line)
    return out


def rule_lines(listing: str) -> list[str]:
    """Every rule as `chain: rule`, in order; for the rule-level diff."""
    out = []
    for block in blocks(normalise(listing)):
        if block.kind == "chain":
            out += [f"{block.name}: {line.strip()}" for line in block.lines
                    if line.strip() and not line.strip().startswith(("type ", "comment "))]
    return out


def set_elements(listing: str) -> dict[str, tuple[str, ...]]:
    """Elements of every static set and map (dynamic ones change at run time and are not the policy's)."""
    return {b.name: elements(b) for b in blocks(listing) if b.kind in ("set", "map") and not b.dynamic}


@dataclass(frozen=True)
class Opening:
    """A zone's rule for a service, read back from the counter name the compiler gives it: ZONE/SERVICE/RULE."""

    zone: str
    service: str
    action: str
    rule: str


def openings(listing: str | None) -> set[Opening]:
    """One per action chain `ZONE/SERVICE/RULE`: the zone's port map sends the ports that rule decides there."""
    found = set()
    for block in blocks(listing or ""):
        parsed = names.parse_action(block.name) if block.kind == "chain" else None
        if parsed:
            zone, service, rule = parsed
            found.add(Opening(zone, service, _action(block.lines), rule))
    return found


def _action(lines: tuple[str, ...]) -> str:
    verdicts = [re.sub(r' comment "[^"]*"$', "", line.strip()) for line in lines]
    if any(body.endswith(" accept") for body in verdicts):
        return "allow"
    return "reject" if any(" reject" in body for body in verdicts) else "deny"


def policy_changes(old: str | None, new: str) -> list[str]:
    """What the new table changes, in policy terms: zones gaining or losing services, set elements."""
    lines = []
    before = {(o.zone, o.service): o for o in openings(old)}
    after = {(o.zone, o.service): o for o in openings(new)}
    for key in sorted(set(before) | set(after)):
        was, now = before.get(key), after.get(key)
        zone, service = key
        if was is None or (now is not None and was.action != now.action):
            verb = "gains" if now.action == "allow" else f"now {now.action}s"
            lines.append(f"zone {zone} {verb} {service} (rule {now.rule})")
        elif now is None:
            lines.append(f"zone {zone} loses {service}" + (" (was allowed)" if was.action == "allow" else
                                                          f" (was {was.action})"))
    old_sets, new_sets = set_elements(old or ""), set_elements(new)
    for name in sorted(set(old_sets) | set(new_sets)):
        if names.is_port_map(name):  # the zones' port maps: said above as gains and losses
            continue
        was, now = old_sets.get(name, ()), new_sets.get(name, ())
        added = [e for e in now if e not in was]
        removed = [e for e in was if e not in now]
        if name not in old_sets:
            lines.append(f"new set {name}: {', '.join(now) or 'empty'}")
        elif name not in new_sets:
            lines.append(f"set {name} removed")
        elif added or removed:
            lines.append(f"set {name}: " + ", ".join([f"+{e}" for e in added] + [f"-{e}" for e in removed]))
    return lines


def rule_changes(old: str | None, new: str) -> list[str]:
    """Rules removed (`-`) and added (`+`), as nft prints them, prefixed with their chain."""
    import difflib  # here: an apply without drift needs no difflib (issue 9: start-up)

    diff = difflib.unified_diff(rule_lines(old or ""), rule_lines(new), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def drift(live: str, applied: str, with_elements: bool = True) -> list[str]:
    """Lines where the live table differs from what was loaded (counters and dynamic elements ignored; every
    set's elements too unless `with_elements`)."""
    before, after = canonical(applied, with_elements), canonical(live, with_elements)
    if before == after:  # no drift, the usual answer of every apply: without difflib (issue 9: start-up)
        return []
    import difflib

    diff = difflib.unified_diff(before, after, "applied", "live", lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def counters(listing: str) -> list[dict]:
    """The named counters of a listing (`counter NAME { packets P bytes B }`), as `nft -j list counters` gives
    them: read from the listing apply and status have anyway, since listing counters fetches every set element."""
    out = []
    for block in blocks(listing):
        values = [_COUNTER_OBJECT_VALUES.match(line) for line in block.lines] if block.kind == "counter" else []
        found = next((v for v in values if v), None)
        if found:
            out.append({"name": block.name, "packets": int(found.group(1)), "bytes": int(found.group(2))})
    return out


def counter_rows(counters: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """(zone, service, rule, packets, bytes) rows and (drop reason, packets, bytes) rows, from the counter names."""
    opened, dropped = [], []
    for counter in counters:
        name, packets, size = counter["name"], counter.get("packets", 0), counter.get("bytes", 0)
        parsed = names.parse_action(name)
        if parsed:
            opened.append((*parsed, packets, size))
        elif name == names.LOCALHOST_ACCEPT:
            from ..semantics.zones import LOCALHOST  # here: apply imports this module, and zones takes a while

            opened.append((LOCALHOST, "any", "loopback", packets, size))
        else:
            dropped.append((name, packets, size))
    return opened, dropped
