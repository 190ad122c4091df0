"""The flowattr collector: a PyFlink DataStream job (thread mode) that attributes remote IPs.

    flows.R ──► ValidateFlows ──► pending batches ──┐            ┌─ route A ─► attributed.R
                  │  └─ claims (heartbeats) ─┐       ├─ key_by ──► Attribute ─┼─ route U ─► unattributed.R
    retry.R ──► ValidatePending ─────────────┤       │  exporter  (keyed      ├─ route R ─► retry.R (input ended)
    inbound.R ──► ValidatePending ───────────┘       │            broadcast)  ├─ route F, <R2> ─► inbound.<R2>
    ipchanges.R ──► ValidateEvents ──────────────────┴──► broadcast           ├─ route O ─► ownership.R
                                                                             └─ route E ─► key_by edge
                                                                            ─► EdgeMinutes ─► edges.R
    every validator (side output), Attribute (route D: events from the future, edge
    partials too late) and EdgeMinutes (partials for a closed minute) ──► deadletter.R
    (the routes are Flink SQL filters on Attribute's rows: flink_jobs/routing.py)

Event time is the Kafka record timestamp: window end for batches (producers set it), the
attempt's event time for the job's outputs (retry and forwarded batches included, so a
batch read back never runs the watermark ahead: see flink_jobs/routing.py), emit time for
IP-change events. A pending batch is
held in keyed state until an event-time timer at its next attempt (window end + hold, then
+ retry delay): the rows to retry stay in the hold (until 2026-11-28 they went out to
retry.R and were read back; now only an attempt after every input has ended writes there,
for the next job; the job still reads retry.R, so what an earlier version left there is
attempted). Every decision (hold, attempt, retry, forward, give up) is the pure engine's
(flink_jobs/attribution/engine.py), the one `flowattr evaluate` drives too.
Ownership evidence lives in broadcast state (STRING keys and latin-1 STRING values:
thread mode cannot match byte-array keys; see flink_jobs/ownership_store.py), mirrored by
the engine that every instance rebuilds after a restore.

Example:
    python -m flink_jobs.attribution_job --bootstrap 127.0.0.1:9092 --region us-east-1 \
        --checkpoint-dir file:///tmp/flowattr-chk
"""

from __future__ import annotations

import argparse
import pickle
import time

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import KeyedBroadcastProcessFunction, KeyedProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table.expressions import col

from flink_jobs import batches, edges, ownership_changelog, routing
from flink_jobs.attribution.engine import Engine, max_retry_wait_ms
from flink_jobs.attribution.events import DUPLICATE, LATE, NEVER, StreamClock, event_key
from flink_jobs.attribution.ledger import FleetProgress
from flink_jobs.attribution.rows import RowRules
from flink_jobs.environment import make_environment
from flink_jobs.job_config import JobConfig, add_flags, load
from flink_jobs.kafka_connectors import BYTES, KafkaSinks, bytes_sink, bytes_source
from flink_jobs.ownership_store import OwnershipStore
from flink_jobs.pending_hold import PendingHold
from schemas import flowattr_pb2 as pb
from schemas.columns import decode_attributed_batch
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

# (exporter id, pending AttributedFlowBatch, event time): RowEventTime reads the time.
KEYED_ROW = Types.ROW([Types.STRING(), BYTES, Types.LONG()])
DEAD_LETTER = OutputTag("dead-letter", BYTES)
OWNERSHIP = MapStateDescriptor("ownership", Types.STRING(), Types.STRING())
# Broadcast records: tag (1 byte) + payload. Claims leave ValidateFlows on its MAIN output
# (key "" marks them) and are split off by a filter: side outputs from Python (thread
# mode) lose the record timestamp, which left the broadcast watermark at Long.MIN and
# stalled every timer whenever no timestamped IP-change events flowed.
CLAIM_TAG, EVENT_TAG = b"C", b"E"
END_OF_INPUT = 2**63 - 1   # Long.MAX_VALUE: the watermark once every input has ended
CLAIMS_KEY = ""


# Attribute's output (flink_jobs/routing.py): route, region, Kafka key, value.
ROUTED = Types.ROW_NAMED(list(routing.FIELDS), [Types.STRING(), Types.STRING(), BYTES, BYTES])


