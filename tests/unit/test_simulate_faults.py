"""The simulator's attacks on attribution: each fault really appears in its output, and
the ground truth of the affected flows is worked out here independently (from the
fleet's instances and the records' own ports and hosts), not read back from the truth."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest

from flowattr.lab.simulate import (
    BRIDGE_CIDR,
    CORRUPT_END_AFTER_MS,
    EPHEMERAL_PORTS,
    FUTURE_MS,
    INTERNET,
    LB_CIDR,
    REGION_CIDRS,
    SERVICE_PORT,
    T0_MS,
    FleetScenario,
    batch_flows,
    build_fleet,
    encode_delivery,
    encode_event,
    in_cidr,
    profile,
    simulate_flows,
    write_truth,
)
from schemas import flowattr_pb2 as pb
from schemas.columns import BatchFormatError, bytes_to_ip, decode_flow_batch, ip_to_bytes

SMALL = dict(minutes=3, services=20, remote_region_services=2, ec2_hosts=30, gateway_hosts=3,
             container_hosts=10, gateway_routes=8, deps_per_service=3)
HARSH = replace(profile("harsh", 5), **SMALL)


@pytest.fixture(scope="module")
def sim():
    fleet = build_fleet(HARSH)
    flows = simulate_flows(fleet)
    return fleet, flows, batch_flows(fleet, flows)


def _ip(raw) -> str:
    return bytes_to_ip(bytes(raw))


def test_profiles_are_named_and_default_is_the_dataclass_default():
    assert profile("default", 3) == FleetScenario(seed=3)
    harsh = profile("harsh", 3, minutes=4)
    assert (harsh.seed, harsh.minutes, harsh.lb_repoint_every_s, harsh.bad_row_fraction) == (3, 4, 15.0, 0.01)
    with pytest.raises(ValueError, match="default, harsh"):
        profile("gentle", 3)


def test_duplicated_events_share_their_event_id(sim):
    fleet, _, _ = sim
    copies = defaultdict(list)
    for ev in fleet.events:
        copies[ev.event_id].append(ev)
    dups = [evs for evs in copies.values() if len(evs) > 1]
    originals = len(copies) - len(fleet.invalid_event_ids)
    assert len(dups) == round(originals * HARSH.event_duplicate_fraction)
    for a, b in dups:
        assert len(copies[a.event_id]) == 2
        assert a._replace(emit_ms=b.emit_ms) == b and a.emit_ms != b.emit_ms
        for ev in (a, b):
            assert ev.event_ms <= ev.emit_ms <= ev.event_ms + HARSH.event_delay_max_s * 1000
    a, b = dups[0]
    assert pb.IpChangeEvent.FromString(encode_event(a)).event_id == a.event_id == \
        pb.IpChangeEvent.FromString(encode_event(b)).event_id
    arrivals = [fleet.arrival_ms(ev) for ev in fleet.events]
    assert arrivals == sorted(arrivals)  # the list is the stream, in arrival order


def test_future_events_are_a_day_ahead_and_listed_invalid(sim):
    fleet, _, _ = sim
    end = T0_MS + HARSH.minutes * 60_000
    future = [ev for ev in fleet.events if ev.event_ms > end + 12 * 3_600_000]
    assert {ev.event_id for ev in future} == fleet.invalid_event_ids
    assert len(future) == 2 * HARSH.future_events  # one LB IP and one other IP per lie
    in_lb = in_cidr(np.frombuffer(b"".join(ev.ip for ev in future), np.uint8).reshape(-1, 16), LB_CIDR)
    assert in_lb.sum() == HARSH.future_events
    for ev in future:
        arrival = fleet.arrival_ms(ev)
        assert T0_MS < arrival < end  # they reach the stream in the middle of the run ...
        assert abs(ev.event_ms - arrival - FUTURE_MS) < 60_000  # ... dated ~1 day ahead
        assert ev.event_ms <= ev.emit_ms < ev.event_ms + 60_000
        msg = pb.IpChangeEvent.FromString(encode_event(ev))
        assert (msg.event_time_ms, msg.emit_time_ms) == (ev.event_ms, ev.emit_ms)


def _broken_rules(flows) -> dict[str, np.ndarray]:
    c = flows.cols
    known_attr = np.isin(c["local_attribution"], list(pb.LocalAttribution.values()))
    known_dir = np.isin(c["direction"], list(pb.FlowDirection.values()))
    return {"end_after_window": c["end_ms"] >= flows.window_ms + 60_000 + CORRUPT_END_AFTER_MS,
            "start_min": c["start_ms"] == -(2**62), "end_max": c["end_ms"] == 2**62,
            "start_after_end": c["start_ms"] > c["end_ms"], "unknown_attribution": ~known_attr,
            "unknown_direction": ~known_dir, "ref_past_dictionary": c["local_workload_ref"] >= len(c.workloads)}


def test_corrupted_rows_are_exactly_the_invalid_rows_and_break_a_rule(sim):
    fleet, flows, deliveries = sim
    empty_dict = [d for d in deliveries if d.empty_dictionary]
    assert len(empty_dict) == HARSH.empty_dictionary_batches
    assert all(len(d.rows) and not d.lost for d in empty_dict)
    in_empty_dict = np.zeros(len(flows.cols), bool)
    for d in empty_dict:
        in_empty_dict[d.rows] = True
    rules = _broken_rules(flows)
    broken = np.any(list(rules.values()), axis=0)
    assert np.array_equal(~flows.valid, broken | in_empty_dict)
    assert broken.sum() == round(len(flows.cols) * HARSH.bad_row_fraction)
    assert all(mask.any() for mask in rules.values()), {k: int(m.sum()) for k, m in rules.items()}
    # A valid row keeps the contract: it closes inside its batch's window.
    c = flows.cols
    ok = flows.valid
    assert ((c["end_ms"][ok] >= flows.window_ms[ok]) & (c["end_ms"][ok] < flows.window_ms[ok] + 60_000)).all()
    # On the wire: a batch with a dangling ref fails to decode; so does an empty dictionary.
    for d in empty_dict[:2]:
        msg = pb.FlowBatch.FromString(encode_delivery(fleet, flows, d))
        assert list(msg.workloads) == []
        with pytest.raises(BatchFormatError):
            decode_flow_batch(encode_delivery(fleet, flows, d))
    dangling = next(d for d in deliveries if rules["ref_past_dictionary"][d.rows].any() and not d.empty_dictionary)
    with pytest.raises(BatchFormatError, match="past the workloads dictionary"):
        decode_flow_batch(encode_delivery(fleet, flows, dangling))


def test_translated_hosts_share_one_ipv4_and_the_truth_follows_the_port(sim):
    fleet, flows, _ = sim
    c = flows.cols
    local, remote = c["local_ip"], c["remote_ip"]
    for ip in sorted({t.ip for t in fleet.translated}):
        raw = np.frombuffer(ip_to_bytes(ip), np.uint8)
        host_owner = next(i for i in fleet.instances if i.ip == ip)
        by_port = {SERVICE_PORT: host_owner.workload} | {t.port: t.workload for t in fleet.translated if t.ip == ip}
        assert len(set(by_port.values())) == 1 + HARSH.translated_containers_per_host
        mine = (local == raw).all(axis=1)
        names = np.array(c.workloads, dtype=object)[c["local_workload_ref"][mine & flows.valid]]
        attrs = c["local_attribution"][mine & flows.valid]
        assert set(attrs[names == host_owner.workload]) == {pb.LOCAL_ATTRIBUTION_IDENTITY_FILE}
        assert set(attrs[names != host_owner.workload]) == {pb.LOCAL_ATTRIBUTION_PORT_MAP}
        # Sockets opened from the shared IP, by (port, peer ip, peer port): who opened them, when.
        opened, corrupt = defaultdict(list), set()
        for i in np.flatnonzero(mine & flows.is_client_side):
            key = (int(c["local_port"][i]), _ip(remote[i]), int(c["remote_port"][i]))
            if not flows.valid[i]:  # its time or workload may be what was corrupted
                corrupt.add(key)
                continue
            opened[key].append((int(c["start_ms"][i]), c.workloads[c["local_workload_ref"][i]]))
        toward = np.flatnonzero((remote == raw).all(axis=1) & flows.valid)
        checked = {"listening": 0, "ephemeral": 0}
        for i in toward:
            port = int(c["remote_port"][i])
            if port in by_port:
                assert flows.true_owner[i] == by_port[port]
                checked["listening"] += 1
                continue
            assert EPHEMERAL_PORTS[0] <= port < EPHEMERAL_PORTS[1] and not flows.is_client_side[i]
            key = (port, _ip(local[i]), int(c["local_port"][i]))
            cands = {w for s, w in opened[key] if abs(s - int(c["start_ms"][i])) < 200}
            if not cands and key in corrupt:
                continue
            assert cands == {flows.true_owner[i]}
            checked["ephemeral"] += 1
        assert checked["listening"] and checked["ephemeral"], checked
        assert len(set(flows.true_owner[toward])) > 1  # one IP, several owners at once


def test_bridge_addresses_repeat_across_hosts_with_different_owners(sim):
    fleet, flows, _ = sim
    owner = {(b.host, b.ip): b.workload for b in fleet.bridge}
    hosts_of = defaultdict(set)
    for (_host, ip), w in owner.items():
        hosts_of[ip].add(w)
    assert any(len(ws) > 1 for ws in hosts_of.values())
    assert len({h for h, _ in owner}) == round(HARSH.container_hosts * HARSH.bridge_hosts_fraction)
    c = flows.cols
    on_bridge = np.flatnonzero(in_cidr(c["local_ip"], BRIDGE_CIDR))
    assert flows.is_client_side[on_bridge].sum() * 2 == len(on_bridge) > 0  # both ends, on the same host
    rows = on_bridge[flows.valid[on_bridge]]
    assert in_cidr(c["remote_ip"][rows], BRIDGE_CIDR).all()
    assert set(c["local_attribution"][rows]) == {pb.LOCAL_ATTRIBUTION_IP_MAP}
    for i in rows:
        host = int(flows.host[i])
        assert flows.true_owner[i] == owner[(host, _ip(c["remote_ip"][i]))]
        assert c.workloads[c["local_workload_ref"][i]] == owner[(host, _ip(c["local_ip"][i]))]


def test_internet_flows_belong_to_internet_outside_every_cidr(sim):
    _, flows, _ = sim
    rows = flows.true_owner == INTERNET
    assert rows.sum() > 0 and flows.is_client_side[rows].all()
    remote = flows.cols["remote_ip"][rows]
    for cidr in list(REGION_CIDRS) + [LB_CIDR]:
        assert not in_cidr(remote, cidr).any(), cidr
    assert not in_cidr(flows.cols["local_ip"], "203.0.113.0/24").any()
    assert not in_cidr(flows.cols["local_ip"], "198.51.100.0/24").any()


def test_load_balancers_have_short_tenures_and_front_any_service(sim):
    fleet, flows, _ = sim
    by_ip = defaultdict(list)
    for lb in fleet.lbs:
        by_ip[lb.ip].append(lb)
    tenures = [lb.death_ms - lb.birth_ms for lb in fleet.lbs]
    assert 0.7 < np.mean(tenures) / 1000 / HARSH.lb_repoint_every_s < 1.3
    for spans in by_ip.values():
        gaps = [b.birth_ms - a.death_ms for a, b in zip(spans, spans[1:], strict=False)]
        assert min(gaps) >= HARSH.reuse_gap_min_s * 1000
    assert {lb.workload for lb in fleet.lbs} - set(fleet.gateway_routes)
    callers = {flows.cols.workloads[r] for r in flows.cols["local_workload_ref"][flows.via_lb & flows.valid]}
    assert len(callers - {"gateway"}) >= 5
    assert (flows.via_lb == in_cidr(flows.cols["remote_ip"], LB_CIDR)).all()


def test_every_host_sends_one_batch_per_minute_with_dense_sequences(sim, tmp_path):
    fleet, flows, deliveries = sim
    end = T0_MS + HARSH.minutes * 60_000
    per_host = defaultdict(list)
    for d in deliveries:
        per_host[d.host].append(d)
    assert set(per_host) == set(range(len(fleet.hosts)))
    for ds in per_host.values():
        ds.sort(key=lambda d: d.sequence)
        assert [d.sequence for d in ds] == list(range(1, len(ds) + 1))
        windows = [d.window_start_ms for d in ds]
        assert windows == list(range(windows[0], windows[-1] + 1, 60_000))
        assert windows[0] <= T0_MS and windows[-1] >= end - 60_000
    assert any(len(d.rows) == 0 for d in deliveries) and any(d.lost for d in deliveries)
    rows = np.concatenate([d.rows for d in deliveries])
    assert np.array_equal(np.sort(rows), np.arange(len(flows.cols)))  # every record in one batch
    empty = next(d for d in deliveries if len(d.rows) == 0)
    header, cols = decode_flow_batch(encode_delivery(fleet, flows, empty))
    assert header.flow_count == 0 and header.sequence == empty.sequence
    write_truth(tmp_path / "truth.npz", fleet, flows, deliveries)
    truth = np.load(tmp_path / "truth.npz")
    delivered = sum(len(d.rows) for d in deliveries if not d.lost)
    assert len(truth["valid"]) == delivered and (~truth["valid"]).sum() > 0


def test_stale_claim_is_delivered_before_the_true_owners_batches(sim):
    fleet, flows, deliveries = sim
    assert flows.stale_claims
    by_key = {(d.host, d.window_start_ms): d for d in deliveries}
    c = flows.cols
    checked = 0
    for row, owner_host, t in flows.stale_claims:
        ip = _ip(c["local_ip"][row])
        holder = next(i for i in fleet.instances if i.ip == ip and i.birth_ms <= t < i.death_ms)
        claimed = c.workloads[c["local_workload_ref"][row]]
        assert holder.host == owner_host != flows.host[row] and holder.workload != claimed
        assert any(i.ip == ip and i.workload == claimed and i.death_ms < t for i in fleet.instances)
        stale = by_key[(int(flows.host[row]), int(flows.window_ms[row]))]
        owner_window = int(t + fleet.hosts[owner_host]["skew_ms"]) // 60_000 * 60_000
        if stale.lost:
            continue
        for w in (owner_window - 60_000, owner_window, owner_window + 60_000):
            d = by_key.get((owner_host, w))  # none before the host's first window
            assert d is None or d.arrival_ms >= stale.arrival_ms + HARSH.stale_claim_owner_delay_s * 1000
        checked += 1
    assert checked
