"""The collector's operator graph as Flink plans it (the real PyFlink planner, no job run):
which inputs run at which parallelism, because event time depends on it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.flink]


@pytest.fixture(scope="module")
def plan() -> dict:
    run = subprocess.run([sys.executable, "-m", "flink_jobs.attribution_job", "--region", "us-east-1",
                          "--parallelism", "2", "--flows-parallelism", "3", "--plan"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout[run.stdout.index("{"):])


def _parallelism(plan: dict, name: str) -> set[int]:
    found = {node["parallelism"] for node in plan["nodes"] if name in node["contents"]}
    assert found, f"no operator named {name!r} in the plan"
    return found


def test_each_flows_partition_has_its_own_validator_and_watermark(plan):
    # One instance per partition: each instance's event time is one partition's, so the
    # keyed input's watermark is the slowest partition's (a catch-up reading one partition
    # ahead must not run event time past the others').
    assert _parallelism(plan, "validate-flows") == {3}
    assert _parallelism(plan, "Source: flows") == {3}
    # The timestamp and watermark operators between validation and the keyed input as well:
    # at another parallelism they would see several partitions' batches interleaved.
    assert _parallelism(plan, "Timestamps/Watermarks") >= {3}


def test_the_event_input_runs_as_one_instance(plan):
    # A second instance would own no partition of the one-partition topic and hold the
    # broadcast watermark at Long.MIN until its idleness (a minute) passed.
    assert _parallelism(plan, "validate-events") == {1}
    assert _parallelism(plan, "Source: ip-change-events") == {1}


def test_attribute_and_the_outputs_run_at_the_job_parallelism(plan):
    assert _parallelism(plan, "attribute") == {2}
    assert _parallelism(plan, "edge-minutes") == {2}
