"""The protobuf contract: generated code in sync, conventions kept, columnar codec exact."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from schemas import flowattr_pb2 as pb
from schemas.columns import (
    BatchFormatError,
    FlowColumns,
    bytes_to_ip,
    decode_attributed_batch,
    decode_flow_batch,
    encode_attributed_batch,
    encode_flow_batch,
    ip_to_bytes,
    ips_to_array,
)
from schemas.generate import SCHEMA_DIR, generate


def test_generated_code_matches_proto(tmp_path):
    generate(tmp_path)
    for fresh in sorted(tmp_path.glob("*_pb2.py*")):
        committed = SCHEMA_DIR / fresh.name
        assert committed.exists(), f"{fresh.name} missing: run `make schemas`"
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"{fresh.name} is stale: run `make schemas` and commit the result")


def test_every_field_has_a_comment_and_enums_start_unspecified():
    text = (SCHEMA_DIR / "flowattr.proto").read_text()
    field_lines = [line for line in text.splitlines()
                   if re.match(r"\s+(repeated\s+)?[\w.]+\s+\w+\s*=\s*\d+;", line)]
    assert len(field_lines) > 50
    for line in field_lines:
        assert "//" in line, f"field without a comment: {line.strip()}"
    for block in re.findall(r"enum (\w+) \{([^}]*)\}", text):
        name, body = block
        first = re.search(r"(\w+)\s*=\s*(\d+);", body)
        assert first.group(1).endswith("_UNSPECIFIED") and first.group(2) == "0", name


def test_ip_encoding_is_ipv4_mapped():
    assert ip_to_bytes("10.0.0.1") == bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert bytes_to_ip(ip_to_bytes("10.0.0.0")) == "10.0.0.0"  # trailing zero bytes kept
    assert bytes_to_ip(ip_to_bytes("2001:db8::1")) == "2001:db8::1"


def test_flow_batch_golden_bytes_decode():
    # Hand-built: one flow 10.0.0.1:40000 -> 10.0.0.2:443, started at 1000 ms, ended at
    # 1500 ms, 7 bytes sent, 9 received; workload dictionary ["", "web"], ref 1.
    header = b"\x0a\x02e1" + b"\x30\x05" + b"\x48\x01"  # exporter_id="e1", sequence=5, flow_count=1
    def col(field: int, payload: bytes) -> bytes:
        return bytes([field << 3 | 2]) + bytes([len(payload)]) + payload
    def col2(field: int, payload: bytes) -> bytes:  # field numbers >= 16 take a 2-byte tag
        tag = field << 3 | 2
        return bytes([tag & 0x7F | 0x80, tag >> 7, len(payload)]) + payload
    raw = (header + col(10, b"") + col(10, b"web")
           + col(11, ip_to_bytes("10.0.0.1")) + col(12, ip_to_bytes("10.0.0.2"))
           + col(13, (40000).to_bytes(2, "little")) + col(14, (443).to_bytes(2, "little"))
           + col(15, (1000).to_bytes(8, "little")) + col2(16, (1500).to_bytes(8, "little"))
           + col2(17, (7).to_bytes(8, "little")) + col2(18, (9).to_bytes(8, "little"))
           + col2(19, bytes(4)) + col2(20, bytes(4)) + col2(21, (1).to_bytes(4, "little"))
           + col2(22, bytes([1])) + col2(23, bytes([1])))
    msg, cols = decode_flow_batch(raw)
    assert (msg.exporter_id, msg.sequence, len(cols)) == ("e1", 5, 1)
    assert bytes_to_ip(cols["local_ip"][0].tobytes()) == "10.0.0.1"
    assert bytes_to_ip(cols["remote_ip"][0].tobytes()) == "10.0.0.2"
    assert (int(cols["local_port"][0]), int(cols["remote_port"][0])) == (40000, 443)
    assert (int(cols["start_ms"][0]), int(cols["end_ms"][0])) == (1000, 1500)
    assert (int(cols["bytes_sent"][0]), int(cols["bytes_received"][0])) == (7, 9)
    assert cols.workloads[int(cols["local_workload_ref"][0])] == "web"
    assert cols["local_attribution"][0] == pb.LOCAL_ATTRIBUTION_IDENTITY_FILE


def _three_flows() -> FlowColumns:
    cols = FlowColumns.zeros(3)
    cols.workloads = ["", "a", "b"]
    cols.columns["local_ip"][:] = ips_to_array(["10.0.0.1", "10.0.0.2", "::1"])
    cols.columns["start_ms"][:] = [-5, 0, 2**62]
    cols.columns["bytes_sent"][:] = [0, 1, 2**64 - 1]
    cols.columns["local_workload_ref"][:] = [0, 1, 2]
    return cols


def test_flow_batch_round_trip_keeps_every_column():
    cols = _three_flows()
    raw = encode_flow_batch(pb.FlowBatch(exporter_id="x", sequence=9), cols)
    msg, back = decode_flow_batch(raw)
    assert msg.flow_count == 3 and back.workloads == ["", "a", "b"]
    for name, arr in cols.columns.items():
        np.testing.assert_array_equal(back[name], arr, err_msg=name)


def test_attributed_batch_round_trip():
    cols = _three_flows()
    for name, dt in {"flow_index": "<u4", "remote_workload_ref": "<u4", "evidence_source": "u1",
                     "evidence_start_ms": "<i8", "evidence_end_ms": "<i8",
                     "unattributed_reason": "u1"}.items():
        cols.columns[name] = np.array([2, 1, 0], dtype=dt)
    raw = encode_attributed_batch(pb.AttributedFlowBatch(source_exporter_id="x"), cols)
    _, back = decode_attributed_batch(raw)
    for name, arr in cols.columns.items():
        np.testing.assert_array_equal(back[name], arr, err_msg=name)


def _set_by_protobuf(msg, header, cols: FlowColumns):
    """The same batch built the plain way: every column set on the message."""
    msg.CopyFrom(header)
    msg.flow_count = len(cols)
    del msg.workloads[:]
    msg.workloads.extend(cols.workloads)
    for name, arr in cols.columns.items():
        setattr(msg, name, np.ascontiguousarray(arr).tobytes())
    return msg


def _random_columns(rng, n: int, spec) -> FlowColumns:
    cols = FlowColumns.zeros(n, spec)
    for arr in cols.columns.values():
        arr.view(np.uint8)[...] = rng.integers(0, 256, arr.nbytes, dtype=np.uint8).reshape(arr.view(np.uint8).shape)
    cols.workloads = ["", "api", "db"]
    return cols


@pytest.mark.parametrize("n", [0, 1, 3, 200_000])
def test_columns_written_as_wire_fields_equal_protobufs_own_encoding(n):
    """The encoder writes each column as a wire-format field after the header rather than
    through protobuf: the bytes must parse to the message protobuf would have built, for
    both batch types, with stale columns in the header (they must not survive), and for
    FlowBatch be byte for byte what protobuf writes (its column fields come last)."""
    from schemas.columns import ATTRIBUTION_COLUMNS, FLOW_COLUMNS
    rng = np.random.default_rng(n)
    stale = {"local_ip": b"\x01" * 16, "start_ms": b"\x02" * 8}
    cols = _random_columns(rng, n, FLOW_COLUMNS)
    header = pb.FlowBatch(exporter_id="x", host="h", region="r", sequence=7, part=1, part_count=2, **stale)
    raw = encode_flow_batch(header, cols)
    expected = _set_by_protobuf(pb.FlowBatch(), header, cols)
    assert raw == expected.SerializeToString()
    cols = _random_columns(rng, n, FLOW_COLUMNS | ATTRIBUTION_COLUMNS)
    header = pb.AttributedFlowBatch(source_exporter_id="x", next_attempt_ms=5, **stale)
    parsed = pb.AttributedFlowBatch.FromString(encode_attributed_batch(header, cols))
    assert parsed == _set_by_protobuf(pb.AttributedFlowBatch(), header, cols)


@pytest.mark.parametrize("mutate, message", [
    (lambda m: setattr(m, "local_ip", m.local_ip[:-1]), "column local_ip has 47 bytes"),
    (lambda m: setattr(m, "flow_count", 4), "expected 4 x 16"),
    (lambda m: m.workloads.__setitem__(0, "oops"), "workloads[0]"),
    (lambda m: setattr(m, "local_workload_ref", (7).to_bytes(4, "little") * 3), "past the workloads"),
])
def test_inconsistent_batches_are_rejected_with_a_reason(mutate, message):
    msg = pb.FlowBatch.FromString(encode_flow_batch(pb.FlowBatch(), _three_flows()))
    mutate(msg)
    with pytest.raises(BatchFormatError, match=re.escape(message)):
        decode_flow_batch(msg.SerializeToString())


def test_garbage_is_rejected():
    with pytest.raises(BatchFormatError, match="not a FlowBatch"):
        decode_flow_batch(b"\xff\xff\xff\xff garbage")


def test_proto_ships_as_package_data():
    assert (Path(pb.__file__).parent / "flowattr.proto").exists()
