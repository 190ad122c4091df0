"""`flowattr exporter`: the per-host agent loop. Capture (probe) -> batch (batcher) ->
durable spool -> Kafka (publisher). Logs one JSON metrics line a minute (and at exit)."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.batcher import Batcher
from exporter.identity import workload_from_certificate
from exporter.metrics_http import MetricsServer
from exporter.publisher import KafkaSender, Publisher
from exporter.spool import Spool
from schemas.addresses import HOST_LOCAL_CIDRS
from schemas.cidrs import CidrSet
from schemas.errors import FlowattrError
from schemas.kafka_properties import WIRE_COMPRESSION, check_compression, for_kafka_python, kafka_python_codec
from schemas.topics import RegionTopics

log = logging.getLogger("flowattr.exporter")


POLL_MS, FAST_POLL_MS = 1000, 100
# Events per second that switch to fast polls, and below which fast polls end (hysteresis).
# The ring holds ~52k records (exporter/probe.py), so a quiet second (< 10k/s) never fills
# it, and fast polls take ~520k/s. A jump from under 10k/s to over 52k/s within one quiet
# second loses events in that second: counted (events_lost), never silent.
FAST_RATE, QUIET_RATE = 10_000, 5_000


def next_poll_ms(poll_ms: int, delivered: int) -> int:
    """The wait before the next ring read, from the rate the last read saw. Rates, not
    counts: comparing counts (10k per read either way) left rates of 10k-100k/s flipping
    between 1 s and 100 ms reads, and every 1 s read over 52k/s overflowed the ring."""
    rate = delivered * 1000 / poll_ms
    if rate >= FAST_RATE or (poll_ms == FAST_POLL_MS and rate >= QUIET_RATE):
        return FAST_POLL_MS
    return POLL_MS


@dataclass(frozen=True)
class ExporterConfig:
    bootstrap: str                  # Kafka bootstrap servers
    region: str                     # region of this host: batches go to flows.<region>
    exporter_id: str                # stable id of this exporter (default: host name)
    host: str                       # host name
    window_s: float = 60.0          # batch window
    identity_file: Path | None = None   # host mode: PEM certificate naming the workload
    spool_dir: Path = Path("/var/lib/flowattr/spool")
    spool_max_bytes: int = 256 * 1024 * 1024
    local_cidrs: tuple[str, ...] = ()   # export only flows whose local IP is in these (empty: all)
    # Never export flows whose local IP is in these (host-local, non-unique addresses);
    # () exports them too. Applied before local_cidrs.
    host_local_cidrs: tuple[str, ...] = HOST_LOCAL_CIDRS
    duration_s: float = 0.0         # stop after this long (0: run until SIGTERM/SIGINT)
    alive_file: Path = Path("/tmp/flowattr-exporter.alive")
    # Kafka client properties by Kafka's names (security.protocol, sasl.mechanism, ...).
    kafka_properties: tuple[tuple[str, str], ...] = ()
    metrics_port: int = 0           # serve GET /metrics (Prometheus) here; 0: none
    metrics_address: str = "127.0.0.1"


def make_batcher(cfg: ExporterConfig, identity_workload: str = "") -> Batcher:
    """The batcher with the config's filters (separate from run() so it is testable
    without a kernel or a broker)."""
    local_filter = CidrSet(cfg.local_cidrs) if cfg.local_cidrs else None
    return Batcher(cfg.exporter_id, cfg.host, cfg.region, int(cfg.window_s * 1000),
                   identity_workload=identity_workload, local_filter=local_filter,
                   host_local=CidrSet(cfg.host_local_cidrs))


def _kafka_sender(cfg: ExporterConfig):
    """A KafkaSender factory with the config's client properties, checked at once (a
    misspelt property is an error at start, not at the first send a minute later)."""
    from kafka import KafkaProducer
    properties = dict(cfg.kafka_properties)
    check_compression(properties, "exporter")
    settings = for_kafka_python(properties, KafkaProducer.DEFAULT_CONFIG)
    codec = settings.get("compression_type", kafka_python_codec(WIRE_COMPRESSION))
    # kafka-python looks for a codec's library only when its producer starts, at the first
    # send, and a send that raises is retried forever as if the broker were down.
    if codec is not None and not KafkaProducer._COMPRESSORS[codec][0]():
        raise FlowattrError(f"compression.type={codec}: kafka-python finds no library for it; install the Python "
                            f"package it needs (snappy: python-snappy), or use lz4 or none (the default)")
    return lambda bootstrap: KafkaSender(bootstrap, properties=properties)


def _metrics_server(cfg: ExporterConfig) -> MetricsServer | None:
    if not cfg.metrics_port:
        return None
    server = MetricsServer(cfg.metrics_port, {"exporter": cfg.exporter_id, "region": cfg.region}, cfg.metrics_address)
    log.info("metrics for Prometheus: http://%s:%d/metrics", cfg.metrics_address, server.port)
    return server


def _spool_due(cfg: ExporterConfig, batcher: Batcher, spool: Spool, probe) -> None:
    """Spool every window that closed (its grace passed), and say the exporter is alive.
    Before a window is encoded, the IPs the port map holds are declared port-shared (once
    a window: a map scan is a syscall per entry), and the declared set saved."""
    now_ms, grace_ms = int(time.time() * 1000), int(min(2000, cfg.window_s * 200))
    if batcher.windows_due(now_ms, grace_ms):
        _declare_port_shared(batcher, spool, probe)
    due = batcher.flush_due(now_ms, grace_ms=grace_ms)
    if due:
        spool.save_sequence(batcher.sequence)  # before the batches: never reuse a number
    for ts, value in due:
        spool.put(ts, value)
    cfg.alive_file.write_text(str(int(time.time())))


def _declare_port_shared(batcher: Batcher, spool: Spool, probe) -> None:
    """Declare the port map's IPs, then read the ring: a translated socket's close still in
    it when its entry was already gone would declare its IP only in a later batch, after
    a host connection on the same port went out undeclared (helper-33's race). Saved."""
    batcher.declare_port_shared(probe.port_shared_ips())
    probe.poll(0)
    if batcher.port_shared_ips != spool.port_shared_ips():
        spool.save_port_shared_ips(batcher.port_shared_ips)


def _flush_last(batcher: Batcher, spool: Spool, window_s: float, probe) -> None:
    """At a stop: flush every window closed so far and give the sender a moment."""
    _declare_port_shared(batcher, spool, probe)
    last = batcher.flush_due(int(time.time() * 1000) + int(window_s * 1000), grace_ms=0)
    spool.save_sequence(batcher.sequence)  # before the batches: never reuse a number
    for ts, value in last:
        spool.put(ts, value)
    deadline = time.monotonic() + 5
    while len(spool) and time.monotonic() < deadline:
        time.sleep(0.1)


def run(cfg: ExporterConfig, probe_factory=None, sender_factory=None) -> dict:
    from exporter.probe import FlowProbe  # the only bcc import, and only when capturing

    identity = workload_from_certificate(cfg.identity_file) if cfg.identity_file else ""
    batcher = make_batcher(cfg, identity)
    spool = Spool(cfg.spool_dir, cfg.spool_max_bytes)
    batcher.sequence = spool.last_sequence()
    batcher.declare_port_shared(spool.port_shared_ips())
    publisher = Publisher(spool, (sender_factory or _kafka_sender(cfg))(cfg.bootstrap), RegionTopics(cfg.region).flows,
                          cfg.exporter_id)
    events = 0

    def on_records(rows):
        nonlocal events
        events += len(rows)
        batcher.add_records(rows)

    server = _metrics_server(cfg)  # before the probe: a port in use fails with nothing to clean up
    probe = (probe_factory or FlowProbe)(on_records)
    stop = False

    def request_stop(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    started = time.monotonic()
    last_flush = last_metrics = 0.0
    # Sending runs in its own thread: a broker outage (blocking sends, backoff) must never
    # stall capture; batches meanwhile wait in the durable spool.
    sending = threading.Event()
    sending.set()

    def send_loop():
        while sending.is_set():
            if publisher.drain(budget_s=1.0) == 0:
                # Nothing sent: wait for the next batch (or 1 s: a retry after a failure).
                spool.ready.wait(1.0)
                spool.ready.clear()
    sender = threading.Thread(target=send_loop, name="publisher", daemon=True)
    sender.start()

    def metrics() -> dict:
        return {"events": events, **probe.counters(), "batches_spooled_total": batcher.sequence,
                "dropped_host_local": batcher.dropped_host_local,
                "batches_sent": publisher.sent, "spool_batches": len(spool), "spool_bytes": spool.bytes,
                "spool_full_rejections": spool.full_rejections}
    log.info("exporter %s capturing; batches every %.0f s to flows.%s on %s (spool %s)", cfg.exporter_id,
             cfg.window_s, cfg.region, cfg.bootstrap, cfg.spool_dir)
    last_published = 0.0
    poll_ms = POLL_MS
    try:
        while not stop and not (cfg.duration_s and time.monotonic() - started > cfg.duration_s):
            # Quiet: one wake-up a second (the exporter's CPU is mostly per wake-up). Busy:
            # every 100 ms until it calms down.
            poll_ms = next_poll_ms(poll_ms, probe.poll(poll_ms) or 0)
            now = time.monotonic()
            if now - last_flush >= 0.5:
                last_flush = now
                _spool_due(cfg, batcher, spool, probe)
            if server and now - last_published >= 1:
                last_published = now
                server.publish(metrics())
            if now - last_metrics >= 60:
                last_metrics = now
                log.info("metrics %s", json.dumps(metrics()))
        _flush_last(batcher, spool, cfg.window_s, probe)
    finally:
        sending.clear()
        sender.join(timeout=15)
        try:
            final = metrics()  # the probe's counters live in its BPF maps: read them before closing
        finally:
            probe.close()
            if server:
                server.close()
    log.info("metrics %s", json.dumps(final))
    return final
