"""Evaluation: run the heartbeat attribution in-process on a simulated fleet, and two
event-based "last known owner" baselines, and score all three against ground truth.

The heartbeat method is the collector's engine itself (flink_jobs/attribution/engine.py),
driven over the simulated timeline by flowattr.lab.replay: the evaluation judges the code
that runs in production, not a copy of its rules.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from flink_jobs.attribution.config import AttributionConfig
from flowattr.lab.replay import replay
from flowattr.lab.simulate import (
    GATEWAY,
    HOME_REGION,
    INTERNET,
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
from schemas.addresses import HOST_LOCAL_CIDRS
from schemas.cidrs import CidrSet
from schemas.topics import RegionTopics


@dataclass
class MethodResult:
    owner: np.ndarray      # object array: attributed workload, None where unattributed
    reasons: Counter       # unattributed reason name -> count (heartbeat method only)
    delivered: np.ndarray  # bool: the record reached the collector (its batch was not lost)
    # uint8 EvidenceSource per row, 0 where unattributed; None: not reported (see _sources)
    source: np.ndarray | None = None


def default_config() -> AttributionConfig:
    return AttributionConfig(event_cidrs=(LB_CIDR,))


def run_heartbeat(fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery],
                  cfg: AttributionConfig, progress=None) -> MethodResult:
    """The collector's own engine (the code the Flink operator runs), driven in-process
    over the fleet's timeline by flowattr.lab.replay."""
    result = replay(fleet, flows, deliveries, cfg, REGION_CIDRS, HOME_REGION, progress=progress)
    return MethodResult(result.owner, result.reasons, result.delivered, result.source)


def run_events_baseline(fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery],
                        hold_ms: int) -> MethodResult:
    """"Last known owner": at time arrival + hold, the remote IP belongs to the latest
    ASSIGNED event (by event time, at or before the flow's start) among the events
    received so far, unless an UNASSIGNED followed it. Late events are simply not known.
    Every attribution's evidence is an event (source IP_CHANGE_EVENT)."""
    n = len(flows.cols)
    decide_at = np.zeros(n, np.int64)
    delivered = np.zeros(n, bool)
    for d in deliveries:
        if not d.lost:
            decide_at[d.rows] = d.arrival_ms + hold_ms
            delivered[d.rows] = True
    owner = np.full(n, None, dtype=object)
    ev_by_ip: dict[bytes, list] = {}
    for ev in fleet.events:
        ev_by_ip.setdefault(ev.ip, []).append((ev.event_ms, fleet.arrival_ms(ev), ev.action, ev.workload))
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
    source = np.where(owner != None, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT, 0).astype(np.uint8)  # noqa: E711
    return MethodResult(owner, Counter(), delivered, source)


SOURCES = ("HEARTBEAT", "IP_CHANGE_EVENT")  # EvidenceSource names, without the prefix


def _sources(flows: SimulatedFlows, result: MethodResult) -> np.ndarray:
    """EvidenceSource per row. A result without sources (a heartbeat run that does not
    report them yet) gets the core's rule: events for the event CIDR (LB_CIDR, as in
    default_config), heartbeats for every other address."""
    if result.source is not None:
        return np.asarray(result.source, np.uint8)
    src = np.where(flows.via_lb, pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT, pb.EVIDENCE_SOURCE_HEARTBEAT)
    return np.where(result.owner != None, src, 0).astype(np.uint8)  # noqa: E711


def _edges(local: np.ndarray, owner: np.ndarray, mask: np.ndarray) -> set[tuple[str, str]]:
    return set(zip(local[mask].tolist(), owner[mask].tolist(), strict=True))


def unattributable_rows(flows: SimulatedFlows) -> np.ndarray:
    """Rows whose truth is no provable workload: internet peers, host-local addresses."""
    return (flows.true_owner == INTERNET) | CidrSet(HOST_LOCAL_CIDRS).contains(flows.cols["remote_ip"])


