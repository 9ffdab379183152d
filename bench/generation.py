"""The kernel's nftables generation id, read over netlink (NFT_MSG_GETGEN): `python bench/generation.py`.

Every committed nftables transaction increments it, so an unchanged id around a command proves the command
committed none (the re-apply target: "no transaction"). `nft monitor` would say the same, but nft 1.0.6 falls
behind and garbles the events of a 320k-element load, and slows the load it watches about fourfold. Standard
library only; run inside the namespace to be read (`ip netns exec NS python bench/generation.py`); prints the id.
"""

from __future__ import annotations

import socket
import struct
import sys

NETLINK_NETFILTER = 12
NFNL_SUBSYS_NFTABLES = 10
NFT_MSG_GETGEN = 16
NFTA_GEN_ID = 1
NLM_F_REQUEST = 1
NLMSG_ERROR = 2
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_NFGENMSG = struct.Struct("=BBH")  # family, version, resource id
_ATTRIBUTE = struct.Struct("=HH")  # nlattr: length, type


def generation() -> int:
    """The current generation id of this network namespace's nftables."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER) as sock:
        sock.settimeout(5)
        sock.bind((0, 0))
        body = _NFGENMSG.pack(socket.AF_UNSPEC, 0, 0)
        kind = NFNL_SUBSYS_NFTABLES << 8 | NFT_MSG_GETGEN
        sock.send(_HEADER.pack(_HEADER.size + len(body), kind, NLM_F_REQUEST, 1, 0) + body)
        return _generation_id(sock.recv(65536))


def _generation_id(reply: bytes) -> int:
    """NFTA_GEN_ID (a big-endian u32) from the reply's attributes."""
    length, kind, _, _, _ = _HEADER.unpack_from(reply)
    if kind == NLMSG_ERROR:
        raise OSError(-struct.unpack_from("=i", reply, _HEADER.size)[0], "NFT_MSG_GETGEN refused")
    offset = _HEADER.size + _NFGENMSG.size
    while offset + _ATTRIBUTE.size <= length:
        size, attribute = _ATTRIBUTE.unpack_from(reply, offset)
        if attribute & 0x3FFF == NFTA_GEN_ID:
            return struct.unpack_from(">I", reply, offset + _ATTRIBUTE.size)[0]
        offset += (size + 3) & ~3
    raise LookupError("no NFTA_GEN_ID in the kernel's reply")


if __name__ == "__main__":
    print(generation())
    sys.exit(0)