def _routed(route: str, value: bytes, key: bytes = b"", region: str = "") -> Row:
    return Row(*routing.record(route, value, key, region))


def _dead_letter(topic: str, raw: bytes, reason: str) -> bytes:
    return pb.DeadLetter(source_topic=topic, original=raw, reason=reason,
                         detected_at_ms=int(time.time() * 1000)).SerializeToString()


class Validator(ProcessFunction):
    """Shared by the validators: the config, a `dead_lettered` counter and one counter of
    accepted records, and the dead-letter side output with the original bytes."""

    accepted_metric = ""  # set by each subclass

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg
        # A long-lived connection may have started up to the retention before its window.
        self.rules = RowRules(max_flow_age_ms=cfg.attribution.retention_ms,
                              close_slack_ms=cfg.attribution.close_slack_ms)

    def open(self, runtime_context):
        group = runtime_context.get_metrics_group()
        self.dead = group.counter("dead_lettered")
        self.accepted = group.counter(self.accepted_metric)

    def reject(self, topic: str, raw: bytes, reason: str):
        self.dead.inc()
        return DEAD_LETTER, _dead_letter(topic, raw, reason)


class ValidateFlows(Validator):
    """FlowBatch -> (exporter, pending batch of its valid rows) and ("", the batch's
    ownership update: its claims and its sequence number, sent for every batch), each
    with the batch's event time: its window end, but never past the fleet's progress
    (FleetProgress): one exporter with a clock a day ahead would run the watermark a day
    ahead, and the event clock trusts the watermark (engine.advance)."""

    accepted_metric = "batches_in"

    def open(self, runtime_context):
        super().open(runtime_context)
        group = runtime_context.get_metrics_group()
        self.flows_in = group.counter("flows_in")
        self.rows_rejected = group.counter("rows_rejected")
        # Only for its claims() scope rules (attributable, host-local, event-only CIDRs).
        self.engine = Engine(self.cfg.attribution, self.cfg.region, self.cfg.region_cidrs)
        # Fewer than the rank known: the earliest (a liar in a small fleet, or first after a
        # restart, must not lead); silent exporters are forgotten, so event time goes on.
        self.fleet = FleetProgress(self.cfg.attribution.fleet_clock_rank,
                                   silence_ms=self.cfg.attribution.exporter_silence_ms)

    def process_element(self, value, ctx):
        raw = bytes(value)
        now = int(time.time() * 1000)
        try:
            header, cols, check = batches.validate_flow_batch(raw, now, self.cfg.max_future_ms, self.rules,
                                                              kafka_ms=ctx.timestamp())
        except batches.InvalidRecord as exc:
            yield self.reject(self.cfg.topics.flows, raw, str(exc))
            return
        letter = batches.dead_letter_rows(self.cfg.topics.flows, raw, check, now)
        rows = None
        if letter is not None:  # invalid rows are never learned nor attributed
            self.dead.inc()
            self.rows_rejected.inc(len(letter.rejected_rows))
            yield DEAD_LETTER, letter.SerializeToString()
            rows = check.valid
        good = cols if rows is None else cols.take(rows)
        self.accepted.inc()
        self.flows_in.inc(len(good))
        lost = self.engine.rejected_records(cols, rows) if rows is not None else []
        self.fleet.note(header.exporter_id, header.window_end_ms, _monotonic_ms())
        event_ms = min(header.window_end_ms, self.fleet.time_ms)
        claims = self.engine.claims(good, header.port_shared_ips)
        yield Row(CLAIMS_KEY, CLAIM_TAG + batches.ownership_update(header, claims, lost), event_ms)
        # Even an empty batch goes on (Attribute drops it): its timestamp, the window end, is
        # what moves the keyed input's watermark when no flows arrive. Idleness alone
        # freezes it at the last flow (every input idle: no advance), and held batches
        # never come due (found by `flowattr reliability`).
        yield Row(header.exporter_id, batches.to_pending(header, cols, self.cfg.region,
                                                         self.engine.first_attempt_ms(header.window_end_ms),
                                                         rows=rows), event_ms)


