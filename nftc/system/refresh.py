"""`nftc refresh`: download the url zones' blocklists and replace their sets' elements, nothing else.

For each url zone that is due (its `refresh` interval passed since its last good fetch or 304; `--force`: every
one), the list is fetched conditionally (download.py), parsed and checked (blocklists.checked: garbage, empty,
too large, covering a trusted zone, the machine's own addresses or loopback are refused). The lists that pass are
loaded in ONE transaction that flushes and fills only their `url_ZONE_v4`/`_v6` sets: no chain, rule, map, other
set or counter is touched, and dynamic sets keep their elements. Only then are they kept as the last good lists.
Any failure keeps the last good list in the kernel and in the state directory, and is said in one line.

How a refresh stays truthful to the records (README, "Blocklists"):
- the digest, and the marker that carries it, leave the blocklists' elements out (nftc.compiler): the marker
  still names the loaded policy after a refresh, and a refresh is refused unless the live table carries the
  digest the policy compiles to now (else: run `nftc apply`);
- the listing drift is told against is read again right after the refresh, so the new elements are not drift
  and a hand edit of a blocklist set is;
- the refresh is recorded as `nftc apply` of the same policy with the new lists would be: the same digest, the
  new script (what a rollback snapshot, `apply --boot` and an unchanged re-apply load), its provenance (the
  lists kept are inputs of the compile, with their sha256, as the policy's files are), the listing read again.
  The apply's time stays: status says when the policy was applied, and the refresh's own event says when it
  was refreshed.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Callable

from ..backend import ir, names
from ..backend.render_nft import render_nft, set_elements
from ..compiler import Compilation, HostError, compile_policy
from ..errors import EXIT_POLICY, NftcError
from ..language import model as m
from ..language.loader import MAX_ADDRESSES, Feeds
from ..semantics.cluster import host_names
from ..semantics.zones import trusted_networks
from . import blocklists, live, reader
from .blocklists import Kept, ListError
from .download import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT_SECONDS, FetchError, fetch
from .reapply import provenance
from .records import APPLIED, FAMILY, LISTING, SCRIPT, Target, content_sha256, lists_elements, read_applied
from .restore import load
from .state import Lock, StateDir, StateError, as_json


class RefreshError(NftcError):
    """Nothing can be refreshed: the live table is not this policy's; one line."""


class RefreshUsageError(RefreshError):
    """The policy has no url zone, or none of the name asked for: the command line or the policy must change."""

    exit_code = EXIT_POLICY


@dataclass(frozen=True)
class Options:
    """What `nftc refresh` was asked for: the download's bounds and which zones."""

    timeout: float = DEFAULT_TIMEOUT_SECONDS
    max_bytes: int = DEFAULT_MAX_BYTES
    force: bool = False  # every url zone, due or not
    zones: tuple[str, ...] = ()  # only these (none: every url zone)


@dataclass(frozen=True)
class Result:
    """One zone's refresh: 'ok' (loaded), 'unchanged' (304 or not due), 'failed' (the last good list stays)."""

    zone: str
    url: str
    result: str
    detail: str
    entries: int | None = None  # of the list now loaded (None: unknown, nothing kept yet)
    rechecked: Kept | None = None  # 'unchanged' after asking the server: the record to keep, checked now


@dataclass(frozen=True)
class _New:
    """A list that passed its checks, to load."""

    zone: m.Zone
    text: str
    kept: Kept
    detail: str


