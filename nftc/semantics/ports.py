"""Arithmetic on port ranges: sorted, merged, disjoint lists of inclusive (first, last) pairs (PortIntervals;
not to be confused with `model.Span`, a position in a source file)."""

from __future__ import annotations

from typing import Iterable

from ..language.model import PROTOCOLS, PortRange

PortIntervals = tuple[tuple[int, int], ...]
ALL_PORTS: PortIntervals = ((1, 65535),)


def merge(pairs: Iterable[tuple[int, int]]) -> PortIntervals:
    out: list[tuple[int, int]] = []
    for first, last in sorted(pairs):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return tuple(out)


def subtract(intervals: PortIntervals, removed: PortIntervals) -> PortIntervals:
    out: list[tuple[int, int]] = []
    for first, last in intervals:
        for cut_first, cut_last in removed:
            if cut_last < first or cut_first > last:
                continue
            if cut_first > first:
                out.append((first, cut_first - 1))
            first = cut_last + 1
            if first > last:
                break
        if first <= last:
            out.append((first, last))
    return tuple(out)


def intersect(intervals: PortIntervals, other: PortIntervals) -> PortIntervals:
    return subtract(intervals, subtract(intervals, other))


def by_protocol(ranges: Iterable[PortRange]) -> dict[str, PortIntervals]:
    """Merged intervals per protocol; every protocol is a key, possibly with none."""
    ranges = tuple(ranges)
    return {p: merge((r.first, r.last) for r in ranges if r.protocol == p) for p in PROTOCOLS}


def to_ranges(intervals_by_protocol: dict[str, PortIntervals]) -> tuple[PortRange, ...]:
    return tuple(PortRange(p, first, last) for p in PROTOCOLS for first, last in intervals_by_protocol[p])
