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
    for name in ("Source: flows", "validate-flows", "validate-retry", "validate-inbound", "Timestamps/Watermarks"):
        assert name in names
    broadcast = inputs["BROADCAST"]
    chains = [" ".join(n["contents"] for n in [b, *_upstream(plan, b)]) for b in broadcast]
    assert len(broadcast) == 2 and sum("validate-events" in c for c in chains) == 1
    assert sum("validate-flows" in c for c in chains) == 1


def test_every_operator_runs_at_the_job_parallelism(plan):
    assert {n["parallelism"] for n in plan["nodes"]} == {3}
    assert _node(plan, "attribute")["parallelism"] == 3
