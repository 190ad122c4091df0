"""The ownership changelog (flink_jobs/ownership_changelog.py) and the store's record of
changed keys: what `flowattr whois` answers from, worked out by hand."""

from __future__ import annotations

from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.events import ASSIGNED
from flink_jobs.ownership_changelog import changes, owner_at
from flink_jobs.ownership_store import OwnershipStore
from schemas import flowattr_pb2 as pb
from schemas.columns import ip_to_bytes
from tests.flowbuild import REGIONS, FakeMapState, batch

IP_MAP = pb.LOCAL_ATTRIBUTION_IP_MAP
CFG = AttributionConfig(event_cidrs=("10.250.0.0/24",), event_max_delay_ms=600_000, event_time_error_ms=1_000,
                        skew_tolerance_ms=200, event_clock_rank=1)


def _update(exporter: str, sequence: int, window_start: int, rows, engine: Engine) -> bytes:
    from flink_jobs import batches
    header = pb.FlowBatch(exporter_id=exporter, sequence=sequence, window_start_ms=window_start,
                          window_end_ms=window_start + 60_000)
    return batches.ownership_update(header, engine.claims(batch(rows)), [])


def test_heartbeat_ranges_contested_intervals_and_ports_are_published_by_ip():
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    e = store.engine
    store.learn(state, _update("h1", 1, 0, [("10.0.0.7", 8080, "db", IP_MAP, "10.0.0.1", 40000, 1_000, 5_000)], e))
    store.learn(state, _update("h2", 1, 0, [("10.0.0.7", 8080, "cache", IP_MAP, "10.0.0.1", 40001, 4_000, 9_000)],
                               e))
    store.learn(state, _update("h3", 1, 0, [("10.0.0.8", 9000, "api", pb.LOCAL_ATTRIBUTION_PORT_MAP, "10.0.0.1",
                                            40002, 2_000, 3_000)], e))
    published = dict(changes(e.attributor, store.take_changed(), "us-east-1", 77))
    assert store.take_changed() == set()   # taken once
    assert set(published) == {b"10.0.0.7", b"10.0.0.8:9000"}
    seven = pb.IpOwnership.FromString(published[b"10.0.0.7"])
    assert seven.region == "us-east-1" and seven.updated_at_ms == 77
    # db 1-5 s, cache 4-9 s: 4-5 s is contested, each side keeps its own part.
    assert [(r.workload, r.start_ms, r.end_ms, r.contested) for r in seven.ranges] == [
        ("db", 1_000, 3_999, False), ("", 4_000, 5_000, True), ("cache", 5_001, 9_000, False)]
    assert owner_at(seven, 2_000)[0] == "owned" and owner_at(seven, 2_000)[1].workload == "db"
    assert owner_at(seven, 4_500)[0] == "contested"
    assert owner_at(seven, 10_000) == ("unknown", None)
    # By the attribution's rule (skew tolerance 200 ms): 1 ms before db's first claim is
    # still db's; 100 ms before the contested interval no owner is proven (CLOCK_SKEW).
    assert seven.skew_tolerance_ms == 200
    assert owner_at(seven, 999)[0] == "owned" and owner_at(seven, 999)[1].workload == "db"
    assert owner_at(seven, 3_900) == ("clock_skew", None)
    port = pb.IpOwnership.FromString(published[b"10.0.0.8:9000"])
    assert port.port == 9000 and [(r.workload, r.source) for r in port.ranges] == [
        ("api", pb.EVIDENCE_SOURCE_HEARTBEAT)]


def test_an_ip_held_by_a_workload_its_host_did_not_resolve_is_published_unresolved():
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    e = store.engine
    store.learn(state, _update("h1", 1, 0, [("10.0.0.9", 8080, "", pb.LOCAL_ATTRIBUTION_UNKNOWN, "10.0.0.1", 40000,
                                            1_000, 5_000)], e))
    nine = pb.IpOwnership.FromString(dict(changes(e.attributor, store.take_changed(), "us-east-1", 77))[b"10.0.0.9"])
    assert [(r.workload, r.start_ms, r.end_ms, r.contested) for r in nine.ranges] == [("", 1_000, 5_000, False)]
    status, found = owner_at(nine, 2_000)
    assert status == "unresolved" and (found.start_ms, found.end_ms) == (1_000, 5_000)


def test_event_ranges_are_published_and_end_at_the_horizon():
    store, state = OwnershipStore(Engine(CFG, "us-east-1", REGIONS)), FakeMapState()
    lb = ip_to_bytes("10.250.0.5")
    event = pb.IpChangeEvent(ip=lb, workload="lb-api", action=ASSIGNED, event_time_ms=100_000,
                             emit_time_ms=100_000, event_id="e1").SerializeToString()
    store.apply_event(state, event)
    store.engine.advance(1_000_000)   # horizon: 1,000,000 - 600,000 (D) = 400,000
    published = dict(changes(store.engine.attributor, store.take_changed(), "us-east-1", 0))
    ranges = pb.IpOwnership.FromString(published[b"10.250.0.5"]).ranges
    # From the assignment + err (1,000 + 2 x 200) to the horizon - err - 1.
    assert [(r.workload, r.start_ms, r.end_ms, r.source) for r in ranges] == [
        ("lb-api", 101_400, 400_000 - 1_400 - 1, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT)]

