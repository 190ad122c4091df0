"""`flowattr bench`: how fast, measured on this machine, printed and saved as JSON.

1. limit: the attribution core over pre-generated batches in memory (decode, learn the
   batch's heartbeats, attribute its flows), no I/O: the most this code can do per core.
2. e2e: N flows pre-loaded into the flows topic of the embedded broker, then the job;
   flows/s from the first flow the job validated to 99 % of the flows with an outcome (start-up separate).
3. latency (bench_latency.py): a whole simulated fleet sending live 5-second batches,
   hold shortened to --latency-hold-s; p50/p99 from window end to the consumer receiving
   the attributed batch, after a warm-up.
4. state: bytes per ownership range as held in the job's broadcast state (key + value),
   and the total for 1 million IPs.
5. growth: the limit again after preloading 10 k, 1 M and 10 M other IPs; RSS per IP.
   growth_e2e (bench_growth.py): the e2e run of a smaller fleet after the job has learned
   10 k, 1 M and 10 M other IPs; the job's RSS per IP.
6. exporter: CPU of the real exporter at ~1,000 connections/s between namespace hosts,
   beside the traffic generator's own CPU (root and eBPF only; otherwise reported as null).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from flink_jobs.attribution.attributor import Attributor
from flowattr.lab import NO_NEW_SUBNET_WAIT
from flowattr.lab.bench_growth import GROWTH_E2E_IPS, bench_growth_e2e, tree_cpu_s, tree_peak_rss_mib
from flowattr.lab.bench_latency import bench_latency
from flowattr.lab.evaluate import default_config
from flowattr.lab.simulate import (
    FleetScenario,
    batch_flows,
    build_fleet,
    encode_delivery,
    simulate_flows,
)
from schemas.columns import decode_flow_batch
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics


@dataclass(frozen=True)
class BenchConfig:
    state: Path                 # state dir of the embedded stack
    port: int                   # broker port
    e2e_flows: int              # flows pre-loaded for the end-to-end run
    busy_factor: float          # connection rates x this in the throughput runs (batch size)
    parallelism: int            # job parallelism
    latency_s: float            # seconds of live traffic for the latency run
    latency_hold_s: float       # hold used in the latency run
    exporter_s: float           # seconds of 1k conn/s traffic for the exporter run
    out: Path                   # results JSON
    e2e_bound_s: float = 900    # an end-to-end run not complete by then fails
    repeat: int = 3             # throughput runs (limit, e2e) per figure: median, min, max
    growth_e2e_flows: int = 3_000_000   # the fleet's flows in each growth_e2e run (a smaller fleet)
    growth_e2e_ips: tuple[int, ...] = GROWTH_E2E_IPS   # IPs the job learns first, one run each


def _machine() -> dict:
    mem_kb = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal")))
    return {"cores": os.cpu_count(), "memory_gib": round(mem_kb / 2**20, 1), "kernel": platform.release(),
            "python": platform.python_version()}


def _dataset(minutes: int = 30, seed: int = 7, busy_factor: float = 1.0):
    sc = FleetScenario(seed=seed, minutes=minutes)
    # Throughput is measured on well-formed input: corrupt rows and lying events are the
    # evaluation's attacks (a corrupt row fails the whole batch's decode here).
    sc = replace(sc, conn_rate_per_instance=sc.conn_rate_per_instance * busy_factor,
                 gateway_conn_rate=sc.gateway_conn_rate * busy_factor, bad_row_fraction=0.0,
                 empty_dictionary_batches=0, future_events=0)
    fleet = build_fleet(sc)
    flows = simulate_flows(fleet)
    deliveries = [d for d in batch_flows(fleet, flows) if not d.lost]
    return fleet, flows, deliveries


# The simulated fleet at its evaluation rates makes ~220 flows per host-minute batch; a
# fleet handling millions of flows/s sends batches of thousands (5 M flows/s over 10k hosts
# is 30k flows per host-minute). The throughput runs use busy hosts (rates x busy_factor),
# sized by how many flows they need (~0.75 M flows per simulated minute at x20).
FLOWS_PER_MINUTE_PER_BUSY = 36_000


@dataclass
class ThroughputData:
    fleet: object
    flows: object
    deliveries: list
    values: list[bytes]   # encoded FlowBatch per delivery, in arrival order

    @property
    def flow_count(self) -> int:
        return sum(len(d.rows) for d in self.deliveries)

    @property
    def valid_flow_count(self) -> int:
        """Rows the simulator corrupted are dead-lettered: every VALID flow gets an outcome."""
        return sum(int(self.flows.valid[d.rows].sum()) for d in self.deliveries)


def throughput_data(flows_wanted: int, busy_factor: float, say) -> ThroughputData:
    minutes = max(3, -(-flows_wanted // int(FLOWS_PER_MINUTE_PER_BUSY * busy_factor)))
    t0 = time.perf_counter()
    while True:
        say(f"simulating a busy fleet: {minutes} minutes at {busy_factor:g}x connection rates "
            f"(at least {flows_wanted:,} flows wanted) ...")
        fleet, flows, deliveries = _dataset(minutes=minutes, busy_factor=busy_factor)
        count = sum(len(d.rows) for d in deliveries)
        if count >= flows_wanted:
            break
        minutes = int(minutes * flows_wanted / max(count, 1)) + 1  # the first minutes are sparser
    values = [encode_delivery(fleet, flows, d) for d in deliveries]
    data = ThroughputData(fleet, flows, deliveries, values)
    say(f"  {data.flow_count:,} flows in {len(values):,} batches ({data.flow_count / len(values):,.0f} flows and "
        f"{sum(map(len, values)) / len(values) / 1024:,.0f} KiB per batch), {time.perf_counter() - t0:.0f} s")
    return data


def _limit_pass(att: Attributor, values: list[bytes]) -> float:
    """The job's per-batch work over every batch (decode, learn heartbeats, attribute);
    the seconds it took."""
    t0 = time.perf_counter()
    for value in values:
        _, cols = decode_flow_batch(value)
        att.learn_claims(att.claims(cols))
        att.attribute(cols, attempt=1)
    return time.perf_counter() - t0


def bench_limit(data: ThroughputData, say) -> dict:
    n = data.flow_count
    seconds = _limit_pass(Attributor(default_config()), data.values)
    say(f"limit: {n:,} flows in {len(data.values):,} batches, {seconds:.2f} s -> {n / seconds:,.0f} flows/s (1 core)")
    return {"limit_flows_per_s": round(n / seconds), "limit_flows": n, "limit_seconds": round(seconds, 2),
            "flows_per_batch": round(n / len(data.values))} | bench_decisions(data, say)


def bench_decisions(data: ThroughputData, say) -> dict:
    """The engine alone making every decision the job makes on the same fleet, as
    `flowattr evaluate` drives it (flowattr/lab/replay.py): each batch learned into the
    ledger, held, attempted, retried on the schedule, forwarded between the regions'
    engines. No decode, encode or Flink; 1 core. The limit above skips the ledger, the
    hold and the retries (every flow attempted once, at once), so this is the job's own
    work in process, and the e2e run's share of it says what Flink and Kafka cost."""
    from flink_jobs.job_config import load
    from flowattr.lab.replay import replay

    cfg = load(None, {})
    # The same settings as the e2e run's job (NO_NEW_SUBNET_WAIT): with the 15-min wait, every
    # subnet of a fleet younger than that is new, and most flows would be retried until it
    # passed (a 5-minute fleet replayed at ~97 k flows/s instead of 203-269 k): not the job's work.
    attribution = replace(cfg.attribution, new_subnet_ms=0)
    say(f"limit, every decision: replaying {data.flow_count:,} flows through the engine ...")
    t0 = time.perf_counter()
    result = replay(data.fleet, data.flows, data.deliveries, attribution, dict(cfg.region_cidrs), cfg.region)
    seconds = time.perf_counter() - t0
    decided = int((result.owner != None).sum() + (result.reason > 0).sum())  # noqa: E711
    say(f"  {decided:,} flows decided in {seconds:.1f} s -> {data.flow_count / seconds:,.0f} flows/s (1 core)")
    return {"limit_decisions_flows_per_s": round(data.flow_count / seconds),
            "limit_decisions_seconds": round(seconds, 1), "limit_decisions_decided": decided}


