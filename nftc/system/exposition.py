"""The two machine formats of `nftc status`: JSON, and the OpenMetrics text exposition (for node_exporter's textfile
collector or any scraper), both rendered from one monitor.Status.

OpenMetrics rules kept here (https://openmetrics.io, and prometheus_client's strict parser in the tests): each
family once, `# HELP` and `# TYPE` before its samples, counters' samples named `FAMILY_total`, label values
escaped (`\\` `\"` `\n`), valid UTF-8, `# EOF` last. Only the types `counter` and `gauge` are used: node_exporter's
textfile collector reads the older Prometheus text format, which knows no `info` or `stateset`. Every string that
came from the kernel or a record (counter and set names another tool may have chosen, a policy path) is only ever
a label value, escaped; metric names are this module's constants.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from .monitor import Status

FORMAT = "nftc-status/1"  # the JSON document's version: a field renamed or removed means /2

# Families: name -> (type, help)
_FAMILIES = {
    "nftc_table_loaded": ("gauge", "Whether nftc's table is loaded (1) or not (0)."),
    "nftc_table_info": ("gauge", "The policy and sha256 of the loaded table (always 1)."),
    "nftc_drift": ("gauge", "1 when the live table differs from what nftc applied (a hand edit), 0 when not."),
    "nftc_confirm_pending": ("gauge", "1 while an apply waits for nftc confirm (it rolls back otherwise)."),
    "nftc_rule_packets": ("counter", "Packets counted by a rule's named counter, per zone, service and rule."),
    "nftc_rule_bytes": ("counter", "Bytes counted by a rule's named counter, per zone, service and rule."),
    "nftc_drop_packets": ("counter", "Packets dropped, per reason (drop/*, ZONE/default-drop, ZONE/ban...)."),
    "nftc_drop_bytes": ("counter", "Bytes dropped, per reason (drop/*, ZONE/default-drop, ZONE/ban...)."),
    "nftc_set_elements": ("gauge", "Elements in a set or map (role: dynamic, blocklist, meter or static)."),
    "nftc_last_event_timestamp_seconds": ("gauge", "When the last apply, confirm, rollback, guard action or "
                                                   "refresh ended (seconds since the epoch)."),
    "nftc_last_event_success": ("gauge", "1 when that last event succeeded (ok or unchanged), 0 when it failed "
                                         "or was refused."),
}


def render_json(status: Status) -> str:
    """The whole status as one JSON document (strings escaped by json; non-ASCII as \\u escapes)."""
    table = status.table
    document = {
        "format": FORMAT, "time": status.time,
        "table": {"family": table.target.family, "name": table.target.name, "loaded": table.loaded,
                  "policy": table.policy, "sha256": table.digest, "applied": table.applied,
                  "restored": table.restored, "drift": table.drift, "pending": table.pending},
        "rules": [asdict(c) for c in status.rules],
        "drops": [asdict(c) for c in status.drops],
        "sets": [asdict(s) for s in status.sets],
        "events": {e.action: e.as_dict() for e in status.events},
        "notes": list(status.notes),
    }
    return json.dumps(document, indent=1, sort_keys=True) + "\n"


def render_openmetrics(status: Status) -> str:
    samples: dict[str, list[str]] = {name: [] for name in _FAMILIES}
    table = status.table
    where = {"table": str(table.target)}
    samples["nftc_table_loaded"].append(_sample("nftc_table_loaded", where, int(table.loaded)))
    if table.loaded:
        info = {**where, "policy": table.policy or "", "sha256": table.digest or ""}
        samples["nftc_table_info"].append(_sample("nftc_table_info", info, 1))
        samples["nftc_confirm_pending"].append(_sample("nftc_confirm_pending", where,
                                                       int(table.pending == "waiting")))
    if table.drift in ("none", "DRIFT"):
        samples["nftc_drift"].append(_sample("nftc_drift", where, int(table.drift == "DRIFT")))
    for rule in status.rules:
        labels = {**where, "zone": rule.zone, "service": rule.service, "rule": rule.rule, "counter": rule.counter}
        samples["nftc_rule_packets"].append(_sample("nftc_rule_packets_total", labels, rule.packets))
        samples["nftc_rule_bytes"].append(_sample("nftc_rule_bytes_total", labels, rule.bytes))
    for drop in status.drops:
        labels = {**where, "reason": drop.reason}
        samples["nftc_drop_packets"].append(_sample("nftc_drop_packets_total", labels, drop.packets))
        samples["nftc_drop_bytes"].append(_sample("nftc_drop_bytes_total", labels, drop.bytes))
    for found in status.sets:
        if found.elements is not None:
            labels = {**where, "set": found.name, "kind": found.kind, "role": found.role}
            samples["nftc_set_elements"].append(_sample("nftc_set_elements", labels, found.elements))
    for event in status.events:
        labels = {"action": event.action}
        samples["nftc_last_event_timestamp_seconds"].append(
            _sample("nftc_last_event_timestamp_seconds", labels, event.time))
        samples["nftc_last_event_success"].append(_sample(
            "nftc_last_event_success", {**labels, "result": event.result}, int(event.result in ("ok", "unchanged"))))
    lines = []
    for name, (kind, text) in _FAMILIES.items():
        lines += [f"# HELP {name} {text}", f"# TYPE {name} {kind}", *samples[name]]
    return "\n".join(lines + ["# EOF"]) + "\n"


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    pairs = ",".join(f'{key}="{escape_label(value_)}"' for key, value_ in labels.items())
    return f"{name}{{{pairs}}} {_number(value)}"


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def escape_label(value: str) -> str:
    """A label value as OpenMetrics writes it: backslash, double quote and line feed escaped, and anything that
    is not valid UTF-8 (a lone surrogate from a JSON escape) replaced, so the document stays one valid file."""
    text = value.encode("utf-8", "replace").decode("utf-8")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
