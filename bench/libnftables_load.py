"""`python bench/libnftables_load.py FILE`: load an nft script through libnftables (python3-nftables) in one
transaction, and nothing else; workload 3's floor for any Python tool that loads a ruleset this way: the
interpreter's start, the bindings' import and the load, without compiling or checking anything."""

from __future__ import annotations

import sys

import nftables


def main(path: str) -> int:
    rc, _, error = nftables.Nftables().cmd_from_file(path)
    if rc != 0:
        print(error.strip(), file=sys.stderr)
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