def bench_state(say) -> dict:
    """Bytes per range as stored in broadcast state: key "hb:<32 hex>" + encoded value."""
    cfg = default_config()
    att = Attributor(cfg)
    rng = np.random.default_rng(1)
    n_ips = 1_000_000
    base = 1_790_000_000_000
    ips = [bytes(10) + b"\xff\xff" + int(10 << 24 | i).to_bytes(4, "big") for i in range(n_ips)]
    workloads = [f"svc-{i:03d}" for i in range(300)]
    t0 = time.perf_counter()
    for i, ip in enumerate(ips):
        start = base + int(rng.integers(0, 3_600_000))
        att.heartbeats.learn(ip, workloads[i % 300], start, start + int(rng.integers(1000, 600_000)))
    learn_s = time.perf_counter() - t0
    total = sum(len("hb:" + ip.hex()) + len(att.heartbeats.encode_ip(ip)) for ip in ips)
    ranges = att.heartbeats.range_count()
    # The same for the simulated fleet's real range mix (IPs with many ranges).
    fleet, flows, deliveries = _dataset(minutes=10)
    sim = Attributor(cfg)
    for d in deliveries:
        sim.learn_claims(sim.claims(flows.cols.take(d.rows)))
    sim_bytes = sum(len("hb:" + ip.hex()) + len(sim.heartbeats.encode_ip(ip)) for ip in sim.heartbeats.by_ip)
    sim_ranges = sim.heartbeats.range_count()
    say(f"state: {total / ranges:.1f} bytes per range with 1 range per IP ({total / 2**20:.0f} MiB for 1 M IPs); "
        f"simulated fleet: {sim_bytes / sim_ranges:.1f} bytes per range over {sim_ranges:,} ranges")
    return {"bytes_per_range": round(total / ranges, 1), "state_bytes_1m_ips": total,
            "bytes_per_range_simulated_fleet": round(sim_bytes / sim_ranges, 1),
            "learn_ranges_per_s": round(n_ips / learn_s)}


GROWTH_IPS = (10_000, 1_000_000, 10_000_000)