class ValidatePending(Validator):
    """Pending batches from one topic: the retry topic, or other regions' forwards (inbound)."""

    accepted_metric = "pending_in"

    def __init__(self, cfg: JobConfig, topic: str):
        super().__init__(cfg)
        self.topic = topic

    def process_element(self, value, ctx):
        raw = bytes(value)
        now = int(time.time() * 1000)
        topic = self.topic
        try:
            header, cols, check = batches.validate_pending(raw, now, self.cfg.max_future_ms, self.rules,
                                                           self.cfg.attribution.max_attempts, ctx.timestamp(),
                                                           max_retry_wait_ms(self.cfg.attribution))
        except batches.InvalidRecord as exc:
            yield self.reject(topic, raw, str(exc))
            return
        letter = batches.dead_letter_rows(topic, raw, check, now)
        if letter is not None:
            self.dead.inc()
            yield DEAD_LETTER, letter.SerializeToString()
            if not check.valid.any():
                return
            raw = batches.pending_rows(header, cols, check.valid)
        self.accepted.inc()
        # The attempt's event time, which this job gave it (a timer's or the watermark).
        timestamp = ctx.timestamp()
        yield Row(header.source_exporter_id, raw, NEVER if timestamp is None else timestamp)


class ValidateEvents(Validator):
    """IpChangeEvent -> EVENT_TAG + its event time (8 bytes, EventTime reads it) + the event.
    The event time is bounded by the stream's time (StreamClock.event_time): a few events
    stamped in the future cannot run the watermark ahead. The ip-changes topic has one
    partition, so one instance sees the whole stream, as the engine's clock does."""

    accepted_metric = "ip_change_events_in"

    def open(self, runtime_context):
        super().open(runtime_context)
        self.clock = StreamClock(self.cfg.attribution.event_clock_rank)

    def process_element(self, value, ctx):
        raw = bytes(value)
        try:
            event = batches.validate_event(raw, int(time.time() * 1000), self.cfg.max_future_ms, ctx.timestamp())
        except batches.InvalidRecord as exc:
            yield self.reject(self.cfg.topics.ip_changes, raw, str(exc))
            return
        self.accepted.inc()
        self.clock.observe(event.emit_time_ms,
                           event_key(event.event_id, event.event_time_ms, event.action, event.workload))
        yield EVENT_TAG + self.clock.event_time(event.emit_time_ms).to_bytes(8, "little", signed=True) + raw


class RowEventTime(TimestampAssigner):
    """The event time a validator put in a keyed row (KEYED_ROW)."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        return value[2]


class EventTime(TimestampAssigner):
    """The event time ValidateEvents put in an event's broadcast record."""

    def extract_timestamp(self, value, record_timestamp) -> int:
        return int.from_bytes(value[1:9], "little", signed=True)


