"""The flowattr collector: a PyFlink DataStream job (thread mode) that attributes remote IPs.

    flows.R ──► ValidateFlows ──► pending batches ──┐            ┌─► attributed.R
                  │  └─ claims (heartbeats) ─┐       ├─ key_by ──► Attribute ─┼─► unattributed.R (side)
    inbound.R, retry.R ──► ValidatePending ──┘       │  exporter  (keyed      ├─► retry.R (side)
    ipchanges.R ──► ValidateEvents ──────────┴──► broadcast ──►  broadcast) └─► inbound.<other> (side)
    every validator ──► deadletter.R (side)

Event time is the Kafka record timestamp: window end for batches (producers set it),
next_attempt_ms for pending batches, emit time for IP-change events. A pending batch is
held in keyed state until an event-time timer at its next attempt (window end + hold, then
+ retry delay). Ownership ranges live in broadcast state (keys "hb:<ip hex>" and
"ev:<ip hex>", STRING values holding latin-1 bytes: thread mode cannot match byte-array
keys) mirrored by a plain-Python Attributor that every instance rebuilds after a restore.

Example:
    python -m flink_jobs.attribution_job --bootstrap 127.0.0.1:9092 --region us-east-1 \
        --checkpoint-dir file:///tmp/flowattr-chk
"""

from __future__ import annotations

import argparse
import hashlib
import time

from pyflink.common import Duration, Row, Types, WatermarkStrategy
from pyflink.datastream import KeyedBroadcastProcessFunction, OutputTag, ProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from flink_jobs import batches
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.heartbeats import claims_from_batch
from flink_jobs.attribution.regions import CidrSet, RegionMap
from flink_jobs.environment import make_environment
from flink_jobs.job_config import JobConfig, add_flags, load
from flink_jobs.kafka_connectors import BYTES, bytes_sink, bytes_source
from schemas import flowattr_pb2 as pb
from schemas.columns import decode_attributed_batch, encode_attributed_batch

KEYED_ROW = Types.ROW([Types.STRING(), BYTES])  # (exporter id, pending AttributedFlowBatch)
DEAD_LETTER = OutputTag("dead-letter", BYTES)
UNATTRIBUTED = OutputTag("unattributed", BYTES)
RETRY = OutputTag("retry", BYTES)
OWNERSHIP = MapStateDescriptor("ownership", Types.STRING(), Types.STRING())
# Broadcast records: tag (1 byte) + payload. Claims leave ValidateFlows on its MAIN output
# (key "" marks them) and are split off by a filter: side outputs from Python (thread
# mode) lose the record timestamp, which left the broadcast watermark at Long.MIN and
# stalled every timer whenever no timestamped IP-change events flowed.
CLAIM_TAG, EVENT_TAG = b"C", b"E"
CLAIMS_KEY = ""
# Attribute's output is route-prefixed and split by Route: PyFlink 2.0.2's embedded
# (thread mode) keyed-broadcast operator drops side outputs yielded from on_timer (its
# on_timer_func skips the side-output routing that process_element gets).
TO_ATTRIBUTED, TO_UNATTRIBUTED, TO_RETRY, TO_FORWARD = b"A", b"U", b"R", b"F"
PRUNE_EVERY_MS = 60_000
EVENT_TIME_KEY = "ev-latest"  # broadcast state: the IP-change stream's latest event time
MAX_EVENTS_PER_IP = 64


def forward_tag(region: str) -> OutputTag:
    return OutputTag(f"forward-{region}", BYTES)


def _dead_letter(topic: str, raw: bytes, reason: str) -> bytes:
    return pb.DeadLetter(source_topic=topic, original=raw, reason=reason,
                         detected_at_ms=int(time.time() * 1000)).SerializeToString()


class Validator(ProcessFunction):
    """Shared by the validators: the config, a `dead_lettered` counter and one counter of
    accepted records, and the dead-letter side output with the original bytes."""

    accepted_metric = ""  # set by each subclass

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        group = runtime_context.get_metrics_group()
        self.dead = group.counter("dead_lettered")
        self.accepted = group.counter(self.accepted_metric)

    def reject(self, topic: str, raw: bytes, reason: str):
        self.dead.inc()
        return DEAD_LETTER, _dead_letter(topic, raw, reason)


