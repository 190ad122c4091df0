"""The attribution operator's output records, and the routes that split them among the
sinks. Pure.

Attribute yields one stream of routed records, (route, region, Kafka key, value); the
split into one stream per sink is made in Java, by Flink SQL filters on `route` and
`region` (attribution_job.build_pipeline): a batch leaves Python once, and only dead
letters and edge partials (one record an attempt) come back into it, after the filter.

Assumption: every record Attribute yields carries a timestamp (its input's, or its
event-time timer's), as the split's rowtime needs one: Flink fails a record without
("Could not find timestamp in DataStream API record"). A processing-time timer in
Attribute would yield records without one.

Why one stream and not side outputs: PyFlink 2.0.2's embedded (thread mode) keyed-broadcast
operator drops side outputs yielded from on_timer (its on_timer_func skips the side-output
routing that process_element gets), and attempts happen in on_timer. Records a Python
function yields to a side output lose their timestamp too, so the Kafka sink would stamp
them with the wall clock: retry and inbound records are read back, and their timestamps
make the watermark of the pending input; wall-clock stamps on simulated or replayed time
pushed that watermark months ahead, and retries then came due at a time the watermark never
reached again (found by `flowattr reliability`: flows lost after a TaskManager kill). A
main output keeps the attempt's event time, and so does the SQL split (its rowtime).

Why the split is not Python: until 2026-11-28 it was one Python flat_map per sink, each
called with every record of Attribute (7 calls and 7 copies of each batch into Python,
most of them to return nothing), and every ownership record a learned IP makes took the
same 7 calls.
"""

from __future__ import annotations

ATTRIBUTED, UNATTRIBUTED, RETRY, FORWARD, DEAD_LETTER, OWNERSHIP = "A", "U", "R", "F", "D", "O"
EDGE_PARTIALS = "E"  # an attempt's edge partials, pickled (edges.decided_partials)
ROUTES = (ATTRIBUTED, UNATTRIBUTED, RETRY, FORWARD, DEAD_LETTER, OWNERSHIP, EDGE_PARTIALS)
FIELDS = ("route", "region", "record_key", "record_value")  # the record's field names, for the SQL split


def record(route: str, value: bytes, key: bytes = b"", region: str = "") -> tuple[str, str, bytes, bytes]:
    """A routed record: (route, region ('' unless FORWARD), Kafka key (b'' when none),
    value). A route the split does not know, or a forward without its region, is a bug
    between Attribute and the split: it raises rather than losing the record."""
    if route not in ROUTES:
        raise ValueError(f"route {route!r}: one of {ROUTES}")
    if (route == FORWARD) != bool(region):
        raise ValueError(f"route {route!r} with region {region!r}: a forward, and only a forward, names its region")
    return route, region, key, value


def condition(route: str, region: str = "") -> dict[str, str]:
    """One sink's share of the records: the field values (by FIELDS' names) its records
    have, every one of them; the job's SQL filter is made from this."""
    return {FIELDS[0]: route, FIELDS[1]: region}
