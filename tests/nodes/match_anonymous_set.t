icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert }
