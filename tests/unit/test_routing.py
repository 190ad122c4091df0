"""The routed records between the attribution operator and the sinks' split: every route
is known, a forward and only a forward names its region, and each sink's condition takes
exactly its records."""

from __future__ import annotations

import pytest

from flink_jobs import routing


@pytest.mark.parametrize("route", [routing.ATTRIBUTED, routing.UNATTRIBUTED, routing.RETRY, routing.DEAD_LETTER,
                                   routing.OWNERSHIP, routing.EDGE_PARTIALS])
def test_a_record_keeps_its_route_key_and_bytes(route):
    value = b"\x00F\x00batch bytes with NULs and route letters"
    assert routing.record(route, value, b"exporter-1") == (route, "", b"exporter-1", value)


def test_a_forward_keeps_its_region():
    assert routing.record(routing.FORWARD, b"\x00eu\x00", b"k", "eu-west-1") == \
        (routing.FORWARD, "eu-west-1", b"k", b"\x00eu\x00")


@pytest.mark.parametrize("route, region", [("Z", ""), ("", ""), (routing.FORWARD, ""),
                                           (routing.ATTRIBUTED, "eu-west-1")])
def test_what_no_sink_would_take_is_refused(route, region):
    with pytest.raises(ValueError):
        routing.record(route, b"x", b"k", region)


def test_each_sinks_condition_takes_exactly_its_records():
    records = [routing.record(routing.ATTRIBUTED, b"a"), routing.record(routing.RETRY, b"r"),
               routing.record(routing.FORWARD, b"f1", region="eu-west-1"),
               routing.record(routing.FORWARD, b"f2", region="ap-south-1")]

    def values(route, region=""):
        wanted = routing.condition(route, region)   # what the job's SQL filter compares
        return [r[3] for r in records if all(r[routing.FIELDS.index(f)] == v for f, v in wanted.items())]

    assert values(routing.ATTRIBUTED) == [b"a"]
    assert values(routing.RETRY) == [b"r"]
    assert values(routing.FORWARD, "eu-west-1") == [b"f1"]
    assert values(routing.FORWARD) == []
    assert values(routing.UNATTRIBUTED) == []
