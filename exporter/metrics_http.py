"""The exporter's metrics for Prometheus: GET /metrics on 127.0.0.1 (or any address given)
serves the latest snapshot in Prometheus' text format. The capture loop publishes a
snapshot about once a second (`MetricsServer.publish`); the HTTP thread never touches
the probe (its counters live in BPF maps the capture thread owns)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from schemas.errors import FlowattrError

PREFIX = "flowattr_exporter_"
# Snapshot key -> (Prometheus name without the prefix, type, help).
METRICS = {
    "events": ("events_total", "counter", "closed-socket events read from the ring buffer"),
    "events_submitted": ("events_submitted_total", "counter", "events the probe submitted to the ring buffer"),
    "events_lost": ("events_lost_total", "counter", "events dropped in the kernel (ring buffer full)"),
    "closes_without_start": ("closes_without_start_total", "counter", "closes of sockets whose start was not seen"),
    "batches_spooled_total": ("batches_spooled_total", "counter", "batches written to the durable spool"),
    "batches_sent": ("batches_sent_total", "counter", "batches acknowledged by Kafka"),
    "spool_batches": ("spool_batches", "gauge", "batches waiting in the spool"),
    "spool_bytes": ("spool_bytes", "gauge", "bytes waiting in the spool"),
    "spool_full_rejections": ("spool_full_rejections_total", "counter", "batches refused by a full spool"),
    "dropped_host_local": ("dropped_host_local_total", "counter", "flows of host-local addresses not exported"),
}


def render(snapshot: dict, labels: dict[str, str]) -> str:
    """Prometheus text format of a metrics snapshot (unknown keys are left out)."""
    label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    lines = []
    for key, (name, kind, text) in METRICS.items():
        if key in snapshot:
            lines += [f"# HELP {PREFIX}{name} {text}", f"# TYPE {PREFIX}{name} {kind}",
                      f"{PREFIX}{name}{{{label_text}}} {int(snapshot[key])}"]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsServer:
    def __init__(self, port: int, labels: dict[str, str], address: str = "127.0.0.1"):
        self.labels = labels
        self._text = render({}, labels)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics")
                    return
                body = server._text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):  # scrapes every 15 s would flood the exporter's log
                pass

        try:
            self.httpd = ThreadingHTTPServer((address, port), Handler)
        except OSError as exc:
            raise FlowattrError(f"cannot serve metrics on {address}:{port} ({exc.strerror}); "
                                "pick another --metrics-port, or 0 to serve none") from exc
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="metrics-http", daemon=True)
        self.thread.start()

    def publish(self, snapshot: dict) -> None:
        self._text = render(snapshot, self.labels)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