def _rss_mib() -> float:
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def bench_growth(data: ThroughputData, say, sizes=GROWTH_IPS) -> dict:
    """How the per-flow cost and the attributor's memory grow with the IPs it knows: the
    limit run (one pass over the same batches) after preloading N other IPs (fd00::/8, one
    range each in the fleet's hour, none the fleet's: every flow's answer is unchanged).
    In-process, like the limit. Each size runs in a forked child, so its RSS growth is its
    own. Not counted: the JVM's broadcast-state copy per subtask (bytes_per_range), and the
    claimant and subnet indexes the job's learn_batch builds beside the ranges."""
    import multiprocessing

    base = int(decode_flow_batch(data.values[0])[1]["start_ms"].min())
    ctx = multiprocessing.get_context("fork")   # the child shares `data`, nothing is pickled
    points = []
    for n_ips in sizes:
        receive, send = ctx.Pipe(duplex=False)
        child = ctx.Process(target=_growth_point, args=(data, n_ips, base, send))
        child.start()
        send.close()
        try:
            point = receive.recv()
        except EOFError:
            child.join()
            raise FlowattrError(f"the growth run with {n_ips:,} IPs died (exit {child.exitcode}); "
                                "is the machine out of memory?") from None
        child.join()
        say(f"growth: {n_ips:,} IPs preloaded in {point['preload_s']} s, +{point['rss_mib']:,} MiB RSS "
            f"({point['rss_bytes_per_ip']:,} B per IP); limit over them {point['limit_flows_per_s']:,} flows/s")
        points.append(point)
    return {"growth_by_ips": points}


def preload_other_ips(att: Attributor, n_ips: int, base: int, before_learning=lambda: None) -> None:
    """N IPs none of the simulated fleet's (fd00::/8), one range each within an hour of
    base; before_learning runs once the random ranges are drawn (the growth run starts
    its clocks there)."""
    rng = np.random.default_rng(1)
    starts = base + rng.integers(0, 3_600_000, n_ips)
    ends = starts + rng.integers(1000, 600_000, n_ips)
    before_learning()
    for i in range(n_ips):
        att.heartbeats.learn(b"\xfd" + bytes(11) + i.to_bytes(4, "big"), f"svc-{i % 300:03d}",
                             int(starts[i]), int(ends[i]))


def _growth_point(data: ThroughputData, n_ips: int, base: int, send) -> None:
    att = Attributor(default_config())
    marks = {}
    preload_other_ips(att, n_ips, base, lambda: marks.update(rss0=_rss_mib(), t0=time.perf_counter()))
    learn_s, rss = time.perf_counter() - marks["t0"], _rss_mib() - marks["rss0"]
    seconds = _limit_pass(att, data.values)
    send.send({"ips": n_ips, "limit_flows_per_s": round(data.flow_count / seconds),
               "rss_mib": round(rss), "rss_bytes_per_ip": round(rss * 2**20 / n_ips), "preload_s": round(learn_s, 1)})
    send.close()


def bench_e2e_rocksdb(cfg: BenchConfig, data: ThroughputData, say) -> dict:
    """The same run with the hold on disk (RocksDB, incremental checkpoints): its cost."""
    result = bench_e2e(cfg, data, say, state_backend="rocksdb")
    return {"e2e_rocksdb_complete": result["e2e_complete"], "e2e_rocksdb_flows_per_s": result["e2e_flows_per_s"],
            "e2e_rocksdb_attributed_pct": result["e2e_attributed_pct"]}


def one_region_config(path: Path, region: str) -> Path:
    """The default job config with every CIDR in `region`: one region holds the whole
    simulated fleet, so nothing is forwarded."""
    import yaml

    from flink_jobs.job_config import DEFAULT_CONFIG
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    raw["region_cidrs"] = {cidr: region for cidr in raw["region_cidrs"]}
    path.write_text(yaml.safe_dump(raw))
    return path


PRELOADED_CLOCK_MINUTES = 2


def produce_events(p, data: ThroughputData, region: str) -> None:
    """The fleet's IP-change events, to the region's ip-changes topic."""
    from flowattr.lab.simulate import encode_event

    for ev in data.fleet.events:
        p.send(RegionTopics(region).ip_changes, encode_event(ev), timestamp_ms=ev.emit_ms)


def produce_keyed_backlog(p, data: ThroughputData, region: str, progress=lambda produced: None,
                          events: bool = True) -> int:
    """Produce the fleet's IP-change events (unless `events` is False: sent already), then
    its batches keyed by exporter, then PRELOADED_CLOCK_MINUTES of clock batches; return
    the last window end. `progress` gets the batches produced so far, every 1000."""
    from flowattr.lab.simulate import advance_event_time

    if events:
        produce_events(p, data, region)
    for k, (d, value) in enumerate(zip(data.deliveries, data.values, strict=True)):
        # Keyed by the exporter, as exporters send (exporter/publisher.py): one exporter's
        # batches in one partition, in order. Unkeyed, they were spread over every
        # partition, read out of order, and most first attempts found a claimant's
        # batch missing (retried flows outnumbered the attributed ones).
        p.send(RegionTopics(region).flows, value, key=data.fleet.hosts[d.host]["name"].encode(),
               timestamp_ms=d.window_start_ms + 60_000)
        if k % 1000 == 999:
            progress(k + 1)
    last_window = max(d.window_start_ms for d in data.deliveries) + 60_000
    # The last windows' first attempts come due: their hold (1 min) and the next window.
    # Not more: the clock exporters' batches follow the data in each partition, so 45
    # minutes of them put a partition read to its end first (a lighter one) 45 minutes
    # ahead. A validator's event time follows the exporters it has read (the
    # fleet_clock_rank-th latest), not those of a partition it has not reached yet; a
    # backlog still being read when the start-up wait ended had its first attempts
    # before its claims (README, "Benchmarks"). The callers' clocks go on once the job
    # has caught up.
    advance_event_time(p, [region], last_window, PRELOADED_CLOCK_MINUTES)
    return last_window


