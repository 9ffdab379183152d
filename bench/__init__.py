"""nftc's benchmarks: `python bench/run.py [--quick]` (as root; every kernel measurement in throwaway namespaces)."""
