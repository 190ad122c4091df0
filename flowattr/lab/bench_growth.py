"""`flowattr bench --only growth_e2e`: how the job's end-to-end cost and memory grow with
the IPs in its ownership state (issue #15: 10 k, 1 M, 10 M).

For each size N, on a fresh embedded broker: start the job, preload N other IPs into its
state the way a real fleet puts them there (flow batches whose local IPs they are: one
heartbeat range each, in 11.0.0.0/8, which the bench config adds to the region's CIDRs;
IPv4, as VPC fleets are (an IPv6 address costs a trie lookup and a cache entry where an
IPv4 one costs a binary search); none is the simulated fleet's (10.0.0.0/8), so every
fleet flow gets the answer it gets without them),
wait until both attribute instances hold them and the preload's own flows have their
outcome, then pre-load the busy fleet and time it exactly as the e2e part does, counting
from the preload's counters. The preload's flows go to 192.0.2.1 (TEST-NET-1, outside
every region's CIDRs): unattributed at their first attempt, never retried.

Memory is the RSS of the job's process tree (the JVM, with the operators' Python in it:
thread mode) after the preload against before it, so it counts every copy the job keeps:
each attribute instance's Python tables, the JVM's broadcast state per instance and the
claimant and subnet indexes beside the ranges.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch, ip_to_bytes
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

GROWTH_E2E_IPS = (10_000, 1_000_000, 10_000_000)
PRELOAD_CIDR = "11.0.0.0/8"      # 16.7 M addresses, outside the simulated fleet's 10.0.0.0/8
PRELOAD_REMOTE = "192.0.2.1"      # TEST-NET-1: in no region's CIDRs
PRELOAD_FLOWS_PER_BATCH = 20_000  # ~1.3 MB a batch
PRELOAD_WORKLOADS = 300
PRELOAD_LEAD_MS = 30 * 60_000     # the warm-up's window starts this long before the fleet's first
                                  # (room for both preloads' clock minutes, ~15 used)
MIN_LEARN_RATE = 5_000             # IPs a second the preload's wait allows for, beyond the e2e bound
WARMUP_IPS = PRELOAD_FLOWS_PER_BATCH  # learned first: the job's start-up growth is not counted per IP


def preload_ip(i: int) -> bytes:
    """The i-th preloaded IP: 11.0.0.0 + i, IPv4-mapped (i < 2^24)."""
    return bytes(10) + b"\xff\xff" + (0x0B000000 + i).to_bytes(4, "big")


def preload_batches(n_ips: int, window_start_ms: int, first_ip: int = 0):
    """(exporter key, FlowBatch bytes) of batches that make a collector learn N IPs, from
    the first_ip-th on: one outbound flow per IP, local IP preload_ip(i) attributed by the
    exporter's IP map to svc-(i % 300), all in the one-minute window from window_start_ms;
    one exporter per batch (sequence 1), so no exporter's ledger waits for another batch."""
    end = first_ip + n_ips
    if end > 1 << 24:
        raise FlowattrError(f"{end:,} preloaded IPs do not fit in {PRELOAD_CIDR} (at most {1 << 24:,}); ask fewer")
    workloads = [""] + [f"svc-{w:03d}" for w in range(PRELOAD_WORKLOADS)]
    remote = np.frombuffer(ip_to_bytes(PRELOAD_REMOTE), np.uint8)
    for first in range(first_ip, end, PRELOAD_FLOWS_PER_BATCH):
        index = np.arange(first, min(end, first + PRELOAD_FLOWS_PER_BATCH), dtype=np.int64)
        cols = FlowColumns.zeros(len(index))
        local = cols["local_ip"]
        local[:, 10:12] = 0xFF
        local[:, 12:] = (0x0B000000 + index).astype(">u4").view(np.uint8).reshape(-1, 4)
        cols["remote_ip"][:] = remote
        cols["local_port"][:] = 40_000 + index % 20_000
        cols["remote_port"][:] = 443
        cols["start_ms"][:] = window_start_ms + index % 50_000
        cols["end_ms"][:] = cols["start_ms"] + 1_000
        cols["bytes_sent"][:] = 100
        cols["bytes_received"][:] = 200
        cols["local_workload_ref"][:] = 1 + index % PRELOAD_WORKLOADS
        cols["local_attribution"][:] = pb.LOCAL_ATTRIBUTION_IP_MAP
        cols["direction"][:] = pb.FLOW_DIRECTION_OUTBOUND
        cols.workloads = workloads
        exporter = f"growth-preload-{first // PRELOAD_FLOWS_PER_BATCH:06d}"
        header = pb.FlowBatch(exporter_id=exporter, host=exporter, window_start_ms=window_start_ms,
                              window_end_ms=window_start_ms + 60_000, sequence=1, part=0, part_count=1)
        yield exporter.encode(), encode_flow_batch(header, cols)