def score(flows: SimulatedFlows, result: MethodResult, routes: list[str], gateway_ref: int) -> dict:
    """Scores over delivered VALID rows; invalid rows are only counted, and whether any got
    an owner (a correct collector rejects them). An edge is (local workload, remote owner)
    of a client-side attributed flow; it is misattributed when no delivered valid
    client-side flow has that pair as (local workload, true owner).

    Flows whose right answer is "unattributed" (an internet peer, a host-local bridge
    address: no workload of the region can be proven) are `unattributable`: they are
    not in `flows`/`unattributed`, and any owner given to one counts as misattributed."""
    delivered = result.delivered
    has_owner = result.owner != None  # noqa: E711
    unattributable = delivered & flows.valid & unattributable_rows(flows)
    wrong_unattributable = unattributable & has_owner
    valid = delivered & flows.valid & ~unattributable
    attributed = valid & has_owner
    wrong = (attributed & (result.owner != flows.true_owner)) | wrong_unattributable
    source = _sources(flows, result)
    by_source = {name: int((wrong & (source == pb.EvidenceSource.Value("EVIDENCE_SOURCE_" + name))).sum())
                 for name in SOURCES}
    refs = flows.cols["local_workload_ref"]
    names = np.array(flows.cols.workloads + [None], dtype=object)
    local = names[np.minimum(refs, len(names) - 1)]  # refs past the dictionary (invalid rows) -> None
    client = valid & flows.is_client_side
    true_edges = _edges(local, flows.true_owner, client)
    edges = _edges(local, result.owner, client & has_owner)
    true_lb = _edges(local, flows.true_owner, client & flows.via_lb)
    lb_edges = _edges(local, result.owner, client & has_owner & flows.via_lb)
    gw = attributed & (refs == gateway_ref) & flows.is_client_side
    gateway_edges = set(result.owner[gw].tolist())
    return {"flows": int(valid.sum()), "attributed": int(attributed.sum()),
            "misattributed": int(wrong.sum()), "unattributed": int((valid & ~has_owner).sum()),
            "misattributed_by_source": by_source,
            "unattributable": int(unattributable.sum()), "unattributable_attributed": int(wrong_unattributable.sum()),
            "invalid_rows": int((delivered & ~flows.valid).sum()),
            "invalid_attributed": int((delivered & ~flows.valid & has_owner).sum()),
            "edges_reported": len(edges), "edges_misattributed": len(edges - true_edges),
            "lb_edges_reported": len(lb_edges), "lb_edges_misattributed": len(lb_edges - true_lb),
            "gateway_edges_reported": len(gateway_edges),
            "gateway_edges_misattributed": len(gateway_edges - set(routes)),
            "unattributed_reasons": dict(result.reasons)}


def evaluate(scenario: FleetScenario, cfg: AttributionConfig | None = None, progress=print) -> dict:
    cfg = cfg or default_config()
    progress(f"simulating fleet (seed {scenario.seed}, {scenario.minutes} min) ...")
    fleet = build_fleet(scenario)
    flows = simulate_flows(fleet)
    deliveries = batch_flows(fleet, flows)
    progress(f"{len(flows.cols):,} flow records ({int((~flows.valid).sum()):,} invalid) in "
             f"{len(deliveries):,} batches ({sum(d.lost for d in deliveries)} lost), "
             f"{len(fleet.events):,} IP-change events ({len(fleet.invalid_event_ids)} invalid)")
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
        "flow_records": len(flows.cols), "invalid_records": int((~flows.valid).sum()),
        "batches": len(deliveries), "batches_lost": sum(d.lost for d in deliveries),
        "batches_empty": sum(len(d.rows) == 0 for d in deliveries),
        "events": len(fleet.events), "invalid_events": len(fleet.invalid_event_ids),
        "lb_flow_records": int(flows.via_lb.sum()), "gateway_routes": len(fleet.gateway_routes),
        "hold_ms": cfg.hold_ms, "retry_delay_ms": cfg.retry_delay_ms, "max_attempts": cfg.max_attempts}
    return {"scenario": scenario_info, "methods": methods}