def bench_job(cfg: BenchConfig, config: Path, bootstrap: str, region: str, log_name: str, *extra: str):
    """The collector as the throughput runs start it (a LocalJob, not started): one region,
    the bench's parallelism, a consumer group of its own, no new-subnet wait; `extra` flags."""
    from flowattr.stack.local_job import LocalJob
    return LocalJob("flink_jobs.attribution_job",
                    ["--config", str(config), "--bootstrap", bootstrap, "--region", region,
                     "--parallelism", str(cfg.parallelism), "--group-id", region, *extra, *NO_NEW_SUBNET_WAIT],
                    cfg.state / log_name)


def wire_bytes(data: ThroughputData) -> dict:
    """What the fleet's batches weigh, per flow: encoded (FlowBatch), and lz4-compressed as
    an exporter would send them with compression.type=lz4, one batch a request, each by
    the client's own lz4 (kafka.codec, the function the producer applies), the Kafka
    record batch's framing left out (~70 bytes a request). On the wire: the latter only
    when WIRE_COMPRESSION is lz4 (off since dc9c1a6's CI: schemas/kafka_properties.py)."""
    from kafka.codec import lz4_encode

    from schemas.kafka_properties import WIRE_COMPRESSION

    flows = data.flow_count
    encoded = round(sum(map(len, data.values)) / flows, 1)
    lz4 = round(sum(len(lz4_encode(v)) for v in data.values) / flows, 1)
    return {"e2e_batch_bytes_per_flow": encoded, "e2e_lz4_bytes_per_flow": lz4,
            "e2e_wire_bytes_per_flow": lz4 if WIRE_COMPRESSION == "lz4" else encoded,
            "e2e_wire_compression": WIRE_COMPRESSION}


def bench_e2e(cfg: BenchConfig, data: ThroughputData, say, state_backend: str = "hashmap") -> dict:
    """Pre-load the busy fleet's batches (and its IP-change events) into the embedded
    broker, then run the job and time its attributed output."""
    from flowattr.lab.settle import EventClock
    from flowattr.stack import broker, topics
    from flowattr.stack.kafka_clients import producer

    total = data.valid_flow_count
    b = broker.start(cfg.state, cfg.port, progress=say)
    region = f"bench{int(time.time())}"
    try:
        topics.create_topics(b.bootstrap, [region], progress=lambda *_: None)
        p = producer(b.bootstrap)
        say(f"e2e: pre-loading {total:,} flows ({len(data.values):,} batches, "
            f"{sum(map(len, data.values)) / 2**20:,.0f} MiB) into flows.{region} ...")
        wire = wire_bytes(data)
        say(f"  {wire['e2e_batch_bytes_per_flow']} bytes a flow encoded, {wire['e2e_wire_bytes_per_flow']} on the "
            f"wire (compression {wire['e2e_wire_compression']}; lz4 would make {wire['e2e_lz4_bytes_per_flow']})")
        t0 = time.perf_counter()
        last_window = produce_keyed_backlog(p, data, region, lambda k: say(
            f"  {k:,}/{len(data.values):,} batches produced ({time.perf_counter() - t0:.0f} s)"))
        p.close()
        say(f"  pre-loaded in {time.perf_counter() - t0:.0f} s")
        config = one_region_config(cfg.state / "bench-config.yaml", region)
        job = bench_job(cfg, config, b.bootstrap, region, "bench-job.log", "--state-backend", state_backend)
        # Event time goes on past the pre-loaded clock, as real exporters' empty batches
        # would, but only while the job has caught up (measure_e2e ticks when the outcomes
        # stopped growing), so the last retries come due and every flow gets an outcome. A
        # clock running a minute a second regardless ran hours of event time ahead of a
        # 21.6 M-flow backlog (past the 3 h retention) while the job worked through it, and
        # 26-48 % of the flows came out unattributed.
        clock = EventClock(b.bootstrap, [region], last_window + PRELOADED_CLOCK_MINUTES * 60_000)
        with job:
            try:
                result = measure_e2e(f"flowattr-collector-{region}", total, cfg, say, tick=lambda: clock.tick(1))
            finally:
                clock.close()
            # The most the job held resident at once: with the backlog pre-loaded, it holds
            # most of it at some point (the hold's size against memory: with growth_e2e's).
            return result | wire | {"e2e_job_peak_rss_mib": round(tree_peak_rss_mib(job.proc.pid))}
    finally:
        broker.stop(cfg.state)


