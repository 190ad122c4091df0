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
