"""Fleet simulator with ground truth, deterministic from its seed.

What it models (each a knob in FleetScenario):
* EC2-style hosts, one workload and one IP each, for the whole run;
* container hosts, each with a SMALL subnet pool: containers of random workloads come
  and go, and a released IP is handed to the next container after a few seconds
  (reuse gap >= `reuse_gap_min_s`), so IPs change hands within seconds;
* a service graph: each workload calls a few others; one `gateway` workload whose
  routing table (its dependency set) is the ground truth the evaluation scores edges on;
* load balancers (no exporter) in an event-only CIDR, fronting services, occasionally
  re-pointed to another service (their IP changes hands);
* flows with realistic durations (log-normal, plus long-lived pooled connections), seen
  on BOTH ends when both ends run exporters (client connect, server accept a little
  later), each recorded with its host's skewed clock;
* per-host one-minute batches by close time, delivered with delays, some delayed by up
  to minutes, some lost;
* Sonar-style IP-change events for every assignment, delayed by the event-stream delay;
* conflicting claims: a stale IP-map entry makes an old host report a flow from an IP
  already handed to someone else;
* two regions: a small remote region with its own hosts; cross-region calls happen.

Ground truth of a flow record: the workload that really held its REMOTE IP at the
connection's true start.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from schemas import flowattr_pb2 as pb
from schemas.columns import FlowColumns, encode_flow_batch, ip_to_bytes

T0_MS = 1_790_000_000_000 // 60_000 * 60_000  # a fixed, minute-aligned start
GATEWAY = "gateway"
EVENTS_AFTER_END_MS = 45 * 60_000  # IP changes after the last flow that are still reported
LB_CIDR = "10.250.0.0/24"
REGION_CIDRS = {"10.0.0.0/12": "us-east-1", "10.250.0.0/24": "us-east-1",
                "10.16.0.0/12": "eu-west-1"}


@dataclass(frozen=True)
class FleetScenario:
    seed: int = 7                          # everything below is derived from it
    minutes: int = 30                      # simulated wall-clock span
    services: int = 60                     # workloads besides the gateway
    remote_region_services: int = 4        # of those, how many live in eu-west-1
    ec2_hosts: int = 90                    # one-workload hosts (incl. 6 gateway hosts)
    gateway_hosts: int = 6
    container_hosts: int = 40              # many-workload hosts
    pool_ips_per_container_host: int = 14  # small subnet: forces fast IP reuse
    containers_per_host: int = 11          # live containers per container host
    container_lifetime_mean_s: float = 240.0
    reuse_gap_min_s: float = 3.0           # a released IP is reused after 3..10 s
    reuse_gap_max_s: float = 10.0
    load_balancers: int = 8
    lb_repoint_every_s: float = 600.0      # mean time between re-pointing one LB IP
    deps_per_service: int = 4
    gateway_routes: int = 16               # size of the gateway's routing table
    conn_rate_per_instance: float = 0.95   # connections/s opened by each instance
    gateway_conn_rate: float = 10.0        # connections/s per gateway instance
    cross_region_fraction: float = 0.01    # calls that go to the other region
    pooled_fraction: float = 0.03          # long-lived pooled connections (minutes)
    clock_skew_ms: float = 50.0            # each host's clock offset: uniform +-
    batch_delay_fraction: float = 0.05     # batches delayed ...
    batch_delay_max_s: float = 600.0       # ... by up to this much
    batch_loss_fraction: float = 0.01      # batches never delivered
    event_delay_max_s: float = 1800.0      # IP-change events delayed 0..this
    conflict_fraction: float = 0.01        # IP handovers followed by a stale claim

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Instance:
    workload: str
    ip: str
    host: int
    birth_ms: int
    death_ms: int


@dataclass
class Fleet:
    scenario: FleetScenario
    hosts: list[dict]                       # host index -> {name, region, skew_ms}
    instances: list[Instance]
    lbs: list[Instance]                     # LB "instances": workload = service fronted
    deps: dict[str, list[str]]              # service graph
    gateway_routes: list[str]
    events: list[tuple[int, int, bytes, str, int]] = field(default_factory=list)
    # (emit_ms, event_ms, ip, workload, action)


@dataclass
class SimulatedFlows:
    """Every flow record as exporters capture it, columnar, plus ground truth."""

    cols: FlowColumns                # flow columns (host-clock times)
    host: np.ndarray                 # exporter host index per record
    true_owner: np.ndarray           # object array: workload that held the remote IP
    is_client_side: np.ndarray       # bool


def _ip(prefix: str, n: int) -> str:
    return f"{prefix}.{n // 250}.{n % 250 + 1}"


def build_fleet(sc: FleetScenario) -> Fleet:
    rng = np.random.default_rng(sc.seed)
    end_ms = T0_MS + sc.minutes * 60_000
    services = [f"svc-{i:02d}" for i in range(sc.services)]
    remote_services = set(services[-sc.remote_region_services:]) if sc.remote_region_services else set()
    local_services = [s for s in services if s not in remote_services]
    deps = {s: sorted(rng.choice([d for d in local_services if d != s], sc.deps_per_service,
                                 replace=False).tolist()) for s in services}
    routes = sorted(rng.choice(local_services, sc.gateway_routes, replace=False).tolist())
    deps[GATEWAY] = routes
    hosts: list[dict] = []
    instances: list[Instance] = []
    # EC2 hosts: gateways first, then each service at least once, then random services.
    for h in range(sc.ec2_hosts):
        if h < sc.gateway_hosts:
            workload = GATEWAY
        elif h - sc.gateway_hosts < len(services):
            workload = services[h - sc.gateway_hosts]
        else:
            workload = str(rng.choice(local_services))
        region = "eu-west-1" if workload in remote_services else "us-east-1"
        prefix = "10.16" if region == "eu-west-1" else "10.1"
        hosts.append({"name": f"ec2-{h:03d}", "region": region,
                      "skew_ms": float(rng.uniform(-sc.clock_skew_ms, sc.clock_skew_ms))})
        instances.append(Instance(workload, _ip(prefix, h), h, T0_MS - 3_600_000, end_ms + 3_600_000))
    # Container hosts: a pool of IPs per host, containers born and dying, IPs reused fast.
    for c in range(sc.container_hosts):
        h = len(hosts)
        hosts.append({"name": f"k8s-{c:03d}", "region": "us-east-1",
                      "skew_ms": float(rng.uniform(-sc.clock_skew_ms, sc.clock_skew_ms))})
        pool = [f"10.2.{c}.{i + 1}" for i in range(sc.pool_ips_per_container_host)]
        free_at = {ip: T0_MS - 600_000 for ip in pool}  # when each IP may next be assigned
        for _slot in range(sc.containers_per_host):
            t = T0_MS - int(rng.uniform(0, 300_000))
            while t < end_ms:
                ip = min(pool, key=lambda p: (free_at[p] > t, free_at[p], p))
                birth = max(t, free_at[ip])
                life = max(20_000, int(rng.exponential(sc.container_lifetime_mean_s * 1000)))
                death = birth + life
                instances.append(Instance(str(rng.choice(local_services)), ip, h, birth, death))
                gap = int(rng.uniform(sc.reuse_gap_min_s, sc.reuse_gap_max_s) * 1000)
                free_at[ip] = death + gap
                t = death + int(rng.uniform(0, 2000))
    # Load balancers: IPs in the event-only CIDR, re-pointed between services now and then.
    lbs: list[Instance] = []
    for i in range(sc.load_balancers):
        ip = f"10.250.0.{i + 1}"
        t = T0_MS - 3_600_000
        while t < end_ms + 3_600_000:
            life = int(rng.exponential(sc.lb_repoint_every_s * 1000 * sc.load_balancers))
            life = max(60_000, life) if t >= T0_MS - 3_600_000 else life
            lbs.append(Instance(str(rng.choice(routes)), ip, -1, t, t + life))
            t += life + int(rng.uniform(sc.reuse_gap_min_s, sc.reuse_gap_max_s) * 1000)
    fleet = Fleet(sc, hosts, instances, lbs, deps, routes)
    # Sonar-style events for every assignment (workload IPs and LBs), delayed.
    for inst in instances + lbs:
        for action, at in ((1, inst.birth_ms), (2, inst.death_ms)):
            # The world goes on after the last flow: changes keep being reported while the
            # collector still holds and retries flows (up to ~40 min after the end).
            if at > end_ms + EVENTS_AFTER_END_MS:
                continue
            delay = int(rng.uniform(0, sc.event_delay_max_s * 1000))
            fleet.events.append((at + delay, at, ip_to_bytes(inst.ip), inst.workload, action))
    fleet.events.sort(key=lambda e: (e[0], e[1]))
    return fleet


def simulate_flows(fleet: Fleet) -> SimulatedFlows:
    sc = fleet.scenario
    rng = np.random.default_rng(sc.seed + 1)
    end_ms = T0_MS + sc.minutes * 60_000
    # Live targets per workload: (birth, death, ip, host, is_lb) arrays.
    by_workload: dict[str, list[Instance]] = {}
    for inst in fleet.instances:
        by_workload.setdefault(inst.workload, []).append(inst)
    lb_by_workload: dict[str, list[Instance]] = {}
    for lb in fleet.lbs:
        lb_by_workload.setdefault(lb.workload, []).append(lb)
    remote_region = {i.workload for i in fleet.instances if fleet.hosts[i.host]["region"] != "us-east-1"}
    records: dict[str, list] = {k: [] for k in (
        "local_ip", "remote_ip", "local_port", "remote_port", "start", "end", "sent", "recv",
        "rtt", "local_workload", "host", "true_owner", "client", "attribution")}

    def emit(host, local_ip, remote_ip, lport, rport, start, end, sent, recv, rtt, workload,
             owner, client, attribution):
        r = records
        r["local_ip"].append(local_ip)
        r["remote_ip"].append(remote_ip)
        r["local_port"].append(lport)
        r["remote_port"].append(rport)
        r["start"].append(start)
        r["end"].append(end)
        r["sent"].append(sent)
        r["recv"].append(recv)
        r["rtt"].append(rtt)
        r["local_workload"].append(workload)
        r["host"].append(host)
        r["true_owner"].append(owner)
        r["client"].append(client)
        r["attribution"].append(attribution)

    container_hosts = {i.host for i in fleet.instances if fleet.hosts[i.host]["name"].startswith("k8s")}
    for inst in fleet.instances:
        lo, hi = max(inst.birth_ms, T0_MS), min(inst.death_ms, end_ms)
        if hi <= lo:
            continue
        rate = sc.gateway_conn_rate if inst.workload == GATEWAY else sc.conn_rate_per_instance
        n = rng.poisson(rate * (hi - lo) / 1000)
        if n == 0:
            continue
        starts = np.sort(rng.integers(lo, hi, n))
        my_deps = fleet.deps.get(inst.workload, [])
        cross = rng.random(n) < sc.cross_region_fraction
        pooled = rng.random(n) < sc.pooled_fraction
        durations = np.where(pooled, rng.uniform(60_000, 900_000, n),
                             np.minimum(rng.lognormal(np.log(300), 1.5, n), 120_000)).astype(np.int64)
        handshake = rng.integers(1, 5, n)
        sizes = rng.lognormal(8, 2, (n, 2)).astype(np.int64) + 60
        my_attr = (pb.LOCAL_ATTRIBUTION_IP_MAP if inst.host in container_hosts
                   else pb.LOCAL_ATTRIBUTION_IDENTITY_FILE)
        skew_c = fleet.hosts[inst.host]["skew_ms"]
        for k in range(n):
            t = int(starts[k])
            if cross[k] and remote_region and inst.workload != GATEWAY:
                target_wl = str(rng.choice(sorted(remote_region)))
            else:
                if not my_deps:
                    break
                target_wl = my_deps[int(rng.integers(len(my_deps)))]
            live = []
            if inst.workload == GATEWAY and rng.random() < 0.3:  # via a load balancer
                live = [p for p in lb_by_workload.get(target_wl, []) if p.birth_ms <= t < p.death_ms]
            use_lb = bool(live)
            if not live:
                live = [p for p in by_workload.get(target_wl, []) if p.birth_ms <= t < p.death_ms]
            if not live:
                continue
            target = live[int(rng.integers(len(live)))]
            end = min(t + int(durations[k]), inst.death_ms, target.death_ms)
            if end <= t:
                continue
            lport = int(rng.integers(32768, 61000))
            rport = 443 if use_lb else 8080
            rtt = int(rng.integers(100, 3000))
            sent, recv = int(sizes[k, 0]), int(sizes[k, 1])
            emit(inst.host, inst.ip, target.ip, lport, rport, t + skew_c, end + skew_c, sent, recv,
                 rtt, inst.workload, target.workload, True, my_attr)
            if target.host >= 0:  # the server runs an exporter: it sees the accept too
                skew_s = fleet.hosts[target.host]["skew_ms"]
                s_attr = (pb.LOCAL_ATTRIBUTION_IP_MAP if target.host in container_hosts
                          else pb.LOCAL_ATTRIBUTION_IDENTITY_FILE)
                accept = t + int(handshake[k])  # the server's socket exists once the handshake is done
                emit(target.host, target.ip, inst.ip, rport, lport, accept + skew_s,
                     max(end, accept) + skew_s, recv, sent, rtt, target.workload, inst.workload, False, s_attr)
    # Conflicting claims: a stale IP-map entry on the OLD host keeps naming the old
    # workload after its IP was released (and, after the reuse gap, handed on).
    handovers = [i for i in fleet.instances if fleet.hosts[i.host]["name"].startswith("k8s")
                 and T0_MS < i.death_ms < end_ms - 60_000]
    n_conf = round(len(handovers) * sc.conflict_fraction)
    for idx in (rng.choice(len(handovers), n_conf, replace=False) if n_conf else []):
        inst = handovers[int(idx)]
        t = inst.death_ms + int(sc.reuse_gap_max_s * 1000) + int(rng.integers(500, 20_000))
        peer = fleet.instances[int(rng.integers(sc.gateway_hosts, sc.ec2_hosts))]
        skew = fleet.hosts[inst.host]["skew_ms"]
        emit(inst.host, inst.ip, peer.ip, 40000, 8080, t + skew, t + 200 + skew, 100, 100, 500,
             inst.workload, peer.workload, True, pb.LOCAL_ATTRIBUTION_IP_MAP)

    n = len(records["start"])
    cols = FlowColumns.zeros(n)
    names = sorted(set(records["local_workload"]))
    cols.workloads = [""] + names
    ref = {w: i + 1 for i, w in enumerate(names)}
    ip_cache = {t: ip_to_bytes(t) for t in set(records["local_ip"]) | set(records["remote_ip"])}

    def ip_array(texts):
        buf = b"".join([ip_cache[t] for t in texts])
        return np.frombuffer(buf, np.uint8).reshape(len(texts), 16)

    cols.columns.update({
        "local_ip": ip_array(records["local_ip"]), "remote_ip": ip_array(records["remote_ip"]),
        "local_port": np.array(records["local_port"], np.uint16),
        "remote_port": np.array(records["remote_port"], np.uint16),
        "start_ms": np.array(records["start"], np.int64), "end_ms": np.array(records["end"], np.int64),
        "bytes_sent": np.array(records["sent"], np.uint64),
        "bytes_received": np.array(records["recv"], np.uint64),
        "rtt_us": np.array(records["rtt"], np.uint32),
        "local_workload_ref": np.array([ref[w] for w in records["local_workload"]], np.uint32),
        "local_attribution": np.array(records["attribution"], np.uint8),
        "direction": np.where(records["client"], pb.FLOW_DIRECTION_OUTBOUND,
                              pb.FLOW_DIRECTION_INBOUND).astype(np.uint8),
    })
    return SimulatedFlows(cols, np.array(records["host"], np.int64),
                          np.array(records["true_owner"], dtype=object), np.array(records["client"]))


@dataclass
class Delivery:
    """One FlowBatch as delivered: when it arrives, and which records it carries."""

    host: int
    window_start_ms: int
    arrival_ms: int          # true time the collector receives it
    sequence: int
    rows: np.ndarray         # indices into SimulatedFlows
    lost: bool


def batch_flows(fleet: Fleet, flows: SimulatedFlows) -> list[Delivery]:
    """Cut each host's records into one-minute windows by (host-clock) close time and
    assign delivery times: normally 1-5 s after the window, some delayed, some lost."""
    sc = fleet.scenario
    rng = np.random.default_rng(sc.seed + 2)
    window = flows.cols["end_ms"] // 60_000 * 60_000
    order = np.lexsort((window, flows.host))
    keys = np.stack([flows.host[order], window[order]], axis=1)
    cut = np.flatnonzero(np.r_[True, np.any(keys[1:] != keys[:-1], axis=1), True])
    out = []
    seq: dict[int, int] = {}
    for a, b in zip(cut[:-1], cut[1:], strict=True):
        host, wstart = int(keys[a, 0]), int(keys[a, 1])
        seq[host] = seq.get(host, 0) + 1
        delay = int(rng.uniform(1000, 5000))
        if rng.random() < sc.batch_delay_fraction:
            delay += int(rng.uniform(0, sc.batch_delay_max_s * 1000))
        lost = bool(rng.random() < sc.batch_loss_fraction)
        out.append(Delivery(host, wstart, wstart + 60_000 + delay, seq[host], order[a:b], lost))
    out.sort(key=lambda d: (d.arrival_ms, d.host))
    return out


def encode_delivery(fleet: Fleet, flows: SimulatedFlows, d: Delivery) -> bytes:
    host = fleet.hosts[d.host]
    cols = flows.cols.take(d.rows)
    header = pb.FlowBatch(exporter_id=host["name"], host=host["name"], region=host["region"],
                          window_start_ms=d.window_start_ms, window_end_ms=d.window_start_ms + 60_000,
                          sequence=d.sequence, part=0, part_count=1)
    return encode_flow_batch(header, cols)


def encode_event(event: tuple[int, int, bytes, str, int], index: int) -> bytes:
    emit_ms, event_ms, ip, workload, action = event
    return pb.IpChangeEvent(ip=ip, resource_id=f"res/{workload}", workload=workload, action=action,
                            event_time_ms=event_ms, emit_time_ms=emit_ms,
                            region="us-east-1", event_id=f"ev-{index}").SerializeToString()


def write_files(out_dir, fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery]) -> dict:
    """Write delivered batches (arrival order), events (emit order) and the ground truth.

    batches.bin / events.bin: records of u32 little-endian length + protobuf bytes.
    truth.npz: per flow record exporter (index into `exporters`), sequence, flow_index
    and true owner (index into `owners`), for `flowattr evaluate --score-topics`.
    """
    import json
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "batches.bin", "wb") as f:
        for d in deliveries:
            if not d.lost:
                value = encode_delivery(fleet, flows, d)
                f.write(len(value).to_bytes(4, "little") + value)
    with open(out / "events.bin", "wb") as f:
        for i, ev in enumerate(fleet.events):
            value = encode_event(ev, i)
            f.write(len(value).to_bytes(4, "little") + value)
    write_truth(out / "truth.npz", fleet, flows, deliveries)
    summary = {"flow_records": len(flows.cols), "batches": len(deliveries),
               "batches_lost": sum(d.lost for d in deliveries), "events": len(fleet.events),
               "gateway_routes": fleet.gateway_routes, "scenario": fleet.scenario.describe()}
    (out / "scenario.json").write_text(json.dumps(summary, indent=2))
    return summary


def write_truth(path, fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery]) -> None:
    delivered = [d for d in deliveries if not d.lost]
    rows = np.concatenate([d.rows for d in delivered]) if delivered else np.zeros(0, np.int64)
    exporter = np.concatenate([np.full(len(d.rows), d.host) for d in delivered]) if delivered else rows
    sequence = np.concatenate([np.full(len(d.rows), d.sequence) for d in delivered]) if delivered else rows
    index = np.concatenate([np.arange(len(d.rows)) for d in delivered]) if delivered else rows
    owners = sorted(set(flows.true_owner.tolist()))
    owner_index = {w: i for i, w in enumerate(owners)}
    np.savez_compressed(
        path, exporters=np.array([h["name"] for h in fleet.hosts]), exporter=exporter.astype(np.int32),
        sequence=sequence.astype(np.int64), flow_index=index.astype(np.int32),
        owners=np.array(owners), owner=np.array([owner_index[w] for w in flows.true_owner[rows]], np.int32),
        local_workload=np.array([flows.cols.workloads[r] for r in flows.cols["local_workload_ref"][rows]]),
        client_side=flows.is_client_side[rows], gateway_routes=np.array(fleet.gateway_routes))


def produce_to_kafka(bootstrap: str, fleet: Fleet, flows: SimulatedFlows, deliveries: list[Delivery],
                     progress=print, extra_batches: list[tuple[str, bytes]] = ()) -> int:
    """Produce delivered batches to flows.<host region> and events to ipchanges.us-east-1,
    interleaved in arrival order, each with its Kafka timestamp = event time (window end
    for batches, emit time for events). Then advance event time (advance_event_time) so
    the job's holds and retries for this data all come due. Returns batches produced."""
    from flowattr.kafka_clients import producer

    p = producer(bootstrap)
    timeline = [(ev[0], 0, i) for i, ev in enumerate(fleet.events)]
    timeline += [(d.arrival_ms, 1, i) for i, d in enumerate(deliveries) if not d.lost]
    timeline.sort()
    sent = 0
    for _, kind, i in timeline:
        if kind == 0:
            p.send("ipchanges.us-east-1", encode_event(fleet.events[i], i), timestamp_ms=fleet.events[i][0])
            continue
        d = deliveries[i]
        p.send(f"flows.{fleet.hosts[d.host]['region']}", encode_delivery(fleet, flows, d),
               timestamp_ms=d.window_start_ms + 60_000)
        sent += 1
        if sent % 1000 == 0:
            progress(f"  produced {sent:,} batches")
    for topic, value in extra_batches:
        p.send(topic, value, timestamp_ms=T0_MS + 60_000)
    p.flush()
    last_window_end = max(d.window_start_ms for d in deliveries) + 60_000
    advance_event_time(p, sorted({h["region"] for h in fleet.hosts}), last_window_end, 45)
    p.close()
    return sent


def advance_event_time(p, regions: list[str], from_ms: int, minutes: int) -> None:
    """Empty batches from a "clock" exporter, one per minute for `minutes` minutes, on every
    partition of each region's flows topic. Real exporters send a batch every minute even
    with no flows; a finite simulation needs the same so event time keeps moving and the
    last holds and retries come due."""
    for region in regions:
        topic = f"flows.{region}"
        partitions = sorted(p.partitions_for(topic))
        for m in range(1, minutes + 1):
            start = from_ms + (m - 1) * 60_000
            for part in partitions:
                header = pb.FlowBatch(exporter_id=f"clock-{region}-{part}", host="clock", region=region,
                                      window_start_ms=start, window_end_ms=start + 60_000, sequence=m,
                                      part=0, part_count=1)
                p.send(topic, encode_flow_batch(header, FlowColumns.zeros(0)), partition=part,
                       timestamp_ms=start + 60_000)
    p.flush()