def refresh(state: StateDir, policy: str, options: Options, wait_seconds: float,
            fetcher: Callable = fetch) -> tuple[Compilation, tuple[Result, ...]]:
    """Refresh the policy's url zones; one Result per zone considered. The downloads run without the lock (an
    apply in the meantime is not kept waiting for a slow server); what changes the kernel or the state directory
    runs under it, after checking again that the live table is still the policy's."""
    state.ensure()
    kept_feeds = blocklists.feeds(state)
    compilation = _compile(state, policy, {}, kept_feeds)
    zones = _url_zones(compilation, options.zones)
    target = Target(FAMILY, compilation.table.name)
    _refuse_unless_loaded(state, target, compilation.digest)
    protected = trusted_networks(compilation.checked.policy.zones) + blocklists.own_networks()
    fetched = [_fetched(state, zone, protected, options, fetcher) for zone in zones]
    results = [r for r in fetched if isinstance(r, Result)]
    new = [n for n in fetched if isinstance(n, _New)]
    if new or any(r.rechecked for r in results):
        with Lock(state, wait_seconds):
            _refuse_unless_loaded(state, target, compilation.digest)
            for r in results:
                if r.rechecked:
                    blocklists.save_record(state, r.zone, r.rechecked)
            results += _loaded(state, policy, target, new, kept_feeds, compilation.digest) if new else []
    order = [z.name for z in zones]
    return compilation, tuple(sorted(results, key=lambda r: order.index(r.zone)))


def _url_zones(compilation: Compilation, wanted: tuple[str, ...]) -> list[m.Zone]:
    zones = [z for z in compilation.checked.policy.zones if z.url is not None]
    if not zones:
        raise RefreshUsageError("the policy has no url zone (zone NAME = url \"https://...\")")
    unknown = [name for name in wanted if name not in {z.name for z in zones}]
    if unknown:
        raise RefreshUsageError(f"no url zone named '{unknown[0]}' (url zones: {', '.join(z.name for z in zones)})")
    return [z for z in zones if not wanted or z.name in wanted]


def _refuse_unless_loaded(state: StateDir, target: Target, digest: str) -> None:
    """A refresh changes the sets of the table this very policy compiled to, recorded by the last apply."""
    listing = reader.terse_table(target)
    if listing is None:
        raise RefreshError(f"no table {target} is loaded; run nftc apply first")
    applied = read_applied(state)
    if live.digest(listing) != digest or applied is None or applied.digest != digest:
        raise RefreshError(f"table {target} is not this policy as it compiles now; run nftc apply first")


def _fetched(state: StateDir, zone: m.Zone, protected, options: Options, fetcher) -> Result | _New:
    """The zone's new list, checked; or why nothing is loaded for it (a Result)."""
    url = zone.url.url
    kept = blocklists.read_kept(state, zone.name)
    kept = kept if kept is not None and kept.url == url and blocklists.kept_text(state, zone.name, url) else None
    entries = kept.entries if kept else None
    if kept and not options.force and time.time() < kept.checked + zone.url.refresh_seconds:
        return Result(zone.name, url, "unchanged", f"not due (fetched {kept.fetched})", entries)
    try:
        fetched = fetcher(url, kept.validators if kept else blocklists.Validators(), options.timeout,
                          options.max_bytes)
        if fetched.body is None and kept is None:
            raise FetchError("HTTP 304 Not Modified, but no list is kept")
        if fetched.body is None:
            return Result(zone.name, url, "unchanged", "not modified (HTTP 304)", entries, blocklists.rechecked(kept))
        text = blocklists.decoded(fetched.body)
        if kept and content_sha256(text) == kept.sha256:  # a server without ETag or Last-Modified
            return Result(zone.name, url, "unchanged", "the same list", entries,
                          dataclasses.replace(blocklists.rechecked(kept), validators=fetched.validators))
        found = blocklists.checked(text, url, protected, MAX_ADDRESSES)
    except (FetchError, ListError) as exc:
        return Result(zone.name, url, "failed", f"{exc}; {_keeping(kept)}", entries)
    note = f"; {found.warnings[0].message}" if found.warnings else ""
    record = blocklists.kept_record(url, text, fetched.validators, len(found.networks))
    return _New(zone, text, record, f"{len(found.networks)} entries, sha256:{record.sha256[:16]}{note}")


def _keeping(kept: Kept | None) -> str:
    if kept is None:
        return "no list was ever loaded: the zone's sets stay empty"
    return f"kept the last good list ({kept.entries} entries, fetched {kept.fetched})"


