"""The collector's operator graph as Flink plans it (`--plan`: the real PyFlink planner, no
job run): what Attribute reads, and at which parallelism."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.flink]


@pytest.fixture(scope="module")
def plan() -> dict:
    run = subprocess.run([sys.executable, "-m", "flink_jobs.attribution_job", "--region", "us-east-1",
                          "--parallelism", "3", "--plan"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout[run.stdout.index("{"):])


def _node(plan: dict, name: str) -> dict:
    found = [node for node in plan["nodes"] if node["contents"].startswith(name)]
    assert len(found) == 1, f"{len(found)} operators named {name!r} in the plan"
    return found[0]


def _upstream(plan: dict, node: dict) -> list[dict]:
    """Every operator the node reads from, directly or not."""
    by_id = {n["id"]: n for n in plan["nodes"]}
    seen, todo = {}, [p["id"] for p in node.get("predecessors", [])]
    while todo:
        n = by_id[todo.pop()]
        if n["id"] not in seen:
            seen[n["id"]] = n
            todo += [p["id"] for p in n.get("predecessors", [])]
    return list(seen.values())


def _inputs_of_attribute(plan: dict) -> dict[str, list[dict]]:
    """attribute's inputs by how they ship: the keyed (HASH) one, the BROADCAST ones."""
    attribute = _node(plan, "attribute")
    by_id = {n["id"]: n for n in plan["nodes"]}
    out: dict[str, list[dict]] = {}
    for p in attribute["predecessors"]:
        out.setdefault(p["ship_strategy"], []).append(by_id[p["id"]])
    return out


def test_attribute_reads_the_keyed_batches_and_broadcasts_the_claims_and_events(plan):
    inputs = _inputs_of_attribute(plan)
    (keyed,) = inputs["HASH"]
    names = " ".join(n["contents"] for n in [keyed, *_upstream(plan, keyed)])
    for name in ("Source: flows", "validate-flows", "validate-retry", "validate-inbound"):
        assert name in names
    broadcast = inputs["BROADCAST"]
    chains = [" ".join(n["contents"] for n in [b, *_upstream(plan, b)]) for b in broadcast]
    assert len(broadcast) == 2 and sum("validate-events" in c for c in chains) == 1
    assert sum("validate-flows" in c for c in chains) == 1


def test_the_flows_watermark_is_the_sources_per_partition_one(plan):
    """No watermark generator between the flows (or pending) sources and attribute: one
    there would replace the sources' per-partition watermarks with one over every
    partition an instance reads, which ran ahead of partitions not read yet."""
    inputs = _inputs_of_attribute(plan)
    (keyed,) = inputs["HASH"]
    claims = next(b for b in inputs["BROADCAST"] if "validate-flows" in
                  " ".join(n["contents"] for n in _upstream(plan, b)))
    for node in (keyed, claims):
        assert not [n["contents"] for n in [node, *_upstream(plan, node)] if "Timestamps/Watermarks" in n["contents"]]


def test_the_event_input_runs_as_one_instance_and_everything_else_at_the_job_parallelism(plan):
    """The ip-changes topic has one partition: a second instance would own none and hold
    the broadcast watermark at Long.MIN until its event_idleness_ms passed, at every start."""
    events = _node(plan, "validate-events")
    event_path = {events["id"]} | {n["id"] for n in _upstream(plan, events)}
    event_path |= {n["id"] for n in plan["nodes"] if events["id"] in {u["id"] for u in _upstream(plan, n)}
                   and n["contents"] in ("Extract-Timestamp", "Timestamps/Watermarks", "Remove-Timestamp")}
    assert {n["parallelism"] for n in plan["nodes"] if n["id"] in event_path} == {1}
    assert len(event_path) == 5   # source, validate, and the three of assign_timestamps_and_watermarks
    assert {n["parallelism"] for n in plan["nodes"] if n["id"] not in event_path} == {3}
    assert _node(plan, "attribute")["parallelism"] == 3