class Attribute(KeyedBroadcastProcessFunction):
    """Holds pending batches per exporter until their timer; attributes them with the
    engine (flink_jobs/attribution/engine.py), whose evidence lives in broadcast state
    through flink_jobs/ownership_store.py. Decisions are the engine's; this is wiring."""

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.engine = Engine(self.cfg.attribution, self.cfg.region, self.cfg.region_cidrs)
        self.store = OwnershipStore(self.engine)  # the engine's evidence in broadcast state
        # Values are pickled bytes, which Flink holds and checkpoints as byte[] in bulk:
        # STRING values (latin-1) cost a char-by-char StringValue.writeString per
        # checkpoint (~90 % of the JVM's samples under a backlog), and PRIMITIVE_ARRAY
        # values cost ~0.35 s per put in thread mode (measured on PyFlink 2.0.2).
        self.hold = PendingHold(runtime_context.get_map_state(
            MapStateDescriptor("pending-by-due-time", Types.STRING(), Types.PICKLED_BYTE_ARRAY())))
        g = runtime_context.get_metrics_group()
        self.metrics = {name: g.counter(name) for name in (
            "attributed", "unattributed", "retried", "forwarded", "conflicts", "attempts",
            "ip_change_events_outside_event_cidrs", "ip_change_events_duplicate", "ip_change_events_late",
            "ip_change_events_future")}
        # Why rows were given up, and why rows were sent to retry: one counter per reason.
        self.reason_groups = {"unattributed_": g.add_group("unattributed_reason"),
                              "retried_": g.add_group("retried_reason")}
        self.reason_counters = {}
        # Every instance learns the same evidence (broadcast): one publishes the changelog.
        # (Sharing the keys by crc32, tried in 2058150, left the share of an instance with no
        # exporters stale: it has no timers, so its engine never prunes, and the broadcast
        # context has no watermark in thread mode: 'currentWatermark' is missing on PyFlink
        # 2.0.2's Java context, which failed every broadcast element of 7cb812a.)
        self.publishes_ownership = _subtask_index(runtime_context) == 0
        self.ranges_counted_at = 0.0
        self.ranges_held = SettableCounter(g.counter("broadcast_ranges_held"))
        self.event_time_lag = SettableCounter(g.counter("event_time_lag_ms"))
        self.top_edges = TopEdgeCounters(g)
        self.edge_lateness_ms = edge_lateness_ms(self.cfg)

    def _count_ranges(self) -> None:
        """Recount the ranges of this instance's table copy (and the event-time lag), at
        most every 10 s, on the operator's own thread."""
        if time.monotonic() - self.ranges_counted_at > 10:
            att = self.engine.attributor
            self.ranges_held.set(att.heartbeats.range_count() + att.events.range_count())
            self.ranges_counted_at = time.monotonic()
            if self.engine.watermark_ms > 0:
                self.event_time_lag.set(int(time.time() * 1000) - self.engine.watermark_ms)

    # -- broadcast side: learn ---------------------------------------------------------
    def process_broadcast_element(self, value, ctx):
        state = ctx.get_broadcast_state(OWNERSHIP)
        now, heard = int(time.time() * 1000), _monotonic_ms()
        if not self.store.synced:
            self.store.sync(state, heard)
        raw = bytes(value)
        tag, raw = raw[:1], raw[1:]
        if tag == CLAIM_TAG:
            conflicts = self.store.learn(state, raw, heard)
            if conflicts:
                self.metrics["conflicts"].inc(conflicts)
        elif tag == EVENT_TAG:
            outcome = self.store.apply_event(state, raw[8:])  # after its event time (ValidateEvents)
            for value in outcome.rejected:
                self.metrics["ip_change_events_future"].inc()
                reason = ("event time is ahead of the event stream's time by more than "
                          f"{self.cfg.attribution.event_future_bound_ms} ms")
                yield _routed(routing.DEAD_LETTER, _dead_letter(self.cfg.topics.ip_changes, value, reason))
            if outcome.status in (DUPLICATE, LATE):
                self.metrics[f"ip_change_events_{outcome.status}"].inc()
            if not outcome.inside:
                self.metrics["ip_change_events_outside_event_cidrs"].inc()
        self.store.prune(state)
        changed = self.store.take_changed()
        if changed and self.publishes_ownership:
            for key, value in ownership_changelog.changes(self.engine.attributor, changed, self.cfg.region, now):
                yield _routed(routing.OWNERSHIP, value, key)
        self._count_ranges()

    # -- keyed side: hold, then attribute ---------------------------------------------
    def process_element(self, value, ctx):
        if not self.store.synced:
            self.store.sync(ctx.get_broadcast_state(OWNERSHIP), _monotonic_ms())
        payload = bytes(value[1])
        pending = PendingHold.read(payload)
        if not pending.flow_count:
            return  # an empty batch only carried its timestamp (the watermark) this far
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if PendingHold.is_due(pending.due_ms, watermark):
            # Already due (a forward, or a retry an earlier version sent through Kafka, read
            # after the watermark moved on): attempt now, as a timer would at this watermark;
            # a timer set in the past would wait for the next watermark advance, which may
            # never come.
            self.engine.advance(watermark)
            yield from self._attempt_and_hold(payload, timers, watermark)
            return
        timers.register_event_time_timer(self.hold.hold(payload, pending))

    def on_timer(self, timestamp, ctx):
        if not self.store.synced:
            self.store.sync(ctx.get_broadcast_state(OWNERSHIP), _monotonic_ms())
        # A timer fires when the operator's watermark (min of both inputs) passed it.
        self.engine.advance(timestamp)
        for payload in self.hold.take_due(timestamp):
            yield from self._attempt_and_hold(payload, ctx.timer_service(), timestamp)
        self._count_ranges()

    def _attempt_and_hold(self, payload: bytes, timers, now_ms: int):
        """Attempt a pending batch at `now_ms`; its rows to retry go back into the hold,
        under this same key (the source exporter), until their next slot, or, if the
        watermark has passed that already, until the watermark's next advance: attempted
        again at once, they would burn their slots with no new evidence read in between.
        Until 2026-11-28 they went out to the retry topic and were read back: an encode, a
        produce, a read, a validation and a decode for every retried batch."""
        retry = yield from self._attempt(payload, now_ms)
        if not retry:
            return
        watermark = timers.current_watermark()
        if watermark >= END_OF_INPUT:
            # The inputs have ended (a drained stop, a bounded run): no timer can fire after
            # this one, so the rows go to the retry topic for the next job (found by an
            # adversarial review: watermark + 1 overflows a Java long, and nothing would ever
            # take them from the hold).
            header = pb.AttributedFlowBatch.FromString(retry)
            yield _routed(routing.RETRY, retry, header.source_exporter_id.encode())
            return
        pending = PendingHold.read(retry)
        timers.register_event_time_timer(self.hold.hold(retry, pending, max(pending.due_ms, watermark + 1)))

    def _attempt(self, payload: bytes, now_ms: int):
        """Attempt a pending batch: yields its outputs, returns its rows to retry (a pending
        batch due at their next slot) or None."""
        header, cols = decode_attributed_batch(payload)
        if not len(cols):
            return None
        plan = self.engine.attempt(cols, header.attempts, now_ms)
        key = header.source_exporter_id.encode()  # the outputs' Kafka key
        for region, rows in plan.forward.items():
            self.metrics["forwarded"].inc(len(rows))
            yield _routed(routing.FORWARD, batches.pending_rows(header, cols, rows), key, region)
        if plan.attribution is None:
            return None
        self.metrics["attempts"].inc()
        out = batches.split_attempt(header, plan.local_cols, plan.attribution, self.engine.owner_names(),
                                    plan.attempt, now_ms, plan.next_attempt, plan.next_attempt_ms, self.cfg.region)
        for name, count in out.counts.items():
            if name.startswith(("unattributed_", "retried_")):
                self._reason_counter(name).inc(count)
            elif count:
                self.metrics[name].inc(count)
        for route, payload in ((routing.ATTRIBUTED, out.attributed), (routing.UNATTRIBUTED, out.unattributed)):
            if payload:
                yield _routed(route, payload, key)
        yield from self._edge_partials(header.window_end_ms, out, now_ms)
        return out.retry

    def _reason_counter(self, name: str):
        """The counter of "unattributed_<REASON>" or "retried_<REASON>", made once: a second
        group.counter(name) returns a new counter Flink does not report (a name collision),
        so every count after a reason's first was lost from unattributed_reason until
        2026-11-28."""
        counter = self.reason_counters.get(name)
        if counter is None:
            prefix = "unattributed_" if name.startswith("unattributed_") else "retried_"
            counter = self.reason_counters[name] = self.reason_groups[prefix].counter(name.removeprefix(prefix))
        return counter

    def _edge_partials(self, window_end_ms: int, out: batches.AttemptOutput, now_ms: int):
        """The final rows' edge partials (flink_jobs/edges.py), from the columns in hand: one
        record for all of them, which EdgeMinutes sums per edge and minute. A partial whose
        minute closed before this attempt goes to the dead letter (edges.by_lateness)."""
        on_time, late = edges.by_lateness(edges.decided_partials(window_end_ms, out.columns, out.decided),
                                          now_ms, self.edge_lateness_ms)
        self.top_edges.count(on_time + late)
        if on_time:
            yield _routed(routing.EDGE_PARTIALS, pickle.dumps(on_time, pickle.HIGHEST_PROTOCOL))
        for key, _, counts in late:
            yield _routed(routing.DEAD_LETTER, edges.late_dead_letter(
                key, counts, self.cfg.region, self.cfg.topics.edges, self.edge_lateness_ms, int(time.time() * 1000)))


