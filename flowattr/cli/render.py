"""Human-readable JSON for every topic's records (used by `flowattr tail`)."""

from __future__ import annotations

import base64
from collections.abc import Iterator

from google.protobuf.json_format import MessageToDict

from schemas import flowattr_pb2 as pb
from schemas.columns import bytes_to_ip, decode_attributed_batch, decode_flow_batch
from schemas.topics import ATTRIBUTED_BATCH_KINDS, kind_of

_ENUMS = {
    "local_attribution": pb.LocalAttribution,
    "direction": pb.FlowDirection,
    "evidence_source": pb.EvidenceSource,
    "unattributed_reason": pb.UnattributedReason,
}


def _flow_rows(header: dict, cols, extra_refs: tuple[str, ...]) -> Iterator[dict]:
    names = list(cols.columns)
    for i in range(len(cols)):
        row = dict(header)
        for name in names:
            value = cols[name][i]
            if name.endswith("_ip"):
                row[name] = bytes_to_ip(value.tobytes())
            elif name == "local_workload_ref" or name in extra_refs:
                row[name.replace("_ref", "")] = cols.workloads[int(value)]
            elif name in _ENUMS:
                row[name] = _ENUMS[name].Name(int(value)) if int(value) else None
            else:
                row[name] = int(value)
        yield row


def matches(row: dict, workload: str | None = None, remote_ip: str | None = None,
            reason: str | None = None) -> bool:
    """`flowattr tail`'s filters: a workload on either side (flows and edges), the remote
    IP, the unattributed reason (with or without its UNATTRIBUTED_REASON_ prefix)."""
    if workload is not None and workload not in (row.get("local_workload"), row.get("remote_workload"),
                                                 row.get("local"), row.get("remote"), row.get("workload")):
        return False
    if remote_ip is not None and row.get("remote_ip", row.get("ip")) != remote_ip:
        return False
    if reason is not None:
        got = (row.get("unattributed_reason") or row.get("reason") or "").removeprefix("UNATTRIBUTED_REASON_")
        if got != reason.removeprefix("UNATTRIBUTED_REASON_"):
            return False
    return True


def records_as_dicts(topic: str, value: bytes) -> Iterator[dict]:
    """One dict per flow for batch topics, one per record otherwise, chosen by the
    topic's kind (the part before the first dot: flows, inbound, attributed, ...).
    A record that does not decode as its topic's schema yields one error dict."""
    try:
        yield from _decode(topic, value)
    except Exception as exc:  # any decode failure: show it, keep tailing
        yield {"error": f"cannot decode as a {kind_of(topic) or 'raw'} record: {exc}",
               "value_base64": base64.b64encode(value).decode()}


def _decode(topic: str, value: bytes) -> Iterator[dict]:
    kind = kind_of(topic)
    if kind == "flows":
        msg, cols = decode_flow_batch(value)
        header = {"exporter_id": msg.exporter_id, "sequence": msg.sequence, "host": msg.host,
                  "region": msg.region, "flow_index": None}
        for i, row in enumerate(_flow_rows(header, cols, ())):
            row["flow_index"] = i
            yield row
    elif kind in ATTRIBUTED_BATCH_KINDS:
        msg, cols = decode_attributed_batch(value)
        header = {"exporter_id": msg.source_exporter_id, "sequence": msg.source_sequence,
                  "host": msg.host, "region": msg.region, "attempts": msg.attempts}
        if msg.next_attempt_ms:
            header["next_attempt_ms"] = msg.next_attempt_ms
        yield from _flow_rows(header, cols, ("remote_workload_ref",))
    elif kind == "ipchanges":
        event = pb.IpChangeEvent.FromString(value)
        d = MessageToDict(event, preserving_proto_field_name=True)
        d["ip"] = bytes_to_ip(event.ip)
        yield d
    elif kind == "edges":
        from flink_jobs.edges import to_dict
        yield to_dict(value)
    elif kind == "ownership":
        record = pb.IpOwnership.FromString(value)
        yield {"ip": bytes_to_ip(record.ip), "port": record.port or None, "region": record.region,
               "updated_at_ms": record.updated_at_ms,
               "ranges": [{"workload": r.workload, "start_ms": r.start_ms, "end_ms": r.end_ms,
                           "contested": r.contested, "evidence": pb.EvidenceSource.Name(r.source)}
                          for r in record.ranges]}
    elif kind == "deadletter":
        letter = pb.DeadLetter.FromString(value)
        yield {"source_topic": letter.source_topic, "reason": letter.reason,
               "detected_at_ms": letter.detected_at_ms,
               "original_base64": base64.b64encode(letter.original).decode()}
    else:
        yield {"value_base64": base64.b64encode(value).decode()}