class ValidateFlows(Validator):
    """FlowBatch -> (exporter, pending batch) and ("", its heartbeat claims)."""

    accepted_metric = "batches_in"

    def open(self, runtime_context):
        super().open(runtime_context)
        self.flows_in = runtime_context.get_metrics_group().counter("flows_in")
        self.event_cidrs = CidrSet(self.cfg.attribution.event_cidrs)  # never learned from heartbeats

    def process_element(self, value, ctx):
        raw = bytes(value)
        try:
            header, cols = batches.validate_flow_batch(raw, int(time.time() * 1000), self.cfg.max_future_ms)
        except batches.InvalidRecord as exc:
            yield self.reject(self.cfg.topics.flows, raw, str(exc))
            return
        self.accepted.inc()
        self.flows_in.inc(len(cols))
        claims = claims_from_batch(cols, self.cfg.attribution.min_reuse_gap_ms,
                                   exclude=self.event_cidrs.contains(cols["local_ip"]))
        if claims:
            yield Row(CLAIMS_KEY, CLAIM_TAG + batches.ownership_update(header, claims))
        pending = batches.to_pending(header, cols, self.cfg.region,
                                     header.window_end_ms + self.cfg.attribution.hold_ms)
        yield Row(header.exporter_id, pending)


class ValidatePending(Validator):
    """Pending batches from the retry topic and other regions' forwards."""

    accepted_metric = "pending_in"

    def process_element(self, value, ctx):
        raw = bytes(value)
        try:
            header, _ = batches.validate_pending(raw, int(time.time() * 1000), self.cfg.max_future_ms)
        except batches.InvalidRecord as exc:
            yield self.reject(f"{self.cfg.topics.retry}|{self.cfg.topics.inbound}", raw, str(exc))
            return
        self.accepted.inc()
        yield Row(header.source_exporter_id, raw)


class ValidateEvents(Validator):
    accepted_metric = "ip_change_events_in"

    def process_element(self, value, ctx):
        raw = bytes(value)
        try:
            event = pb.IpChangeEvent.FromString(raw)
            now_ms = int(time.time() * 1000)
            problem = ("ip is not 16 bytes" if len(event.ip) != 16 else
                       "action is unspecified" if event.action not in (1, 2) else
                       "workload is empty" if not event.workload else
                       "event_time_ms is not positive" if event.event_time_ms <= 0 else
                       "event_time_ms is after emit_time_ms" if event.event_time_ms > event.emit_time_ms else
                       "emit_time_ms is in the future" if event.emit_time_ms > now_ms + self.cfg.max_future_ms
                       else None)
        except Exception as exc:  # protobuf DecodeError
            problem = f"not an IpChangeEvent: {exc}"
        if problem:
            yield self.reject(self.cfg.topics.ip_changes, raw, problem)
            return
        self.accepted.inc()
        yield EVENT_TAG + raw