def _table(report: dict, cols: list[str], percent: bool) -> list[str]:
    width = {c: max(10, len(c) + 2) for c in cols}
    head = f"{'method':<18}" + "".join(f"{c:>{width[c]}}" for c in cols)
    lines = [head + (f"{'misattr %':>11}{'unattr %':>10}" if percent else "")]
    for name, m in report["methods"].items():
        flat = m | {f"misattr_{k.lower()}": v for k, v in m.get("misattributed_by_source", {}).items()}
        line = f"{name:<18}" + "".join(f"{flat.get(c, 0):>{width[c]},}" for c in cols)
        if percent:
            line += (f"{100 * m['misattributed'] / max(m['flows'], 1):>10.3f}%"
                     f"{100 * m['unattributed'] / max(m['flows'], 1):>9.3f}%")
        lines.append(line)
    return lines


def format_table(report: dict) -> str:
    """Two tables: flows (misattributed split by evidence source), then edges."""
    flows = ["flows", "attributed", "misattributed", "misattr_heartbeat", "misattr_ip_change_event",
             "unattributed", "invalid_rows", "invalid_attributed"]
    edges = ["edges_reported", "edges_misattributed", "lb_edges_reported", "lb_edges_misattributed",
             "gateway_edges_reported", "gateway_edges_misattributed"]
    lines = _table(report, flows, percent=True) + [""] + _table(report, edges, percent=False)
    reasons = report["methods"]["heartbeat"].get("unattributed_reasons") or {}
    if reasons:
        lines.append("heartbeat unattributed by reason: "
                     + ", ".join(f"{k.removeprefix('UNATTRIBUTED_REASON_')}={v:,}" for k, v in reasons.items()))
    return "\n".join(lines)


def _truth_keys(truth) -> tuple[dict, set, set]:
    """(flow id -> true owner, gateway client-side flow ids, invalid flow ids) of a truth
    file; files written before `valid` existed hold only valid rows."""
    exporters = truth["exporters"].tolist()
    owners = truth["owners"].tolist()
    valid = truth["valid"] if "valid" in truth.files else np.ones(len(truth["owner"]), bool)
    keys = [(exporters[e], int(s), int(i)) for e, s, i in zip(
        truth["exporter"].tolist(), truth["sequence"].tolist(), truth["flow_index"].tolist(), strict=True)]
    true_owner = {k: owners[o] for k, o in zip(keys, truth["owner"].tolist(), strict=True)}
    gateway = {k for k, w, c in zip(keys, truth["local_workload"].tolist(), truth["client_side"].tolist(),
                                    strict=True) if w == GATEWAY and c}
    invalid = {k for k, ok in zip(keys, valid.tolist(), strict=True) if not ok}
    return true_owner, gateway, invalid


@dataclass
class TopicOutcomes:
    """The outcomes on a job's attributed and unattributed topics, once per flow id
    (exporter, sequence, flow index): AT_LEAST_ONCE may emit one more than once."""

    attributed: dict = field(default_factory=dict)    # flow id -> (owner, evidence source, remote IP bytes)
    unattributed: dict = field(default_factory=dict)  # flow id -> (reason, remote IP bytes)
    records: int = 0                                  # outcomes read, duplicates included
    disagreeing: int = 0                              # flow ids attributed twice to different owners

    def duplicates(self) -> int:
        return self.records - len(self.attributed.keys() | self.unattributed.keys())

    def reason_counts(self) -> dict[str, int]:
        """Unattributed reasons of the flows never attributed (one proven attempt wins)."""
        return dict(Counter(pb.UnattributedReason.Name(r) for k, (r, _) in self.unattributed.items()
                            if k not in self.attributed))


