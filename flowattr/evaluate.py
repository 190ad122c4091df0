"""Evaluation: run the heartbeat attribution in-process on a simulated fleet, and two
event-based "last known owner" baselines, and score all three against ground truth.

The heartbeat method replays deliveries in arrival order with the job's semantics: a
batch's heartbeats are learned on arrival; its flows get their first attempt at
max(arrival, window end + hold), then retries every retry delay while the reason is
retryable and attempts remain, then are unattributed with their reason. Flows whose
remote IP is in another region are attributed by that region's Attributor (forwarded).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass

import numpy as np

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.regions import RegionMap
from flowattr.simulate import (
    GATEWAY,
    LB_CIDR,
    REGION_CIDRS,
    Delivery,
    Fleet,
    FleetScenario,
    SimulatedFlows,
    batch_flows,
    build_fleet,
    simulate_flows,
)
from schemas import flowattr_pb2 as pb


@dataclass
class MethodResult:
    owner: np.ndarray      # object array: attributed workload, None where unattributed
    reasons: Counter       # unattributed reason name -> count (heartbeat method only)
    delivered: np.ndarray  # bool: the record reached the collector (its batch was not lost)


def default_config() -> AttributionConfig:
    return AttributionConfig(event_cidrs=(LB_CIDR,))


def run_heartbeat(fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery],
                  cfg: AttributionConfig, progress=None) -> MethodResult:
    regions = RegionMap(REGION_CIDRS)
    attributors = {r: Attributor(cfg) for r in regions.regions}
    home = "us-east-1"
    remote_region = regions.regions_of(flows.cols["remote_ip"])
    remote_region = np.where(remote_region == None, home, remote_region)  # noqa: E711
    owner = np.full(len(flows.cols), None, dtype=object)
    reason = np.zeros(len(flows.cols), np.uint8)
    delivered = np.zeros(len(flows.cols), bool)
    # Timeline of arrivals: deliveries and events, then attempts pushed as they are scheduled.
    queue: list[tuple[int, int, int, object]] = []  # (time, kind, tiebreak, payload)
    seq = 0
    for d in deliveries:
        if not d.lost:
            queue.append((d.arrival_ms, 1, seq, d))
            seq += 1
    for ev in fleet.events:
        queue.append((ev[0], 0, seq, ev))  # events first at equal times
        seq += 1
    heapq.heapify(queue)
    last_prune = 0
    done = 0
    while queue:
        now, kind, _, payload = heapq.heappop(queue)
        if kind == 0:
            _emit, event_ms, ip, workload, action = payload
            region = regions.region_of(ip) or home
            attributors[region].apply_event(ip, workload, action, event_ms)
        elif kind == 1:
            d: Delivery = payload
            delivered[d.rows] = True
            host_region = fleet.hosts[d.host]["region"]
            batch = flows.cols.take(d.rows)
            att = attributors[host_region]
            att.learn_claims(att.claims(batch))
            first = max(now, d.window_start_ms + 60_000 + cfg.hold_ms)
            for region in np.unique(remote_region[d.rows]):
                rows = d.rows[remote_region[d.rows] == region]
                heapq.heappush(queue, (first, 2, seq, (str(region), rows, 1)))
                seq += 1
        else:
            region, rows, attempt = payload
            att = attributors[region]
            result = att.attribute(flows.cols.take(rows), attempt)
            hit = result.outcome == ATTRIBUTED
            owner[rows[hit]] = np.array(att.owner_names(result.owner[hit]), dtype=object)
            retry = result.outcome == RETRY
            final = ~hit & ~retry
            reason[rows[final]] = result.reason[final]
            if retry.any():
                heapq.heappush(queue, (now + cfg.retry_delay_ms, 2, seq, (region, rows[retry], attempt + 1)))
                seq += 1
            done += int((~retry).sum())
        if now - last_prune >= 300_000:
            for att in attributors.values():
                att.prune(now)
            last_prune = now
            if progress:
                progress(done)
    reasons = Counter(pb.UnattributedReason.Name(int(r)) for r in reason[delivered & (owner == None)])  # noqa: E711
    return MethodResult(owner, reasons, delivered)


def run_events_baseline(fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery],
                        hold_ms: int) -> MethodResult:
    """"Last known owner": at time arrival + hold, the remote IP belongs to the latest
    ASSIGNED event (by event time, at or before the flow's start) among the events
    received so far, unless an UNASSIGNED followed it. Late events are simply not known."""
    n = len(flows.cols)
    decide_at = np.zeros(n, np.int64)
    delivered = np.zeros(n, bool)
    for d in deliveries:
        if not d.lost:
            decide_at[d.rows] = d.arrival_ms + hold_ms
            delivered[d.rows] = True
    owner = np.full(n, None, dtype=object)
    ev_by_ip: dict[bytes, list] = {}
    for emit_ms, event_ms, ip, workload, action in fleet.events:
        ev_by_ip.setdefault(ip, []).append((event_ms, emit_ms, action, workload))
    flat = np.ascontiguousarray(flows.cols["remote_ip"]).view("V16").ravel()
    uniq, inverse = np.unique(flat, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
    starts = flows.cols["start_ms"]
    for u in range(len(uniq)):
        events = sorted(ev_by_ip.get(uniq[u].tobytes(), []))
        if not events:
            continue
        rows = order[bounds[u]:bounds[u + 1]]
        rows = rows[delivered[rows]]
        et = np.array([e[0] for e in events])
        em = np.array([e[1] for e in events])
        assigned = np.array([e[2] == 1 for e in events])
        names = np.array([e[3] for e in events], dtype=object)
        known = (et[None, :] <= starts[rows, None]) & (em[None, :] <= decide_at[rows, None])
        has = known.any(axis=1)
        last = known.shape[1] - 1 - np.argmax(known[:, ::-1], axis=1)
        ok = has & assigned[last]
        owner[rows[ok]] = names[last[ok]]
    return MethodResult(owner, Counter(), delivered)


def score(flows: SimulatedFlows, result: MethodResult, routes: list[str], gateway_ref: int) -> dict:
    d = result.delivered
    attributed = d & (result.owner != None)  # noqa: E711
    wrong = attributed & (result.owner != flows.true_owner)
    gw = attributed & (flows.cols["local_workload_ref"] == gateway_ref) & flows.is_client_side
    edges = set(result.owner[gw].tolist())
    return {"flows": int(d.sum()), "attributed": int(attributed.sum()),
            "misattributed": int(wrong.sum()), "unattributed": int((d & ~attributed).sum()),
            "edges_reported": len(edges), "edges_misattributed": len(edges - set(routes)),
            "unattributed_reasons": dict(result.reasons)}


def evaluate(scenario: FleetScenario, cfg: AttributionConfig | None = None, progress=print) -> dict:
    cfg = cfg or default_config()
    progress(f"simulating fleet (seed {scenario.seed}, {scenario.minutes} min) ...")
    fleet = build_fleet(scenario)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    progress(f"{len(flows.cols):,} flow records in {len(deliveries):,} batches "
             f"({sum(d.lost for d in deliveries)} lost), {len(fleet.events):,} IP-change events")
    gateway_ref = flows.cols.workloads.index(GATEWAY)
    methods = {}
    progress("heartbeat attribution (in-process, job semantics) ...")
    methods["heartbeat"] = score(flows, run_heartbeat(
        fleet, flows, deliveries, cfg,
        progress=lambda n: progress(f"  {n:,} flows decided")), fleet.gateway_routes,
        gateway_ref)
    for name, hold in (("events_hold_0", 0), ("events_hold_15m", 15 * 60_000)):
        progress(f"baseline {name} ...")
        methods[name] = score(flows, run_events_baseline(fleet, flows, deliveries, hold),
                              fleet.gateway_routes, gateway_ref)
    scenario_info = scenario.describe() | {
        "flow_records": len(flows.cols), "batches": len(deliveries),
        "batches_lost": sum(d.lost for d in deliveries), "events": len(fleet.events),
        "gateway_routes": len(fleet.gateway_routes),
        "hold_ms": cfg.hold_ms, "retry_delay_ms": cfg.retry_delay_ms, "max_attempts": cfg.max_attempts}
    return {"scenario": scenario_info, "methods": methods}


def format_table(report: dict) -> str:
    cols = ["flows", "attributed", "misattributed", "unattributed", "edges_reported",
            "edges_misattributed"]
    width = {c: max(12, len(c) + 2) for c in cols}
    lines = [f"{'method':<18}" + "".join(f"{c:>{width[c]}}" for c in cols) + f"{'misattr %':>11}{'unattr %':>10}"]
    for name, m in report["methods"].items():
        lines.append(f"{name:<18}" + "".join(f"{m[c]:>{width[c]},}" for c in cols)
                     + f"{100 * m['misattributed'] / max(m['flows'], 1):>10.3f}%"
                     + f"{100 * m['unattributed'] / max(m['flows'], 1):>9.3f}%")
    reasons = report["methods"]["heartbeat"].get("unattributed_reasons") or {}
    if reasons:
        lines.append("heartbeat unattributed by reason: "
                     + ", ".join(f"{k.removeprefix('UNATTRIBUTED_REASON_')}={v:,}" for k, v in reasons.items()))
    return "\n".join(lines)


def score_topics(bootstrap: str, truth_path, regions: list[str], progress=print) -> dict:
    """Score a job's attributed/unattributed topics against a simulator truth file.

    Duplicates (AT_LEAST_ONCE) are counted once by flow id; a flow id seen as both
    attributed and unattributed counts as attributed (it was proven at least once)."""
    from flowattr.kafka_clients import read_topic
    from schemas.columns import decode_attributed_batch

    truth = np.load(truth_path)
    exporters = truth["exporters"].tolist()
    owners = truth["owners"].tolist()
    key = lambda e, s, i: (e, int(s), int(i))  # noqa: E731
    true_owner = {key(exporters[e], s, i): owners[o] for e, s, i, o in zip(
        truth["exporter"], truth["sequence"], truth["flow_index"], truth["owner"], strict=True)}
    gateway = {key(exporters[e], s, i) for e, s, i, w, c in zip(
        truth["exporter"], truth["sequence"], truth["flow_index"], truth["local_workload"],
        truth["client_side"], strict=True) if w == GATEWAY and c}
    routes = set(truth["gateway_routes"].tolist())
    attributed: dict[tuple, str] = {}
    unattributed: dict[tuple, int] = {}
    outcomes = 0  # flow outcomes read, duplicates included
    for region in regions:
        for topic, sink in ((f"attributed.{region}", attributed), (f"unattributed.{region}", unattributed)):
            values = read_topic(bootstrap, topic, idle_timeout_s=5)
            progress(f"read {len(values):,} batches from {topic}")
            for value in values:
                msg, cols = decode_attributed_batch(value)
                outcomes += len(cols)
                names = cols.workloads
                for i, ref, why in zip(cols["flow_index"].tolist(), cols["remote_workload_ref"].tolist(),
                                       cols["unattributed_reason"].tolist(), strict=True):
                    k = key(msg.source_exporter_id, msg.source_sequence, i)
                    sink[k] = names[ref] if sink is attributed else why
    missing = [k for k in true_owner if k not in attributed and k not in unattributed]
    unknown = {k for k in list(attributed) + list(unattributed) if k not in true_owner}
    for k in unknown:  # flows the truth file does not describe (e.g. a test's probe batch)
        attributed.pop(k, None)
        unattributed.pop(k, None)
    wrong = [k for k, w in attributed.items() if true_owner[k] != w]
    edges = {w for k, w in attributed.items() if k in gateway}
    reasons = Counter(pb.UnattributedReason.Name(r) for k, r in unattributed.items() if k not in attributed)
    return {"flows": len(true_owner), "attributed": len(attributed), "misattributed": len(wrong),
            "unattributed": len([k for k in unattributed if k not in attributed]), "missing": len(missing),
            "edges_reported": len(edges), "edges_misattributed": len(edges - routes),
            "not_in_truth": len(unknown), "unattributed_reasons": dict(reasons),
            # Outcomes emitted more than once: AT_LEAST_ONCE allows them only after a restart.
            "duplicates": outcomes - len(set(attributed) | set(unattributed)) - len(unknown)}
