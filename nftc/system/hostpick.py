"""Which host of a cluster policy this machine is: the one whose addresses it has, in the current network
namespace. `apply` and `diff` use it when no --host is given; none or several: a one-line refusal."""

from __future__ import annotations

from ..compiler import HostError
from ..language import model as m
from ..semantics.cluster import host_names, hosts_for_addresses


def own_addresses():
    """The machine's own addresses in this network namespace (iproute2's `ip -j address show`, as blocklists
    reads them: one home)."""
    from .blocklists import own_networks

    return tuple(n.network_address for n in own_networks() if n.prefixlen == n.max_prefixlen)


def pick_host(policy: m.Policy) -> str:
    """The one host of `policy` that owns an address of this machine; HostError when none or several do."""
    found = hosts_for_addresses(policy, own_addresses())
    if len(found) == 1:
        return found[0]
    if not found:
        raise HostError(f"{policy.source}: no host of the policy ({', '.join(host_names(policy))}) has an address "
                        "of this machine: choose one with --host NAME")
    raise HostError(f"{policy.source}: this machine has addresses of several hosts ({', '.join(found)}): choose "
                    "one with --host NAME")
