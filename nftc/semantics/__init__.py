"""The meaning of a policy: the built-in Zimbra catalog, the role matrix (roles, its one home), one host's policy
of a cluster policy (cluster: a policy without hosts, for every stage after it), name and zone resolution
(resolve, zones), port intervals (ports), and reach: the first-match walk that decides every (zone, protocol,
port) and proves the assertions. The backend lowers from the same walk, so what nftc proves is what the kernel does.

May import: nftc.language.
"""
