"""Arithmetic on port ranges: sorted, merged, disjoint lists of inclusive (first, last) pairs."""

from __future__ import annotations

from typing import Iterable

from ..language.model import PROTOCOLS, PortRange

Spans = tuple[tuple[int, int], ...]
ALL_PORTS: Spans = ((1, 65535),)


def merge(pairs: Iterable[tuple[int, int]]) -> Spans:
    out: list[tuple[int, int]] = []
    for first, last in sorted(pairs):
        if out and first <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(out[-1][1], last))
        else:
            out.append((first, last))
    return tuple(out)


def subtract(spans: Spans, removed: Spans) -> Spans:
    out: list[tuple[int, int]] = []
    for first, last in spans:
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


def intersect(spans: Spans, other: Spans) -> Spans:
    return subtract(spans, subtract(spans, other))


def by_protocol(ranges: Iterable[PortRange]) -> dict[str, Spans]:
    """Merged spans per protocol; every protocol is a key, possibly with no spans."""
    ranges = tuple(ranges)
    return {p: merge((r.first, r.last) for r in ranges if r.protocol == p) for p in PROTOCOLS}


def to_ranges(spans_by_protocol: dict[str, Spans]) -> tuple[PortRange, ...]:
    return tuple(PortRange(p, first, last) for p in PROTOCOLS for first, last in spans_by_protocol[p])
