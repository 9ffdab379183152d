"""Reading nftc's table as the kernel lists it: digest, sets, zone rules, drift, dynamic elements, counters.

Works on `nft list table` text, so the same functions read the live table, a snapshot, and the listing of a
compiled ruleset loaded in a private namespace (what `diff` compares against).
"""

from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass

from ..backend import names
from ..semantics.zones import LOCALHOST

_MARKER = re.compile(r'\tcomment "nftc [0-9A-Za-z.+-]+ policy [A-Za-z0-9._-]* sha256:([0-9a-f]{64})"')
_POLICY = re.compile(r'comment "nftc \S+ policy (\S+) sha256:')
_BLOCK = re.compile(r"^\t(set|map|chain|counter|limit) (\S+) \{$")
_COUNTER_VALUES = re.compile(r"^\s*packets \d+ bytes \d+\s*$")
_INLINE_COUNTER = re.compile(r"counter packets \d+ bytes \d+")


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


def digest(listing: str | None) -> str | None:
    """The sha256 in nftc's marker (the table comment the compiler writes), or None: a table without the marker is
    not nftc's. Reads a listing or a compiled script alike (the marker is within their first five lines)."""
    for line in (listing or "").split("\n", 5)[:5]:
        found = _MARKER.fullmatch(line)
        if found:
            return found.group(1)
    return None


def script_digest(script: str) -> str:
    """The digest the compiler puts in the marker: the sha256 of the script without the marker line."""
    without = "".join(line for line in script.splitlines(keepends=True) if not _MARKER.fullmatch(line.rstrip("\n")))
    return hashlib.sha256(without.encode()).hexdigest()


def policy_name(listing: str | None) -> str | None:
    found = _POLICY.search(listing or "")
    return found.group(1) if found else None


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
    dynamic = {b.name for b in blocks(listing) if b.kind in ("set", "map") and b.dynamic}
    out, skipping, current = [], False, None
    for line in listing.splitlines():
        opened = _BLOCK.match(line)
        if opened:
            current = opened.group(2)
        if _COUNTER_VALUES.match(line):
            continue
        if current in dynamic and line.strip().startswith("elements = {"):
            skipping = True
        if skipping:
            skipping = not line.rstrip().endswith("}")
            continue
        out.append(_INLINE_COUNTER.sub("counter", line))
    return "\n".join(out) + "\n"


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


@dataclass(frozen=True, order=True)
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
    diff = difflib.unified_diff(rule_lines(old or ""), rule_lines(new), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def drift(live: str, applied: str) -> list[str]:
    """Lines where the live table differs from what was loaded (counters and dynamic elements ignored)."""
    diff = difflib.unified_diff(normalise(applied).splitlines(), normalise(live).splitlines(),
                                "applied", "live", lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def counter_rows(counters: list[dict]) -> tuple[list[tuple], list[tuple]]:
    """(zone, service, rule, packets, bytes) rows and (drop reason, packets, bytes) rows, from the counter names."""
    opened, dropped = [], []
    for counter in counters:
        name, packets, size = counter["name"], counter.get("packets", 0), counter.get("bytes", 0)
        parsed = names.parse_action(name)
        if parsed:
            opened.append((*parsed, packets, size))
        elif name == names.LOCALHOST_ACCEPT:
            opened.append((LOCALHOST, "any", "loopback", packets, size))
        else:
            dropped.append((name, packets, size))
    return opened, dropped
