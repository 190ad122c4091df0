"""Exporter pieces without the kernel: the event contract, BTF parsing, identity,
batching, the spool and the publisher (with a fake Kafka sender)."""

from __future__ import annotations

import datetime

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from exporter.batcher import Batcher, distinct_names
from exporter.btf import BtfError, struct_member_offsets
from exporter.events import FLOW_EVENT, FLOW_EVENT_DTYPE, FlowEvent, decode, events_of, records
from exporter.identity import IdentityError, workload_from_certificate
from exporter.publisher import Publisher
from exporter.spool import Spool
from schemas import flowattr_pb2 as pb
from schemas.cidrs import CidrSet
from schemas.columns import bytes_to_ip, decode_flow_batch, ip_to_bytes

# Hand-annotated golden event, laid out as in bpf/flow_event.h.
GOLDEN = (
    (1_000_000_000).to_bytes(8, "little")       # 0   start_ns
    + (1_250_000_000).to_bytes(8, "little")     # 8   end_ns
    + (5000).to_bytes(8, "little")              # 16  bytes_sent
    + (7000).to_bytes(8, "little")              # 24  bytes_received
    + bytes(10) + b"\xff\xff" + bytes([10, 201, 0, 1])  # 32  local_ip ::ffff:10.201.0.1
    + bytes(10) + b"\xff\xff" + bytes([10, 201, 0, 2])  # 48  remote_ip
    + (123).to_bytes(4, "little")               # 64  srtt_us
    + (2).to_bytes(4, "little")                 # 68  retransmits
    + (40123).to_bytes(2, "little")             # 72  local_port
    + (5000).to_bytes(2, "little")              # 74  remote_port
    + bytes([1])                                # 76  direction: outbound
    + bytes([3])                                # 77  attribution: port map
    + bytes(2)                                  # 78  padding
    + b"checkout".ljust(64, b"\0")              # 80  workload
)


def test_golden_event_bytes_decode_field_by_field():
    assert len(GOLDEN) == FLOW_EVENT.size == 144
    ev = decode(GOLDEN)
    assert ev == FlowEvent(1_000_000_000, 1_250_000_000, 5000, 7000, ip_to_bytes("10.201.0.1"),
                           ip_to_bytes("10.201.0.2"), 123, 2, 40123, 5000, 1, 3, "checkout")


def test_header_and_python_agree_on_the_size():
    from pathlib import Path
    header = (Path(__file__).resolve().parents[2] / "bpf" / "flow_event.h").read_text()
    assert "/* 144 bytes */" in header and "offset 80: NUL-padded workload name" in header


BTF_SNIPPET = """[100] STRUCT 'tcp_sock' size=2368 vlen=3
\t'inet_conn' type_id=5 bits_offset=0
\t'bytes_received' type_id=38 bits_offset=14016
\t'flags' type_id=29 bits_offset=14020 bitfield_size=3
[101] STRUCT 'other' size=8 vlen=1
\t'bytes_received' type_id=38 bits_offset=0
"""


def test_btf_offsets_come_from_the_named_struct_only():
    assert struct_member_offsets(BTF_SNIPPET, "tcp_sock", ["bytes_received"]) == {"bytes_received": 1752}
    with pytest.raises(BtfError, match="no member"):
        struct_member_offsets(BTF_SNIPPET, "tcp_sock", ["bytes_acked"])
    with pytest.raises(BtfError, match="bit field"):
        struct_member_offsets(BTF_SNIPPET, "tcp_sock", ["flags"])


