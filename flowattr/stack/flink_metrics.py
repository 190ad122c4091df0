"""A running job's own counters, read from Flink's Prometheus reporter (each JVM serves
GET /metrics on a port of flink_jobs/metrics_reporter.py's range). Cheap to poll: the
benchmark counts outcomes this way instead of decoding the output topics, so the
instrument does not compete with what it measures."""

from __future__ import annotations

import re
import urllib.request

from flink_jobs.metrics_reporter import FIRST_PORT, LAST_PORT

OPERATOR = "flink_taskmanager_job_task_operator_"
_LINE = re.compile(r'^(\w+)\{([^}]*)\} (\S+)$')


def scrape(port: int) -> str:
    """The endpoint's text ('' when nothing answers there)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
            return resp.read().decode()
    except OSError:
        return ""


def job_label(job_name: str) -> str:
    """The job_name label the reporter writes: Flink's Prometheus reporter replaces every
    character outside [A-Za-z0-9_:] with "_" ("flowattr-collector-R" is labelled
    "flowattr_collector_R"). Matching the raw name found nothing, and the first complete
    bench run waited out its bound on a job that had finished in minutes."""
    return f'job_name="{re.sub(r"[^A-Za-z0-9_:]", "_", job_name)}"'


def _operator_counters(text: str, job_name: str):
    """(name after the operator prefix, value text) of every operator metric line of the job:
    converted by the callers, for the names they want (gauges may read NaN)."""
    label = job_label(job_name)
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m.group(1).startswith(OPERATOR) and label in m.group(2):
            yield m.group(1).removeprefix(OPERATOR), m.group(3)


def counters(text: str, job_name: str, names: tuple[str, ...]) -> dict[str, int]:
    """Operator counters `names` of job `job_name`, summed over subtasks and operators."""
    out = dict.fromkeys(names, 0)
    for name, value in _operator_counters(text, job_name):
        if name in out:
            out[name] += int(float(value))
    return out


def counters_by_suffix(text: str, job_name: str, prefix: str) -> dict[str, int]:
    """The counters of a group (`prefix`, e.g. "retried_reason_"), by the name after it,
    summed over subtasks and operators."""
    out: dict[str, int] = {}
    for name, value in _operator_counters(text, job_name):
        if name.startswith(prefix):
            member = name.removeprefix(prefix)
            out[member] = out.get(member, 0) + int(float(value))
    return out


def job_port(job_name: str) -> int | None:
    """The port of the range whose JVM reports this job (None: not yet)."""
    for port in range(FIRST_PORT, LAST_PORT + 1):
        if job_label(job_name) in scrape(port):
            return port
    return None