# (edge key, minute of flow start, counts: a pickled list, flink_jobs/edges.py)
EDGE_PARTIAL = Types.ROW([Types.STRING(), Types.LONG(), Types.PICKLED_BYTE_ARRAY()])
KEYED_RECORD = Types.ROW_NAMED(["record_key", "record_value"], [BYTES, BYTES])  # a Kafka key and value


class TopEdgeCounters:
    """Each edge's flows in a metric labelled client, server, port: the dashboard's "top
    edges" (flink_taskmanager_job_task_operator_edge_client_edge_server_edge_port_flows)."""

    def __init__(self, group):
        self.group = group
        self.labels = edges.TopEdgeLabels()
        self.counters = {}
        self.by_edge = {}  # the key without its minute -> its counter: no JSON parse per partial

    def count(self, partials) -> None:
        for key, _, counts in partials:
            edge = key[key.index(",") + 1:]   # edges.edge_key: "[minute,local,remote,...]"
            counter = self.by_edge.get(edge)
            if counter is None:
                if len(self.by_edge) > 100_000:   # bounded: most edges fall in "(other)"
                    self.by_edge.clear()
                counter = self.by_edge[edge] = self._counter(self.labels.labels(key))
            counter.inc(counts[edges.FLOWS])

    def _counter(self, labels):
        counter = self.counters.get(labels)
        if counter is None:
            client, server, port = labels
            counter = self.counters[labels] = (self.group.add_group("edge_client", client)
                                               .add_group("edge_server", server)
                                               .add_group("edge_port", port).counter("flows"))
        return counter


