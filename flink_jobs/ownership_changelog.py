"""What the collector has learned about an IP, as IpOwnership records for the compacted
ownership.R topic (`flowattr whois` reads it). Pure (no pyflink): the attribute operator
publishes `changes` of the keys its OwnershipStore reports changed."""

from __future__ import annotations

from flink_jobs.attribution.attributor import Attributor
from flink_jobs.attribution.ranges import CONTESTED, PORT_KEY_BYTES, UNRESOLVED
from schemas import flowattr_pb2 as pb
from schemas.columns import bytes_to_ip


def record_key(key: bytes) -> bytes:
    """The Kafka key of an ownership key: the IP's text, ":port" for one port of a
    port-shared IP (what `flowattr whois` looks up)."""
    text = bytes_to_ip(key[:16])
    if len(key) == PORT_KEY_BYTES:
        text += f":{int.from_bytes(key[16:], 'big')}"
    return text.encode()


def ownership(att: Attributor, key: bytes, region: str, now_ms: int) -> bytes:
    """IpOwnership bytes of a key: its heartbeat ranges and (for a whole IP) its event
    ranges as the attribution sees them now (clipped at the event horizon)."""
    ip, port = key[:16], int.from_bytes(key[16:], "big") if len(key) == PORT_KEY_BYTES else 0
    names = att.names.names
    sources = [(att.heartbeats.by_ip.get(key), pb.EVIDENCE_SOURCE_HEARTBEAT)]
    if not port:
        sources.append((att.events.ranges(ip), pb.EVIDENCE_SOURCE_IP_CHANGE_EVENT))
    ranges = [(start, source, end, owner) for table, source in sources if table is not None
              for start, end, owner in zip(table.starts, table.ends, table.owners, strict=True)]
    ranges.sort()  # by start, then source (each source's ranges are disjoint)
    return pb.IpOwnership(
        ip=ip, port=port, region=region, updated_at_ms=now_ms, skew_tolerance_ms=att.cfg.skew_tolerance_ms,
        ranges=[pb.OwnershipRange(ip=ip, port=port, start_ms=start, end_ms=end, source=source,
                                  workload="" if owner == CONTESTED else names[owner], contested=owner == CONTESTED)
                for start, source, end, owner in ranges]).SerializeToString()


def changes(att: Attributor, keys, region: str, now_ms: int) -> list[tuple[bytes, bytes]]:
    """(Kafka key, IpOwnership bytes) for each changed key."""
    return [(record_key(key), ownership(att, key, region, now_ms)) for key in sorted(keys)]


def owner_at(record: pb.IpOwnership, at_ms: int) -> tuple[str, pb.OwnershipRange | None]:
    """("owned" | "unresolved" | "contested" | "clock_skew" | "unknown", the range or None)
    at at_ms, by the attribution's own rule (attribute.search): W owns t when a W range
    lies within the skew tolerance of t and no other workload's range or contested
    interval does; "unresolved" when that owner is a workload its host did not resolve
    (heartbeats.UNRESOLVED: no flow is attributed to it). An IP has ranges of one source
    only (the event CIDRs are never learned from heartbeats)."""
    tol = record.skew_tolerance_ms
    near = [r for r in record.ranges if r.end_ms >= at_ms - tol and r.start_ms <= at_ms + tol]
    if not near:
        return "unknown", None
    containing = [r for r in near if r.start_ms <= at_ms <= r.end_ms]
    owners = {("" if r.contested else r.workload, r.contested) for r in near}
    if len(owners) == 1 and not near[0].contested:
        found = (containing or near)[0]
        return ("unresolved" if found.workload == UNRESOLVED else "owned"), found
    if any(r.contested for r in containing):
        return "contested", next(r for r in containing if r.contested)
    return "clock_skew", None
