"""Configuration of the attribution job: one frozen dataclass, the single source of its
YAML keys and flags (flink_jobs/config_model.py). The file (default
flink_jobs/config/flowattr.yaml, shipped in the wheel) has the top-level keys
`bootstrap`, `region`, `region_cidrs`, `attribution:` (AttributionConfig), `job:` (the
other JobConfig fields) and `kafka:` (client properties); flags override it. An unknown
key or a wrong type is a one-line error naming the key. No pyflink import."""

from __future__ import annotations

import argparse
import ipaddress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from flink_jobs.attribution.config import AttributionConfig, setting
from flink_jobs.config_model import ConfigError, from_mapping
from flink_jobs.config_model import add_flags as add_dataclass_flags
from schemas import kafka_properties
from schemas.errors import FlowattrError
from schemas.topics import RegionTopics

# Package data: the wheel ships it (pyproject.toml), so an installed collector finds it too.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config" / "flowattr.yaml"
STATE_BACKENDS = ("hashmap", "rocksdb")
TOP_LEVEL = ("bootstrap", "region", "region_cidrs")  # JobConfig fields at the file's top level
SECTIONS = ("attribution", "job", "kafka")


@dataclass(frozen=True)
class JobConfig:
    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers")
    region: str = setting("", "the region this collector serves (its topics are KIND.REGION)")
    region_cidrs: dict[str, str] = field(default_factory=dict, metadata={
        "help": "CIDR -> region (the CIDR trie): a flow whose remote IP is in another region is forwarded "
        "there", "flag": False})
    attribution: AttributionConfig = field(default_factory=AttributionConfig, metadata={
        "help": "the attribution rules", "yaml": False})
    parallelism: int = setting(2, "parallelism of every operator")
    checkpoint_interval_ms: int = setting(10_000, "checkpoint interval; 0 disables checkpointing")
    checkpoint_dir: str | None = setting(None, "checkpoint URI, e.g. file:///var/lib/flowattr/checkpoints "
                                         "(default file:///tmp/flowattr-checkpoints)")
    restore_path: str | None = setting(None, "a checkpoint or savepoint to restore from (local mode; "
                                       "on a cluster: flowattr job resume)")
    state_backend: str | None = setting(
        None, "where the held batches live: hashmap (JVM heap, fastest) or rocksdb (local disk, "
        "incremental checkpoints: the hold may exceed the heap); unset: the cluster's choice "
        "(the standalone cluster: rocksdb; local mode: hashmap)")
    group_id: str = setting("flowattr-collector", "Kafka consumer group prefix")
    out_of_orderness_ms: int = setting(10_000, "watermark bound: batches of one minute arrive within this")
    idleness_ms: int = setting(5_000, "an input (flows, claims, pending) without records this long stops "
                               "holding the watermark back")
    event_idleness_ms: int = setting(
        60_000, "the IP-change event input is judged idle (left out of the watermark) only after this long "
        "without an event: until then its watermark holds every attempt back, so flows are never "
        "attributed while events the source has not read yet could still change the answer")
    max_future_ms: int = setting(600_000, "a record stamped beyond wall-clock now + this is dead-lettered")
    web_ui_port: int | None = setting(None, "local mode only: serve the Flink web UI on this port")
    other_regions: tuple[str, ...] = field(default=(), metadata={
        "help": "regions flows may be forwarded to (from region_cidrs)", "yaml": False})
    kafka_properties: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Kafka client properties by Kafka's names (TLS, SASL) for every source and sink: the "
        "YAML's `kafka:` mapping, then --kafka-property", "yaml": False})

    @property
    def topics(self) -> RegionTopics:
        return RegionTopics(self.region)


# The `job:` section: every settable field that is not at the top level.
JOB_SECTION = tuple(f.name for f in fields(JobConfig) if f.metadata.get("yaml", True) and f.name not in TOP_LEVEL)