class EdgeMinutes(KeyedProcessFunction):
    """Keyed by edge key (an edge and its minute of flow start, edges.edge_key): the sum of
    its EDGE_PARTIAL rows, as a one-minute event-time window with allowed lateness: the
    first record when the watermark passes the minute, then one per later partial (the
    minute's total so far) until the minute's end + the lateness, when the state is
    cleared; a partial for a minute already cleared goes to the dead letter. One state read
    and write per partial: PyFlink's window operator runs in Python too, and made about a
    dozen calls into Flink per element (~21 % of the job's Python on the busy fleet)."""

    def __init__(self, cfg: JobConfig):
        self.region, self.topic, self.lateness = cfg.region, cfg.topics.edges, edge_lateness_ms(cfg)

    def open(self, runtime_context):
        # (minute, fired, counts): pickled by Flink as one byte[] value.
        self.state = runtime_context.get_state(ValueStateDescriptor("edge-minute", Types.PICKLED_BYTE_ARRAY()))

    def process_element(self, value, ctx):
        key, minute, counts = value[0], value[1], value[2]
        fire_at = minute + edges.MINUTE_MS - 1  # the window's last millisecond, as Flink's
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        if fire_at + self.lateness <= watermark:  # Flink's rule for a late element
            yield DEAD_LETTER, edges.late_dead_letter(key, counts, self.region, self.topic, self.lateness,
                                                      int(time.time() * 1000))
            return
        held = self.state.value()
        if held is None:
            fired, total = watermark >= fire_at, counts
            if not fired:
                timers.register_event_time_timer(fire_at)
            timers.register_event_time_timer(fire_at + self.lateness)
        else:
            fired, total = held[1], edges.add(held[2], counts)
        self.state.update((minute, fired, total))
        if fired:  # the minute already came out: this is its new total
            yield Row(*edges.record(key, total, self.region, int(time.time() * 1000)))

    def on_timer(self, timestamp, ctx):
        held = self.state.value()
        if held is None:
            return
        minute, fired, total = held
        fire_at = minute + edges.MINUTE_MS - 1
        if not fired and timestamp >= fire_at:
            yield Row(*edges.record(ctx.get_current_key(), total, self.region, int(time.time() * 1000)))
            self.state.update((minute, True, total))
        if timestamp >= fire_at + self.lateness:
            self.state.clear()


def edge_lateness_ms(cfg: JobConfig) -> int:
    """How long after its minute an edge window still takes flows: any flow the job can
    emit (a flow may start up to the retention before its batch, and waits at most the
    hold and every retry), so no flow is late for its window."""
    a = cfg.attribution
    return a.retention_ms + a.hold_ms + a.max_attempts * a.retry_delay_ms + 10 * 60_000


def _monotonic_ms() -> int:
    """When an exporter was heard from, for silence: a monotonic clock, as a step of the
    wall clock would make an exporter look silent (or alive) for as long as the step."""
    return int(time.monotonic() * 1000)


def _subtask_index(runtime_context) -> int:
    """PyFlink 2.0.2 in thread mode: get_index_of_this_subtask() calls a Java method
    Flink 2.0 removed (AttributeError); the index is on the context's TaskInfo."""
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()


