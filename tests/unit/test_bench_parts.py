"""Which bench part a results key belongs to: a part run again with --only replaces its
own keys, and only those."""

from flowattr.lab.bench import _part_of


def test_keys_belong_to_the_longest_part_prefix():
    assert _part_of("e2e_flows_per_s") == "e2e"
    assert _part_of("e2e_rocksdb_flows_per_s") == "e2e_rocksdb"   # not e2e's
    assert _part_of("latency_error") == "latency"
    assert _part_of("growth_by_ips") == "growth"
    assert _part_of("bytes_per_range") == "state" and _part_of("generator_cpu_pct") == "exporter"
    assert _part_of("ratio_to_limit") is None and _part_of("machine") is None   # the run's, recomputed


def test_lz4_bytes_are_each_batch_compressed_as_an_exporter_would_send_it():
    from kafka.codec import lz4_decode, lz4_encode

    from flowattr.lab import simulate
    from flowattr.lab.bench import ThroughputData, wire_bytes

    fleet = simulate.build_fleet(simulate.profile("default", 3, minutes=2))
    flows = simulate.simulate_flows(fleet)
    deliveries = simulate.batch_flows(fleet, flows)
    values = [simulate.encode_delivery(fleet, flows, d) for d in deliveries]
    data = ThroughputData(fleet, flows, deliveries, values)
    wire = wire_bytes(data)
    n = sum(len(d.rows) for d in deliveries)
    assert wire["e2e_batch_bytes_per_flow"] == round(sum(map(len, values)) / n, 1)
    # Smaller on the wire, and each batch's lz4 frame decodes to the batch (what it measured).
    assert 0 < wire["e2e_lz4_bytes_per_flow"] < wire["e2e_batch_bytes_per_flow"] / 2, wire
    assert wire["e2e_wire_bytes_per_flow"] == wire["e2e_batch_bytes_per_flow"]   # compression off
    assert all(lz4_decode(lz4_encode(v)) == v for v in values[:20])
