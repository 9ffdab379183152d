"""The nftables side of the compiler: the IR (typed table, chains, sets, rules), the names nftc gives the objects
it creates (names: built and parsed in one place), lowering from the checked policy, and the two renderers (nft
text and libnftables JSON), which dispatch on the IR node type and raise on one they do not know.

May import: nftc.language, nftc.semantics.
"""