class SettableCounter:
    """A gauge-like value reported through a Counter. Python gauges in thread mode are
    called from Flink's metric thread and report nothing (PyFlink 2.0.2), so values that go
    up and down are set from the operator's thread as counter deltas instead."""

    def __init__(self, counter):
        self.counter = counter
        self.value = 0

    def set(self, value: int) -> None:
        if value > self.value:
            self.counter.inc(value - self.value)
        elif value < self.value:
            self.counter.dec(self.value - value)
        self.value = value


def build_pipeline(env, cfg: JobConfig, sources: dict, sinks) -> None:
    """Wire the topology. sources: flows, retry, inbound, events; sinks: a KafkaSinks
    (flink_jobs/kafka_connectors.py, or one with its methods): the split of Attribute's
    routed records in Flink SQL, and the Kafka sinks of each output topic."""
    flows, retry, inbound, events, keyed, ownership = _inputs(env, cfg, sources)
    routed = keyed.connect(ownership).process(Attribute(cfg), output_type=ROUTED).name("attribute") \
        .uid("attribute")
    # The split is Java (SQL filters on the route): a batch leaves Python once; each record
    # keeps its timestamp (the attempt's event time) as its rowtime (flink_jobs/routing.py).
    routes = sinks.routes(routed)

    def route(name: str, region: str = ""):
        (field_a, value_a), (field_b, value_b) = routing.condition(name, region).items()
        return routes.where((col(field_a) == value_a) & (col(field_b) == value_b))

    # Every DataStream operator has a uid, sources and the dead-letter sink too: a
    # savepoint's state maps back to the same operators after an upgrade (`flowattr job
    # stop --savepoint` / `resume`). The split and the keyed sinks are Flink SQL, whose
    # operator ids the planner derives from the topology (README: "Upgrades with savepoints").
    # Retries stay in Attribute's hold; "retry" gets only those of an attempt made once every
    # input has ended (a drained stop: no timer fires after it), for the next job to read.
    for name, topic in (("attributed", cfg.topics.attributed), ("unattributed", cfg.topics.unattributed),
                        ("retry", cfg.topics.retry)):
        sinks.attach_log(route(getattr(routing, name.upper())), topic)
    for region in cfg.other_regions:
        sinks.attach_log(route(routing.FORWARD, region), RegionTopics(region).inbound)
    sinks.attach(route(routing.OWNERSHIP), cfg.topics.ownership)
    partials = sinks.values(route(routing.EDGE_PARTIALS)).flat_map(
        lambda row: [Row(*partial) for partial in pickle.loads(row[0])], output_type=EDGE_PARTIAL) \
        .name("route-edge-partials").uid("route-edge-partials")
    edge_records, late_partials = build_edges(cfg, partials)
    sinks.attach(sinks.table(edge_records), cfg.topics.edges)
    attribute_dead = sinks.values(route(routing.DEAD_LETTER)).map(lambda row: row[0], output_type=BYTES) \
        .name("route-dead-letter").uid("route-dead-letter")
    (flows.get_side_output(DEAD_LETTER).union(retry.get_side_output(DEAD_LETTER),
                                               inbound.get_side_output(DEAD_LETTER),
                                               events.get_side_output(DEAD_LETTER), attribute_dead, late_partials)
     .sink_to(sinks.dead_letter).name("dead-letter-sink").uid("sink-dead-letter"))


