"""The growth_e2e preload (flowattr/lab/bench_growth.py): its batches make a collector
learn exactly the N IPs asked, none of the simulated fleet's, and their own flows are
decided at once (their remote is in no region), so they add no retries to the run."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.engine import scoped_config
from flowattr.lab.bench_growth import (
    PRELOAD_CIDR,
    PRELOAD_FLOWS_PER_BATCH,
    preload_batches,
    preload_ip,
    tree_peak_rss_mib,
    tree_rss_mib,
)
from flowattr.lab.evaluate import default_config
from schemas.cidrs import CidrSet
from schemas.columns import decode_flow_batch

WINDOW = 1_790_000_040_000 // 60_000 * 60_000


def _preload(n: int, first: int = 0):
    return [(key, *decode_flow_batch(value)) for key, value in preload_batches(n, WINDOW, first)]


def test_the_preload_splits_into_batches_of_one_exporter_each_in_one_window():
    batches = _preload(PRELOAD_FLOWS_PER_BATCH + 5, first=7)
    assert [h.flow_count for _, h, _ in batches] == [PRELOAD_FLOWS_PER_BATCH, 5]
    assert len({key for key, _, _ in batches}) == 2
    for key, header, cols in batches:
        assert header.exporter_id.encode() == key and header.sequence == 1
        assert (header.window_start_ms, header.window_end_ms) == (WINDOW, WINDOW + 60_000)
        assert (cols["start_ms"] >= WINDOW).all() and (cols["end_ms"] < WINDOW + 60_000).all()
    ips = np.concatenate([cols["local_ip"] for _, _, cols in batches])
    assert [bytes(ip) for ip in ips[[0, -1]]] == [preload_ip(7), preload_ip(7 + PRELOAD_FLOWS_PER_BATCH + 4)]
    assert len({bytes(ip) for ip in ips}) == len(ips)


def test_a_collector_whose_region_holds_the_preload_cidr_learns_one_range_per_ip():
    cfg = scoped_config(default_config(), "r", {"10.0.0.0/12": "r", PRELOAD_CIDR: "r"})
    att = Attributor(cfg)
    n = 2 * PRELOAD_FLOWS_PER_BATCH + 3
    for _, _, cols in _preload(n):
        att.learn_claims(att.claims(cols))
    assert att.heartbeats.range_count() == n
    # The preload's remote is in no region: OUTSIDE_KNOWN_CIDRS at the first attempt.
    remote = _preload(1)[0][2]["remote_ip"]
    assert not CidrSet(cfg.known_cidrs).contains(remote).any()
    # Without the preload CIDR in the region, nothing is learned: why growth_config adds it.
    plain = Attributor(scoped_config(default_config(), "r", {"10.0.0.0/12": "r"}))
    plain.learn_claims(plain.claims(_preload(10)[0][2]))
    assert plain.heartbeats.range_count() == 0


def test_tree_rss_counts_this_process():
    own = int(Path(f"/proc/{os.getpid()}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    assert tree_rss_mib(os.getpid()) >= own * 0.9


def test_the_peak_rss_is_at_least_the_current_one():
    assert tree_peak_rss_mib(os.getpid()) >= tree_rss_mib(os.getpid()) * 0.9


def test_a_preload_larger_than_its_cidr_is_refused():
    import pytest

    from schemas.errors import FlowattrError
    with pytest.raises(FlowattrError, match="do not fit"):
        next(preload_batches(1 << 24, WINDOW, first_ip=1))
