"""Reading a job's counters from Flink's Prometheus text (flowattr/stack/flink_metrics.py),
as the reporter writes them: the job name in the label has its '-' replaced by '_'."""

from __future__ import annotations

from flowattr.stack.flink_metrics import counters

LABELS = 'job_name="{job}",operator_name="attribute",subtask_index="{i}",'
OPERATOR = "flink_taskmanager_job_task_operator_"
SCRAPED = "\n".join([
    f"# TYPE {OPERATOR}attributed gauge",
    f"{OPERATOR}attributed{{{LABELS.format(job='flowattr_collector_bench1', i=0)}}} 2503106.0",
    f"{OPERATOR}attributed{{{LABELS.format(job='flowattr_collector_bench1', i=1)}}} 3070491.0",
    f"{OPERATOR}attributed{{{LABELS.format(job='flowattr_collector_other', i=0)}}} 7.0",
    f"{OPERATOR}unattributed{{{LABELS.format(job='flowattr_collector_bench1', i=0)}}} 1.4668E4"])


def test_counters_of_one_job_summed_over_subtasks_by_its_submitted_name():
    got = counters(SCRAPED, "flowattr-collector-bench1", ("attributed", "unattributed", "flows_in"))
    assert got == {"attributed": 2503106 + 3070491, "unattributed": 14668, "flows_in": 0}