def _inputs(env, cfg: JobConfig, sources: dict):
    """The validated inputs, with their event time: (flows, retry, inbound, events: each
    with its dead letters on a side output; the keyed stream of pending batches; the
    ownership broadcast stream of claims and IP-change events)."""
    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
                  .with_idleness(Duration.of_millis(cfg.idleness_ms)).with_timestamp_assigner(RowEventTime()))
    flows = env.from_source(sources["flows"], WatermarkStrategy.no_watermarks(), "flows").uid("source-flows") \
        .process(ValidateFlows(cfg), output_type=KEYED_ROW).name("validate-flows").uid("validate-flows")
    claims = flows.filter(lambda row: row[0] == CLAIMS_KEY).assign_timestamps_and_watermarks(watermarks) \
        .map(lambda row: row[1], output_type=BYTES)
    # One source per pending topic, so a dead letter names the topic its record came from.
    retry, inbound = (env.from_source(sources[name], WatermarkStrategy.no_watermarks(), name).uid(f"source-{name}")
                      .process(ValidatePending(cfg, topic), output_type=KEYED_ROW)
                      .name(f"validate-{name}").uid(f"validate-{name}")
                      for name, topic in (("retry", cfg.topics.retry), ("inbound", cfg.topics.inbound)))
    keyed = (flows.filter(lambda row: row[0] != CLAIMS_KEY).assign_timestamps_and_watermarks(watermarks)
             .union(retry.union(inbound).assign_timestamps_and_watermarks(watermarks))
             .key_by(lambda row: row[0], key_type=Types.STRING()))
    # Each input gets its own watermark, so the union's is the MIN of the two: the event
    # clock (engine.advance on timers) may then assume every IP-change event emitted before
    # the watermark has been read. One generator over the merged stream would let the
    # claims' timestamps carry the watermark past events a lagging consumer has not read.
    event_watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
                        .with_idleness(Duration.of_millis(cfg.event_idleness_ms))
                        .with_timestamp_assigner(EventTime()))
    events = env.from_source(sources["events"], WatermarkStrategy.no_watermarks(), "ip-change-events") \
        .uid("source-events").process(ValidateEvents(cfg), output_type=BYTES).name("validate-events") \
        .uid("validate-events")
    ownership = claims.union(events.assign_timestamps_and_watermarks(event_watermarks)).broadcast(OWNERSHIP)
    return flows, retry, inbound, events, keyed, ownership


def build_edges(cfg: JobConfig, partials):
    """The dependency graph's edges (flink_jobs/edges.py): Attribute's partials of each
    attempt's final rows (EDGE_PARTIAL rows), summed per edge and minute of flow start by
    EdgeMinutes; every record (the first, then one per later partial) is the minute's total
    so far, keyed for a compacted topic. Returns (edge records, dead letters): a partial for
    a minute already past its allowed lateness (a batch delivered hours late) is not
    dropped: it goes to the dead-letter topic with its counts and why."""
    records = (partials.key_by(lambda partial: partial[0], key_type=Types.STRING())
               .process(EdgeMinutes(cfg), output_type=KEYED_RECORD).name("edge-minutes").uid("edge-minutes"))
    return records, records.get_side_output(DEAD_LETTER)


def kafka_sources_and_sinks(cfg: JobConfig, env=None) -> tuple[dict, KafkaSinks]:
    """(the sources by name, the sinks: Kafka's, for cfg's bootstrap and topics)."""
    t = cfg.topics
    group = f"{cfg.group_id}-{cfg.region}"
    props = cfg.kafka_properties
    sources = {"flows": bytes_source(cfg.bootstrap, [t.flows], group + "-flows", props),
               "retry": bytes_source(cfg.bootstrap, [t.retry], group + "-retry", props),
               "inbound": bytes_source(cfg.bootstrap, [t.inbound], group + "-inbound", props),
               "events": bytes_source(cfg.bootstrap, [t.ip_changes], group + "-events", props,
                                     records_are_batches=False)}
    # Dead letters have no key (a malformed record may name no exporter).
    return sources, KafkaSinks(env, cfg.bootstrap, props, bytes_sink(cfg.bootstrap, t.dead_letter, props))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser)
    parser.add_argument("--plan", action="store_true",
                        help="print the job's operator graph as JSON (Flink's execution plan) and exit: paste it "
                        "into https://flink.apache.org/visualizer/ to see it")
    args = parser.parse_args(argv)
    try:
        cfg = load(args.config, {k: v for k, v in vars(args).items() if k not in ("config", "plan")})
    except FlowattrError as exc:  # a bad config: one line naming the key, no traceback
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    env = make_environment(cfg.parallelism, cfg.checkpoint_interval_ms, cfg.checkpoint_dir, cfg.restore_path,
                           cfg.web_ui_port, cfg.state_backend)
    sources, sinks = kafka_sources_and_sinks(cfg, env)
    build_pipeline(env, cfg, sources, sinks)
    if args.plan:
        print(env.get_execution_plan())
        return
    env.execute(f"flowattr-collector-{cfg.region}")


if __name__ == "__main__":
    # Run through the importable module, so functions are pickled by reference and not
    # by value together with globals that hold live Java objects (state descriptors).
    from flink_jobs import attribution_job

    attribution_job.main()