def default_regions() -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(the collector's region, CIDR -> region, event CIDRs) of the default config file:
    the one place the simulator, demo and benchmark take regions from."""
    cfg = load(None, {})
    return cfg.region, dict(cfg.region_cidrs), cfg.attribution.event_cidrs


class _StrictLoader(yaml.SafeLoader):
    """A YAML loader that refuses a key given twice (plain YAML keeps the last one: a
    region CIDR listed twice would silently move to the second region)."""


def _mapping_without_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    for key in {k for k in keys if keys.count(k) > 1}:
        raise ConfigError(f"the key {key!r} is given twice (line {node.start_mark.line + 1}); keep one")
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def read_file(path: Path | None) -> dict:
    """The YAML mapping of a config file, or a ConfigError saying what is wrong with it."""
    path = Path(path or DEFAULT_CONFIG)
    try:
        raw = yaml.load(path.read_text(), Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except OSError as exc:
        raise ConfigError(f"cannot read the config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from exc
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    for key in raw:
        if key not in TOP_LEVEL + SECTIONS:
            raise ConfigError(f"{path}: unknown key {key!r}; the top-level keys are: "
                              f"{', '.join(TOP_LEVEL + SECTIONS)}")
    return raw


def load(path: Path | None, overrides: dict) -> JobConfig:
    """The config file (default DEFAULT_CONFIG) with `overrides` (field name -> value,
    None = not given: the flags' values) on top, checked."""
    raw = read_file(path)
    attr_names = {f.name for f in fields(AttributionConfig)}
    job_names = {f.name for f in fields(JobConfig)}
    attribution = dict(raw.get("attribution") or {})
    attribution |= {k: v for k, v in overrides.items() if v is not None and k in attr_names}
    section = dict(raw.get("job") or {})
    for key in section:
        if key not in JOB_SECTION:
            raise ConfigError(f"job.{key}: unknown key; the keys of job are: {', '.join(sorted(JOB_SECTION))}")
    values = {k: raw[k] for k in TOP_LEVEL if k in raw} | section
    values |= {k: v for k, v in overrides.items()
               if v is not None and k in job_names and k not in ("attribution", "other_regions", "kafka_properties")}
    kafka = raw.get("kafka") or {}
    if not isinstance(kafka, dict):
        raise ConfigError("kafka: expected a mapping of Kafka client properties, e.g. security.protocol: SSL")
    properties = {str(k): str(v) for k, v in kafka.items()}
    properties |= kafka_properties.parse(overrides.get("kafka_property"))
    try:
        kafka_properties.check_compression(properties, "kafka")
    except FlowattrError as exc:
        raise ConfigError(str(exc)) from None
    cfg = from_mapping(JobConfig, values, "job", attribution=from_mapping(AttributionConfig, attribution,
                                                                         "attribution"),
                       kafka_properties=properties)
    _check(cfg)
    others = tuple(sorted(set(cfg.region_cidrs.values()) - {cfg.region}))
    return replace(cfg, other_regions=others)


def _check(cfg: JobConfig) -> None:
    """What a type cannot say: each message names the key."""
    if not cfg.region:
        raise ConfigError("region: not set; set it in the config file or with --region")
    if not cfg.attribution.require_settled_evidence:
        raise ConfigError("attribution.require_settled_evidence: false is for `flowattr evaluate --without "
                          "settledness` only (it misattributes); remove it from the collector's config")
    if cfg.state_backend not in (None, *STATE_BACKENDS):
        raise ConfigError(f"job.state_backend: {cfg.state_backend!r}; use one of {', '.join(STATE_BACKENDS)}")
    if cfg.parallelism < 1:
        raise ConfigError(f"job.parallelism: {cfg.parallelism}; at least 1")
    for name in ("checkpoint_interval_ms", "out_of_orderness_ms", "idleness_ms", "event_idleness_ms", "max_future_ms"):
        if getattr(cfg, name) < 0:
            raise ConfigError(f"job.{name}: {getattr(cfg, name)}; a duration is never negative")
    if not 0 < cfg.idleness_ms <= cfg.event_idleness_ms:
        raise ConfigError(f"job.event_idleness_ms: {cfg.event_idleness_ms}; at least idleness_ms "
                          f"({cfg.idleness_ms}), which must be positive: the event input is left out of event time "
                          "only after it, so no flow is attributed while unread events could change its answer")
    for cidr in cfg.region_cidrs:
        _cidr(cidr, f"region_cidrs (key {cidr!r})")
    for name in ("event_cidrs", "attributable_cidrs", "known_cidrs", "host_local_cidrs"):
        for cidr in getattr(cfg.attribution, name):
            _cidr(cidr, f"attribution.{name}")
    networks = [(ipaddress.ip_network(c, strict=False), r) for c, r in cfg.region_cidrs.items()]
    for i, (a, region_a) in enumerate(networks):
        for b, region_b in networks[i + 1:]:
            if region_a != region_b and a.version == b.version and a.overlaps(b):
                raise ConfigError(f"region_cidrs: {a} ({region_a}) and {b} ({region_b}) overlap; a remote IP "
                                  "must have one region")
    if cfg.region_cidrs and cfg.region not in cfg.region_cidrs.values():
        raise ConfigError(f"region: {cfg.region!r} owns none of region_cidrs; add its CIDRs there")


def _cidr(text: str, where: str) -> None:
    try:
        ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise ConfigError(f"{where}: {text!r} is not a CIDR ({exc})") from exc


def add_flags(parser: argparse.ArgumentParser) -> None:
    """--config, then one flag per field of JobConfig and AttributionConfig (help from the
    fields), and --kafka-property."""
    parser.add_argument("--config", type=Path, help=f"YAML configuration (default {DEFAULT_CONFIG})")
    add_dataclass_flags(parser, JobConfig, "job")
    add_dataclass_flags(parser, AttributionConfig, "attribution")
    parser.add_argument("--kafka-property", action="append", metavar="KEY=VALUE",
                        help="a Kafka client property for every source and sink (repeatable), "
                        "e.g. security.protocol=SASL_SSL; over the config's `kafka:` mapping")