@dataclass(frozen=True)
class JobMemory:
    """A job's process tree's memory, MiB, each JVM in it just after a full collection."""

    rss_mib: float            # what the tree holds in memory, the JVMs' heaps included
    heap_used_mib: float      # the JVMs' live objects (used heap after the collection)
    outside_heap_mib: float   # resident outside the JVMs' heaps: the operators' Python tables
                              # (thread mode: in the JVM's process), native buffers, the JVMs' own
    heap_max_mib: float = 0   # the JVMs' heap limits (their heaps' reserved address ranges)


# JDK 17's GC.heap_info: " garbage-first heap   total 397312K, used 17621K [0x...687400000, 0x...800000000)"
# (JDK 22 on: "total reserved ...K, committed ...K, used ...K [...)": the committed size is the total.)
_HEAP_INFO = re.compile(r"heap\s+total (?:reserved \d+K, committed )?(\d+)K, used (\d+)K "
                        r"\[0x([0-9a-f]+), 0x([0-9a-f]+)\)")
_MAPPING = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) ")


def job_memory(pid: int) -> JobMemory:
    """The memory of a process and all its descendants (the job's client, its JVM), each JVM
    among them after a full garbage collection (jcmd GC.run): G1 grows the heap under
    allocation rather than collect, and gives memory back only at a full collection, so
    without one the RSS follows what the job allocated lately, not what it holds (a
    100 k-IP preload measured 10 kB per IP that way). Even after one, the RSS keeps heap
    G1 chose to keep: the used heap and what is resident outside the heap's address range
    (/proc/PID/smaps) are what the job holds."""
    rss = used = outside = heap_max = 0.0
    for p in _tree(pid):
        heap = _java_heap(p)
        try:
            smaps = Path(f"/proc/{p}/smaps").read_text()
        except OSError:
            continue   # it ended
        mapping_rss = _mapping_rss_kib(smaps)
        rss += sum(kib for _, kib in mapping_rss) / 1024
        low, high = heap[1] if heap else (0, 0)
        outside += sum(kib for start, kib in mapping_rss if not low <= start < high) / 1024
        used += heap[0] if heap else 0
        heap_max += (high - low) / 2**20
    return JobMemory(rss, used, outside, heap_max)