class Attribute(KeyedBroadcastProcessFunction):
    """Holds pending batches per exporter until their timer; attributes them against the
    broadcast ownership ranges (mirrored in a plain-Python Attributor)."""

    def __init__(self, cfg: JobConfig):
        self.cfg = cfg

    def open(self, runtime_context):
        self.attributor = Attributor(self.cfg.attribution)
        self.regions = RegionMap(self.cfg.region_cidrs)
        self.synced = False  # the mirror is empty after a restore: rebuild on first call
        self.last_prune_ms = 0
        self.watermark_ms = 0
        # Values are pickled bytes, which Flink holds and checkpoints as byte[] in bulk:
        # STRING values (latin-1) cost a char-by-char StringValue.writeString per
        # checkpoint (~90 % of the JVM's samples under a backlog), and PRIMITIVE_ARRAY
        # values cost ~0.35 s per put in thread mode (STACK.md).
        self.pending = runtime_context.get_map_state(
            MapStateDescriptor("pending", Types.STRING(), Types.PICKLED_BYTE_ARRAY()))
        g = runtime_context.get_metrics_group()
        self.metrics = {name: g.counter(name) for name in (
            "attributed", "unattributed", "retried", "forwarded", "conflicts", "attempts",
            "ip_change_events_outside_event_cidrs")}
        self.event_time_saved_ms = -(2**62)
        self.reason_group = g.add_group("unattributed_reason")
        self.ranges_counted_at = 0.0
        self.ranges_held = SettableCounter(g.counter("broadcast_ranges_held"))
        self.event_time_lag = SettableCounter(g.counter("event_time_lag_ms"))

    def _count_ranges(self) -> None:
        """Recount the ranges of this instance's table copy (and the event-time lag), at
        most every 10 s, on the operator's own thread."""
        if time.monotonic() - self.ranges_counted_at > 10:
            self.ranges_held.set(self.attributor.heartbeats.range_count() + self.attributor.events.table.range_count())
            self.ranges_counted_at = time.monotonic()
            if self.watermark_ms:
                self.event_time_lag.set(int(time.time() * 1000) - self.watermark_ms)

    # -- broadcast side: learn ---------------------------------------------------------
    def _sync(self, state) -> None:
        events_by_ip, saved_event_time = [], None
        for key, value in state.items():
            if key.startswith("hb:"):
                self.attributor.heartbeats.restore_ip(bytes.fromhex(key[3:]), value.encode("latin-1"))
            elif key.startswith("ev:"):
                events_by_ip.append(_decode_event_log(value.encode("latin-1")))
            elif key == EVENT_TIME_KEY:
                saved_event_time = int(value)
        for log in events_by_ip:
            for event in sorted(log, key=lambda e: e.emit_time_ms):
                self.attributor.apply_event(event.ip, event.workload, event.action, event.event_time_ms)
        if saved_event_time is not None:  # after the replay, so replayed events do not count as late
            self.attributor.events.observe(saved_event_time)
            self.event_time_saved_ms = saved_event_time
        self.synced = True

    def process_broadcast_element(self, value, ctx):
        state = ctx.get_broadcast_state(OWNERSHIP)
        if not self.synced:
            self._sync(state)
        raw = bytes(value)
        table = self.attributor.heartbeats
        tag, raw = raw[:1], raw[1:]
        if tag == CLAIM_TAG:
            for claim in batches.claims_of_update(raw):
                result = table.learn(claim.ip, claim.workload, claim.start_ms, claim.end_ms)
                if result.conflicts:
                    self.metrics["conflicts"].inc(result.conflicts)
                if not result.ignored:
                    state.put("hb:" + claim.ip.hex(), table.encode_ip(claim.ip).decode("latin-1"))
        elif tag == EVENT_TAG:
            event = pb.IpChangeEvent.FromString(raw)
            if self.attributor.apply_event(event.ip, event.workload, event.action, event.event_time_ms):
                key = "ev:" + event.ip.hex()
                log = _decode_event_log(state.get(key).encode("latin-1")) if state.contains(key) else []
                log = (log + [event])[-MAX_EVENTS_PER_IP:]
                state.put(key, _encode_event_log(log).decode("latin-1"))
            else:  # outside the event CIDRs: only the stream's event time matters (the horizon)
                self.metrics["ip_change_events_outside_event_cidrs"].inc()
            if self.attributor.events.latest_event_ms > self.event_time_saved_ms:
                self.event_time_saved_ms = self.attributor.events.latest_event_ms
                state.put(EVENT_TIME_KEY, str(self.event_time_saved_ms))
        # Prune by event time that has really passed: the latest timer fired (a lower bound
        # of this operator's watermark), never by one element's timestamp, since a single
        # bad timestamp must not expire the whole table. (ctx.current_watermark() raises in
        # thread mode in PyFlink 2.0.2.)
        now = self.watermark_ms
        if now > 0 and now - self.last_prune_ms >= PRUNE_EVERY_MS:
            self.last_prune_ms = now
            for ip in table.prune_changed(now):
                if ip in table.by_ip:
                    state.put("hb:" + ip.hex(), table.encode_ip(ip).decode("latin-1"))
                else:
                    state.remove("hb:" + ip.hex())
            self.attributor.events.table.prune(now)
        self._count_ranges()
        return []

    # -- keyed side: hold, then attribute ---------------------------------------------
    def process_element(self, value, ctx):
        if not self.synced:
            self._sync(ctx.get_broadcast_state(OWNERSHIP))
        payload = bytes(value[1])
        header = pb.AttributedFlowBatch()
        header.ParseFromString(payload)  # header fields only are used here
        digest = hashlib.blake2b(payload, digest_size=6).hexdigest()
        key = f"{header.next_attempt_ms:015d}:{header.source_sequence}:{header.attempts}:{digest}"
        self.pending.put(key, payload)
        ctx.timer_service().register_event_time_timer(header.next_attempt_ms)
        return []

    def on_timer(self, timestamp, ctx):
        if not self.synced:
            self._sync(ctx.get_broadcast_state(OWNERSHIP))
        self.watermark_ms = max(self.watermark_ms, timestamp)
        due = [(k, v) for k, v in self.pending.items() if int(k.split(":", 1)[0]) <= timestamp]
        for key, value in due:
            self.pending.remove(key)
            yield from self._attempt(value, timestamp)
        self._count_ranges()

    def _attempt(self, payload: bytes, now_ms: int):
        header, cols = decode_attributed_batch(payload)
        if not len(cols):
            return
        remote_regions = self.regions.codes_of(cols["remote_ip"])
        for region in self.cfg.other_regions:
            away = remote_regions == self.regions.regions.index(region)
            if away.any():
                out = pb.AttributedFlowBatch()
                out.CopyFrom(header)
                sub = cols.take(away)
                self.metrics["forwarded"].inc(int(away.sum()))
                yield TO_FORWARD + region.encode() + b"\x00" + encode_attributed_batch(out, sub)
                cols = cols.take(~away)
                remote_regions = remote_regions[~away]
        if not len(cols):
            return
        attempt = header.attempts + 1
        self.metrics["attempts"].inc()
        result = self.attributor.attribute(cols, attempt)
        out = batches.split_attempt(header, cols, result, self.attributor.names.names, attempt,
                                    now_ms, self.cfg.attribution.retry_delay_ms, self.cfg.region)
        for name, count in out.counts.items():
            if name.startswith("unattributed_"):
                self.reason_group.counter(name.removeprefix("unattributed_")).inc(count)
            elif count:
                self.metrics[name].inc(count)
        if out.attributed:
            yield TO_ATTRIBUTED + out.attributed
        if out.unattributed:
            yield TO_UNATTRIBUTED + out.unattributed
        if out.retry:
            yield TO_RETRY + out.retry


