"""The growth_e2e preload (flowattr/lab/bench_growth.py): its batches make a collector
learn exactly the N IPs asked, none of the simulated fleet's, and their own flows are
decided at once (their remote is in no region), so they add no retries to the run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.engine import scoped_config
from flowattr.lab.bench_growth import (
    PRELOAD_CIDR,
    PRELOAD_FLOWS_PER_BATCH,
    JobMemory,
    job_memory,
    memory_growth,
    memory_misfit,
    preload_batches,
    preload_ip,
    tree_cpu_s,
    tree_peak_rss_mib,
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


@pytest.fixture
def lone_child():
    """A Python process with no children, holding ~40 MiB more than it started with: this
    test process may have children of its own (the suite's broker and Flink JVM)."""
    child = subprocess.Popen([sys.executable, "-c", "import sys, time\nheld = bytearray(40 * 2**20)\n"
                              "print('ready', flush=True)\ntime.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    yield child.pid
    child.kill()
    child.wait()
    child.stdout.close()


def test_job_memory_counts_a_process_without_a_jvm_as_all_outside_the_heap(lone_child):
    own = int(Path(f"/proc/{lone_child}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    mem = job_memory(lone_child)
    assert own >= 40 and own * 0.9 <= mem.rss_mib <= own * 1.1
    assert mem.heap_used_mib == 0 and mem.heap_max_mib == 0 and mem.outside_heap_mib == mem.rss_mib


def test_the_peak_rss_is_at_least_the_current_one(lone_child):
    assert tree_peak_rss_mib(lone_child) >= job_memory(lone_child).rss_mib * 0.9


def test_what_is_held_leaves_out_the_heap_g1_kept_but_does_not_use():
    # 2^20 IPs: the RSS grew 500 MiB; the objects in the heap 200 MiB; outside the heap
    # 100 MiB. Held: 300 MiB (the other 200 MiB: heap G1 kept, empty).
    growth = memory_growth(JobMemory(1_000, 100, 400), JobMemory(1_500, 300, 500), 2**20)
    assert growth == {"job_rss_growth_mib": 500, "job_rss_bytes_per_ip": 500, "job_heap_used_growth_mib": 200,
                      "job_outside_heap_growth_mib": 100, "job_held_growth_mib": 300, "job_held_bytes_per_ip": 300}


def test_the_heap_and_its_address_range_are_read_from_what_jcmd_prints_for_g1():
    from flowattr.lab.bench_growth import _HEAP_INFO
    line = " garbage-first heap   total 397312K, used 17621K [0x0000000687400000, 0x0000000800000000)"
    assert _HEAP_INFO.search(line).groups() == ("397312", "17621", "0000000687400000", "0000000800000000")


def test_resident_memory_is_read_per_mapping():
    from flowattr.lab.bench_growth import _mapping_rss_kib
    smaps = ("687400000-687800000 rw-p 00000000 00:00 0 \nSize:               4096 kB\nRss:                1024 kB\n"
             "7f0000000000-7f0000001000 r-xp 00000000 08:01 42   /usr/lib/libpython3.11.so\nRss:    4 kB\n")
    assert _mapping_rss_kib(smaps) == [(0x687400000, 1024), (0x7F0000000000, 4)]


def test_a_preload_larger_than_its_cidr_is_refused():
    from schemas.errors import FlowattrError
    with pytest.raises(FlowattrError, match="do not fit"):
        next(preload_batches(1 << 24, WINDOW, first_ip=1))


def test_a_size_whose_projected_memory_does_not_fit_is_not_run():
    # 1 M IPs measured: 600 MiB of Java objects, 500 MiB outside the heap, after 100 MiB and
    # 300 MiB held before them; heap limit 6,000 MiB.
    point = {"ips": 1_000_000, "e2e_complete": True, "job_heap_used_growth_mib": 600,
             "job_outside_heap_growth_mib": 500, "job_heap_max_mib": 6_000, "job_heap_used_before_mib": 100,
             "job_outside_heap_before_mib": 300}
    # 9 M: 100 + 5,400 = 5,500 MiB of objects > 90 % of the 6,000 MiB limit (5,400).
    assert "heap limit is 5.9 GiB" in memory_misfit(point, 9_000_000, 100_000)
    assert memory_misfit(point, 8_000_000, 100_000) is None   # 4,900 MiB
    # 5 M: 300 + 2,500 = 2,800 MiB outside, beside a 6,000 MiB heap: 8,800 MiB > 8,700 available.
    assert "2.7 GiB outside the heap" in memory_misfit(point, 5_000_000, 8_700)
    assert memory_misfit(point, 5_000_000, 8_800) is None
    # Beside the job: 200 MiB of broker, then 300 (broker) + 100 (this process) MiB per 1 M
    # IPs, and the e2e run added 400 MiB outside the job's heap and 100 to the broker (its
    # peak RSS, heap G1 gave back included, is not what counts: helper-36). 5 M: 300 +
    # 2,500 outside + 6,000 heap + 500 e2e + 200 + 2,000 beside = 11,500 MiB.
    beside = {**point, "broker_rss_before_mib": 200, "broker_rss_growth_mib": 300, "bench_rss_growth_mib": 100,
              "job_outside_heap_e2e_growth_mib": 400, "broker_rss_e2e_growth_mib": 100, "job_peak_rss_mib": 9_999}
    assert "~11.2 GiB in all" in memory_misfit(beside, 5_000_000, 11_499)
    assert memory_misfit(beside, 5_000_000, 11_500) is None
    # A shrink (noise) gives no room: the bench process 1,000 MiB smaller per 1 M IPs counts
    # as 0 (11,500 - 500 = 11,000 MiB), not as 5,000 MiB freed.
    shrunk = {**beside, "bench_rss_growth_mib": -1_000}
    assert memory_misfit(shrunk, 5_000_000, 10_999) and memory_misfit(shrunk, 5_000_000, 11_000) is None
    # 89dc033's bench (bench/results.json, 1 M point): the 10 M point ran out of memory at
    # ~8.2 M IPs, the job at 15.3 GiB, this process 5.7, the broker 3.2, with 23.5 GiB in
    # all; the job alone projected 17.4 GiB and was let run. Then (batches not compressed)
    # the broker grew ~400 MiB per 1 M IPs; a quarter of that stops it here. With lz4 the
    # broker grows far less (helper-36's probe: 15 MiB for a 1 M-IP preload).
    measured = {"ips": 1_000_000, "e2e_complete": True, "job_heap_used_growth_mib": 470,
                "job_outside_heap_growth_mib": 1_061, "job_heap_max_mib": 6_028, "job_heap_used_before_mib": 133,
                "job_outside_heap_before_mib": 790, "job_peak_rss_mib": 5_404}
    assert memory_misfit(measured, 10_000_000, 20_000) is None       # the old projection: it fits
    assert "in all" in memory_misfit({**measured, "broker_rss_growth_mib": 100, "bench_rss_growth_mib": 0,
                                      "broker_rss_before_mib": 100}, 10_000_000, 18_500)
    # Nothing to project from: an incomplete point, one without a JVM measured, a small one.
    assert memory_misfit({**point, "e2e_complete": False}, 10_000_000, 100) is None
    assert memory_misfit({**point, "job_heap_max_mib": 0}, 10_000_000, 100) is None
    assert memory_misfit({**point, "ips": 10_000}, 10_000_000, 100) is None


def test_the_heap_line_of_jdk_22_and_later_is_read_too():
    from flowattr.lab.bench_growth import _HEAP_INFO
    line = (" garbage-first heap   total reserved 6291456K, committed 397312K, used 17621K "
            "[0x0000000687400000, 0x0000000800000000)")
    assert _HEAP_INFO.search(line).groups() == ("397312", "17621", "0000000687400000", "0000000800000000")


def test_the_cpu_of_a_process_tree_counts_a_child_spinning():
    child = subprocess.Popen([sys.executable, "-c", "import time\nend = time.process_time() + 0.5\n"
                              "while time.process_time() < end: pass\ntime.sleep(30)"])
    try:
        deadline = time.monotonic() + 30
        while tree_cpu_s(child.pid) < 0.5 and time.monotonic() < deadline:
            time.sleep(0.05)
        # Its own process: at least the 0.5 s it spun (stat's fields 14-15, in clock ticks).
        assert 0.5 <= tree_cpu_s(child.pid) < 5
        assert tree_cpu_s(os.getpid()) >= tree_cpu_s(child.pid)   # the tree holds the child
    finally:
        child.kill()
        child.wait()
