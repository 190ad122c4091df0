"""How `flowattr bench` turns repeated runs into one figure (flowattr/lab/bench.py): the
median with min, max and every run, and no figure at all when one run did not complete."""

from __future__ import annotations

from flowattr.lab.bench import format_table, repeated


def test_a_repeated_figure_is_the_median_with_its_spread():
    runs = [{"e2e_complete": True, "e2e_flows_per_s": v, "e2e_reader_cpu_pct": c, "e2e_outcomes": 10}
            for v, c in ((300, 1.0), (100, 3.0), (200, 2.0))]
    out = repeated("e2e", runs, lambda *_: None)
    assert (out["e2e_flows_per_s"], out["e2e_flows_per_s_min"], out["e2e_flows_per_s_max"]) == (200, 100, 300)
    assert out["e2e_flows_per_s_runs"] == [300, 100, 200] and out["e2e_reader_cpu_pct"] == 2.0
    assert out["e2e_complete"] is True
    assert "200 (100-300, 3 runs)" in format_table(out)


def test_one_incomplete_run_leaves_no_figure():
    runs = [{"e2e_complete": True, "e2e_flows_per_s": 300, "e2e_reader_cpu_pct": 1.0},
            {"e2e_complete": False, "e2e_flows_per_s": None, "e2e_reader_cpu_pct": 2.0}]
    out = repeated("e2e", runs, lambda *_: None)
    assert out["e2e_complete"] is False and out["e2e_flows_per_s"] is None
    assert "e2e_flows_per_s_min" not in out and out["e2e_flows_per_s_runs"] == [300, None]
    assert "none (incomplete run)" in format_table(out)