def _job_counts(job_name: str, port: int | None, baseline: dict | None, previous: dict, cfg: BenchConfig):
    """(the job's outcome counters less `baseline`, the page) from one scrape; (None, page)
    when the page does not name the job (a scrape that timed out). Raises when a counter
    went down from `previous`: the job restarted, and its counters began at 0 again."""
    from flowattr.stack import flink_metrics
    names = ("attributed", "unattributed", "flows_in", "retried")
    if not port:
        return dict.fromkeys(names, 0), ""
    text = flink_metrics.scrape(port)
    if flink_metrics.job_label(job_name) not in text:
        return None, text
    counts = {name: value - (baseline or {}).get(name, 0)
              for name, value in flink_metrics.counters(text, job_name, names).items()}
    went_down = [name for name, value in counts.items() if value < previous.get(name, 0)]
    if went_down:
        raise FlowattrError(f"the job's counters {', '.join(went_down)} went down ({previous} -> {counts}): it "
                            f"restarted and counts anew, so no figure is reported; see the job log in {cfg.state}")
    return counts, text


def measure_e2e(job_name: str, total: int, cfg: BenchConfig, say, tick=lambda: None,
                baseline: dict[str, int] | None = None, sent_at: float | None = None) -> dict:
    """Time the job until every flow has an outcome (attributed or unattributed), counted
    from the job's own counters on its Prometheus endpoint (flowattr/stack/flink_metrics.py):
    no decoding of the output, so the instrument costs ~nothing. Incomplete within the
    bound: e2e_complete false and no throughput (run() then fails). `tick` moves event time
    on a minute, once a second after the first outcome while neither the accepted flows
    nor the outcomes have grown for 3 s (ticking during start-up ran event time an hour
    ahead). `baseline`: counters to count from (the job's work before these flows);
    `sent_at`: when they began to be sent to a job already running (its reading counts
    from then). A counter that goes down (a restart) fails the run (_job_counts)."""
    import resource

    from flowattr.stack import flink_metrics
    started = time.monotonic() if sent_at is None else sent_at
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    previous: dict[str, int] = {}
    samples: list[tuple[float, int, int]] = []   # (monotonic time, outcomes, attributed)
    last_accepted, accepted, retried, port, text = (-1, started), 0, 0, None, ""
    first_input = None   # when the job had validated its first flows: reading the backlog counts
    last_growth = started
    while time.monotonic() - started < cfg.e2e_bound_s:
        port = port or flink_metrics.job_port(job_name)
        counts, text = _job_counts(job_name, port, baseline, previous, cfg)
        if counts is None:
            time.sleep(1)   # a scrape that timed out (a busy JVM) is no count of zero
            continue
        previous = counts
        outcomes = counts["attributed"] + counts["unattributed"]
        accepted = counts["flows_in"]   # rows the job validated (the rest are dead-lettered)
        retried = counts["retried"]     # rows held for another attempt, every attempt counted
        if accepted and first_input is None:
            # Already reading at the first look: it began when the flows began to arrive.
            first_input = started if sent_at is not None else time.monotonic()
        if outcomes and (not samples or outcomes > samples[-1][1]):
            samples.append((time.monotonic(), outcomes, counts["attributed"]))
            last_growth = time.monotonic()
            if len(samples) % 10 == 0:
                say(f"  {outcomes:,} of {total:,} flows have an outcome ({100 * outcomes / total:.1f} %), "
                    f"{samples[-1][0] - started:.0f} s since start")
        if samples and time.monotonic() - max(last_growth, last_accepted[1]) >= 3:
            tick()   # the input is read and the job has caught up: event time goes on
        # Complete: the input is read (the job's accepted count stable for 15 s) and every
        # flow it accepted has an outcome (rows it rejected are dead-lettered, with a reason).
        if accepted != last_accepted[0]:
            last_accepted = (accepted, time.monotonic())
        if accepted and outcomes >= accepted and time.monotonic() - last_accepted[1] >= 15:
            break
        time.sleep(1)  # the job's counters are sampled at 1 Hz
    # Why rows were retried, from the last scrape only (not parsed every second).
    retried_by_reason = flink_metrics.counters_by_suffix(text, job_name, "retried_reason_")
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    elapsed = time.monotonic() - started
    reader_cpu = 100 * ((cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)) / max(elapsed, 1e-9)
    outcomes = samples[-1][1] if samples else 0
    base = {"e2e_flows": total, "e2e_accepted": accepted, "e2e_outcomes": outcomes,
            "e2e_reader_cpu_pct": round(reader_cpu, 2), "parallelism": cfg.parallelism, "e2e_retried": retried,
            "e2e_retried_by_reason": retried_by_reason}
    if not accepted or outcomes < accepted:
        say(f"e2e: INCOMPLETE: {outcomes:,} of {total:,} flows had an outcome after {elapsed:.0f} s; "
            "no throughput is reported")
        # None, not absent: a previous run's figures in the merged results must not survive.
        return base | {"e2e_complete": False, "e2e_flows_per_s": None, "e2e_attributed_pct": None}
    # From the first flow validated, not the first output: the time spent reading the backlog
    # before the first attempts came due is the job's work too. (Counted from the first
    # output, a minute's wait for the event input's idleness hid the whole read of a 9 M-flow
    # backlog: 362 k flows/s reported for ~100 k, in one working-copy run.)
    first, last = first_input, samples[-1][0]
    t99 = next(t for t, n, _ in samples if n >= 0.99 * outcomes)
    rate = 0.99 * outcomes / max(t99 - first, 1e-9)
    attributed = samples[-1][2]
    say(f"e2e: every one of the {accepted:,} flows the job accepted (of {total:,} valid) has an outcome "
        f"({attributed:,} attributed; {retried:,} sent to retry); first flows read {first - started:.1f} s after "
        f"start, first output "
        f"{samples[0][0] - started:.1f} s; {rate:,.0f} flows/s from the first read to 99 % ({t99 - first:.1f} s); "
        f"the measuring side used {reader_cpu:.1f} % of a core")
    return base | {"e2e_complete": True, "e2e_flows_per_s": round(rate),
                   "e2e_attributed_pct": round(100 * attributed / outcomes, 2), "e2e_attributed": attributed,
                   "e2e_startup_s": round(first - started, 1), "e2e_first_output_s": round(samples[0][0] - started, 1),
                   "e2e_seconds_to_99pct": round(t99 - first, 1), "e2e_seconds_to_last": round(last - first, 1)}