def read_outcomes(bootstrap: str, regions: list[str], progress=print, idle_timeout_s: float = 5) -> TopicOutcomes:
    from flowattr.stack.kafka_clients import read_topic
    from schemas.columns import decode_attributed_batch

    out = TopicOutcomes()
    for region in regions:
        names = RegionTopics(region)
        for topic, sink in ((names.attributed, out.attributed), (names.unattributed, out.unattributed)):
            values = read_topic(bootstrap, topic, idle_timeout_s=idle_timeout_s)
            progress(f"read {len(values):,} batches from {topic}")
            for value in values:
                msg, cols = decode_attributed_batch(value)
                out.records += len(cols)
                workloads = cols.workloads
                remote = [ip.tobytes() for ip in cols["remote_ip"]]
                for i, ref, src, why, ip in zip(cols["flow_index"].tolist(), cols["remote_workload_ref"].tolist(),
                                                cols["evidence_source"].tolist(),
                                                cols["unattributed_reason"].tolist(), remote, strict=True):
                    k = (msg.source_exporter_id, int(msg.source_sequence), i)
                    if sink is out.attributed:
                        before = sink.get(k)
                        out.disagreeing += before is not None and before[0] != workloads[ref]
                        sink[k] = (workloads[ref], src, ip)
                    else:
                        sink[k] = (why, ip)
    return out


def score_topics(bootstrap: str, truth_path, regions: list[str], progress=print) -> dict:
    """Score a job's attributed/unattributed topics against a simulator truth file.

    Duplicates (AT_LEAST_ONCE) are counted once by flow id; a flow id seen as both
    attributed and unattributed counts as attributed (it was proven at least once).
    Invalid truth rows need no outcome; one that got an owner is `invalid_attributed`."""
    truth = np.load(truth_path)
    true_owner, gateway, invalid = _truth_keys(truth)
    routes = set(truth["gateway_routes"].tolist())
    read = read_outcomes(bootstrap, regions, progress)
    attributed, unattributed, outcomes = read.attributed, read.unattributed, read.records
    missing = [k for k in true_owner if k not in invalid and k not in attributed and k not in unattributed]
    unknown = {k for k in list(attributed) + list(unattributed) if k not in true_owner}
    for k in unknown:  # flows the truth file does not describe (e.g. a test's probe batch)
        attributed.pop(k, None)
        unattributed.pop(k, None)
    invalid_attributed = sum(k in invalid for k in attributed)
    invalid_out = {k for k in invalid if k in attributed or k in unattributed}
    for k in invalid:
        attributed.pop(k, None)
        unattributed.pop(k, None)
    wrong = [k for k, (w, _, _) in attributed.items() if true_owner[k] != w]
    by_source = Counter(pb.EvidenceSource.Name(attributed[k][1]).removeprefix("EVIDENCE_SOURCE_") for k in wrong)
    edges = {w for k, (w, _, _) in attributed.items() if k in gateway}
    return {"flows": len(true_owner) - len(invalid), "attributed": len(attributed), "misattributed": len(wrong),
            "misattributed_by_source": {name: by_source.get(name, 0) for name in SOURCES} | dict(by_source),
            "unattributed": len([k for k in unattributed if k not in attributed]), "missing": len(missing),
            "invalid_rows": len(invalid), "invalid_attributed": invalid_attributed,
            "edges_reported": len(edges), "edges_misattributed": len(edges - routes),
            "not_in_truth": len(unknown), "unattributed_reasons": read.reason_counts(),
            # A replay after a restore that named another owner: consumers keep either copy.
            "duplicates_disagreeing": read.disagreeing,
            # Outcomes emitted more than once: AT_LEAST_ONCE allows them only after a restart.
            "duplicates": outcomes - len(set(attributed) | set(unattributed)) - len(unknown) - len(invalid_out)}
