"""Attribute's hold and retries (flink_jobs/attribution_job.py), driven without a Flink start:
the real operator's open, process_element and on_timer, with a keyed context whose timer
service fires like Flink's (one timer per key and time; the watermark is set before the
timers at or below it fire, in order, those registered while firing included). Rows to
retry stay in the hold until their slot; every flow gets exactly one outcome; once every
input has ended (watermark Long.MAX) retries go to the retry topic instead, as no timer
can fire after that (found by an adversarial review: watermark + 1 overflowed a Java
long). Flink's own runs of the same code: tests/e2e/test_attribution_job_e2e.py."""

from __future__ import annotations

import heapq

import numpy as np

from flink_jobs import attribution_job, batches, routing
from flink_jobs.job_config import load
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, decode_attributed_batch, ips_to_array
from tests.flowbuild import FakeMapState

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
MIN = 60_000


class Counter:
    def __init__(self):
        self.count = 0

    def inc(self, n=1):
        self.count += n

    def dec(self, n=1):
        self.count -= n


class Group:
    def __init__(self):
        self.counters, self.groups = {}, {}

    def counter(self, name):
        return self.counters.setdefault(name, Counter())

    def add_group(self, name, extra=None):
        return self.groups.setdefault((name, extra), Group())


class KeyedMapState:
    """One MapState per current key, as Flink scopes keyed state."""

    def __init__(self, flink):
        self.flink, self.by_key = flink, {}

    def _map(self):
        return self.by_key.setdefault(self.flink.key, {})

    def get(self, k):
        return self._map().get(k)

    def put(self, k, v):
        self._map()[k] = v

    def remove(self, k):
        self._map().pop(k, None)


class FakeFlink:
    """The runtime context, keyed context and timer service in one."""

    def __init__(self):
        self.key, self.watermark, self.queue, self.timers = None, LONG_MIN, [], set()
        self.metrics, self.hold_state, self.broadcast = Group(), KeyedMapState(self), FakeMapState()
        self.outputs: list[tuple[bytes, pb.AttributedFlowBatch, list[int]]] = []
        self.op = attribution_job.Attribute(load(None, {}))
        self.op.open(self)

    # runtime context
    def get_metrics_group(self):
        return self.metrics

    def get_map_state(self, descriptor):
        return self.hold_state

    def get_index_of_this_subtask(self):
        return 0

    def get_number_of_parallel_subtasks(self):
        return 1

    # keyed context and timer service
    def get_broadcast_state(self, descriptor):
        return self.broadcast

    def timer_service(self):
        return self

    def current_watermark(self):
        return self.watermark

    def get_current_key(self):
        return self.key

    def register_event_time_timer(self, ts):
        assert LONG_MIN <= ts <= LONG_MAX, f"{ts} is no Java long"
        if (ts, self.key) not in self.timers:
            self.timers.add((ts, self.key))
            heapq.heappush(self.queue, (ts, self.key))

    # driving
    def _collect(self, records):
        for record in records:
            route, _, _, value = record
            if route in (routing.ATTRIBUTED, routing.UNATTRIBUTED, routing.RETRY):
                header, cols = decode_attributed_batch(value)
                self.outputs.append((route, header, cols["flow_index"].tolist()))

    def element(self, key: str, payload: bytes):
        self.key = key
        self._collect(self.op.process_element((key, payload, 0), self))

    def advance(self, watermark: int):
        self.watermark = watermark
        while self.queue and self.queue[0][0] <= watermark:
            ts, key = heapq.heappop(self.queue)
            self.timers.discard((ts, key))
            self.key = key
            self._collect(self.op.on_timer(ts, self))

    def outcomes(self) -> dict[int, list[tuple[bytes, int]]]:
        per_flow: dict[int, list[tuple[bytes, int]]] = {}
        for route, header, flows in self.outputs:
            for flow in flows:
                per_flow.setdefault(flow, []).append((route, header.attempts))
        return per_flow

    def held(self) -> int:
        return sum(1 for m in self.hold_state.by_key.values() for k in m if k.startswith("batch:"))


def pending_without_evidence(exporter: str, n: int, window_end: int) -> bytes:
    """n flows to remote IPs no exporter or event ever claims: NO_EVIDENCE at every attempt."""
    cols = FlowColumns.zeros(n)
    cols.workloads = ["", "web"]
    cols.columns["local_ip"][:] = ips_to_array(["10.2.0.1"] * n)
    cols.columns["local_port"][:] = np.arange(n) + 40_000
    cols.columns["local_workload_ref"][:] = 1
    cols.columns["local_attribution"][:] = 1
    cols.columns["remote_ip"][:] = ips_to_array([f"10.1.0.{i + 1}" for i in range(n)])
    cols.columns["remote_port"][:] = 443
    cols.columns["start_ms"][:] = window_end - 30_000
    cols.columns["end_ms"][:] = window_end - 29_000
    header = pb.FlowBatch(exporter_id=exporter, sequence=1, window_start_ms=window_end - MIN, window_end_ms=window_end)
    return batches.to_pending(header, cols, "us-east-1", window_end + MIN)


def test_rows_to_retry_stay_in_the_hold_and_every_flow_gets_one_outcome():
    flink = FakeFlink()
    flink.element("e1", pending_without_evidence("e1", 3, window_end=10 * MIN))
    for minute in range(11, 60):   # a minute of event time at a time, past the 40th slot
        flink.advance(minute * MIN)
    outcomes = flink.outcomes()
    # Slots 1, 2, 4, 8, 16, 32, 40 (the default backoff): six retries, then unattributed,
    # none of them through the retry topic.
    assert outcomes == {i: [(routing.UNATTRIBUTED, 40)] for i in range(3)}
    assert flink.op.metrics["retried"].count == 3 * 6
    assert flink.op.reason_counters["retried_NO_EVIDENCE"].count == 3 * 6
    assert flink.held() == 0 and not flink.queue


def test_a_retry_already_due_waits_for_the_next_watermark_advance_not_attempted_again_at_once():
    flink = FakeFlink()
    flink.element("e1", pending_without_evidence("e1", 2, window_end=10 * MIN))
    flink.advance(11 * MIN)             # the first attempt: retried, due at slot 2 (12 min)
    flink.advance(200 * MIN)            # one jump far past every slot: its timer fires once
    assert flink.op.metrics["attempts"].count == 2   # the first attempt and slot 2, not all seven
    assert flink.held() == 1 and flink.queue == [(200 * MIN + 1, "e1")]
    flink.advance(200 * MIN + 1)
    assert flink.op.metrics["attempts"].count == 3


def test_once_every_input_has_ended_retries_go_to_the_retry_topic_for_the_next_job():
    flink = FakeFlink()
    flink.element("e1", pending_without_evidence("e1", 2, window_end=10 * MIN))
    flink.advance(LONG_MAX)             # a drained stop: the first attempt fires at its end
    assert [(route, header.source_exporter_id, flows) for route, header, flows in flink.outputs] == \
        [(routing.RETRY, "e1", [0, 1])]
    assert flink.held() == 0 and not flink.queue

