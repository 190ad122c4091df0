"""The frame between the attribution operator and Route: every route round-trips, a
forward keeps its region, and nothing unknown passes silently."""

from __future__ import annotations

import pytest

from flink_jobs import routing


@pytest.mark.parametrize("route", [routing.ATTRIBUTED, routing.UNATTRIBUTED, routing.RETRY, routing.DEAD_LETTER])
def test_a_framed_record_unframes_to_its_route_and_bytes(route):
    payload = b"\x00F\x00batch bytes with NULs and route letters"
    assert routing.unframe(routing.frame(route, payload)) == (route, "", payload)


def test_a_forward_keeps_its_region_even_when_the_payload_holds_nul_bytes():
    payload = b"\x00\x00eu-west-1\x00"
    assert routing.unframe(routing.frame_forward("eu-west-1", payload)) == (routing.FORWARD, "eu-west-1", payload)


@pytest.mark.parametrize("bad", [b"", b"Zpayload", b"Fno-region-terminator", b"F\x00payload"])
def test_what_is_not_a_known_frame_raises(bad):
    with pytest.raises(ValueError):
        routing.unframe(bad)


@pytest.mark.parametrize("region", ["", "eu\x00west"])
def test_a_region_that_cannot_be_framed_is_refused(region):
    with pytest.raises(ValueError):
        routing.frame_forward(region, b"x")


def test_forward_goes_through_frame_forward_only():
    with pytest.raises(ValueError):
        routing.frame(routing.FORWARD, b"x")


def test_each_sinks_stream_gets_exactly_its_records():
    records = [routing.frame(routing.ATTRIBUTED, b"a"), routing.frame(routing.RETRY, b"r"),
               routing.frame_forward("eu-west-1", b"f1"), routing.frame_forward("ap-south-1", b"f2")]
    assert [p for r in records for p in routing.payloads_for(r, routing.ATTRIBUTED)] == [b"a"]
    assert [p for r in records for p in routing.payloads_for(r, routing.RETRY)] == [b"r"]
    assert [p for r in records for p in routing.payloads_for(r, routing.FORWARD, "eu-west-1")] == [b"f1"]
    assert [p for r in records for p in routing.payloads_for(r, routing.UNATTRIBUTED)] == []
