"""Proving a policy on the kernel in throwaway network namespaces: namespace helpers (netns), the probe plan
(plan), the session that builds, loads (through `nftc apply`) and probes (session), and the prober run inside the
namespaces (probe). The benchmarks reuse these helpers.

May import: nftc.language, nftc.semantics, nftc.backend, nftc.compiler, nftc.system.
"""
