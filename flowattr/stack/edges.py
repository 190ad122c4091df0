"""Reading the dependency graph back from the collectors' edges topics (edges.REGION,
compacted: each key's latest record is the total of one edge's minute)."""

from __future__ import annotations

from flink_jobs.edges import to_dict
from flowattr.graph import Graph, build_graph
from flowattr.stack.kafka_clients import read_latest_by_key
from schemas.topics import RegionTopics


def read_graph(bootstrap: str, regions: list[str], start_ms: int | None = None, end_ms: int | None = None,
               idle_timeout_s: float = 5.0) -> Graph:
    """The graph of the regions' edges in [start_ms, end_ms) of flow start (None: open)."""
    records = [to_dict(value) for region in regions
               for value in read_latest_by_key(bootstrap, RegionTopics(region).edges, idle_timeout_s).values()]
    return build_graph(records, start_ms, end_ms)