def _java_heap(pid: int) -> tuple[float, tuple[int, int]] | None:
    """(used heap MiB after a full collection, the heap's address range) of a JVM; None
    for a process that is not one."""
    try:
        if os.path.basename(os.readlink(f"/proc/{pid}/exe")) != "java":
            return None
    except OSError:
        return None   # it ended
    jcmd = shutil.which("jcmd")
    if jcmd is None:
        raise FlowattrError("jcmd (the JDK's) is not on PATH: the job's memory cannot be measured after a "
                            "full GC; install a JDK (scripts/setup.sh does)")
    for command in ("GC.run", "GC.heap_info"):
        done = subprocess.run([jcmd, str(pid), command], capture_output=True, text=True, timeout=300)
        if done.returncode:
            raise FlowattrError(f"jcmd {pid} {command} failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    heap = _HEAP_INFO.search(done.stdout)
    if heap is None:
        raise FlowattrError(f"jcmd {pid} GC.heap_info printed no G1 heap line (total, used, address range); the "
                            "JVM picks another collector with one CPU or under 1,792 MB of memory: give it more, "
                            f"or pass -XX:+UseG1GC in FLINK_ENV_JAVA_OPTS: {done.stdout.strip()[:300]}")
    return int(heap.group(2)) / 1024, (int(heap.group(3), 16), int(heap.group(4), 16))


def _mapping_rss_kib(smaps: str) -> list[tuple[int, int]]:
    """(start address, resident KiB) of each mapping in a /proc/PID/smaps text."""
    out, start = [], None
    for line in smaps.splitlines():
        m = _MAPPING.match(line)
        if m:
            start = int(m.group(1), 16)
        elif line.startswith("Rss:") and start is not None:
            out.append((start, int(line.split()[1])))
    return out


def tree_peak_rss_mib(pid: int) -> float:
    """The peak RSS (VmHWM) of a process and its descendants, summed, MiB: at most what
    they held at once."""
    return sum(_status_kib(p, "VmHWM") for p in _tree(pid)) / 1024


def rss_mib(pid: int) -> float:
    """One process's resident memory (VmRSS), MiB; 0 when it has ended."""
    return _status_kib(pid, "VmRSS") / 1024


def _status_kib(pid: int, field: str) -> int:
    """A kB field of /proc/PID/status; 0 when the process has ended."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith(field + ":")), 0)


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants."""
    total = 0.0
    for p in _tree(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue   # it ended
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _tree(pid: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue   # the process ended while we looked
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(children.get(out[-1], []))
    return out


def growth_config(path: Path, region: str) -> Path:
    """bench.one_region_config, with the preload's CIDR in the region (claims are learned
    only for local IPs inside the region's CIDRs)."""
    import yaml

    from flowattr.lab.bench import one_region_config
    one_region_config(path, region)
    raw = yaml.safe_load(path.read_text())
    raw["region_cidrs"][PRELOAD_CIDR] = region
    path.write_text(yaml.safe_dump(raw))
    return path


def _preload_clock(p, region: str, minute_start_ms: int, partitions: list[int]) -> None:
    """One empty batch per partition from the preload's own clock exporters for the minute
    from minute_start_ms: event time moves on until the fleet's batches come (the fleet's
    clock exporters start later, at the end of its data, with their own sequences)."""
    topic = RegionTopics(region).flows
    for part in partitions:
        for k in range(3):   # the job's event time follows the 3rd latest exporter a validator reads
            exporter = f"growth-clock-{part}-{k}"
            header = pb.FlowBatch(exporter_id=exporter, host="clock", region=region, window_start_ms=minute_start_ms,
                                  window_end_ms=minute_start_ms + 60_000, sequence=minute_start_ms // 60_000,
                                  part=0, part_count=1)
            p.send(topic, encode_flow_batch(header, FlowColumns.zeros(0)), partition=part,
                   timestamp_ms=minute_start_ms + 60_000)
    p.flush()


def _counts(job_name: str, port: int) -> dict[str, int]:
    from flowattr.stack import flink_metrics
    return flink_metrics.counters(flink_metrics.scrape(port), job_name,
                                  ("attributed", "unattributed", "flows_in", "retried", "broadcast_ranges_held"))


def _preload(cfg, job, p, region: str, job_name: str, port: int, first_ip: int, n_ips: int, start_ms: int,
             until_ms: int, say) -> dict:
    """Send N preloaded IPs (from the first_ip-th) in the minute from start_ms, and wait
    until every preloaded flow so far has its outcome and each attribute instance counts
    every preloaded range; clock minutes move event time on, never to until_ms. Returns
    the job's counters then."""
    if start_ms + 60_000 > until_ms:
        raise FlowattrError(f"the preload's window ({start_ms}) would end after the fleet's first ({until_ms}); "
                            "PRELOAD_LEAD_MS is too short for the clock minutes used")
    partitions = sorted(p.partitions_for(RegionTopics(region).flows))
    for key, value in preload_batches(n_ips, start_ms, first_ip):
        p.send(RegionTopics(region).flows, value, key=key, timestamp_ms=start_ms + 60_000)
    # Three minutes of clock: the preload's hold (1 min) and out-of-orderness pass. Never a
    # clock window ending after until_ms (the fleet's first window): the fleet's own
    # batches would then arrive behind event time, already due.
    clock_ms = start_ms
    for _ in range(3):
        if clock_ms + 60_000 <= until_ms:
            _preload_clock(p, region, clock_ms, partitions)
            clock_ms += 60_000
    ticked = time.monotonic()
    known = first_ip + n_ips
    # The e2e bound, plus a second per MIN_LEARN_RATE IPs: learning is the job's slowest
    # per-item work (a broadcast-state put and an ownership record per IP).
    bound_s = cfg.e2e_bound_s + n_ips / MIN_LEARN_RATE
    began, said, counts = time.monotonic(), 0.0, {}
    while time.monotonic() - began < bound_s:
        if not job.running():
            raise FlowattrError(f"the job ended while learning the preloaded IPs; its log ends:\n{job.log_tail()}")
        counts = _counts(job_name, port)
        decided = counts["attributed"] + counts["unattributed"]
        # Both: the gauge counts event ranges too (the fleet's events, a few hundred), so it
        # alone could pass that many IPs early; every preloaded flow decided means every
        # batch before it was learned.
        if decided >= known and counts["broadcast_ranges_held"] >= cfg.parallelism * known:
            return counts | {"clock_ms": clock_ms}
        # The ranges gauge is recounted at most every 10 s, when an element comes: a clock
        # minute more every 5 s brings one.
        if decided >= known and clock_ms + 60_000 <= until_ms and time.monotonic() - ticked >= 5:
            _preload_clock(p, region, clock_ms, partitions)
            clock_ms, ticked = clock_ms + 60_000, time.monotonic()
        if time.monotonic() - said >= 10:
            said = time.monotonic()
            say(f"  preload of {n_ips:,} IPs: {counts['flows_in']:,} flows read, {decided:,} decided, "
                f"{counts['broadcast_ranges_held']:,} ranges held over the instances ({said - began:.0f} s)")
        time.sleep(1)
    held = max(0.0, counts.get("broadcast_ranges_held", 0) / cfg.parallelism - first_ip)
    raise FlowattrError(f"the job had not learned the {n_ips:,} preloaded IPs within {bound_s:.0f} s: each instance "
                        f"held ~{held:,.0f} of them ({held / bound_s:,.0f} a second; counters {counts}); see the job "
                        f"log in {cfg.state}, or give --e2e-bound-s more")


def growth_e2e_point(cfg, data, n_ips: int, say) -> dict:
    """One size: the job's RSS growth for N preloaded IPs, then the fleet's e2e run over them."""
    from flowattr.lab.bench import (
        PRELOADED_CLOCK_MINUTES,
        bench_job,
        measure_e2e,
        produce_events,
        produce_keyed_backlog,
    )
    from flowattr.lab.settle import EventClock
    from flowattr.stack import broker, topics
    from flowattr.stack.kafka_clients import producer

    b = broker.start(cfg.state, cfg.port, progress=say)
    region = f"growth{int(time.time())}"
    job_name = f"flowattr-collector-{region}"
    try:
        topics.create_topics(b.bootstrap, [region], progress=lambda *_: None)
        config = growth_config(cfg.state / "bench-growth-config.yaml", region)
        job = bench_job(cfg, config, b.bootstrap, region, "bench-growth-job.log")
        with job:
            port = _metrics_port(cfg, job, job_name)
            p = producer(b.bootstrap)
            # The fleet's IP-change events first, as the e2e run sends them (before any batch):
            # sent after the preload's clock minutes, the earliest would arrive behind event
            # time by more than their allowed delay, and the fleet's answers would differ.
            produce_events(p, data, region)
            fleet_start = min(d.window_start_ms for d in data.deliveries)
            # A warm-up batch first: the job's own growth as it starts working (the JVM's heap,
            # its first windows: hundreds of MiB) would otherwise count against the IPs.
            warm = _preload(cfg, job, p, region, job_name, port, 0, WARMUP_IPS, fleet_start - PRELOAD_LEAD_MS,
                            fleet_start, say)
            before = job_memory(job.proc.pid)
            # The broker and this process grow with the preload too (tansu's memory, the
            # producer's): at 8.2 M IPs 3.2 and 5.7 GiB beside the job's 15.3, which a
            # projection from the job alone did not count (make-bench-89dc033.log).
            broker_pid = broker.status(cfg.state).pid
            broker_before, bench_before = rss_mib(broker_pid or 0), rss_mib(os.getpid())
            t0, cpu0 = time.monotonic(), tree_cpu_s(job.proc.pid)
            baseline = _preload(cfg, job, p, region, job_name, port, WARMUP_IPS, n_ips, warm["clock_ms"],
                                fleet_start, say)
            learned_s, cpu_s = time.monotonic() - t0, tree_cpu_s(job.proc.pid) - cpu0
            after = job_memory(job.proc.pid)
            growth = memory_growth(before, after, n_ips)
            broker_after = rss_mib(broker_pid or 0)
            growth.update(broker_rss_before_mib=round(broker_before),
                          broker_rss_growth_mib=round(broker_after - broker_before),
                          bench_rss_growth_mib=round(rss_mib(os.getpid()) - bench_before))
            _say_learned(say, n_ips, learned_s, cpu_s, growth, data.valid_flow_count)
            sent_at = time.monotonic()
            last_window = produce_keyed_backlog(p, data, region, events=False)
            p.close()
            clock = EventClock(b.bootstrap, [region], last_window + PRELOADED_CLOCK_MINUTES * 60_000)
            try:
                result = measure_e2e(job_name, data.valid_flow_count, cfg, say, tick=lambda: clock.tick(1),
                                     baseline=baseline, sent_at=sent_at)
            finally:
                clock.close()
            peak = tree_peak_rss_mib(job.proc.pid)
            # What the e2e run added, for memory_misfit: outside the heap (a full heap is
            # counted apart; the peak RSS also holds heap G1 gave back) and in the broker.
            end = job_memory(job.proc.pid)
            growth.update(job_outside_heap_e2e_growth_mib=round(end.outside_heap_mib - after.outside_heap_mib),
                          broker_rss_e2e_growth_mib=round(rss_mib(broker_pid or 0) - broker_after))
    finally:
        broker.stop(cfg.state)
    return {"ips": n_ips, "warmup_ips": WARMUP_IPS, "e2e_complete": result["e2e_complete"],
            "e2e_flows_per_s": result["e2e_flows_per_s"],
            "e2e_attributed_pct": result["e2e_attributed_pct"], "e2e_attributed": result.get("e2e_attributed"),
            "e2e_flows": data.valid_flow_count,
            "e2e_accepted": result["e2e_accepted"], "e2e_retried": result["e2e_retried"],
            "job_peak_rss_mib": round(peak), "job_heap_max_mib": round(after.heap_max_mib),
            # what the job held before the N IPs (the warm-up's included): memory_misfit's base
            "job_heap_used_before_mib": round(before.heap_used_mib),
            "job_outside_heap_before_mib": round(before.outside_heap_mib), **growth,
            "preload_learned_s": round(learned_s, 1), "preload_ips_per_s": round(n_ips / learned_s),
            # The job's CPU (every thread: both instances learning, the changelog, the
            # preload's own flows, one per IP) while it learned, per IP.
            "preload_cpu_s": round(cpu_s, 1), "preload_cpu_us_per_ip": round(cpu_s * 1e6 / n_ips, 1)}


def _metrics_port(cfg, job, job_name: str) -> int:
    """The job's metrics port, once it reports one (within the e2e bound)."""
    from flowattr.stack import flink_metrics

    began, port = time.monotonic(), None
    while port is None and time.monotonic() - began < cfg.e2e_bound_s and job.running():
        port = flink_metrics.job_port(job_name)
        time.sleep(1)
    if port is None:
        raise FlowattrError(f"the job reported no metrics within {cfg.e2e_bound_s:.0f} s; "
                            f"see {cfg.state / 'bench-growth-job.log'}")
    return port


def _say_learned(say, n_ips: int, learned_s: float, cpu_s: float, growth: dict, fleet_flows: int) -> None:
    say(f"growth_e2e: {n_ips:,} IPs learned in {learned_s:.0f} s ({n_ips / learned_s:,.0f} a second, "
        f"{cpu_s * 1e6 / n_ips:,.0f} us of the job's CPU each); "
        f"held: +{growth['job_held_growth_mib']:,} MiB ({growth['job_held_bytes_per_ip']:,} B per IP: "
        f"{growth['job_heap_used_growth_mib']:,} MiB of Java objects, "
        f"{growth['job_outside_heap_growth_mib']:,} outside the heap), "
        f"RSS +{growth['job_rss_growth_mib']:,} MiB; beside it the broker "
        f"+{growth['broker_rss_growth_mib']:,} MiB, this process +{growth['bench_rss_growth_mib']:,} MiB; "
        f"now the fleet's {fleet_flows:,} flows")


def memory_growth(before: JobMemory, after: JobMemory, n_ips: int) -> dict:
    """What N more IPs cost the job: the RSS growth (an upper bound: it counts heap G1 kept
    but does not use) and what is held, the Java objects plus the memory outside the heap."""
    heap = after.heap_used_mib - before.heap_used_mib
    outside = after.outside_heap_mib - before.outside_heap_mib
    rss = after.rss_mib - before.rss_mib
    return {"job_rss_growth_mib": round(rss), "job_rss_bytes_per_ip": round(rss * 2**20 / n_ips),
            "job_heap_used_growth_mib": round(heap), "job_outside_heap_growth_mib": round(outside),
            "job_held_growth_mib": round(heap + outside),
            "job_held_bytes_per_ip": round((heap + outside) * 2**20 / n_ips)}


def bench_growth_e2e(cfg, data, say, sizes=GROWTH_E2E_IPS) -> dict:
    """growth_e2e_by_ips: one point per size (one run each). A size that fails or does not
    complete is recorded with its reason, and the larger ones are not tried."""
    points = []
    for n_ips in sizes:
        say(f"growth_e2e: {n_ips:,} other IPs known")
        too_big = memory_misfit(points[-1], n_ips, available_mib()) if points else None
        if too_big:
            say(f"growth_e2e: {n_ips:,} IPs NOT RUN: {too_big}")
            points.append({"ips": n_ips, "e2e_complete": False, "e2e_flows_per_s": None, "error": too_big})
            break
        try:
            points.append(growth_e2e_point(cfg, data, n_ips, say))
        except FlowattrError as exc:
            say(f"growth_e2e: {n_ips:,} IPs FAILED: {exc}")
            points.append({"ips": n_ips, "e2e_complete": False, "e2e_flows_per_s": None, "error": str(exc)})
        if not points[-1]["e2e_complete"]:
            break
    return {"growth_e2e_by_ips": points, "growth_e2e_complete": all(p["e2e_complete"] for p in points)}


def available_mib() -> float:
    """MemAvailable: what a new job could use without swapping or the OOM killer, MiB."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    raise FlowattrError("/proc/meminfo has no MemAvailable (Linux 3.14 or later has it)")


def memory_misfit(point: dict, n_ips: int, available: float) -> str | None:
    """Why N IPs cannot be held, projected from a smaller point, or None when they fit:
    what the job held before its IPs plus its measured cost per IP, the Java objects
    against the JVM's heap limit (90 % of it as G1's working room); then everything the
    run holds against the memory available before it: the job with a full heap, what it
    held outside the heap, and what the e2e run added outside the heap and to the broker,
    plus the broker's memory and both the broker's and this process's growth per IP (each
    growth counted only when positive: a shrink is noise, not room). A size that cannot
    fit is reported as not run, not left to an out-of-memory error an hour into its
    preload (the 10 M point of 89dc033's bench)."""
    if not point.get("e2e_complete") or not point.get("job_heap_max_mib") or point["ips"] < 100_000:
        return None   # nothing to project from (below 100 k IPs the growth is mostly noise: the 10 k point)
    heap = point["job_heap_used_before_mib"] + point["job_heap_used_growth_mib"] / point["ips"] * n_ips
    outside = point["job_outside_heap_before_mib"] + point["job_outside_heap_growth_mib"] / point["ips"] * n_ips
    limit = point["job_heap_max_mib"]
    if heap > 0.9 * limit:
        return (f"{n_ips:,} IPs need ~{heap / 1024:,.1f} GiB of Java objects (the {point['ips']:,}-IP run's "
                f"{point['job_heap_used_before_mib']:,} MiB before its IPs, "
                f"{point['job_heap_used_growth_mib'] * 2**20 / point['ips']:,.0f} B per IP) and the job's heap limit "
                f"is {limit / 1024:,.1f} GiB; "
                "run it on a machine with more memory, or ask fewer with --growth-e2e-ips")
    if outside + limit > available:
        return (f"{n_ips:,} IPs need ~{outside / 1024:,.1f} GiB outside the heap (the {point['ips']:,}-IP run's "
                f"{point['job_outside_heap_before_mib']:,} MiB before its IPs, "
                f"{point['job_outside_heap_growth_mib'] * 2**20 / point['ips']:,.0f} B per IP) beside a "
                f"{limit / 1024:,.1f} GiB heap, and "
                f"{available / 1024:,.1f} GiB are available; free memory or ask fewer with --growth-e2e-ips")
    def grown(key: str) -> float:
        return max(0, point.get(key, 0))

    beside_per_ip = (grown("broker_rss_growth_mib") + grown("bench_rss_growth_mib")) / point["ips"]
    beside = point.get("broker_rss_before_mib", 0) + beside_per_ip * n_ips
    e2e = grown("job_outside_heap_e2e_growth_mib") + grown("broker_rss_e2e_growth_mib")
    if outside + limit + e2e + beside > available:
        return (f"{n_ips:,} IPs need ~{(outside + limit + e2e + beside) / 1024:,.1f} GiB in all: the job "
                f"{(outside + limit) / 1024:,.1f} GiB with a full heap, +{e2e / 1024:,.1f} GiB in its e2e run, and "
                f"{beside / 1024:,.1f} GiB for the broker and this process (the {point['ips']:,}-IP run's "
                f"{beside_per_ip * 2**20:,.0f} B per IP); {available / 1024:,.1f} GiB are available; free memory "
                "or ask fewer with --growth-e2e-ips")
    return None