class Route(ProcessFunction):
    """Splits Attribute's route-prefixed records into the main output (attributed) and the
    unattributed, retry and forward-<region> side outputs."""

    def process_element(self, value, ctx):
        raw = bytes(value)
        route, payload = raw[:1], raw[1:]
        if route == TO_ATTRIBUTED:
            yield payload
        elif route == TO_UNATTRIBUTED:
            yield UNATTRIBUTED, payload
        elif route == TO_RETRY:
            yield RETRY, payload
        elif route == TO_FORWARD:
            region, _, batch = payload.partition(b"\x00")
            yield forward_tag(region.decode()), batch
        else:
            raise ValueError(f"unknown route {route!r}: Attribute and Route disagree")


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


def _encode_event_log(events: list) -> bytes:
    return b"".join(len(raw).to_bytes(4, "little") + raw for raw in (e.SerializeToString() for e in events))


def _decode_event_log(value: bytes) -> list:
    out, pos = [], 0
    while pos < len(value):
        n = int.from_bytes(value[pos:pos + 4], "little")
        out.append(pb.IpChangeEvent.FromString(value[pos + 4:pos + 4 + n]))
        pos += 4 + n
    return out


def build_pipeline(env, cfg: JobConfig, sources: dict, sinks: dict) -> None:
    """Wire the topology. sources: flows, pending, events; sinks: attributed,
    unattributed, retry, dead_letter and forward-<region> (so tests can swap them)."""
    watermarks = (WatermarkStrategy.for_bounded_out_of_orderness(Duration.of_millis(cfg.out_of_orderness_ms))
                  .with_idleness(Duration.of_millis(cfg.idleness_ms)))
    raw_flows = env.from_source(sources["flows"], WatermarkStrategy.no_watermarks(), "flows")
    flows = raw_flows.process(ValidateFlows(cfg), output_type=KEYED_ROW).name("validate-flows").uid("validate-flows")
    raw_pending = env.from_source(sources["pending"], WatermarkStrategy.no_watermarks(), "retry+inbound")
    pending = raw_pending.process(ValidatePending(cfg), output_type=KEYED_ROW).name("validate-pending") \
        .uid("validate-pending")
    raw_events = env.from_source(sources["events"], WatermarkStrategy.no_watermarks(), "ip-change-events")
    events = raw_events.process(ValidateEvents(cfg), output_type=BYTES).name("validate-events").uid("validate-events")

    claims = flows.filter(lambda row: row[0] == CLAIMS_KEY).map(lambda row: row[1], output_type=BYTES)
    ownership = (claims.union(events).assign_timestamps_and_watermarks(watermarks).broadcast(OWNERSHIP))
    keyed = (flows.filter(lambda row: row[0] != CLAIMS_KEY).assign_timestamps_and_watermarks(watermarks)
             .union(pending.assign_timestamps_and_watermarks(watermarks))
             .key_by(lambda row: row[0], key_type=Types.STRING()))
    routed = keyed.connect(ownership).process(Attribute(cfg), output_type=BYTES).name("attribute") \
        .uid("attribute")
    attributed = routed.process(Route(), output_type=BYTES).name("route").uid("route")

    attributed.sink_to(sinks["attributed"]).name("attributed-sink")
    attributed.get_side_output(UNATTRIBUTED).sink_to(sinks["unattributed"]).name("unattributed-sink")
    attributed.get_side_output(RETRY).sink_to(sinks["retry"]).name("retry-sink")
    for region in cfg.other_regions:
        attributed.get_side_output(forward_tag(region)).sink_to(sinks[f"forward-{region}"]) \
            .name(f"forward-{region}-sink")
    (flows.get_side_output(DEAD_LETTER).union(pending.get_side_output(DEAD_LETTER),
                                               events.get_side_output(DEAD_LETTER))
     .sink_to(sinks["dead_letter"]).name("dead-letter-sink"))


