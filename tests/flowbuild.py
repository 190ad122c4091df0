"""Hand-made flow batches, one-line outcomes and a fake broadcast state for the timeline
tests of the engine (unit: scope_and_settledness, events_adversary, attribution_attacks;
component: ownership_store)."""

from __future__ import annotations

from flink_jobs.attribution.attribute import ATTRIBUTED
from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.engine import Engine
from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, ips_to_array

REGIONS = {"10.0.0.0/12": "us-east-1", "10.16.0.0/12": "eu-west-1"}


class FakeMapState(dict):
    """Flink's broadcast MapState as flink_jobs/ownership_store.py uses it
    (put_all/get/contains/remove/items)."""

    def put(self, key, value):
        self[key] = value

    def put_all(self, values):
        self.update(values)

    def contains(self, key):
        return key in self

    def remove(self, key):
        self.pop(key, None)


def batch(rows) -> FlowColumns:
    """rows: (local_ip, local_port, workload, attribution, remote_ip, remote_port, start, end)."""
    cols = FlowColumns.zeros(len(rows))
    names = sorted({r[2] for r in rows if r[2]})
    cols.workloads = [""] + names
    cols.columns["local_ip"][:] = ips_to_array([r[0] for r in rows])
    cols.columns["local_port"][:] = [r[1] for r in rows]
    cols.columns["local_workload_ref"][:] = [cols.workloads.index(r[2]) for r in rows]
    cols.columns["local_attribution"][:] = [r[3] for r in rows]
    cols.columns["remote_ip"][:] = ips_to_array([r[4] for r in rows])
    cols.columns["remote_port"][:] = [r[5] for r in rows]
    cols.columns["start_ms"][:] = [r[6] for r in rows]
    cols.columns["end_ms"][:] = [r[7] for r in rows]
    return cols


def outcome(engine: Engine, cols: FlowColumns, attempts_made: int = 0) -> list[tuple[int, str]]:
    """Per flow (outcome code, owner name or reason name without its prefix)."""
    plan = engine.attempt(cols, attempts_made, now_ms=0)
    result = plan.attribution
    names = engine.owner_names()
    return [(int(o), names[w] if w >= 0 else pb.UnattributedReason.Name(int(r)).removeprefix("UNATTRIBUTED_REASON_"))
            for o, w, r in zip(result.outcome, result.owner, result.reason, strict=True)]


def learn(engine: Engine, exporter: str, sequence: int, window_start: int, cols: FlowColumns,
          shared_ips: bytes = b"") -> None:
    """One minute-long batch of `exporter` arrives (shared_ips: its header's port_shared_ips)."""
    engine.learn_batch(exporter, sequence, window_start, window_start + 60_000, engine.claims(cols, shared_ips))


def flows_to_lb(starts: list[int], lb: str = "10.250.0.5") -> FlowColumns:
    """Flows from 10.0.0.1 (web) to a load balancer, starting at `starts`, 500 ms each."""
    cols = FlowColumns.zeros(len(starts))
    cols.workloads = ["", "web"]
    cols.columns["local_ip"][:] = ips_to_array(["10.0.0.1"] * len(starts))
    cols.columns["remote_ip"][:] = ips_to_array([lb] * len(starts))
    cols.columns["start_ms"][:] = starts
    cols.columns["end_ms"][:] = [s + 500 for s in starts]
    cols.columns["local_workload_ref"][:] = 1
    cols.columns["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
    return cols


def owners_at(att: Attributor, starts: list[int]) -> list[str | None]:
    """The owner each flow to the load balancer gets on a first attempt, None if not attributed."""
    result = att.attribute(flows_to_lb(starts), attempt=1)
    names = att.owner_names(result.owner)
    return [names[i] if result.outcome[i] == ATTRIBUTED else None for i in range(len(starts))]
