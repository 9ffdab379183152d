"""The one base class of the errors a user can cause, and the exit codes of the command line (their one home).

Every stage raises a subclass of NftcError for what a user can cause or fix (a policy, an option, a state
directory, the kernel's answer); `nftc.cli.main.main` catches it in one place, prints one line and returns the
error's `exit_code`. Anything else reaching `main` is a bug in nftc. This module imports nothing from nftc, so
every package may import it.
"""

EXIT_OK = 0
EXIT_FAILURE = 1  # everything else: the kernel refused, a state directory cannot be used, the lab failed, drift...
EXIT_POLICY = 2  # a policy or usage error, and a refused lockout: the input must change, not the machine
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command Ctrl-C stopped


class NftcError(Exception):
    """An error a user can cause or fix: its message is one line for `nftc: COMMAND: message`, and `exit_code`
    is what the command returns (a subclass sets it: EXIT_POLICY for policy and usage errors)."""

    exit_code = EXIT_FAILURE
