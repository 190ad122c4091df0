"""Flink's Prometheus reporter, as every flowattr JVM enables it (pure: the local job's
environment and the standalone cluster's config both read it). The reporter's jar ships
in the PyFlink wheel's plugins/ directory; each JVM serves GET /metrics on the first
free port of the range (grafana/flowattr.json is the dashboard)."""

PROMETHEUS_REPORTER = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
PROMETHEUS_PORTS = "9249-9259"
FIRST_PORT, LAST_PORT = (int(p) for p in PROMETHEUS_PORTS.split("-"))
# Labels left out of every series. The job's page was 4.5 MB, rendered anew at each scrape
# (lines of ~700 characters, most of them the task's name: its whole operator chain), and
# serving it once a second took most of the JVM's Java CPU samples during a bench run
# (README, "Benchmarks"). What stays tells series apart: job_name, job_id, task_id,
# operator_id, operator_name, subtask_index, the metric's own labels, and task_attempt_num
# (a digit or two): after a failover the old attempt's series is removed by its labels,
# and without the attempt's number those would be the new attempt's too.
EXCLUDED_LABELS = ("task_name", "task_attempt_id", "tm_id", "host")
PROMETHEUS_SETTINGS = {
    "metrics.reporter.prom.factory.class": PROMETHEUS_REPORTER,
    "metrics.reporter.prom.port": PROMETHEUS_PORTS,
    "metrics.reporter.prom.scope.variables.excludes": ";".join(EXCLUDED_LABELS),
}
