"""One config model: the dataclasses are the single source of the YAML keys and the flags,
and a bad file is a one-line error naming its key (flink_jobs/config_model.py,
flink_jobs/job_config.py)."""

from __future__ import annotations

import argparse
import typing
from dataclasses import fields

import pytest
import yaml

from flink_jobs.attribution.config import AttributionConfig
from flink_jobs.config_model import ConfigError, settable_fields
from flink_jobs.job_config import DEFAULT_CONFIG, JOB_SECTION, JobConfig, add_flags, load


def _write(tmp_path, text: str):
    path = tmp_path / "flowattr.yaml"
    path.write_text(text)
    return path


def _parse(argv: list[str]) -> dict:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    return vars(parser.parse_args(argv))


def test_the_default_file_loads_and_every_key_in_it_is_a_field():
    cfg = load(None, {})
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert set(raw["attribution"]) <= {f.name for f in settable_fields(AttributionConfig)}
    assert set(raw["job"]) <= set(JOB_SECTION)
    assert cfg.region == raw["region"] and cfg.region_cidrs == raw["region_cidrs"]
    assert cfg.attribution.event_cidrs == tuple(raw["attribution"]["event_cidrs"])
    assert cfg.parallelism == raw["job"]["parallelism"]
    assert cfg.other_regions == ("eu-west-1",)


@pytest.mark.parametrize("text, message", [
    ("region: r\nattribution:\n  hold_msx: 5\n", "attribution.hold_msx: unknown key"),
    ("region: r\njob:\n  parallelism: two\n", "job.parallelism: expected an integer, got str 'two'"),
    ("region: r\njob:\n  parallelism: true\n", "job.parallelism: expected an integer, got bool True"),
    ("region: r\njob:\n  region: x\n", "job.region: unknown key"),
    ("region: r\nattribution:\n  event_cidrs: 10.250.0.0/24\n", "attribution.event_cidrs: expected a list"),
    ("region: r\nattribution:\n  event_cidrs: [10.250.0.0/33]\n", "attribution.event_cidrs: '10.250.0.0/33' is not"),
    ("region: r\nregion_cidrs:\n  10.0.0.0/8: r\n  banana: r\n", "region_cidrs (key 'banana'): 'banana' is not"),
    ("region: r\nattribution:\n  skew_tolerance_ms: 5000\n", "attribution: skew_tolerance_ms must be well below"),
    ("region: r\nregions: {}\n", "unknown key 'regions'"),
    ("job:\n  parallelism: 2\n", "region: not set"),
    ("region: r\njob:\n  state_backend: disk\n", "job.state_backend: 'disk'"),
    ("region: [\n", "is not valid YAML"),
    ("region: r\nkafka: [a]\n", "kafka: expected a mapping"),
    ("region: r\nkafka:\n  compression.type: zstd\n", "kafka: compression.type='zstd': the collector job's"),
    ("region: r\nattribution:\n  event_max_delay_ms: -600000\n", "event_max_delay_ms is -600000: a duration is never"),
    ("region: r\nattribution:\n  skew_tolerance_ms: -500\n", "skew_tolerance_ms is -500"),
    ("region: r\nattribution:\n  exporter_silence_ms: 0\n", "exporter_silence_ms must be positive"),
    ("region: r\njob:\n  event_idleness_ms: 1\n", "job.event_idleness_ms: 1; at least idleness_ms"),
    ("region: r\njob:\n  out_of_orderness_ms: -1\n", "job.out_of_orderness_ms: -1"),
    ("region: r\nregion_cidrs:\n  10.0.0.0/12: r\n  10.0.0.0/12: s\n", "the key '10.0.0.0/12' is given twice"),
    ("region: r\nregion_cidrs:\n  10.0.0.0/8: r\n  10.16.0.0/12: s\n", "10.0.0.0/8 (r) and 10.16.0.0/12 (s) overlap"),
])
def test_a_bad_file_is_one_error_naming_its_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as err:
        load(_write(tmp_path, text), {})
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_says_which():
    with pytest.raises(ConfigError, match="cannot read the config file /nonexistent.yaml"):
        load("/nonexistent.yaml", {})


def test_every_scalar_and_list_field_is_a_flag_with_help_and_flags_win_over_the_file(tmp_path):
    parser = argparse.ArgumentParser()
    add_flags(parser)
    by_dest = {a.dest: a for a in parser._actions}
    for cls in (JobConfig, AttributionConfig):
        hints = typing.get_type_hints(cls)
        for f in settable_fields(cls):
            if f.metadata.get("flag", True) and typing.get_origin(hints[f.name]) is not dict:
                assert f.name in by_dest, f"{cls.__name__}.{f.name} has no flag"
                assert by_dest[f.name].help, f"--{f.name} has no help"
    assert "require_settled_evidence" not in by_dest   # YAML-only (the job refuses false anyway)
    path = _write(tmp_path, "region: us-east-1\nregion_cidrs: {10.0.0.0/12: us-east-1}\n"
                            "attribution:\n  skew_tolerance_ms: 100\n  event_cidrs: [10.250.0.0/24]\n")
    args = _parse(["--skew-tolerance-ms", "300", "--min-reuse-gap-ms", "3000",
                   "--event-cidrs", "10.250.0.0/24, 10.251.0.0/24", "--parallelism", "3",
                   "--region", "us-east-1"])
    cfg = load(path, args)
    assert cfg.attribution.skew_tolerance_ms == 300 and cfg.attribution.min_reuse_gap_ms == 3000
    assert cfg.attribution.event_cidrs == ("10.250.0.0/24", "10.251.0.0/24")
    assert cfg.parallelism == 3
    unset = load(path, _parse([]))   # flags not given leave the file's values
    assert unset.attribution.skew_tolerance_ms == 100 and unset.parallelism == 2


def test_every_field_documents_itself():
    for cls in (JobConfig, AttributionConfig):
        for f in fields(cls):
            assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help"