def _loaded(state: StateDir, policy: str, target: Target, new: list[_New], kept_feeds: Feeds,
            digest: str) -> list[Result]:
    """Compile with the new lists (their sets' elements as the compile writes them), load only those sets'
    elements in one transaction, then keep the lists and record the refresh as an apply of the same policy with
    them would be recorded: same digest, the new script, its provenance, the listing drift is told against."""
    texts = {n.zone.name: n.text for n in new}

    def feed(zone: str, url: str):
        return (state.file(blocklists.list_file(zone)), texts[zone]) if zone in texts else kept_feeds(zone, url)

    sources: dict[str, str] = {}
    compilation = _compile(state, policy, sources, feed)
    if compilation.digest != digest:  # the policy file changed during the downloads
        raise RefreshError(f"{policy} changed during the refresh; nothing was loaded")
    table = compilation.table
    sets = {s.name: s for s in table.sets}
    script = "".join(_replace_elements(target, sets[names.blocklist_set(n.zone.name, v)]) for n in new
                     for v in (4, 6))
    try:
        load(script)
    except NftcError as exc:
        return [Result(n.zone.name, n.kept.url, "failed", f"the kernel refused the list: {_first_line(exc)}",
                       None) for n in new]
    for n in new:
        blocklists.save(state, n.zone.name, n.text, n.kept)
    _record_applied(state, compilation, sources)
    _record_listing(state, target)
    return [Result(n.zone.name, n.kept.url, "ok", n.detail, n.kept.entries) for n in new]


def _replace_elements(target: Target, blocklist: ir.Set) -> str:
    """`flush set` + `add element`: the set's elements, and nothing else, replaced (in the caller's transaction)."""
    lines = f"flush set {target} {blocklist.name}\n"
    if blocklist.elements:
        lines += f"add element {target} {blocklist.name} {{ {set_elements(blocklist)} }}\n"
    return lines


def _record_applied(state: StateDir, compilation: Compilation, sources: dict[str, str]) -> None:
    """The applied record and script as `nftc apply` of the policy with these lists would write them (the digest
    is the same; the time stays the apply's): a rollback snapshot, the next unchanged apply and `apply --boot`
    then load the lists loaded now, not those of the last apply."""
    applied = read_applied(state)
    if applied is None or applied.digest != compilation.digest:
        return
    strict = applied.provenance.strict if applied.provenance else False
    record = dataclasses.replace(
        applied, elements=sum(len(s.elements) for s in compilation.table.sets),
        provenance=provenance(sources, strict, len(compilation.warnings), compilation.host)
        if applied.provenance else None)
    state.stage({SCRIPT: render_nft(compilation.table), APPLIED: as_json(record.as_dict())}).commit()


def applied_host(state: StateDir) -> str | None:
    """The cluster host the applied ruleset was compiled for (issue 11): a refresh compiles that host's (also the
    CLI, when it redraws a policy's errors)."""
    applied = read_applied(state)
    return applied.provenance.host if applied is not None and applied.provenance is not None else None


def _compile(state: StateDir, policy: str, sources: dict[str, str], feeds: Feeds) -> Compilation:
    """The policy as the host last applied enforces it. Refresh takes no --host: a cluster policy with no host
    recorded is refused with what helps (the compiler's own message offers --host and --all)."""
    def no_recorded_host(cluster: m.Policy) -> str:
        raise HostError(f"{policy} declares hosts {', '.join(host_names(cluster))}, and the last apply recorded "
                        "none of them: refresh reloads the blocklists of the host last applied; run nftc apply first")

    return compile_policy(policy, sources, feeds, applied_host(state), no_recorded_host)


def _record_listing(state: StateDir, target: Target) -> None:
    """The table as listed now is what drift is told against: the new elements are the policy's, not drift."""
    applied = read_applied(state)
    try:
        listing = reader.read_table(target, lists_elements(applied.elements if applied else None))
        if listing is None:
            state.remove(LISTING)
        else:
            state.write_text(LISTING, live.normalise(listing), durable=False)
    except (NftcError, StateError):
        state.remove(LISTING)  # drift is then unknown until the next apply, never told against stale elements


def _first_line(exc: Exception) -> str:
    return str(exc).split("\n", 1)[0]
