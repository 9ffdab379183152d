"""nftc with a fault the tests inject: the only way to inject one, so the installed tool obeys no such thing.

    python -I tests/faulty_nftc.py [--reject-with TEXT] [--pause-after-load SECONDS] [--lab-loads FILE] -- NFTC ARGS...

--reject-with appends TEXT to every transaction apply or rollback loads (e.g. a rule for a chain that does not
exist, so the kernel rejects the whole transaction); --pause-after-load sleeps right after the kernel accepted one,
so a test can SIGKILL apply there; --lab-loads makes `nftc lab` load FILE into its kernel while it checks the
policy it was given (a kernel that differs from the policy). Run with `python -I`: nftc comes from the installed
package, as in production.
"""

from __future__ import annotations

import sys
import time


def main(argv: list[str]) -> int:
    separator = argv.index("--")
    options, nftc_args = argv[:separator], argv[separator + 1:]
    faults = dict(zip(options[::2], options[1::2]))
    unknown = set(faults) - {"--reject-with", "--pause-after-load", "--lab-loads"}
    if unknown or len(options) % 2:
        raise SystemExit(f"faulty_nftc: unknown options {sorted(unknown) or options}")
    from nftc.system import kernel
    from nftc.cli.main import main as nftc_main

    original = kernel.run_script
    extra, pause = faults.get("--reject-with", ""), float(faults.get("--pause-after-load", 0))

    def faulty(script: str, dry_run: bool = False, json_output: bool = False):
        transaction = not script.startswith("list ")
        result = original(script + (extra if transaction else ""), dry_run, json_output)
        if transaction and result.ok and pause:
            time.sleep(pause)
        return result

    kernel.run_script = faulty
    if "--lab-loads" in faults:
        from nftc.lab import session

        load_policy = session.load_policy
        session.load_policy = lambda live, _policy: load_policy(live, faults["--lab-loads"])
    return nftc_main(nftc_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
