"""Configuration of the attribution job: one frozen dataclass, read from a YAML file
(flink_jobs/config/flowattr.yaml) with command-line flags on top. No pyflink import."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

import yaml

from flink_jobs.attribution.config import AttributionConfig
from schemas import kafka_properties
from schemas.topics import RegionTopics

# Package data: the wheel ships it (pyproject.toml), so an installed collector finds it too.
DEFAULT_CONFIG = Path(__file__).resolve().parent / "config" / "flowattr.yaml"


@dataclass(frozen=True)
class JobConfig:
    bootstrap: str                                 # Kafka bootstrap servers
    region: str                                    # the region this collector serves
    region_cidrs: dict[str, str]                   # CIDR -> region (CIDR trie)
    attribution: AttributionConfig                 # the core's rules
    parallelism: int = 2                           # of every operator
    checkpoint_interval_ms: int = 10_000           # 0 disables checkpointing
    checkpoint_dir: str | None = None              # file:///... (default file:///tmp/flowattr-checkpoints)
    restore_path: str | None = None                # a checkpoint to restore from
    # Where keyed state (the held batches) lives: "hashmap" (JVM heap, fastest) or
    # "rocksdb" (local disk, incremental checkpoints: the hold may exceed the heap).
    # None: the cluster's choice (the standalone cluster's config says rocksdb; local
    # mode's default is hashmap).
    state_backend: str | None = None
    group_id: str = "flowattr-collector"           # Kafka consumer group prefix
    out_of_orderness_ms: int = 10_000              # watermark bound
    idleness_ms: int = 5_000                       # idle input detection (flows, claims, pending)
    # The IP-change event input is judged idle (left out of the broadcast watermark) only
    # after this long without an event: until then its watermark holds every attempt
    # back, so flows are never attributed while events the source has not read yet (a
    # consumer starting, or catching up a backlog) could still change the answer.
    event_idleness_ms: int = 60_000
    max_future_ms: int = 600_000                   # window end beyond wall clock + this: dead letter
    other_regions: tuple[str, ...] = field(default=())  # regions flows may be forwarded to
    web_ui_port: int | None = None                 # local mode only: serve the web UI on this port
    # Kafka client properties by Kafka's names (TLS, SASL), for every source and sink,
    # over the connector's own settings: the YAML's `kafka:` mapping, then --kafka-property.
    kafka_properties: dict[str, str] = field(default_factory=dict)

    @property
    def topics(self) -> RegionTopics:
        return RegionTopics(self.region)


STATE_BACKENDS = ("hashmap", "rocksdb")


def default_regions() -> tuple[str, dict[str, str], tuple[str, ...]]:
    """(the collector's region, CIDR -> region, event CIDRs) of the default config file:
    the one place the simulator, demo and benchmark take regions from."""
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text()) or {}
    return (str(raw["region"]), {str(k): str(v) for k, v in raw["region_cidrs"].items()},
            tuple(raw["attribution"]["event_cidrs"]))


def load(path: Path | None, overrides: dict) -> JobConfig:
    raw = yaml.safe_load(Path(path or DEFAULT_CONFIG).read_text()) or {}
    attribution = raw.get("attribution", {})
    for key in ("event_cidrs", "attributable_cidrs", "known_cidrs", "host_local_cidrs"):
        if key in attribution:  # YAML lists; the frozen config holds tuples
            attribution[key] = tuple(attribution[key])
    job = raw.get("job", {})
    properties = {str(k): str(v) for k, v in (raw.get("kafka") or {}).items()}
    properties |= kafka_properties.parse(overrides.get("kafka_property"))
    cfg = JobConfig(bootstrap=overrides.get("bootstrap") or raw.get("bootstrap", "127.0.0.1:9092"),
                    region=overrides.get("region") or raw["region"],
                    region_cidrs={str(k): str(v) for k, v in raw.get("region_cidrs", {}).items()},
                    attribution=AttributionConfig(**attribution), kafka_properties=properties, **job)
    attr_over = {k: v for k, v in overrides.items()
                 if v is not None and k in {f.name for f in fields(AttributionConfig)}}
    job_over = {k: v for k, v in overrides.items() if v is not None and k in {f.name for f in fields(JobConfig)}
                and k not in ("bootstrap", "region", "attribution")}
    cfg = replace(cfg, attribution=replace(cfg.attribution, **attr_over), **job_over)
    if not cfg.attribution.require_settled_evidence:
        raise ValueError("attribution.require_settled_evidence: false is for `flowattr evaluate --without "
                         "settledness` only (it misattributes); remove it from the collector's config")
    if cfg.state_backend not in (None, *STATE_BACKENDS):
        raise ValueError(f"state_backend {cfg.state_backend!r}: use one of {', '.join(STATE_BACKENDS)}")
    others = tuple(sorted(set(cfg.region_cidrs.values()) - {cfg.region}))
    return replace(cfg, other_regions=others)


def add_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help=f"YAML configuration (default {DEFAULT_CONFIG})")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers, e.g. 127.0.0.1:9092")
    parser.add_argument("--region", help="the region this collector serves")
    for name, typ in (("parallelism", int), ("checkpoint_interval_ms", int), ("checkpoint_dir", str),
                      ("state_backend", str), ("restore_path", str), ("group_id", str), ("hold_ms", int),
                      ("retry_delay_ms", int),
                      ("max_attempts", int), ("retention_ms", int), ("out_of_orderness_ms", int),
                      ("idleness_ms", int), ("event_idleness_ms", int), ("max_future_ms", int),
                      ("web_ui_port", int)):
        parser.add_argument("--" + name.replace("_", "-"), type=typ, dest=name)
    parser.add_argument("--kafka-property", action="append", metavar="KEY=VALUE",
                        help="a Kafka client property for every source and sink (repeatable), "
                        "e.g. security.protocol=SASL_SSL; over the config's `kafka:` mapping")
