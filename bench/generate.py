"""The benchmark workloads as files: policies with large address zones, many services, a dynamic blocklist.

Everything is derived from a fixed seed, so two runs measure the same input. Addresses are distinct and never
adjacent-and-mergeable by construction (a /24 pool and a /32 pool that do not overlap, likewise for IPv6), so
a zone of N addresses becomes about N elements of the interval map.
"""

from __future__ import annotations

import ipaddress
import os
import random

SEED = 4
LAN_V4, LAN_V6 = "192.168.1.0/24", "fd00:1::/64"
OTHER_LAN_V4 = "192.168.2.0/24"  # the LAN of a policy's variant
INTERNET_CLIENT = {4: "203.0.113.10", 6: "2001:db8:ffff::10"}
LAN_CLIENT = {4: "192.168.1.10", 6: "fd00:1::10"}
SERVER = {4: "198.18.0.1", 6: "fd00:ffff::1"}
# Pools per (version, prefix length): first address, number of slots, slot size in addresses.
_POOLS = {
    (4, 24): (int(ipaddress.IPv4Address("1.0.0.0")), 1 << 16, 1 << 8),          # 1.0.0.0 - 1.255.255.255
    (4, 32): (int(ipaddress.IPv4Address("100.64.0.0")), 1 << 22, 2),           # every other address
    (6, 64): (int(ipaddress.IPv6Address("2a00::")), 1 << 32, 1 << 64),
    (6, 128): (int(ipaddress.IPv6Address("2a01::")), 1 << 40, 2),
}
_KINDS = ((4, 32), (4, 24), (6, 128), (6, 64))


def addresses(count: int, seed: int = SEED) -> list[str]:
    """`count` distinct networks, a quarter each of IPv4 /32, IPv4 /24, IPv6 /128, IPv6 /64."""
    rng = random.Random(seed)
    out = []
    for index, (version, length) in enumerate(_KINDS):
        share = count // 4 + (1 if index < count % 4 else 0)
        first, slots, size = _POOLS[(version, length)]
        kind = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        suffix = "" if length in (32, 128) else f"/{length}"
        out += [f"{kind(first + slot * size)}{suffix}" for slot in sorted(rng.sample(range(slots), share))]
    rng.shuffle(out)
    return out


def host_addresses(count: int, seed: int = SEED + 1) -> list[str]:
    """`count` distinct IPv4 host addresses (the dynamic blocklist's elements), outside every other pool."""
    rng = random.Random(seed)
    base = int(ipaddress.IPv4Address("10.0.0.0"))
    return [str(ipaddress.IPv4Address(base + 2 * slot)) for slot in sorted(rng.sample(range(1 << 22), count))]


def _write(path: str, text: str) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def zone_policy(directory: str, count: int, blocking: bool = True) -> str:
    """The single-server policy plus `zone blocked = file "..."` of `count` addresses. It allows nothing, so it is
    a blocking zone (README, "What a ban does": its addresses are looked up for every packet); with `blocking`
    False it allows ssh, and is looked up only for new connections, after conntrack."""
    listing = _write(os.path.join(directory, f"blocked-{count}.txt"), "\n".join(addresses(count)) + "\n")
    rule = "deny  blocked  -> zimbra.public" if blocking else "allow blocked  -> ssh"
    name = f"zone-{count}.zfw" if blocking else f"zone-{count}-allowing.zfw"
    return _write(os.path.join(directory, name), f"""table bench
zone lan      = {LAN_V4}, {LAN_V6}
zone internet = any
zone blocked  = file "{os.path.basename(listing)}"
allow internet -> zimbra.public
allow lan      -> zimbra.public
allow lan      -> zimbra.admin, ssh
{rule}
""")


def service_policy(directory: str, count: int) -> str:
    """`count` user services (one TCP port each, 20000 + i), all allowed from the LAN by one rule."""
    services = "".join(f"service user{i} = tcp {20000 + i}\n" for i in range(count))
    names = ", ".join(f"user{i}" for i in range(count))
    return _write(os.path.join(directory, f"services-{count}.zfw"), f"""table bench
zone lan      = {LAN_V4}, {LAN_V6}
zone internet = any
{services}allow internet -> zimbra.public
allow lan      -> zimbra.public
allow lan      -> {names}
""")


def dynamic_policy(directory: str) -> str:
    """The single-server policy with a run-time blocklist zone (`dyn_blocklist_v4`/`_v6`, kept across reloads)."""
    return _write(os.path.join(directory, "dynamic.zfw"), f"""table bench
zone lan       = {LAN_V4}, {LAN_V6}
zone internet  = any
zone blocklist = dynamic
allow internet -> zimbra.public
allow lan      -> zimbra.public
allow lan      -> zimbra.admin, ssh
deny  blocklist -> zimbra.public
""")


def variant(policy: str, directory: str) -> str:
    """`policy` with its LAN moved from LAN_V4 to OTHER_LAN_V4, written into `directory` (beside the address files
    a generated policy names): a ruleset of the same size that differs in one element, so that loading one after
    the other always changes the table, and no apply between them may be skipped as unchanged."""
    with open(policy, encoding="utf-8") as handle:
        text = handle.read()
    if LAN_V4 not in text:
        raise ValueError(f"{policy} has no LAN {LAN_V4} to move")
    stem, extension = os.path.splitext(os.path.basename(policy))
    return _write(os.path.join(directory, f"{stem}-variant{extension}"), text.replace(LAN_V4, OTHER_LAN_V4))


def add_elements_script(table: str, set_name: str, elements: list[str]) -> str:
    """One `add element` command carrying every element (loaded with `nft -f`: too long for one argv)."""
    return f"add element inet {table} {set_name} {{ {', '.join(elements)} }}\n"