def kafka_sources_and_sinks(cfg: JobConfig) -> tuple[dict, dict]:
    t = cfg.topics
    group = f"{cfg.group_id}-{cfg.region}"
    sources = {"flows": bytes_source(cfg.bootstrap, [t.flows], group + "-flows"),
               "pending": bytes_source(cfg.bootstrap, [t.retry, t.inbound], group + "-pending"),
               "events": bytes_source(cfg.bootstrap, [t.ip_changes], group + "-events")}
    sinks = {"attributed": bytes_sink(cfg.bootstrap, t.attributed),
             "unattributed": bytes_sink(cfg.bootstrap, t.unattributed),
             "retry": bytes_sink(cfg.bootstrap, t.retry),
             "dead_letter": bytes_sink(cfg.bootstrap, t.dead_letter)}
    for region in cfg.other_regions:
        sinks[f"forward-{region}"] = bytes_sink(cfg.bootstrap, f"inbound.{region}")
    return sources, sinks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_flags(parser)
    args = parser.parse_args(argv)
    cfg = load(args.config, {k: v for k, v in vars(args).items() if k != "config"})
    env = make_environment(cfg.parallelism, cfg.checkpoint_interval_ms, cfg.checkpoint_dir, cfg.restore_path,
                           cfg.web_ui_port)
    sources, sinks = kafka_sources_and_sinks(cfg)
    build_pipeline(env, cfg, sources, sinks)
    env.execute(f"flowattr-collector-{cfg.region}")


if __name__ == "__main__":
    # Run through the importable module, so functions are pickled by reference and not
    # by value together with globals that hold live Java objects (state descriptors).
    from flink_jobs import attribution_job

    attribution_job.main()