def bench_exporter(cfg: BenchConfig, say) -> dict:
    from exporter.probe import unavailable_reason
    reason = unavailable_reason()
    if reason:
        say(f"exporter: not measured ({reason})")
        return {"exporter_cpu_pct_at_1k_cps": None, "exporter_not_measured": reason}
    from flowattr.lab.netns import HostPair
    from flowattr.stack import broker, topics
    from flowattr.stack.processes import start_background, stop_group, wait_for_line
    b = broker.start(cfg.state, cfg.port, progress=say)
    try:
        topics.create_topics(b.bootstrap, ["benchx"], progress=lambda *_: None)
        with HostPair("fa_bench_a", "fa_bench_b", ("10.15.202.1",), ("10.15.202.2",)):
            server = subprocess.Popen(["ip", "netns", "exec", "fa_bench_b", sys.executable, "-m",
                                       "flowattr.lab.netns_traffic", "server", "10.15.202.2", "7000", "0"],
                                      stdout=subprocess.PIPE, text=True)
            server.stdout.readline()
            spool = cfg.state / f"bench-spool-{int(time.time())}"
            exporter = start_background([sys.executable, "-m", "flowattr.cli", "exporter", "--bootstrap",
                                         b.bootstrap, "--region", "benchx", "--window-s", "10", "--spool-dir",
                                         str(spool), "--local-cidr",
                                         "10.15.202.0/24"], cfg.state / "bench-exporter.log")
            # BPF compiled (a line of THIS run: the log is appended, and an earlier run's
            # line once started the CPU count during the compile: 9 % instead of 0.9 %).
            wait_for_line(cfg.state / "bench-exporter.log", "capturing", 180, exporter.pid, since=exporter.log_offset)
            _wait_first_batch_sent(spool, exporter.pid)
            results = {}
            for rate, name in ((1000, "exporter_cpu_pct_at_1k_cps"), (10_000, "exporter_cpu_pct_at_10k_asked")):
                runs = [_exporter_run(cfg, exporter.pid, rate, say) for _ in range(cfg.repeat)]
                # At 1k: normalized to exactly 1,000 conn/s (the generator reaches 990-1,000).
                results |= _median_of(name, [r["exporter_pct"] * (1000 / r["cps"] if rate == 1000 else 1)
                                             for r in runs])
                if rate == 1000:
                    results |= {"exporter_connections_per_s": round(np.median([r["cps"] for r in runs])),
                                "generator_cpu_pct": float(np.median([r["generator_pct"] for r in runs]))}
                else:   # what the generator reached: one Python process may not make 10k/s
                    results |= {"exporter_connections_per_s_at_10k_asked": round(np.median([r["cps"] for r in runs])),
                                "generator_cpu_pct_at_10k_asked": float(np.median([r["generator_pct"] for r in runs]))}
                say(f"exporter: at {rate:,} conn/s asked, median of {len(runs)} runs {results[name]} % of a core "
                    f"(min {results[name + '_min']}, max {results[name + '_max']})")
            stop_group(exporter.pid, timeout_s=20)
            server.kill()
            server.wait()
            server.stdout.close()
        return results
    finally:
        broker.stop(cfg.state)


def _wait_first_batch_sent(spool: Path, pid: int, timeout_s: float = 60) -> None:
    """Until the exporter's first (empty) window batch left its spool: its Kafka producer
    starts at that first send (a thread, a connection, metadata), which fell inside the
    first measured run before: a start-up cost, not one per second."""
    deadline = time.monotonic() + timeout_s
    while not ((spool / "sequence").exists() and not any(spool.glob("*.batch"))):
        if time.monotonic() > deadline or not Path(f"/proc/{pid}").exists():
            raise FlowattrError(f"the bench exporter sent no batch within {timeout_s:.0f} s of capturing; "
                                f"see {spool.parent / 'bench-exporter.log'}")
        time.sleep(0.2)


def _exporter_run(cfg: BenchConfig, exporter_pid: int, rate: int, say) -> dict:
    """One run of the traffic generator at `rate` connections/s for cfg.exporter_s: the
    exporter's CPU (% of one core), the rate reached, the generator's own CPU."""
    cpu0 = tree_cpu_s(exporter_pid)
    out = subprocess.run(["ip", "netns", "exec", "fa_bench_a", sys.executable, "-m", "flowattr.lab.netns_traffic",
                          "rate", "10.15.202.2", "7000", str(rate), str(cfg.exporter_s)],
                         capture_output=True, text=True, check=True)
    cpu1 = tree_cpu_s(exporter_pid)
    gen = json.loads(out.stdout.strip().splitlines()[-1])
    cps = gen["connections"] / gen["seconds"]
    exporter_pct = 100 * (cpu1 - cpu0) / gen["seconds"]
    generator_pct = round(100 * gen["cpu_s"] / gen["seconds"], 1)
    say(f"exporter: {cps:,.0f} connections/s asked {rate:,} ({2 * cps:,.0f} flows/s, both ends) for "
        f"{gen['seconds']:.0f} s: exporter {exporter_pct:.2f} % of one core; traffic generator {generator_pct:.1f} %")
    return {"exporter_pct": exporter_pct, "cps": cps, "generator_pct": generator_pct}


