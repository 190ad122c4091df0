from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LocalAttribution(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LOCAL_ATTRIBUTION_UNSPECIFIED: _ClassVar[LocalAttribution]
    LOCAL_ATTRIBUTION_IDENTITY_FILE: _ClassVar[LocalAttribution]
    LOCAL_ATTRIBUTION_IP_MAP: _ClassVar[LocalAttribution]
    LOCAL_ATTRIBUTION_PORT_MAP: _ClassVar[LocalAttribution]
    LOCAL_ATTRIBUTION_UNKNOWN: _ClassVar[LocalAttribution]

class FlowDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FLOW_DIRECTION_UNSPECIFIED: _ClassVar[FlowDirection]
    FLOW_DIRECTION_OUTBOUND: _ClassVar[FlowDirection]
    FLOW_DIRECTION_INBOUND: _ClassVar[FlowDirection]

class UnattributedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNATTRIBUTED_REASON_UNSPECIFIED: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_NO_EVIDENCE: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_CONFLICT: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_EVIDENCE_EXPIRED: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_CLOCK_SKEW: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_INVALID_TIME: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_HOST_LOCAL_ADDRESS: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_EVIDENCE_UNSETTLED: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_EVENTS_UNSETTLED: _ClassVar[UnattributedReason]
    UNATTRIBUTED_REASON_EVIDENCE_REJECTED: _ClassVar[UnattributedReason]

class EvidenceSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVIDENCE_SOURCE_UNSPECIFIED: _ClassVar[EvidenceSource]
    EVIDENCE_SOURCE_HEARTBEAT: _ClassVar[EvidenceSource]
    EVIDENCE_SOURCE_IP_CHANGE_EVENT: _ClassVar[EvidenceSource]

class IpChangeAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IP_CHANGE_ACTION_UNSPECIFIED: _ClassVar[IpChangeAction]
    IP_CHANGE_ACTION_ASSIGNED: _ClassVar[IpChangeAction]
    IP_CHANGE_ACTION_UNASSIGNED: _ClassVar[IpChangeAction]
LOCAL_ATTRIBUTION_UNSPECIFIED: LocalAttribution
LOCAL_ATTRIBUTION_IDENTITY_FILE: LocalAttribution
LOCAL_ATTRIBUTION_IP_MAP: LocalAttribution
LOCAL_ATTRIBUTION_PORT_MAP: LocalAttribution
LOCAL_ATTRIBUTION_UNKNOWN: LocalAttribution
FLOW_DIRECTION_UNSPECIFIED: FlowDirection
FLOW_DIRECTION_OUTBOUND: FlowDirection
FLOW_DIRECTION_INBOUND: FlowDirection
UNATTRIBUTED_REASON_UNSPECIFIED: UnattributedReason
UNATTRIBUTED_REASON_NO_EVIDENCE: UnattributedReason
UNATTRIBUTED_REASON_CONFLICT: UnattributedReason
UNATTRIBUTED_REASON_EVIDENCE_EXPIRED: UnattributedReason
UNATTRIBUTED_REASON_CLOCK_SKEW: UnattributedReason
UNATTRIBUTED_REASON_INVALID_TIME: UnattributedReason
UNATTRIBUTED_REASON_OUTSIDE_KNOWN_CIDRS: UnattributedReason
UNATTRIBUTED_REASON_HOST_LOCAL_ADDRESS: UnattributedReason
UNATTRIBUTED_REASON_EVIDENCE_UNSETTLED: UnattributedReason
UNATTRIBUTED_REASON_EVENTS_UNSETTLED: UnattributedReason
UNATTRIBUTED_REASON_EVIDENCE_REJECTED: UnattributedReason
EVIDENCE_SOURCE_UNSPECIFIED: EvidenceSource
EVIDENCE_SOURCE_HEARTBEAT: EvidenceSource
EVIDENCE_SOURCE_IP_CHANGE_EVENT: EvidenceSource
IP_CHANGE_ACTION_UNSPECIFIED: IpChangeAction
IP_CHANGE_ACTION_ASSIGNED: IpChangeAction
IP_CHANGE_ACTION_UNASSIGNED: IpChangeAction

class FlowBatch(_message.Message):
    __slots__ = ("exporter_id", "host", "region", "window_start_ms", "window_end_ms", "sequence", "part", "part_count", "flow_count", "workloads", "local_ip", "remote_ip", "local_port", "remote_port", "start_ms", "end_ms", "bytes_sent", "bytes_received", "retransmits", "rtt_us", "local_workload_ref", "local_attribution", "direction", "port_shared_ips")
    EXPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_MS_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    PART_COUNT_FIELD_NUMBER: _ClassVar[int]
    FLOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_IP_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PORT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_PORT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    RTT_US_FIELD_NUMBER: _ClassVar[int]
    LOCAL_WORKLOAD_REF_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PORT_SHARED_IPS_FIELD_NUMBER: _ClassVar[int]
    exporter_id: str
    host: str
    region: str
    window_start_ms: int
    window_end_ms: int
    sequence: int
    part: int
    part_count: int
    flow_count: int
    workloads: _containers.RepeatedScalarFieldContainer[str]
    local_ip: bytes
    remote_ip: bytes
    local_port: bytes
    remote_port: bytes
    start_ms: bytes
    end_ms: bytes
    bytes_sent: bytes
    bytes_received: bytes
    retransmits: bytes
    rtt_us: bytes
    local_workload_ref: bytes
    local_attribution: bytes
    direction: bytes
    port_shared_ips: bytes
    def __init__(self, exporter_id: _Optional[str] = ..., host: _Optional[str] = ..., region: _Optional[str] = ..., window_start_ms: _Optional[int] = ..., window_end_ms: _Optional[int] = ..., sequence: _Optional[int] = ..., part: _Optional[int] = ..., part_count: _Optional[int] = ..., flow_count: _Optional[int] = ..., workloads: _Optional[_Iterable[str]] = ..., local_ip: _Optional[bytes] = ..., remote_ip: _Optional[bytes] = ..., local_port: _Optional[bytes] = ..., remote_port: _Optional[bytes] = ..., start_ms: _Optional[bytes] = ..., end_ms: _Optional[bytes] = ..., bytes_sent: _Optional[bytes] = ..., bytes_received: _Optional[bytes] = ..., retransmits: _Optional[bytes] = ..., rtt_us: _Optional[bytes] = ..., local_workload_ref: _Optional[bytes] = ..., local_attribution: _Optional[bytes] = ..., direction: _Optional[bytes] = ..., port_shared_ips: _Optional[bytes] = ...) -> None: ...

class AttributedFlowBatch(_message.Message):
    __slots__ = ("source_exporter_id", "source_sequence", "host", "region", "window_start_ms", "window_end_ms", "attributed_at_ms", "attempts", "flow_count", "workloads", "flow_index", "local_ip", "remote_ip", "local_port", "remote_port", "start_ms", "end_ms", "bytes_sent", "bytes_received", "retransmits", "rtt_us", "local_workload_ref", "local_attribution", "direction", "remote_workload_ref", "evidence_source", "evidence_start_ms", "evidence_end_ms", "unattributed_reason", "next_attempt_ms")
    SOURCE_EXPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_MS_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FLOW_COUNT_FIELD_NUMBER: _ClassVar[int]
    WORKLOADS_FIELD_NUMBER: _ClassVar[int]
    FLOW_INDEX_FIELD_NUMBER: _ClassVar[int]
    LOCAL_IP_FIELD_NUMBER: _ClassVar[int]
    REMOTE_IP_FIELD_NUMBER: _ClassVar[int]
    LOCAL_PORT_FIELD_NUMBER: _ClassVar[int]
    REMOTE_PORT_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    RTT_US_FIELD_NUMBER: _ClassVar[int]
    LOCAL_WORKLOAD_REF_FIELD_NUMBER: _ClassVar[int]
    LOCAL_ATTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    REMOTE_WORKLOAD_REF_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_START_MS_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_END_MS_FIELD_NUMBER: _ClassVar[int]
    UNATTRIBUTED_REASON_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_MS_FIELD_NUMBER: _ClassVar[int]
    source_exporter_id: str
    source_sequence: int
    host: str
    region: str
    window_start_ms: int
    window_end_ms: int
    attributed_at_ms: int
    attempts: int
    flow_count: int
    workloads: _containers.RepeatedScalarFieldContainer[str]
    flow_index: bytes
    local_ip: bytes
    remote_ip: bytes
    local_port: bytes
    remote_port: bytes
    start_ms: bytes
    end_ms: bytes
    bytes_sent: bytes
    bytes_received: bytes
    retransmits: bytes
    rtt_us: bytes
    local_workload_ref: bytes
    local_attribution: bytes
    direction: bytes
    remote_workload_ref: bytes
    evidence_source: bytes
    evidence_start_ms: bytes
    evidence_end_ms: bytes
    unattributed_reason: bytes
    next_attempt_ms: int
    def __init__(self, source_exporter_id: _Optional[str] = ..., source_sequence: _Optional[int] = ..., host: _Optional[str] = ..., region: _Optional[str] = ..., window_start_ms: _Optional[int] = ..., window_end_ms: _Optional[int] = ..., attributed_at_ms: _Optional[int] = ..., attempts: _Optional[int] = ..., flow_count: _Optional[int] = ..., workloads: _Optional[_Iterable[str]] = ..., flow_index: _Optional[bytes] = ..., local_ip: _Optional[bytes] = ..., remote_ip: _Optional[bytes] = ..., local_port: _Optional[bytes] = ..., remote_port: _Optional[bytes] = ..., start_ms: _Optional[bytes] = ..., end_ms: _Optional[bytes] = ..., bytes_sent: _Optional[bytes] = ..., bytes_received: _Optional[bytes] = ..., retransmits: _Optional[bytes] = ..., rtt_us: _Optional[bytes] = ..., local_workload_ref: _Optional[bytes] = ..., local_attribution: _Optional[bytes] = ..., direction: _Optional[bytes] = ..., remote_workload_ref: _Optional[bytes] = ..., evidence_source: _Optional[bytes] = ..., evidence_start_ms: _Optional[bytes] = ..., evidence_end_ms: _Optional[bytes] = ..., unattributed_reason: _Optional[bytes] = ..., next_attempt_ms: _Optional[int] = ...) -> None: ...

class IpChangeEvent(_message.Message):
    __slots__ = ("ip", "resource_id", "workload", "action", "event_time_ms", "emit_time_ms", "region", "event_id")
    IP_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    EMIT_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ip: bytes
    resource_id: str
    workload: str
    action: IpChangeAction
    event_time_ms: int
    emit_time_ms: int
    region: str
    event_id: str
    def __init__(self, ip: _Optional[bytes] = ..., resource_id: _Optional[str] = ..., workload: _Optional[str] = ..., action: _Optional[_Union[IpChangeAction, str]] = ..., event_time_ms: _Optional[int] = ..., emit_time_ms: _Optional[int] = ..., region: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class OwnershipRange(_message.Message):
    __slots__ = ("ip", "workload", "start_ms", "end_ms", "source", "port", "contested")
    IP_FIELD_NUMBER: _ClassVar[int]
    WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    CONTESTED_FIELD_NUMBER: _ClassVar[int]
    ip: bytes
    workload: str
    start_ms: int
    end_ms: int
    source: EvidenceSource
    port: int
    contested: bool
    def __init__(self, ip: _Optional[bytes] = ..., workload: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., source: _Optional[_Union[EvidenceSource, str]] = ..., port: _Optional[int] = ..., contested: bool = ...) -> None: ...

class IpOwnership(_message.Message):
    __slots__ = ("ip", "port", "ranges", "region", "updated_at_ms", "skew_tolerance_ms")
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SKEW_TOLERANCE_MS_FIELD_NUMBER: _ClassVar[int]
    ip: bytes
    port: int
    ranges: _containers.RepeatedCompositeFieldContainer[OwnershipRange]
    region: str
    updated_at_ms: int
    skew_tolerance_ms: int
    def __init__(self, ip: _Optional[bytes] = ..., port: _Optional[int] = ..., ranges: _Optional[_Iterable[_Union[OwnershipRange, _Mapping]]] = ..., region: _Optional[str] = ..., updated_at_ms: _Optional[int] = ..., skew_tolerance_ms: _Optional[int] = ...) -> None: ...

class OwnershipUpdate(_message.Message):
    __slots__ = ("source_exporter_id", "source_sequence", "ranges", "window_start_ms", "window_end_ms", "part", "part_count", "rejected_records")
    SOURCE_EXPORTER_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    RANGES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOW_END_MS_FIELD_NUMBER: _ClassVar[int]
    PART_FIELD_NUMBER: _ClassVar[int]
    PART_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    source_exporter_id: str
    source_sequence: int
    ranges: _containers.RepeatedCompositeFieldContainer[OwnershipRange]
    window_start_ms: int
    window_end_ms: int
    part: int
    part_count: int
    rejected_records: bytes
    def __init__(self, source_exporter_id: _Optional[str] = ..., source_sequence: _Optional[int] = ..., ranges: _Optional[_Iterable[_Union[OwnershipRange, _Mapping]]] = ..., window_start_ms: _Optional[int] = ..., window_end_ms: _Optional[int] = ..., part: _Optional[int] = ..., part_count: _Optional[int] = ..., rejected_records: _Optional[bytes] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("source_topic", "original", "reason", "detected_at_ms", "rejected_rows")
    SOURCE_TOPIC_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DETECTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_ROWS_FIELD_NUMBER: _ClassVar[int]
    source_topic: str
    original: bytes
    reason: str
    detected_at_ms: int
    rejected_rows: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, source_topic: _Optional[str] = ..., original: _Optional[bytes] = ..., reason: _Optional[str] = ..., detected_at_ms: _Optional[int] = ..., rejected_rows: _Optional[_Iterable[int]] = ...) -> None: ...

class EdgeRecord(_message.Message):
    __slots__ = ("window_start_ms", "local_workload", "remote_workload", "direction", "service_port", "unattributed_reason", "flows", "bytes_sent", "bytes_received", "retransmits", "rtt_p50_us", "rtt_p99_us", "rtt_histogram", "flows_heartbeat", "flows_ip_change_event", "region", "updated_at_ms")
    WINDOW_START_MS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    REMOTE_WORKLOAD_FIELD_NUMBER: _ClassVar[int]
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    SERVICE_PORT_FIELD_NUMBER: _ClassVar[int]
    UNATTRIBUTED_REASON_FIELD_NUMBER: _ClassVar[int]
    FLOWS_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    RETRANSMITS_FIELD_NUMBER: _ClassVar[int]
    RTT_P50_US_FIELD_NUMBER: _ClassVar[int]
    RTT_P99_US_FIELD_NUMBER: _ClassVar[int]
    RTT_HISTOGRAM_FIELD_NUMBER: _ClassVar[int]
    FLOWS_HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    FLOWS_IP_CHANGE_EVENT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    window_start_ms: int
    local_workload: str
    remote_workload: str
    direction: FlowDirection
    service_port: int
    unattributed_reason: UnattributedReason
    flows: int
    bytes_sent: int
    bytes_received: int
    retransmits: int
    rtt_p50_us: int
    rtt_p99_us: int
    rtt_histogram: _containers.RepeatedScalarFieldContainer[int]
    flows_heartbeat: int
    flows_ip_change_event: int
    region: str
    updated_at_ms: int
    def __init__(self, window_start_ms: _Optional[int] = ..., local_workload: _Optional[str] = ..., remote_workload: _Optional[str] = ..., direction: _Optional[_Union[FlowDirection, str]] = ..., service_port: _Optional[int] = ..., unattributed_reason: _Optional[_Union[UnattributedReason, str]] = ..., flows: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_received: _Optional[int] = ..., retransmits: _Optional[int] = ..., rtt_p50_us: _Optional[int] = ..., rtt_p99_us: _Optional[int] = ..., rtt_histogram: _Optional[_Iterable[int]] = ..., flows_heartbeat: _Optional[int] = ..., flows_ip_change_event: _Optional[int] = ..., region: _Optional[str] = ..., updated_at_ms: _Optional[int] = ...) -> None: ...
