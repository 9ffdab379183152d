"""Command line of `nftc lab`: build the namespace lab (for a cluster policy without --host: every host, on one
bridge), probe, print the matrix; exit 1 on any mismatch."""

from __future__ import annotations

import os
import sys

from ..errors import EXIT_FAILURE, EXIT_OK, EXIT_POLICY
from .common import add_host_option, compiled, compiled_hosts, interrupted_exit_code

NEEDS_ROOT = "needs root (it creates network namespaces); run it with sudo"


def add_commands(commands) -> None:
    lab_cmd = commands.add_parser(
        "lab", help="prove a policy on the kernel: namespaces, real listeners, real connections (needs root)")
    lab_cmd.add_argument("policy", metavar="FILE", nargs="?")
    lab_cmd.add_argument("--scanner", choices=("builtin", "nmap"), default="builtin",
                         help="probe with the built-in prober (default) or with nmap")
    lab_cmd.add_argument("--keep", action="store_true", help="leave the lab up and print how to enter it")
    lab_cmd.add_argument("--json", action="store_true", help="print the matrix as JSON")
    add_host_option(lab_cmd)
    lab_cmd.add_argument("--down", metavar="PREFIX",
                         help="tear down a lab kept with --keep (or what a killed test or benchmark run left: "
                              "nftct<pid>x<n>, nftcbench<pid>x<n>)")
    lab_cmd.set_defaults(run=lab)


class Stopped(KeyboardInterrupt):
    """SIGTERM, raised where the lab is running: it unwinds through the finally blocks that tear the lab down."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Stopped(signum)


def lab(args) -> int:
    """A LabError goes to `main` (exit 1; 2 for a --down PREFIX that is not a lab's); Ctrl-C and SIGTERM are
    said here, after the lab's finally blocks have torn it down."""
    # imported here, not at the top: the lab's modules are only needed by this command (start-up time)
    import signal

    from ..lab import session as lab_module

    if args.down:
        if os.geteuid() != 0:
            print(f"nftc: lab: {NEEDS_ROOT}", file=sys.stderr)
            return EXIT_FAILURE
        names = lab_module.tear_down(args.down)
        print(f"deleted {len(names)} namespaces: {' '.join(names)}" if names else "no such lab")
        return EXIT_OK
    if args.policy is None:
        print("nftc: lab: a policy FILE is needed (or --down PREFIX)", file=sys.stderr)
        return EXIT_POLICY
    compilations = (compiled(args.policy, host=args.host),) if args.host else compiled_hosts(args.policy)
    if compilations is None or compilations[0] is None:
        return EXIT_POLICY
    compilation = compilations[0]
    if compilation.host is not None and args.scanner != "builtin":  # a cluster policy without --host
        print("nftc: lab: the cluster lab probes with the built-in prober (--scanner nmap: with --host)",
              file=sys.stderr)
        return EXIT_POLICY
    if os.geteuid() != 0:  # checked after compiling: policy errors need no root, and are worth seeing first
        print(f"nftc: lab: {NEEDS_ROOT}", file=sys.stderr)
        return EXIT_FAILURE
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if compilation.host is not None and not args.host:
            return _run_cluster(compilations, args)
        return _run(lab_module, compilation.checked, args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the lab's finally blocks have torn it down
        print(f"nftc: lab: {'terminated' if isinstance(exc, Stopped) else 'interrupted'}; the lab was torn down",
              file=sys.stderr)
        return interrupted_exit_code(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run(lab_module, checked, args) -> int:
    policy = args.policy
    load = (lambda live: lab_module.load_policy(live, policy, args.host)) if args.host else \
        (lambda live: lab_module.load_policy(live, policy))
    with lab_module.session(checked, load, keep=args.keep) as live:
        report = lab_module.probe_lab(live, checked, args.scanner)
        print(lab_module.report_json(report) if args.json else lab_module.report_text(report))
        if args.keep:
            print(lab_module.enter_commands(live), file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILURE


def _run_cluster(compilations, args) -> int:
    """Every host of a cluster policy in its own namespace, on one bridge with a client per zone."""
    from ..lab import cluster
    from ..language.loader import load_policy

    policy = load_policy(args.policy, {})
    plan = cluster.plan_cluster(policy.hosts, {c.host: c.checked for c in compilations})
    path = args.policy
    with cluster.cluster_session(plan, lambda live, host: cluster.load_host(live, path, host), keep=args.keep) as live:
        report = cluster.probe_cluster(live)
        print(cluster.report_json(report) if args.json else cluster.report_text(report))
        if args.keep:
            print(cluster.enter_commands(live), file=sys.stderr if args.json else sys.stdout)
    return EXIT_OK if report.ok else EXIT_FAILURE