def _median_of(name: str, values: list[float]) -> dict:
    """A figure taken len(values) times: its median under `name`, with min, max and every value."""
    return {name: round(float(np.median(values)), 3), f"{name}_min": round(min(values), 3),
            f"{name}_max": round(max(values), 3), f"{name}_runs": [round(v, 3) for v in values]}


# Figures taken `repeat` times: the result keeps the median under the figure's name, and
# <name>_min, <name>_max and <name>_runs (every run's value).
REPEATED = {"limit": ("limit_flows_per_s", "limit_decisions_flows_per_s"),
            "e2e": ("e2e_flows_per_s", "e2e_reader_cpu_pct")}


def repeated(name: str, runs: list[dict], say) -> dict:
    """One result from `runs` of a throughput step: the last run's keys, each figure of
    REPEATED replaced by the median of the runs (with min, max and every value). Any
    incomplete run makes the whole result incomplete: no median over a run that lied."""
    out = dict(runs[-1])
    complete = [r for r in runs if r.get("e2e_complete", True)]
    for key in REPEATED[name]:
        values = [r[key] for r in runs]
        if len(complete) < len(runs) or any(v is None for v in values):
            out |= {key: None, f"{key}_runs": values}
            continue
        out |= _median_of(key, values)
    if len(complete) < len(runs):
        out["e2e_complete"] = False
    elif len(runs) > 1:
        say(f"{name}: median of {len(runs)} runs {out[REPEATED[name][0]]:,.0f} (min "
            f"{out[REPEATED[name][0] + '_min']:,.0f}, max {out[REPEATED[name][0] + '_max']:,.0f})")
    return out


def run(cfg: BenchConfig, say, only: list[str] | None = None) -> dict:
    results: dict = {"machine": _machine(), "repeat": cfg.repeat}
    wanted = [name for name in PARTS if not only or name in only]
    needs_data = {"limit", "growth", "e2e", "e2e_rocksdb"} & set(wanted)
    data = throughput_data(cfg.e2e_flows, cfg.busy_factor, say) if needs_data else None
    steps = {"limit": lambda: bench_limit(data, say), "state": lambda: bench_state(say),
             "growth": lambda: bench_growth(data, say),
             "growth_e2e": lambda: bench_growth_e2e(
                 cfg, throughput_data(cfg.growth_e2e_flows, cfg.busy_factor, say), say, cfg.growth_e2e_ips),
             "e2e": lambda: bench_e2e(cfg, data, say), "e2e_rocksdb": lambda: bench_e2e_rocksdb(cfg, data, say),
             "latency": lambda: bench_latency(cfg, say),
             "exporter": lambda: bench_exporter(cfg, say)}
    # The limit and e2e runs alternate (limit, e2e, limit, e2e, ...): a machine that gets
    # busier during the bench slows both, and their ratio stays meaningful.
    runs: dict[str, list[dict]] = {name: [] for name in REPEATED if name in wanted}
    for i in range(cfg.repeat if runs else 0):
        for name in runs:
            say(f"{name}: run {i + 1} of {cfg.repeat}")
            try:
                runs[name].append(steps[name]())
            except FlowattrError as exc:   # a run that failed is an incomplete one, with its reason
                say(f"{name}: run {i + 1} FAILED: {exc}")
                runs[name].append({"e2e_complete": False, f"{name}_error": str(exc)}
                                  | dict.fromkeys(REPEATED[name]))
            if runs[name][-1].get("e2e_complete") is False:
                break   # an incomplete run fails the bench: no use repeating it
        if any(r.get("e2e_complete") is False for rs in runs.values() for r in rs):
            break
    failed = []
    for name in wanted:
        if name in runs:
            results.update(repeated(name, runs[name], say))
            continue
        try:
            results.update(steps[name]())
        except FlowattrError as exc:   # the other parts still run, and the JSON keeps the reason
            say(f"{name}: FAILED: {exc}")
            results[f"{name}_error"] = str(exc)
            failed.append(name)
    previous = json.loads(cfg.out.read_text()) if cfg.out.exists() and only else {}
    # A part run now replaces what an earlier run saved for it: a failed latency run must
    # not leave the last run's latency beside its error.
    previous = {k: v for k, v in previous.items() if _part_of(k) not in wanted}
    merged = previous | results
    for ratio, limit in (("ratio_to_limit", "limit_flows_per_s"),
                         ("ratio_to_decisions", "limit_decisions_flows_per_s")):
        both = merged.get(limit) and merged.get("e2e_flows_per_s")
        merged[ratio] = round(merged["e2e_flows_per_s"] / merged[limit], 3) if both else None
    cfg.out.parent.mkdir(parents=True, exist_ok=True)
    cfg.out.write_text(json.dumps(merged, indent=2))
    if failed:
        raise FlowattrError(f"bench part(s) {', '.join(failed)} failed (reasons above and in {cfg.out}); "
                            "the other parts' figures are saved")
    incomplete = [k for k, v in results.items() if k.endswith("_complete") and v is False]
    if incomplete:
        raise FlowattrError(f"{', '.join(incomplete)}: the run did not give every flow an outcome within "
                            f"{cfg.e2e_bound_s:.0f} s, so no throughput is reported ({cfg.out}); see the job log "
                            f"in {cfg.state}")
    return merged


