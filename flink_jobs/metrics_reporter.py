"""Flink's Prometheus reporter, as every flowattr JVM enables it (pure: the local job's
environment and the standalone cluster's config both read it). The reporter's jar ships
in the PyFlink wheel's plugins/ directory; each JVM serves GET /metrics on the first
free port of the range (grafana/flowattr.json is the dashboard)."""

PROMETHEUS_REPORTER = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
PROMETHEUS_PORTS = "9249-9259"
FIRST_PORT, LAST_PORT = (int(p) for p in PROMETHEUS_PORTS.split("-"))
