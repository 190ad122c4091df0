"""The project's Kafka topics. Each region's collector owns one set, named KIND.REGION,
so two regions can share one broker (the demo and tests do)."""

from __future__ import annotations

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from schemas.topics import COMPACTED_KINDS, RegionTopics, kind_of


def create_topics(bootstrap: str, regions: list[str], progress=print) -> list[str]:
    """Create every topic of every region; existing topics are left alone. Returns names."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="flowattr-admin",
                             request_timeout_ms=15000)
    try:
        existing = set(admin.list_topics())
        created = []
        for region in regions:
            for name, partitions in RegionTopics(region).all().items():
                if name in existing:
                    progress(f"topic {name}: exists")
                    continue
                try:
                    configs = {"cleanup.policy": "compact"} if kind_of(name) in COMPACTED_KINDS else {}
                    admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)])
                    created.append(name)
                    progress(f"topic {name}: created with {partitions} partitions")
                except TopicAlreadyExistsError:
                    progress(f"topic {name}: exists")
        return created
    finally:
        admin.close()