# The longest part last: growth_e2e's 10 M-IP point runs ~20 min of learning where the
# machine fits it, and a run stopped there has printed every other part's figures.
PARTS = ("limit", "state", "growth", "e2e", "e2e_rocksdb", "latency", "exporter", "growth_e2e")


# Keys a part writes without its name as prefix.
_UNPREFIXED_KEYS = {"bytes_per_range": "state", "bytes_per_range_simulated_fleet": "state",
                    "learn_ranges_per_s": "state", "flows_per_batch": "limit", "parallelism": "e2e",
                    "generator_cpu_pct": "exporter", "generator_cpu_pct_at_10k_asked": "exporter"}


def _part_of(key: str) -> str | None:
    """The bench part a results key belongs to: by its prefix (e2e_rocksdb_x: e2e_rocksdb),
    or the few written without it."""
    return _UNPREFIXED_KEYS.get(key) or max((p for p in PARTS if key.startswith(p + "_")), key=len, default=None)


def _spread(r: dict, key: str, fmt: str = ",.0f") -> str:
    """median (min-max over N runs) of a repeated figure."""
    if r.get(key) is None:
        return "not measured" if key not in r else "none (incomplete run)"
    runs = r.get(f"{key}_runs") or [r[key]]
    return (f"{r[key]:{fmt}} ({r.get(f'{key}_min', r[key]):{fmt}}-{r.get(f'{key}_max', r[key]):{fmt}}, "
            f"{len(runs)} runs)")


def format_table(r: dict) -> str:
    rows = [("in-process limit (flows/s, 1 core)", _spread(r, "limit_flows_per_s")),
            ("limit, every decision (engine replay, 1 core)", _spread(r, "limit_decisions_flows_per_s")),
            ("flows per batch (busy fleet)", r.get("flows_per_batch")),
            ("end to end (flows/s)", _spread(r, "e2e_flows_per_s")),
            ("end to end: complete / outcomes of accepted", f"{r.get('e2e_complete')} / {r.get('e2e_outcomes')} "
             f"of {r.get('e2e_accepted')} ({r.get('e2e_attributed_pct')} % attributed)"),
            ("end to end: measuring side's CPU (% of a core)", r.get("e2e_reader_cpu_pct")),
            ("end to end: the job's peak RSS, last run (MiB)", r.get("e2e_job_peak_rss_mib")),
            ("bytes a flow: encoded / on the wire", f"{r.get('e2e_batch_bytes_per_flow')} / "
             f"{r.get('e2e_wire_bytes_per_flow')} ({r.get('e2e_wire_compression')})"),
            ("ratio to limit (medians)", r.get("ratio_to_limit")),
            ("ratio to every-decision limit (medians)", r.get("ratio_to_decisions")),
            ("end to end, hold on disk (RocksDB; flows/s)", r.get("e2e_rocksdb_flows_per_s")),
            ("job parallelism", r.get("parallelism")),
            ("e2e start-up to the first flow read (s)", r.get("e2e_startup_s")),
            ("latency p50 / p99 (s)", f"{r.get('latency_p50_s')} / {r.get('latency_p99_s')}"
             f" (hold {r.get('latency_hold_s')} s)"),
            ("bytes per range (broadcast state)", r.get("bytes_per_range")),
            ("state for 1 M IPs (bytes)", r.get("state_bytes_1m_ips")),
            *((f"limit, {g['ips']:,} more IPs known (flows/s; B/IP)",
               f"{g['limit_flows_per_s']:,} ({g['rss_bytes_per_ip']} B)") for g in r.get("growth_by_ips") or []),
            *((f"end to end, {g['ips']:,} more IPs known (flows/s; job B/IP)",
               f"{g['e2e_flows_per_s']:,} ({g['job_held_bytes_per_ip']:,} B held, {g['job_rss_bytes_per_ip']:,} B RSS; "
               f"learned {g['preload_ips_per_s']:,} IPs/s, {g['preload_cpu_us_per_ip']:,} us CPU each)"
               if g.get("e2e_complete")
               else f"none: {g.get('error') or 'incomplete run'}") for g in r.get("growth_e2e_by_ips") or []),
            ("exporter CPU % of a core at 1k conn/s", _spread(r, "exporter_cpu_pct_at_1k_cps", ",.2f")),
            ("traffic generator CPU %", r.get("generator_cpu_pct")),
            ("exporter CPU % at 10k conn/s asked (reached)", f"{_spread(r, 'exporter_cpu_pct_at_10k_asked', ',.2f')} "
             f"({r.get('exporter_connections_per_s_at_10k_asked')} conn/s)"),
            ("machine", json.dumps(r.get("machine")))]
    return "\n".join(f"{name:<48} {value}" for name, value in rows)
