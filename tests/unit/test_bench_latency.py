"""The latency run's live batches: a simulated minute compressed into a 5-second window,
and which outputs count after the warm-up."""

from __future__ import annotations

import numpy as np

from flowattr.lab.bench_latency import WARMUP_EXTRA_S, WINDOW_MS, LiveBatch, OutputClock, live_windows, restamped
from flowattr.lab.simulate import HOME_REGION
from schemas import flowattr_pb2 as pb
from schemas.columns import decode_flow_batch


def test_a_simulated_minute_is_compressed_12x_into_the_5_s_live_window():
    assert WINDOW_MS == 5000
    header = pb.FlowBatch(exporter_id="host-1", window_start_ms=1_000, window_end_ms=61_000, sequence=7)
    batch = LiveBatch(header, start_rel=np.array([0, 59_999, -120_000]), end_rel=np.array([100, 59_999, 30_000]))
    msg = pb.FlowBatch.FromString(restamped(batch, window_end_ms=10_000, sequence=42))
    assert (msg.window_start_ms, msg.window_end_ms, msg.sequence, msg.exporter_id) == (5_000, 10_000, 42, "host-1")
    # 0 -> 5000; 59,999 // 12 = 4999; -120,000 // 12 = -10,000 (a long flow began 10 s before)
    assert np.frombuffer(msg.start_ms, "<i8").tolist() == [5_000, 9_999, -5_000]
    # 100 // 12 = 8; 30,000 // 12 = 2,500
    assert np.frombuffer(msg.end_ms, "<i8").tolist() == [5_008, 9_999, 7_500]
    assert header.window_end_ms == 61_000   # the template is not changed


def test_outputs_count_per_flow_on_their_first_attempt_from_the_warm_up_on():
    clock = OutputClock()
    assert clock.measured_from_s(hold_s=5) is None and clock.first_attempt(5, until_s=1e12)[1:] == (0, 0)
    clock.saw(window_end_ms=100_000, now_s=108.0, flows=50, attempts=1)   # the first output: warm-up
    start = 108.0 + 5 + WARMUP_EXTRA_S
    clock.sent = {start - 1: 70, start: 10, start + 1: 20, start + 30: 99}
    clock.saw(int(start * 1000) - 1000, now_s=start + 5, flows=60, attempts=1)     # before the start
    clock.saw(int(start * 1000), now_s=start + 6.5, flows=3, attempts=1)           # counts, 3 flows
    clock.saw(int(start * 1000), now_s=start + 70, flows=4, attempts=2)            # a retry: not counted
    clock.saw(int(start * 1000) + 1000, now_s=start + 1 + 7.5, flows=1, attempts=1)
    clock.saw(int(start * 1000) + 30_000, now_s=start + 36, flows=9, attempts=1)   # after until_s
    assert clock.measured_from_s(hold_s=5) == start
    latencies, attributed, sent = clock.first_attempt(5, until_s=start + 20)
    assert latencies.tolist() == [6.5, 6.5, 6.5, 7.5] and (attributed, sent) == (4, 30)
    assert clock.out_past(start + 30) and not clock.out_past(start + 31)


def test_every_home_exporter_sends_in_every_window_of_the_run_and_its_flows_end_inside_it():
    from flowattr.lab.bench import _dataset
    fleet, flows, deliveries = _dataset(minutes=3, busy_factor=0.25)
    windows = live_windows(fleet, flows, deliveries, minutes=3)
    home = [h["name"] for h in fleet.hosts if h["region"] == HOME_REGION]
    first = min(d.window_start_ms for d in deliveries)
    # The run's three minutes only (the simulator also delivers later leftovers).
    assert [w[0].header.window_start_ms for w in windows] == [first, first + 60_000, first + 120_000]
    sent = 0
    for window in windows:
        assert [b.header.exporter_id for b in window] == home   # an empty batch for a quiet exporter
        for b in window:
            assert ((0 <= b.end_rel) & (b.end_rel < 60_000)).all() and (b.start_rel <= b.end_rel).all()
            # The columns are the encoded batch's own.
            assert np.array_equal(decode_flow_batch(b.header.SerializeToString())[1]["end_ms"],
                                  b.end_rel + b.header.window_start_ms)
            sent += len(b.end_rel)
    home_ids = {i for i, h in enumerate(fleet.hosts) if h["region"] == HOME_REGION}
    assert sent == sum(len(d.rows) for d in deliveries if d.host in home_ids and d.window_start_ms < first + 180_000)


def test_a_restamped_batch_passes_the_job_s_row_checks():
    from flowattr.lab.bench import _dataset
    fleet, flows, deliveries = _dataset(minutes=3, busy_factor=0.25)
    batch = max(live_windows(fleet, flows, deliveries, minutes=3)[1], key=lambda b: len(b.end_rel))
    from flink_jobs.batches import validate_flow_batch
    end = 1_800_000_001_000
    header, cols, check = validate_flow_batch(restamped(batch, window_end_ms=end, sequence=5), now_ms=end,
                                              max_future_ms=60_000, kafka_ms=end)
    assert len(cols["end_ms"]) > 0 and check.valid.all(), check.summary()
    assert (cols["end_ms"] >= end - WINDOW_MS).all() and (cols["end_ms"] < end).all()
