"""Drive the collector's engine (flink_jobs/attribution/engine.py) over a simulated
timeline, in process: the second driver of the code the Flink operator runs.

What the Flink job does with topics, this does with a priority queue of timed steps:
* an IP-change event arrives (its emit time; a lie's is mid-run) -> engine.apply_event
  (FUTURE: dead letter);
* a batch arrives -> its rows are checked (rows.check_rows: invalid rows are rejected,
  never learned nor attributed), the valid rows' claims learned with the batch's
  sequence and the rejected rows' connections (lost records), and its flows held until
  engine.first_attempt_ms(window end);
* an attempt -> engine.attempt: forwarded rows go to the other region's engine at once
  (the inbound topic), RETRY rows come back at next_attempt_ms, the rest are final.
Event time: before each step every engine advances to the step's time (the simulation's
watermark: everything emitted earlier has been delivered).
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass

import numpy as np

from flink_jobs.attribution.attribute import ATTRIBUTED, RETRY
from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.attribution.engine import Engine
from flink_jobs.attribution.events import FUTURE
from flink_jobs.attribution.rows import RowRules, check_rows
from flowattr.lab.simulate import T0_MS
from schemas import flowattr_pb2 as pb

EVENT, BATCH, ATTEMPT, GO_ON = 0, 1, 2, 3  # step kinds, in this order at equal times


@dataclass
class ReplayResult:
    owner: np.ndarray      # object: attributed workload per row, None where not
    source: np.ndarray     # uint8 EvidenceSource per row, 0 where not attributed
    reason: np.ndarray     # uint8 UnattributedReason per row, 0 where attributed or never decided
    delivered: np.ndarray  # bool: the row's batch reached the collector
    rejected: np.ndarray   # bool: the row failed validation (dead-lettered)
    events_rejected: int   # events dead-lettered as from the future
    reasons: Counter       # unattributed reason name -> count (valid delivered rows)


def replay(fleet, flows, deliveries, cfg: AttributionConfig, region_cidrs: dict[str, str], home: str,
           progress=None) -> ReplayResult:
    """Run every region's engine over the fleet's deliveries and events."""
    engines = {r: Engine(cfg, r, region_cidrs) for r in sorted(set(region_cidrs.values()))}
    n = len(flows.cols)
    out = ReplayResult(np.full(n, None, dtype=object), np.zeros(n, np.uint8), np.zeros(n, np.uint8),
                       np.zeros(n, bool), np.zeros(n, bool), 0, Counter())
    rules = RowRules(max_flow_age_ms=cfg.retention_ms, close_slack_ms=cfg.close_slack_ms)
    queue: list = []
    seq = 0

    def push(at: int, kind: int, payload) -> None:
        nonlocal seq
        heapq.heappush(queue, (at, kind, seq, payload))
        seq += 1

    for d in deliveries:
        if not d.lost:
            push(d.arrival_ms, BATCH, d)
    for ev in fleet.events:
        push(fleet.arrival_ms(ev), EVENT, ev)
    # After the simulated minutes every exporter still running at the run's end (a window
    # in its last minute or after: pooled connections close later; a terminated host stays
    # silent) goes on sending a batch a minute, empty, as real ones do, while attempts
    # remain: the engines' fleet progress (which caps the event horizon) moves on, as it
    # does in the job (the e2e runs' clock exporters).
    last_sequence: dict[str, int] = {}
    if deliveries:
        last_run_window = T0_MS + (fleet.scenario.minutes - 1) * 60_000
        for d in deliveries:
            if d.window_start_ms >= last_run_window:
                last_sequence[d.host] = max(last_sequence.get(d.host, -1), d.sequence)
        last_start = max(d.window_start_ms for d in deliveries)
        push(last_start + 120_000, GO_ON, None)
    decided = 0
    next_progress = 0
    while queue:
        now, kind, _, payload = heapq.heappop(queue)
        for engine in engines.values():
            engine.advance(now)
            engine.prune()
        if kind == EVENT:
            out.events_rejected += _apply_event(engines, payload, home) == FUTURE
        elif kind == BATCH:
            _arrive(engines[fleet.hosts[payload.host]["region"]], payload, fleet, flows, rules, out, push, home)
        elif kind == GO_ON:
            for host, sequence in last_sequence.items():
                last_sequence[host] = sequence + 1
                engines[fleet.hosts[host]["region"]].learn_batch(fleet.hosts[host]["name"], sequence + 1,
                                                                 now - 60_000, now, [], heard_at_ms=now)
            if any(step[1] != GO_ON for step in queue):
                push(now + 60_000, GO_ON, None)
        else:
            decided += _attempt(engines, now, payload, flows, out, push)
        if progress and decided >= next_progress:
            progress(decided)
            next_progress = decided + 200_000
    valid = out.delivered & ~out.rejected & (out.owner == None)  # noqa: E711
    out.reasons.update(pb.UnattributedReason.Name(int(r)) for r in out.reason[valid])
    return out


def _apply_event(engines: dict[str, Engine], ev, home: str) -> str:
    emit_ms, event_ms, ip, workload, action = ev[:5]
    event_id = ev[5] if len(ev) > 5 else ""
    engine = engines.get(next(iter(engines.values())).regions.region_of(ip) or home, engines[home])
    return engine.apply_event(ip, workload, action, event_ms, emit_ms, event_id)


def _arrive(engine: Engine, d, fleet, flows, rules: RowRules, out: ReplayResult, push, home: str) -> None:
    rows = np.asarray(d.rows, np.int64)
    out.delivered[rows] = True
    window_end = d.window_start_ms + 60_000
    cols = flows.cols.take(rows)
    if getattr(d, "empty_dictionary", False):
        cols.workloads = []
    check = check_rows(cols, d.window_start_ms, window_end, rules) if len(rows) else None
    lost = []
    if check is not None and not check.valid.all():
        out.rejected[rows[~check.valid]] = True
        lost = engine.rejected_records(cols, check.valid)
        rows, cols = rows[check.valid], cols.take(check.valid)
    exporter = fleet.hosts[d.host]["name"]
    claims = engine.claims(cols, fleet.hosts[d.host].get("port_shared_ips", b""))
    engine.learn_batch(exporter, d.sequence, d.window_start_ms, window_end, claims,
                       rejected_records=lost, heard_at_ms=d.arrival_ms)
    if len(rows):
        push(max(d.arrival_ms, engine.first_attempt_ms(window_end)), ATTEMPT, (engine.region, rows, 0))


def _attempt(engines: dict[str, Engine], now: int, payload, flows, out: ReplayResult, push) -> int:
    region, rows, attempts_made = payload
    engine = engines[region]
    plan = engine.attempt(flows.cols.take(rows), attempts_made, now)
    for other, fwd in plan.forward.items():
        push(now, ATTEMPT, (other, rows[fwd], attempts_made))
    if plan.attribution is None:
        return 0
    local = rows[plan.local]
    result = plan.attribution
    hit = result.outcome == ATTRIBUTED
    names = engine.owner_names()
    out.owner[local[hit]] = np.array([names[o] for o in result.owner[hit].tolist()], dtype=object)
    out.source[local[hit]] = result.source[hit]
    retry = result.outcome == RETRY
    final = ~hit & ~retry
    out.reason[local[final]] = result.reason[final]
    if retry.any():
        push(plan.next_attempt_ms, ATTEMPT, (region, local[retry], plan.next_attempt - 1))
    return int((~retry).sum())
