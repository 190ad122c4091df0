"""`flowattr bench --only latency`: live traffic from a whole simulated fleet, window end
to attributed output.

Every WINDOW_MS, every home-region exporter of the simulated fleet sends one batch for
that window: its flows of one simulated minute, compressed 12x in time so the claims and
the flows that need them stay consistent (an exporter with no flows that minute sends an
empty batch, as real ones do: a missing sequence would leave its window unsettled). A
first version sent one host's batch a second: the other exporters never moved on, no
claim was ever settled and nothing was attributed. A second sent every exporter's batch
each second (60x): 128 batches a second of ~110 flows is more than the job at
parallelism 2 keeps up with (~85 such batches a second, CPU-bound: its cost is per batch
as much as per flow), so the outputs fell behind without end.

A flow's latency is when the reader received its attributed batch minus the batch's
window end; the percentiles are over flows attributed on their first attempt (a retry
comes a minute of event time later by design; the share of flows attributed at once is
reported beside them). Only windows ending WARMUP_EXTRA_S + the hold after the first
output count: before that the job is starting and working off what was sent meanwhile.
Compressing time also compresses an IP's reuse gaps (3-10 s) to 0.25-0.8 s, below the 2 s
minimum the attribution demands, and the 5-minute cycle jumps back to its first minute
every 25 s: some flows come out unattributed or retried that would not at real speed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np

from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.simulate import HOME_REGION, encode_delivery
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, decode_flow_batch, encode_flow_batch
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

WINDOW_MS = 5000              # a live batch's window: 128 batches per 5 s
SIM_WINDOW_MS = 60_000        # the simulator's batch window, compressed into WINDOW_MS
SIM_MINUTES = 5               # simulated minutes, sent in a cycle
BUSY_FACTOR = 0.25            # connection rates x this: ~2-3 k flows a second
WARMUP_EXTRA_S = 30           # after the first output + the hold, before windows count
FIRST_OUTPUT_BOUND_S = 240    # start-up + idleness + hold: no output by then fails
DRAIN_BOUND_S = 120           # after the measured span + hold, for its last windows


@dataclass
class LiveBatch:
    header: pb.FlowBatch      # the simulated batch (its columns as encoded)
    start_rel: np.ndarray     # flow start - window start, simulated ms
    end_rel: np.ndarray


def live_windows(fleet, flows, deliveries, minutes: int) -> list[list[LiveBatch]]:
    """Per simulated minute of the run (the simulator also delivers the leftovers of long
    connections after it), one batch per home-region exporter, empty when it had none."""
    home = [h for h in fleet.hosts if h["region"] == HOME_REGION]
    first = min(d.window_start_ms for d in deliveries)
    by_window: dict[int, dict[str, LiveBatch]] = {}
    for d in deliveries:
        if fleet.hosts[d.host]["region"] != HOME_REGION or d.window_start_ms >= first + minutes * SIM_WINDOW_MS:
            continue
        value = encode_delivery(fleet, flows, d)
        header, cols = pb.FlowBatch.FromString(value), decode_flow_batch(value)[1]
        by_window.setdefault(d.window_start_ms, {})[header.exporter_id] = LiveBatch(
            header, cols["start_ms"] - d.window_start_ms, cols["end_ms"] - d.window_start_ms)
    windows = []
    for start in sorted(by_window):
        batches = by_window[start]
        for h in home:
            if h["name"] not in batches:
                empty = pb.FlowBatch.FromString(encode_flow_batch(pb.FlowBatch(
                    exporter_id=h["name"], host=h["name"], region=h["region"], window_start_ms=start,
                    window_end_ms=start + SIM_WINDOW_MS, part_count=1), FlowColumns.zeros(0)))
                batches[h["name"]] = LiveBatch(empty, np.zeros(0, np.int64), np.zeros(0, np.int64))
        windows.append([batches[h["name"]] for h in home])
    return windows


def restamped(batch: LiveBatch, window_end_ms: int, sequence: int) -> bytes:
    """The batch as if its exporter sent it for the live window ending window_end_ms."""
    msg = pb.FlowBatch()
    msg.CopyFrom(batch.header)
    window_start = window_end_ms - WINDOW_MS
    scale = SIM_WINDOW_MS // WINDOW_MS
    # Floor division keeps a flow that ended at its window's last ms inside the live window.
    msg.start_ms = (window_start + batch.start_rel // scale).astype("<i8").tobytes()
    msg.end_ms = (window_start + batch.end_rel // scale).astype("<i8").tobytes()
    msg.window_start_ms, msg.window_end_ms = window_start, window_end_ms
    msg.sequence = sequence
    return msg.SerializeToString()


class OutputClock:
    """What the reader saw: when the first attributed batch arrived, and per batch its
    window end, latency, flows and attempts; and what the sender sent per window."""

    def __init__(self):
        self.first_output_s: float | None = None
        self.samples: list[tuple[float, float, int, int]] = []
        self.sent: dict[float, int] = {}          # window end (s) -> flows sent
        self.lock = threading.Lock()

    def saw(self, window_end_ms: int, now_s: float, flows: int, attempts: int) -> None:
        with self.lock:
            if self.first_output_s is None:
                self.first_output_s = now_s
            self.samples.append((window_end_ms / 1000, now_s - window_end_ms / 1000, flows, attempts))

    def measured_from_s(self, hold_s: float) -> float | None:
        """Windows ending from then on count (None before the first output)."""
        return None if self.first_output_s is None else self.first_output_s + hold_s + WARMUP_EXTRA_S

    def progress(self, now_s: float) -> str:
        with self.lock:
            if not self.samples:
                return "no output yet"
            newest = max(end for end, *_ in self.samples)
            flows = sum(n for *_, n, _ in self.samples)
        return f"{flows:,} flows out, newest window out ended {now_s - newest:.0f} s ago"

    def out_past(self, window_end_s: float) -> bool:
        """Whether a batch of a window ending at or after window_end_s is out."""
        with self.lock:
            return any(end >= window_end_s for end, *_ in self.samples)

    def first_attempt(self, hold_s: float, until_s: float) -> tuple[np.ndarray, int, int]:
        """Per-flow latencies of the flows attributed on their first attempt in the measured
        windows; those flows; the flows sent in those windows."""
        start = self.measured_from_s(hold_s)
        if start is None:
            return np.zeros(0), 0, 0
        with self.lock:
            kept = [(lat, n) for end, lat, n, attempts in self.samples if start <= end <= until_s and attempts == 1]
            sent = sum(n for end, n in self.sent.items() if start <= end <= until_s)
        lat = np.repeat([k[0] for k in kept], [k[1] for k in kept]) if kept else np.zeros(0)
        return lat, len(lat), sent


def bench_latency(cfg, say) -> dict:
    """p50/p99 from window end to attributed output over cfg.latency_s seconds of live
    windows after the warm-up, in a region of its own (nothing of an earlier run is read)."""
    from flowattr.lab.bench import _dataset, one_region_config
    from flowattr.stack import broker, topics
    from flowattr.stack.local_job import LocalJob

    fleet, flows, deliveries = _dataset(minutes=SIM_MINUTES, busy_factor=BUSY_FACTOR)
    windows = live_windows(fleet, flows, deliveries, SIM_MINUTES)
    rates = [sum(len(b.start_rel) for b in w) for w in windows]
    say(f"latency: {len(windows[0])} exporters, one batch each every {WINDOW_MS / 1000:g} s, "
        f"{min(rates) * 1000 // WINDOW_MS:,}-{max(rates) * 1000 // WINDOW_MS:,} flows a second")
    b = broker.start(cfg.state, cfg.port, progress=say)
    region = f"lat{int(time.time())}"
    try:
        topics.create_topics(b.bootstrap, [region], progress=lambda *_: None)
        job = LocalJob("flink_jobs.attribution_job",
                       ["--config", str(one_region_config(cfg.state / "bench-latency-config.yaml", region)),
                        "--bootstrap", b.bootstrap, "--region", region, "--group-id", region, *NO_NEW_SUBNET_WAIT,
                        "--hold-ms", str(int(cfg.latency_hold_s * 1000)), "--out-of-orderness-ms", "1000",
                        "--idleness-ms", "2000",
                        # No IP-change events in this run: their input is judged idle after
                        # 5 s, not the default 60 s (which held every output back a minute).
                        "--event-idleness-ms", "5000"], cfg.state / "bench-latency-job.log")
        with job:
            clock, until_s = _send_live(b.bootstrap, region, windows, cfg, job, say)
        lat, attributed, sent = clock.first_attempt(cfg.latency_hold_s, until_s)
        if not attributed:
            raise FlowattrError(f"no flow attributed on its first attempt in the measured windows of the latency "
                                f"run; see {job.log_path}")
        p50, p99 = np.percentile(lat, [50, 99])
        say(f"latency: {attributed:,} of {sent:,} flows attributed on their first attempt; window end -> "
            f"attributed output p50 {p50:.2f} s, p99 {p99:.2f} s (hold {cfg.latency_hold_s:.0f} s)")
        return {"latency_p50_s": round(float(p50), 2), "latency_p99_s": round(float(p99), 2),
                "latency_hold_s": cfg.latency_hold_s, "latency_flows": attributed, "latency_flows_sent": sent,
                "latency_first_attempt_pct": round(100 * attributed / sent, 2) if sent else None}
    finally:
        broker.stop(cfg.state)


def _read(bootstrap: str, topic: str, clock: OutputClock, done: threading.Event) -> None:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        while not done.is_set():
            for records in consumer.poll(timeout_ms=500).values():
                now_s = time.time()
                for r in records:
                    m = pb.AttributedFlowBatch.FromString(r.value)
                    clock.saw(m.window_end_ms, now_s, m.flow_count, m.attempts)
    finally:
        consumer.close()


def _send_live(bootstrap: str, region: str, windows: list, cfg, job, say) -> tuple[OutputClock, float]:
    """Send every exporter's batch each window until cfg.latency_s seconds of windows after
    the warm-up are out, and the job has gone a hold and WARMUP_EXTRA_S past them (event time
    moves only while batches arrive). Return what was seen and the last window end counted."""
    from flowattr.stack.kafka_clients import producer

    clock, done, names = OutputClock(), threading.Event(), RegionTopics(region)
    reader = threading.Thread(target=_read, args=(bootstrap, names.attributed, clock, done), daemon=True)
    reader.start()
    p = producer(bootstrap)
    started, sequence, until_s = time.time(), 0, None
    try:
        while until_s is None or not clock.out_past(until_s + cfg.latency_hold_s + WARMUP_EXTRA_S):
            if not job.running():
                raise FlowattrError(f"the latency run's job stopped; see {job.log_path}")
            start = clock.measured_from_s(cfg.latency_hold_s)
            if start is None and time.time() > started + FIRST_OUTPUT_BOUND_S:
                raise FlowattrError(f"no attributed output {FIRST_OUTPUT_BOUND_S} s into the latency run; "
                                    f"see {job.log_path}")
            if until_s is not None and time.time() > until_s + cfg.latency_hold_s + WARMUP_EXTRA_S + DRAIN_BOUND_S:
                raise FlowattrError(f"the latency run's measured windows were not all out {DRAIN_BOUND_S} s after "
                                    f"they were due; see {job.log_path}")
            if start is not None and until_s is None:
                until_s = start + cfg.latency_s
                say(f"latency: first output; measuring the windows that end {cfg.latency_hold_s + WARMUP_EXTRA_S:.0f}"
                    f"-{cfg.latency_hold_s + WARMUP_EXTRA_S + cfg.latency_s:.0f} s after it")
            end_ms = int(time.time() * 1000) // WINDOW_MS * WINDOW_MS
            sequence += 1
            if sequence % 4 == 0:
                say(f"latency: {sequence} windows sent; {clock.progress(end_ms / 1000)}")
            window = windows[sequence % len(windows)]
            for batch in window:
                p.send(names.flows, restamped(batch, end_ms, sequence), key=batch.header.exporter_id.encode(),
                       timestamp_ms=end_ms)
            p.flush()
            with clock.lock:
                clock.sent[end_ms / 1000] = sum(len(b.start_rel) for b in window)
            time.sleep(max(0.0, (end_ms + WINDOW_MS) / 1000 - time.time()))
    finally:
        done.set()
        p.close()
        reader.join(timeout=10)
    return clock, until_s
