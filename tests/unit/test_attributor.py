"""Batch attribution, retries, IP-change events and regions as timelines, worked by hand."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from flink_jobs.attribution.attribute import ATTRIBUTED, CONFLICT, NO_EVIDENCE, RETRY, UNATTRIBUTED
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.events import ASSIGNED, UNASSIGNED
from flink_jobs.attribution.heartbeats import UNRESOLVED
from schemas import flowattr_pb2 as pb
from schemas.cidrs import RegionMap
from schemas.columns import FlowColumns, ip_to_bytes, ips_to_array

CFG = AttributionConfig(max_attempts=3, event_cidrs=("10.250.0.0/24",), event_max_delay_ms=600_000,
                        event_time_error_ms=1000)


def batch(rows: list[tuple[str, str, str, int, int]]) -> FlowColumns:
    """rows: (local_ip, local_workload, remote_ip, start_ms, end_ms)."""
    cols = FlowColumns.zeros(len(rows))
    names = sorted({r[1] for r in rows if r[1]})
    cols.workloads = [""] + names
    cols.columns["local_ip"][:] = ips_to_array([r[0] for r in rows])
    cols.columns["remote_ip"][:] = ips_to_array([r[2] for r in rows])
    cols.columns["start_ms"][:] = [r[3] for r in rows]
    cols.columns["end_ms"][:] = [r[4] for r in rows]
    cols.columns["local_workload_ref"][:] = [cols.workloads.index(r[1]) for r in rows]
    cols.columns["local_attribution"][:] = [pb.LOCAL_ATTRIBUTION_IP_MAP if r[1] else
                                            pb.LOCAL_ATTRIBUTION_UNKNOWN for r in rows]
    return cols


def test_claims_collapse_to_one_per_ip_and_workload_stretch():
    cols = batch([("10.0.0.1", "api", "10.0.0.9", 1000, 5000),
                  ("10.0.0.1", "api", "10.0.0.8", 4000, 6000),      # overlaps: same stretch
                  ("10.0.0.1", "api", "10.0.0.8", 7500, 8000),      # 1.5 s gap < G: same stretch
                  ("10.0.0.1", "api", "10.0.0.8", 20_000, 21_000),  # 12 s gap: new stretch
                  ("10.0.0.2", "", "10.0.0.8", 0, 99_000)])         # unknown workload: held, by nobody named
    claims = Attributor(CFG).claims(cols)
    assert [(c.ip, c.workload, c.start_ms, c.end_ms) for c in claims] == [
        (ip_to_bytes("10.0.0.1"), "api", 1000, 8000), (ip_to_bytes("10.0.0.1"), "api", 20_000, 21_000),
        (ip_to_bytes("10.0.0.2"), UNRESOLVED, 0, 99_000)]


def test_flow_before_the_owners_heartbeat_arrives_is_retried_then_attributed():
    att = Attributor(CFG)
    client = batch([("10.0.0.1", "web", "10.0.0.2", 10_000, 12_000)])
    first = att.attribute(client, attempt=1)
    assert first.outcome.tolist() == [RETRY] and first.reason.tolist() == [NO_EVIDENCE]
    server = batch([("10.0.0.2", "db", "10.0.0.1", 10_003, 12_000)])  # its accept, 3 ms later
    att.learn_claims(att.claims(server))
    second = att.attribute(client, attempt=2)
    assert second.outcome.tolist() == [ATTRIBUTED]
    assert att.owner_names(second.owner) == ["db"]
    assert second.source.tolist() == [pb.EVIDENCE_SOURCE_HEARTBEAT]
    assert (second.evidence_start.tolist(), second.evidence_end.tolist()) == ([10_003], [12_000])


def test_flow_without_evidence_is_unattributed_after_the_last_attempt():
    att = Attributor(CFG)
    client = batch([("10.0.0.1", "web", "10.0.0.3", 10_000, 12_000)])
    assert att.attribute(client, attempt=2).outcome.tolist() == [RETRY]
    last = att.attribute(client, attempt=3)
    assert last.outcome.tolist() == [UNATTRIBUTED] and last.reason.tolist() == [NO_EVIDENCE]
    assert last.owner.tolist() == [-1] and last.source.tolist() == [0]


def test_conflict_is_final_not_retried():
    att = Attributor(CFG)
    att.learn_claims(att.claims(batch([("10.0.0.2", "db", "10.0.0.1", 0, 60_000),
                                       ("10.0.0.2", "cache", "10.0.0.1", 30_000, 90_000)])))
    result = att.attribute(batch([("10.0.0.1", "web", "10.0.0.2", 45_000, 46_000)]), attempt=1)
    assert result.outcome.tolist() == [UNATTRIBUTED] and result.reason.tolist() == [CONFLICT]


def test_invalid_time_is_final():
    att = Attributor(CFG)
    result = att.attribute(batch([("10.0.0.1", "web", "10.0.0.2", 5000, 4000)]), attempt=1)
    assert result.outcome.tolist() == [UNATTRIBUTED]
    assert result.reason.tolist() == [pb.UNATTRIBUTED_REASON_INVALID_TIME]


def test_load_balancer_attributed_from_events_only_up_to_the_event_horizon():
    """D = 600 s, margin = err 1 s + 2 x tolerance 0.2 s = 1.4 s (worked by hand)."""
    att = Attributor(CFG)
    lb = ip_to_bytes("10.250.0.5")
    att.apply_event(lb, "checkout", ASSIGNED, 100_000)
    att.advance(500_000)  # every event emitted before 500 s has arrived: horizon -100 s
    flow = batch([("10.0.0.1", "web", "10.250.0.5", 400_000, 401_000)])
    first = att.attribute(flow, attempt=1)
    assert first.outcome.tolist() == [RETRY]
    assert first.reason.tolist() == [pb.UNATTRIBUTED_REASON_EVENTS_UNSETTLED]
    att.advance(1_100_000)  # horizon 500 s: the open range is [101.4 s, 498.6 s]
    result = att.attribute(flow, attempt=2)
    assert att.owner_names(result.owner) == ["checkout"]
    assert result.source.tolist() == [pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT]
    assert (result.evidence_start.tolist(), result.evidence_end.tolist()) == ([101_400], [498_599])


def test_heartbeats_never_vouch_for_event_only_addresses():
    att = Attributor(CFG)
    # A host wrongly claims the LB address: ignored, the flow waits for event evidence.
    att.learn_claims(att.claims(batch([("10.250.0.5", "rogue", "10.0.0.1", 0, 900_000)])))
    assert att.heartbeats.range_count() == 0
    flow = batch([("10.0.0.1", "web", "10.250.0.5", 400_000, 401_000)])
    assert att.attribute(flow, attempt=1).outcome.tolist() == [RETRY]


def test_unassigned_before_assigned_arrives_still_closes_the_range():
    att = Attributor(CFG)
    lb = ip_to_bytes("10.250.0.7")
    att.apply_event(lb, "checkout", UNASSIGNED, 300_000)   # arrives first (delayed stream)
    att.apply_event(lb, "checkout", ASSIGNED, 100_000)
    att.advance(1_000_000)
    ranges = att.events.ranges(lb).items()
    assert [(s, e) for s, e, _ in ranges] == [(101_400, 298_599)]


def test_region_map_uses_longest_prefix_and_ipv4_mapping():
    regions = RegionMap({"10.0.0.0/8": "us-east-1", "10.16.0.0/12": "eu-west-1"})
    got = regions.regions_of(ips_to_array(["10.1.2.3", "10.17.0.1", "192.168.1.1", "10.16.0.0"]))
    assert got.tolist() == ["us-east-1", "eu-west-1", None, "eu-west-1"]


def test_region_map_edges_ipv6_and_nesting_agree_with_the_trie_per_ip():
    """codes_of answers IPv4 by interval search: at every CIDR edge (first, last, one
    outside) it must agree with the longest-prefix trie, as must IPv6 addresses."""
    cidrs = {"10.0.0.0/8": "a", "10.16.0.0/12": "b", "10.16.4.0/24": "c", "0.0.0.0/1": "d",
             "255.255.255.0/24": "e", "2001:db8::/32": "f"}
    regions = RegionMap(cidrs)
    texts = ["0.0.0.0", "127.255.255.255", "128.0.0.0", "9.255.255.255", "10.0.0.0", "10.15.255.255",
             "10.16.0.0", "10.16.3.255", "10.16.4.0", "10.16.4.255", "10.16.5.0", "10.31.255.255",
             "10.32.0.0", "11.0.0.0", "255.255.254.255", "255.255.255.0", "255.255.255.255",
             "2001:db8::1", "2001:db9::1", "::1"]
    got = regions.regions_of(ips_to_array(texts)).tolist()
    want = [regions.trie.get(str(ipaddress.IPv6Address(ip_to_bytes(t)))) for t in texts]
    assert got == want
    # Not IPv4-mapped, though their last words look it (one word off the mapped prefix):
    # the trie's answer, not 10.0.0.1's; asked twice (the second from the code cache).
    near = ["::fffe:a00:1", "1::ffff:a00:1", "::1:ffff:a00:1", "2001:db8::1", "10.0.0.1"]
    for _ in range(2):
        assert regions.regions_of(ips_to_array(near)).tolist() == [None, None, None, "f", "a"]
    assert got[:3] == ["d", "d", None] and got[6:11] == ["b", "b", "c", "c", "b"] and got[-3:] == ["f", None, None]


def test_config_rejects_a_tolerance_that_breaks_the_reuse_assumption():
    with pytest.raises(ValueError, match="skew_tolerance_ms must be well below"):
        AttributionConfig(min_reuse_gap_ms=1000, skew_tolerance_ms=400)


def test_empty_batch():
    result = Attributor(CFG).attribute(FlowColumns.zeros(0), attempt=1)
    assert len(result.outcome) == 0 and np.asarray(result.owner).dtype == np.int64


def test_split_attempt_names_owners_per_flow_and_routes_each_outcome():
    """Owner ids -> the output's workload dictionary, worked by hand: the batch already
    names "web" (its local workload, ref 1); owners db, web, db, none, none."""
    from flink_jobs.attribution.attribute import Attribution
    from flink_jobs.batches import split_attempt
    from schemas.columns import ATTRIBUTION_COLUMNS, FLOW_COLUMNS, decode_attributed_batch
    cols = FlowColumns.zeros(5, FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    cols.workloads = ["", "web"]
    names = ["cache", "db", "web"]                      # the attributor's ids 0, 1, 2
    result = Attribution(outcome=np.array([ATTRIBUTED, ATTRIBUTED, ATTRIBUTED, RETRY, UNATTRIBUTED], np.uint8),
                         owner=np.array([1, 2, 1, -1, -1], np.int64), source=np.array([1, 1, 1, 0, 0], np.uint8),
                         evidence_start=np.array([10, 20, 30, 0, 0], np.int64),
                         evidence_end=np.array([11, 21, 31, 0, 0], np.int64),
                         reason=np.array([0, 0, 0, NO_EVIDENCE, CONFLICT], np.uint8))
    out = split_attempt(pb.AttributedFlowBatch(source_exporter_id="e1"), cols, result, names, 2, 5_000,
                        next_attempt=4, next_attempt_ms=125_000, region="r1")
    header, hit = decode_attributed_batch(out.attributed)
    assert [hit.workloads[r] for r in hit["remote_workload_ref"]] == ["db", "web", "db"]
    assert hit.workloads == ["", "web", "db"] and hit["evidence_start_ms"].tolist() == [10, 20, 30]
    assert header.attempts == 2 and header.region == "r1"
    retry_header, retry = decode_attributed_batch(out.retry)
    assert len(retry) == 1 and retry_header.next_attempt_ms == 125_000 and retry["remote_workload_ref"][0] == 0
    assert retry_header.attempts == 3   # so its next attempt is slot 4 (engine.next_attempt)
    _, final = decode_attributed_batch(out.unattributed)
    assert final["unattributed_reason"].tolist() == [CONFLICT]
    assert out.counts == {"attributed": 3, "retried": 1, "unattributed": 1, "unattributed_CONFLICT": 1,
                          "retried_NO_EVIDENCE": 1}   # why the retried row was not attributed yet


def test_header_of_keeps_every_header_field_and_no_column():
    """split_attempt's outputs start from header_of(the pending batch): its scalar fields,
    none of its columns or dictionary (the outputs set their own)."""
    from schemas.columns import (
        ATTRIBUTION_COLUMNS,
        FLOW_COLUMNS,
        decode_attributed_batch,
        encode_attributed_batch,
        header_of,
    )
    header = pb.AttributedFlowBatch(source_exporter_id="e1", source_sequence=7, host="h", region="r",
                                    window_start_ms=1, window_end_ms=2, attributed_at_ms=3, attempts=4,
                                    next_attempt_ms=5)
    cols = FlowColumns.zeros(2, FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    cols.workloads = ["", "web"]
    full, _ = decode_attributed_batch(encode_attributed_batch(header, cols))
    assert full.flow_count == 2 and len(full.local_ip) == 32 and list(full.workloads) == ["", "web"]
    expected = pb.AttributedFlowBatch()
    expected.CopyFrom(header)
    expected.flow_count = 2          # a header field too: the next encode sets it again
    assert header_of(full) == expected
    # A field this build does not know (a newer collector's, read back from Kafka) is kept.
    newer = pb.AttributedFlowBatch.FromString(full.SerializeToString() + b"\x98\x06\x05")   # field 99 = 5
    assert header_of(newer).SerializeToString().endswith(b"\x98\x06\x05")
