"""The names nftc gives the objects of its table, built and parsed here only.

lower builds every name with these functions; the apply and status side (nftc.system) reads names back with
the parsers below, never by searching rendered text. Zone names follow the grammar's NAME terminal (letters,
digits and `_`, at most 32 characters; tests/test_names.py keeps the pattern here equal to the grammar's), and
none of them contains `/`, so a name with two slashes is a rule's action and nothing else.

What the names look like (ZONE a zone, RULE a rule id such as r3, N 4 or 6):
- chains: `input`, `established`, `output`, `zone_ZONE`, `ZONE/SERVICE/RULE` (a rule's action in a zone, for one
  service), `over_limit_RULE`, `drop_REASON`, `ban_ZONE` (a blocking zone's addresses, before conntrack);
- counters: `ZONE/SERVICE/RULE` (the action chain's), `ZONE/default-drop`, `ZONE/protected-drop`, `ZONE/ban`,
  `RULE/over-limit`, `drop/REASON`, `localhost/accept`, `output/memcached-reflection`;
- sets and maps: `zones_iface`, `zones_vN`, `bans_vN`, `ports_ZONE`, `protected_PROTOCOL`, `dyn_ZONE_vN` (a
  dynamic zone's run-time addresses), `url_ZONE_vN` (a url zone's blocklist), `trusted_vN`, `echo_vN` and `limit_RULE_vN` (per-source meters);
- limits: `limit_RULE`.
"""

from __future__ import annotations

import re

INPUT_CHAIN = "input"
ESTABLISHED_CHAIN = "established"  # the input chain's short path for established/related packets but ICMP
OUTPUT_CHAIN = "output"
INTERFACE_MAP = "zones_iface"
LOCALHOST_ACCEPT = "localhost/accept"  # the counter of zone localhost's built-in accept
MEMCACHED_REFLECTION = "output/memcached-reflection"

ZONE_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,31}"  # the grammar's NAME, at most MAX_NAME_LENGTH (32) characters
_DYNAMIC_SET = re.compile(rf"dyn_({ZONE_NAME})_v([46])")
BLOCKLIST_PREFIX = "url_"
_BLOCKLIST_SET = re.compile(rf"{BLOCKLIST_PREFIX}({ZONE_NAME})_v([46])")
_PORT_MAP_PREFIX = "ports_"


# Chains


def zone_chain(zone: str) -> str:
    """The chain a zone's packets go to once their source or interface picked the zone."""
    return f"zone_{zone}"


def action(zone: str, service: str, rule_id: str) -> str:
    """A rule's action chain, and its counter, for one service in one zone: what `status` and `diff` read back."""
    return f"{zone}/{service}/{rule_id}"


def parse_action(name: str) -> tuple[str, str, str] | None:
    """(zone, service, rule id) of an action chain's or counter's name; None for every other name."""
    parts = name.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def over_limit_chain(rule_id: str) -> str:
    return f"over_limit_{rule_id}"


def ban_chain(zone: str) -> str:
    """Where a blocking zone's addresses go before conntrack: new connections on to the zone, the rest banned."""
    return f"ban_{zone}"


def drop_chain(reason: str) -> str:
    """A chain that logs, counts (`drop_counter(reason)`) and drops: rpfilter, echo."""
    return f"drop_{reason}"


# Counters


def drop_counter(reason: str) -> str:
    """A built-in drop's counter: `nftc status` lists it under DROP REASON."""
    return f"drop/{reason}"


def default_drop(zone: str) -> str:
    """Packets of a zone that no rule decides."""
    return f"{zone}/default-drop"


def protected_drop(zone: str) -> str:
    """Knocks on protected ports from a zone that no rule opened them to."""
    return f"{zone}/protected-drop"


def ban_counter(zone: str) -> str:
    """Packets of a blocking zone's addresses that are not new connections (open sessions, pings): the ban's own
    drops, kept apart from `default_drop`, which counts new connections no rule decides."""
    return f"{zone}/ban"


def over_limit_counter(rule_id: str) -> str:
    return f"{rule_id}/over-limit"


# Sets, maps, limits


def zone_map(version: int) -> str:
    """The source-address -> zone verdict map of one IP version."""
    return f"zones_v{version}"


def ban_map(version: int) -> str:
    """The source-address -> ban chain verdict map of one IP version: the blocking zones' addresses the policy
    and its files give (the run-time ones are in their zones' sets)."""
    return f"bans_v{version}"


def trusted_set(version: int) -> str:
    """The trusted zones' networks of one IP version: no run-time set's zone ever takes them."""
    return f"trusted_v{version}"


def port_map(zone: str) -> str:
    """A zone's protocol . port -> action chain map."""
    return f"{_PORT_MAP_PREFIX}{zone}"


def is_port_map(name: str) -> bool:
    return name.startswith(_PORT_MAP_PREFIX)


def protected_set(protocol: str) -> str:
    return f"protected_{protocol}"


def dynamic_set(zone: str, version: int) -> str:
    """A dynamic zone's addresses of one IP version, added at run time: an apply carries them over."""
    return f"dyn_{zone}_v{version}"


def parse_dynamic_set(name: str) -> tuple[str, int] | None:
    """(zone, IP version) of a dynamic zone's set; None for any other name, so a name read back from a listing
    or a snapshot that passes is one nftc could have written (it goes into nft text)."""
    found = _DYNAMIC_SET.fullmatch(name)
    return (found.group(1), int(found.group(2))) if found else None


def dynamic_set_version(name: str) -> int | None:
    """4 or 6 for a name of a dynamic zone's set, None for any other name."""
    parsed = parse_dynamic_set(name)
    return parsed[1] if parsed else None


def blocklist_set(zone: str, version: int) -> str:
    """A url zone's downloaded addresses of one IP version: `nftc refresh` replaces its elements, nothing else."""
    return f"{BLOCKLIST_PREFIX}{zone}_v{version}"


def parse_blocklist_set(name: str) -> tuple[str, int] | None:
    """(zone, IP version) of a url zone's set; None for any other name."""
    found = _BLOCKLIST_SET.fullmatch(name)
    return (found.group(1), int(found.group(2))) if found else None


def echo_meter(version: int) -> str:
    """Ping's per-source meter of one IP version."""
    return f"echo_v{version}"


def limit(rule_id: str) -> str:
    """A rule's shared limit object (`limit RATE` without `per source`)."""
    return f"limit_{rule_id}"


def source_meter(rule_id: str, version: int) -> str:
    """A rule's per-source meter (`limit RATE per source`) of one IP version."""
    return f"limit_{rule_id}_v{version}"