def _certificate(tmp_path, cn: str | None):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else
                     [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleet")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    path = tmp_path / "identity.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_identity_certificate_names_the_workload(tmp_path):
    assert workload_from_certificate(_certificate(tmp_path, "payments-api")) == "payments-api"
    with pytest.raises(IdentityError, match="no subject CN"):
        workload_from_certificate(_certificate(tmp_path, None))
    (tmp_path / "junk.pem").write_text("not a certificate")
    with pytest.raises(IdentityError, match="cannot read"):
        workload_from_certificate(tmp_path / "junk.pem")


class FixedClock:
    def to_ms_array(self, ns):
        return (ns // 1_000_000).astype("int64")


def _event(start_ms, end_ms, attribution=4, workload="", local="10.0.0.1"):
    return FlowEvent(start_ms * 1_000_000, end_ms * 1_000_000, 10, 20, ip_to_bytes(local),
                     ip_to_bytes("10.0.0.2"), 5, 0, 40000, 443, 1, attribution, workload)


def test_batcher_windows_by_close_time_and_sends_empty_windows():
    b = Batcher("e1", "h1", "r1", window_ms=60_000, identity_workload="web", clock=FixedClock())
    b.add(_event(59_000, 61_000))                                   # closes in window [60 s, 120 s)
    b.add(_event(1_000, 2_000, attribution=2, workload="cache"))    # IP map wins over identity
    out = b.flush_due(now_ms=185_000)                               # windows 0, 60 s, 120 s are due
    assert [ts for ts, _ in out] == [60_000, 120_000, 180_000]
    batches = [decode_flow_batch(v) for _, v in out]
    assert [h.sequence for h, _ in batches] == [1, 2, 3]
    first, second, third = (c for _, c in batches)
    assert first.workloads[first["local_workload_ref"][0]] == "cache"
    assert first["local_attribution"][0] == pb.LOCAL_ATTRIBUTION_IP_MAP
    assert second.workloads[second["local_workload_ref"][0]] == "web"
    assert second["local_attribution"][0] == pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
    assert len(third) == 0                                          # empty, but sent
    assert b.flush_due(now_ms=185_000) == []


def test_batcher_splits_large_windows_into_parts():
    b = Batcher("e1", "h1", "r1", window_ms=60_000, max_flows_per_message=2, clock=FixedClock())
    for i in range(5):
        b.add(_event(1000 + i, 2000 + i))
    out = [decode_flow_batch(v) for _, v in b.flush_due(now_ms=70_000)]
    assert [(h.part, h.part_count, len(c)) for h, c in out] == [(0, 3, 2), (1, 3, 2), (2, 3, 1)]
    assert [h.sequence for h, _ in out] == [1, 2, 3]
    assert bytes_to_ip(out[0][1]["local_ip"][0].tobytes()) == "10.0.0.1"


def test_every_batch_after_a_translated_socket_declares_its_ip_port_shared():
    """A PORT_MAP row (window 0) makes its local IP port-shared in that batch's header and
    every later one (window 60 s has no PORT_MAP row: its host rows still claim by port at
    the collector, heartbeats.claims_from_batch); an IP the port map holds (declared by the
    agent before a flush) joins them; nothing is declared before either."""
    b = Batcher("e1", "h1", "r1", window_ms=60_000, clock=FixedClock())
    b.add(_event(1_000, 2_000))                                                    # window 0, no PORT_MAP
    assert not b.windows_due(now_ms=61_999) and b.windows_due(now_ms=62_000)
    (before,) = b.flush_due(now_ms=62_000)
    assert decode_flow_batch(before[1])[0].port_shared_ips == b""
    b.add(_event(61_000, 62_000, attribution=3, workload="proxy"))                 # window 60 s
    b.add(_event(121_000, 122_000))                                                # window 120 s
    assert b.declare_port_shared([ip_to_bytes("10.0.0.9")]) is True
    assert b.declare_port_shared([ip_to_bytes("10.0.0.9")]) is False               # already declared
    out = [decode_flow_batch(v)[0] for _, v in b.flush_due(now_ms=185_000)]
    both = b"".join(sorted([ip_to_bytes("10.0.0.1"), ip_to_bytes("10.0.0.9")]))
    assert [h.port_shared_ips for h in out] == [both, both]


def test_golden_event_decodes_the_same_as_a_ring_record():
    rows = np.frombuffer(GOLDEN, FLOW_EVENT_DTYPE)
    assert events_of(rows) == [decode(GOLDEN)]
    assert records([decode(GOLDEN)]).tobytes()[:78] == GOLDEN[:78]   # up to the padding
    assert rows["workload"][0].split(b"\0")[0].decode() == decode(GOLDEN).workload


def test_one_bulk_read_is_batched_like_the_same_events_one_by_one():
    """A ring read of mixed windows, local IPs and attributions, worked by hand: only the
    10.0.0.0/24 and 2001:db8::/64 rows are kept; unknown rows take the identity workload."""
    evs = [_event(1_000, 2_000, attribution=2, workload="cache"),             # window 0
           _event(1_500, 59_999, local="10.0.1.1"),                           # filtered out
           _event(50_000, 61_000),                                            # window 60 s, identity
           _event(3_000, 4_000, local="2001:db8::5", attribution=3, workload="proxy"),  # window 0
           _event(5_000, 6_000, local="2001:db9::5")]                         # filtered out
    bulk = Batcher("e1", "h1", "r1", identity_workload="web", clock=FixedClock(),
                   local_filter=CidrSet(("10.0.0.0/24", "2001:db8::/64")))
    bulk.add_records(records(evs))
    out = [decode_flow_batch(v) for _, v in bulk.flush_due(now_ms=125_000)]
    assert [(h.window_start_ms, len(c)) for h, c in out] == [(0, 2), (60_000, 1)]
    first, second = out[0][1], out[1][1]
    assert [bytes_to_ip(ip.tobytes()) for ip in first["local_ip"]] == ["10.0.0.1", "2001:db8::5"]
    assert [first.workloads[r] for r in first["local_workload_ref"]] == ["cache", "proxy"]
    assert first["start_ms"].tolist() == [1_000, 3_000] and first["end_ms"].tolist() == [2_000, 4_000]
    assert first["local_attribution"].tolist() == [pb.LOCAL_ATTRIBUTION_IP_MAP, pb.LOCAL_ATTRIBUTION_PORT_MAP]
    assert second.workloads[second["local_workload_ref"][0]] == "web"
    assert second["local_attribution"][0] == pb.LOCAL_ATTRIBUTION_IDENTITY_FILE
    assert (second["bytes_sent"][0], second["bytes_received"][0], second["rtt_us"][0]) == (10, 20, 5)
    one_by_one = Batcher("e1", "h1", "r1", identity_workload="web", clock=FixedClock(),
                         local_filter=CidrSet(("10.0.0.0/24", "2001:db8::/64")))
    for ev in evs:
        one_by_one.add(ev)
    again = [decode_flow_batch(v) for _, v in one_by_one.flush_due(now_ms=125_000)]
    assert [(h, c.workloads, {k: a.tolist() for k, a in c.columns.items()}) for h, c in again] == \
           [(h, c.workloads, {k: a.tolist() for k, a in c.columns.items()}) for h, c in out]


def test_spool_survives_reopen_keeps_order_and_refuses_loudly_when_full(tmp_path, caplog):
    s = Spool(tmp_path, max_bytes=25)
    assert s.put(1, b"aaaaaaaaaa") and s.put(2, b"bbbbbbbbbb")
    assert not s.put(3, b"cccccccccc")                              # 30 > 25 bytes
    assert s.full_rejections == 1 and "SPOOL FULL" in caplog.text
    (tmp_path / "00000000000000000099.5.batch.tmp").write_bytes(b"half-written")  # crash mid-write
    again = Spool(tmp_path, max_bytes=25)                           # a restarted exporter
    assert [again.peek()[2]] == [b"aaaaaaaaaa"] and len(again) == 2
    path, ts, value = again.peek()
    again.remove(path)
    assert again.peek()[1:] == (2, b"bbbbbbbbbb")
    assert again.put(3, b"cccccccccc")                              # room again, numbered after
    assert [p.name.split(".")[0][-1] for p in again.entries()] == ["2", "3"]


class FlakySender:
    def __init__(self):
        self.up = False
        self.sent: list[tuple[bytes, int]] = []

    def send(self, topic, key, value, timestamp_ms):
        if not self.up:
            raise ConnectionError("broker down")
        self.sent.append((value, timestamp_ms))


def test_publisher_keeps_batches_until_acknowledged_and_sends_in_order(tmp_path):
    s = Spool(tmp_path, max_bytes=10_000)
    sender = FlakySender()
    pub = Publisher(s, sender, "flows.r1", "e1")
    for i in range(3):
        s.put(1000 + i, f"batch-{i}".encode())
    assert pub.drain() == 0 and len(s) == 3                         # broker down: nothing lost
    sender.up = True
    pub._retry_at = 0
    assert pub.drain() == 3 and len(s) == 0
    assert sender.sent == [(b"batch-0", 1000), (b"batch-1", 1001), (b"batch-2", 1002)]


def test_host_local_flows_are_dropped_and_counted_by_default():
    """Loopback, docker0, link-local, 0.0.0.0/8 and :: local IPs are dropped; 10.x and a
    global IPv6 are kept. Every IPv4 here travels IPv4-mapped (::ffff:a.b.c.d)."""
    b = Batcher("e1", "h1", "r1", clock=FixedClock())
    locals_ = ["127.0.0.1", "172.17.0.2", "10.0.0.1", "::1", "fe80::1", "169.254.169.254", "0.0.0.0",
               "::", "2001:db8::5", "172.18.0.2"]
    b.add_records(records([_event(1_000, 2_000, local=ip) for ip in locals_]))
    assert b.dropped_host_local == 7
    (_, cols), = [decode_flow_batch(v) for _, v in b.flush_due(now_ms=65_000)]
    assert [bytes_to_ip(ip.tobytes()) for ip in cols["local_ip"]] == ["10.0.0.1", "2001:db8::5", "172.18.0.2"]


def test_host_local_list_comes_from_the_config_and_can_be_overridden():
    from exporter.agent import ExporterConfig, make_batcher
    from schemas.addresses import HOST_LOCAL_CIDRS
    base = ExporterConfig(bootstrap="-", region="r1", exporter_id="e1", host="h1")
    assert base.host_local_cidrs == HOST_LOCAL_CIDRS
    evs = records([_event(1_000, 2_000, local=ip) for ip in ("127.0.0.1", "172.17.0.2", "10.0.0.1")])
    for cidrs, kept, dropped in [((), 3, 0),                          # override: export them all
                                 (("::ffff:172.17.0.0/112",), 2, 1),  # an IPv4-mapped IPv6 CIDR
                                 (HOST_LOCAL_CIDRS, 1, 2)]:
        b = make_batcher(ExporterConfig(bootstrap="-", region="r1", exporter_id="e1", host="h1",
                                        host_local_cidrs=cidrs))
        b.clock = FixedClock()
        b.add_records(evs)
        assert (sum(len(c[0]) for c in b.windows[0]), b.dropped_host_local) == (kept, dropped), cidrs


def test_exporter_flags_set_the_host_local_list():
    from flowattr.cli import build_parser
    from flowattr.cli.host import host_local_cidrs
    from schemas.addresses import HOST_LOCAL_CIDRS
    parse = build_parser().parse_args
    assert host_local_cidrs(parse(["exporter"])) == HOST_LOCAL_CIDRS
    assert host_local_cidrs(parse(["exporter", "--export-host-local"])) == ()
    assert host_local_cidrs(parse(["exporter", "--host-local-cidr", "127.0.0.0/8", "--host-local-cidr",
                                    "::1/128"])) == ("127.0.0.0/8", "::1/128")


def test_mapped_network_spells_out_the_ipv4_mapped_form():
    from schemas.addresses import HOST_LOCAL_CIDRS, mapped_network
    assert str(mapped_network("127.0.0.0/8")) == "::ffff:7f00:0/104"
    assert str(mapped_network("fe80::/10")) == "fe80::/10"
    assert all(mapped_network(c) for c in HOST_LOCAL_CIDRS)  # every default parses


def test_the_bpf_program_spells_the_proto_enums_and_the_pin_dir_as_python_does():
    """flow_event.h names the enum values flowtrace.c writes; they must be the proto's,
    and the maps flowtrace.c pins must be where ipmap.py writes them."""
    import re

    from exporter.ipmap import MAPS
    from exporter.probe import BPF_DIR, PIN_DIR
    header = (BPF_DIR / "flow_event.h").read_text()
    defined = {name: int(value) for name, value in re.findall(r"#define (FLOWATTR_\w+) (\d+)", header)}
    assert {k: v for k, v in defined.items() if k != "FLOWATTR_WORKLOAD_LEN"} == {
        "FLOWATTR_DIRECTION_OUTBOUND": pb.FLOW_DIRECTION_OUTBOUND,
        "FLOWATTR_DIRECTION_INBOUND": pb.FLOW_DIRECTION_INBOUND,
        "FLOWATTR_ATTRIBUTION_IP_MAP": pb.LOCAL_ATTRIBUTION_IP_MAP,
        "FLOWATTR_ATTRIBUTION_PORT_MAP": pb.LOCAL_ATTRIBUTION_PORT_MAP,
        "FLOWATTR_ATTRIBUTION_UNKNOWN": pb.LOCAL_ATTRIBUTION_UNKNOWN}
    program = (BPF_DIR / "flowtrace.c").read_text()
    assert not re.search(r"(attribution|direction) = [0-9]", program), "a literal enum value in flowtrace.c"
    pinned = dict(re.findall(r'BPF_TABLE_PINNED\([^;]*?, (\w+), \d+, "([^"]+)"\)', program))
    assert pinned == {name: str(PIN_DIR / name) for name in MAPS}


class NoKafka:
    """A sender for agent.run that sends nothing and never fails."""

    def __init__(self, bootstrap):
        pass

    def send(self, topic, key, value, timestamp_ms):
        pass


class BrokerDown(NoKafka):
    def send(self, topic, key, value, timestamp_ms):
        raise OSError("no broker: the batches stay in the spool")


def test_a_normal_stop_reports_the_probes_counters_read_before_it_is_closed(tmp_path):
    """The exporter's final metrics include the BPF counters, which exist only while the
    probe is open (bcc raises KeyError after close: the first version ended every normal
    stop with that traceback)."""
    from exporter import agent

    class ClosingProbe:
        def __init__(self, on_records):
            self.closed = False

        def poll(self, timeout_ms):
            pass

        def counters(self):
            if self.closed:
                raise KeyError("the BPF map is gone")
            return {"events_lost": 0, "closes_without_start": 0}

        def port_shared_ips(self):
            return set()

        def close(self):
            self.closed = True

    cfg = agent.ExporterConfig(bootstrap="-", region="r1", exporter_id="e1", host="h1",
                               spool_dir=tmp_path / "spool", duration_s=0.2, alive_file=tmp_path / "alive")
    final = agent.run(cfg, probe_factory=ClosingProbe, sender_factory=NoKafka)
    assert final["events_lost"] == 0 and final["events"] == 0


def test_the_port_maps_ips_are_declared_in_every_batch_and_across_restarts(tmp_path):
    """The agent scans the port map before encoding a window and saves what it declared in
    the spool dir: a restarted exporter whose port map is empty by then still declares it."""
    import time

    from exporter import agent

    declared = ip_to_bytes("10.0.0.9")

    class PortMapProbe:
        holds: set = {declared}

        def __init__(self, on_records):
            pass

        def poll(self, timeout_ms):
            time.sleep(timeout_ms / 1000)

        def counters(self):
            return {"events_lost": 0}

        def port_shared_ips(self):
            return set(self.holds)

        def close(self):
            pass

    cfg = agent.ExporterConfig(bootstrap="-", region="r1", exporter_id="e1", host="h1", spool_dir=tmp_path / "spool",
                               window_s=1, duration_s=2.5, alive_file=tmp_path / "alive")
    agent.run(cfg, probe_factory=PortMapProbe, sender_factory=BrokerDown)
    spool = Spool(tmp_path / "spool", 10**9)
    assert spool.port_shared_ips() == {declared}
    PortMapProbe.holds = set()   # the translated sockets are gone: the declaration is not
    agent.run(cfg, probe_factory=PortMapProbe, sender_factory=BrokerDown)
    headers = [decode_flow_batch(path.read_bytes())[0] for path in Spool(tmp_path / "spool", 10**9).entries()]
    assert len(headers) >= 2 and {h.port_shared_ips for h in headers} == {declared}


def test_a_translated_close_still_in_the_ring_is_declared_before_the_window_goes_out(tmp_path):
    """helper-33's race: at the scan the port map no longer holds the translated socket's
    entry, but its close (a PORT_MAP row) is still in the ring: the ring is read after the
    scan and before the window is encoded, so that very window declares the IP."""
    from exporter import agent

    b = Batcher("e1", "h1", "r1", window_ms=60_000, clock=FixedClock())

    class ClosingInTheRing:
        def port_shared_ips(self):
            return set()

        def poll(self, timeout_ms):
            assert timeout_ms == 0
            b.add(_event(20_000, 59_000, attribution=3, workload="api"))

    agent._declare_port_shared(b, Spool(tmp_path / "spool", 10**9), ClosingInTheRing())
    (out,) = b.flush_due(now_ms=62_000)
    assert decode_flow_batch(out[1])[0].port_shared_ips == ip_to_bytes("10.0.0.1")
    assert Spool(tmp_path / "spool", 10**9).port_shared_ips() == {ip_to_bytes("10.0.0.1")}


def test_the_exporter_serves_its_metrics_to_prometheus(tmp_path):
    """`flowattr exporter --metrics-port`: GET /metrics while it runs has every exporter
    metric the Grafana dashboard (grafana/flowattr.json) queries, with the probe's
    counters as the capture thread last read them; a port in use is a one-line error."""
    import json
    import re
    import socket
    import threading
    import time
    import urllib.request
    from pathlib import Path

    from exporter import agent
    from exporter.metrics_http import MetricsServer
    from schemas.errors import FlowattrError
    from tests.waiting import until

    class LossyProbe:
        def __init__(self, on_records):
            pass

        def poll(self, timeout_ms):
            time.sleep(timeout_ms / 1000)

        def counters(self):
            return {"events_lost": 3, "closes_without_start": 1, "events_submitted": 40}

        def port_shared_ips(self):
            return set()

        def close(self):
            pass

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = agent.ExporterConfig(bootstrap="-", region="r1", exporter_id="e1", host="h1", spool_dir=tmp_path / "spool",
                               duration_s=4, alive_file=tmp_path / "alive", metrics_port=port)
    seen: dict = {}

    def scrape():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            return ""

    def while_it_runs():   # agent.run installs signal handlers: it keeps the main thread
        seen["text"] = until(lambda: (t := scrape()) and 'events_lost_total{exporter="e1",region="r1"} 3' in t and t,
                             3, "the exporter's /metrics")
        try:
            MetricsServer(port, {})
        except FlowattrError as exc:
            seen["port_in_use"] = str(exc)
    scraper = threading.Thread(target=while_it_runs, daemon=True)
    scraper.start()
    agent.run(cfg, probe_factory=LossyProbe, sender_factory=NoKafka)
    scraper.join(timeout=10)
    names = {line.split("{")[0] for line in seen["text"].splitlines() if line and not line.startswith("#")}
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "grafana" / "flowattr.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel.get("targets", [])
               for name in re.findall(r"flowattr_exporter_\w+", target["expr"])}
    assert queried and queried <= names, queried - names
    assert f"cannot serve metrics on 127.0.0.1:{port}" in seen["port_in_use"]


def test_the_ring_is_read_fast_whenever_a_quiet_second_could_fill_it():
    """Poll cadence by rate (exporter/agent.py next_poll_ms), checked against a steady
    rate of events into the ~52k-record ring: at every rate up to 500k/s, no read ever
    finds more than the ring holds, once the cadence has settled. (Counting events per
    read, the first version flipped between 1 s and 100 ms reads at 10k-100k/s, and each
    1 s read over 52k/s overflowed: 4-43 % lost, found by an adversarial review.)"""
    from exporter.agent import FAST_POLL_MS, POLL_MS, next_poll_ms
    ring = 52_428
    for rate in (0, 1_000, 9_999, 10_000, 30_000, 55_000, 80_000, 99_000, 150_000, 500_000):
        poll, worst = POLL_MS, 0
        for step in range(50):
            delivered = rate * poll // 1000
            if step >= 2:
                worst = max(worst, delivered)
            poll = next_poll_ms(poll, delivered)
        assert worst <= ring, (rate, worst)
        assert poll == (FAST_POLL_MS if rate >= 10_000 else POLL_MS), rate
    # Hysteresis: a fast cadence ends only under 5k/s.
    assert next_poll_ms(FAST_POLL_MS, 600) == FAST_POLL_MS and next_poll_ms(FAST_POLL_MS, 400) == POLL_MS


def test_distinct_names_equal_numpy_unique_even_when_the_mix_collides():
    """The batcher's fast workload dictionary must be np.unique's answer exactly: a wrong
    ref would name the wrong local workload. Random names (empty, prefixes of each other,
    64 bytes long), and a mix that sends every name to one key (only the exact path can
    answer), and one that collides two names in four."""
    rng = np.random.default_rng(3)
    for trial in range(200):
        pool = [b"", b"a" * 64, b"a" * 63, b"ab"] + [bytes(rng.integers(97, 100, rng.integers(1, 65)).astype(np.uint8))
                                                  for _ in range(rng.integers(1, 20))]
        names = np.array(pool, "S64")[rng.integers(0, len(pool), rng.integers(0, 2000))]
        for mix in (None, np.zeros(8, np.uint64), np.array([1, 0, 0, 0, 0, 0, 0, 0], np.uint64)):
            got, ref = distinct_names(names) if mix is None else distinct_names(names, mix)
            want, want_ref = np.unique(names, return_inverse=True)
            assert got.tolist() == want.tolist() and ref.tolist() == want_ref.ravel().tolist(), trial
