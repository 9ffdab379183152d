"""The running machine: the only package that talks to libnftables (kernel), and everything apply does as root:
the state directory (state, records, snapshot), carrying dynamic elements as data (elements), reading live
tables (reader: the fast way; live: their text), drift against the applied policy (drift), the transaction that
keeps dynamic sets in place (transaction), applying an unchanged policy without compiling (reapply), putting a
snapshot back (restore: shared by rollback and the guard), the rollback guard (guard), the lockout guard
(lockout), and how child interpreters start (child); monitoring: what status reports (monitor), its JSON and
OpenMetrics forms (exposition), set sizes counted over netlink without libnftables (setsize), and the audit line
and last event of every action (audit); blocklists: fetching a list over http(s) (download), the last good lists
kept and checked (blocklists), and `nftc refresh`, which replaces only the url zones' sets' elements (refresh);
the address files the last apply's compile parsed, kept and checked (addresslists).
Trusts nothing it reads back: see README, "Security".

May import: nftc.language, nftc.semantics, nftc.backend, nftc.compiler.
"""
