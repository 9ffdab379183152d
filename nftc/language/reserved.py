"""What nftc's table may be called: the one home of the rule, without the parser.

The `table` statement uses it, and so does the apply side for every table name it reads back from its state
directory, where any string can turn up and goes into nft text if it passes. It imports nothing heavy: `nftc
status`, `confirm` and `rollback` check names without loading the generated parser.
"""

from __future__ import annotations

import re

# The grammar's NAME terminal (grammar/zfw.lark); tests/test_names.py checks the two agree.
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NAME_CHARACTERS = "names hold only ASCII letters, digits and '_', and start with a letter or '_'"
MAX_NAME_LENGTH = 32
# Tables other tools create in the ip, ip6 and inet families: nftc replaces its own table whole, so it must never
# be one of theirs. Only names nftc's name syntax can spell matter: f2b-table (fail2ban's default), kube-proxy,
# docker-bridges, nixos-fw, ts-filter, wg-quick-*, nm-shared-*, io.systemd.nat cannot be written in a policy.
COMMON_TABLE_NAMES = (
    "filter", "nat", "mangle", "raw", "security",  # iptables-nft (ufw, Docker, libvirt, kube-proxy); Debian's example
    "firewalld", "firewalld_policy_drop",  # firewalld: TABLE_NAME and TABLE_NAME_POLICY in core/nftables.py
    "f2b", "fail2ban",  # what admins set fail2ban's nftables `table` option to (action.d/nftables.conf)
    "crowdsec", "crowdsec6",  # crowdsec-firewall-bouncer, nftables mode: ipv4 and ipv6 tables
    "sshguard",  # sshguard's sshg-fw-nft-sets backend (ip and ip6)
    "libvirt_network",  # libvirt's nftables firewall backend (virtual networks)
    "netavark",  # podman's netavark, nftables driver (TABLENAME in src/firewall/nft.rs)
    "incus", "lxd",  # incus and LXD bridge firewalls (table inet incus, table inet lxd)
    "foomuuri",  # foomuuri (table inet foomuuri)
    "fw4",  # OpenWrt's firewall4
    "opensnitch",  # opensnitch's nftables firewall (table inet opensnitch)
)
# The table name is the one name nftc writes bare into nft text, where nft's scanner reads these as keywords
# (families, objects, statements, verdicts, expressions): reserve them. Every other name nftc emits has a prefix
# or a '/' (zone_lan, ports_lan, lan/ssh/r1), which nft never reads as a keyword.
NFT_KEYWORDS = frozenset("""
    accept add and arp auto-merge bridge burst bytes chain chains comment constant continue counter counters create
    ct day define delete describe destroy device devices drop dynamic element elements ether export fib flags flow
    flowtable flush goto handle hook hour icmp icmpv6 igmp import include index inet insert interval ip ip6 jump
    last limit limits list log map maps masquerade meta meter minute monitor name netdev notrack numgen over packets
    policy position prefix priority queue quota random rate redefine redirect reject rename replace reset return
    rt rule ruleset sctp second set sets size snat dnat socket state synproxy table tables tcp th timeout type typeof
    udp udplite undefine update vlan vmap week xor
""".split())
TOO_COMMON = "too common: it may be another tool's table"
NFT_KEYWORD = "an nft keyword"
TABLE_NAME_HINTS = {TOO_COMMON: "nftc replaces its table whole; pick a name only nftc uses, such as zfw",
                    NFT_KEYWORD: "nft would misread it; pick another name, such as zfw"}


def table_name_problem(name: str) -> str | None:
    """Why `name` cannot be nftc's table name (a phrase after "table name 'X' is"), or None."""
    if not NAME.fullmatch(name):
        return f"not a name ({NAME_CHARACTERS})"
    if len(name) > MAX_NAME_LENGTH:
        return f"longer than {MAX_NAME_LENGTH} characters"
    if name in COMMON_TABLE_NAMES:
        return TOO_COMMON
    if name.lower() in NFT_KEYWORDS:
        return NFT_KEYWORD
    return None
