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


def test_a_groups_counters_by_name_summed_over_subtasks():
    from flowattr.stack.flink_metrics import counters_by_suffix
    labels0 = LABELS.format(job="flowattr_collector_bench1", i=0)
    labels1 = LABELS.format(job="flowattr_collector_bench1", i=1)
    text = "\n".join([SCRAPED,
                      f"{OPERATOR}retried_reason_EVIDENCE_UNSETTLED{{{labels0}}} 40.0",
                      f"{OPERATOR}retried_reason_EVIDENCE_UNSETTLED{{{labels1}}} 2.0",
                      f"{OPERATOR}retried_reason_NO_EVIDENCE{{{labels1}}} 5.0",
                      f"{OPERATOR}retried_reason_NO_EVIDENCE{{{LABELS.format(job='other', i=0)}}} 9.0"])
    assert counters_by_suffix(text, "flowattr-collector-bench1", "retried_reason_") == \
        {"EVIDENCE_UNSETTLED": 42, "NO_EVIDENCE": 5}
    assert counters_by_suffix(SCRAPED, "flowattr-collector-bench1", "retried_reason_") == {}


def test_a_gauge_reading_nan_beside_the_counters_is_not_converted():
    """The job's operators also serve gauges that read NaN (a refactor that converted every
    line of the job failed the cluster test with 'cannot convert float NaN to integer')."""
    from flowattr.stack.flink_metrics import counters_by_suffix
    labels = LABELS.format(job="flowattr_collector_bench1", i=0)
    text = "\n".join([SCRAPED, f"{OPERATOR}currentInputWatermarkLag{{{labels}}} NaN"])
    assert counters(text, "flowattr-collector-bench1", ("unattributed",)) == {"unattributed": 14668}
    assert counters_by_suffix(text, "flowattr-collector-bench1", "unattributed") == {"": 14668}
