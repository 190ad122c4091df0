"""Row validation at the job's door (flink_jobs/attribution/rows.py) and its use in
flink_jobs/batches.py. Expected values were worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flink_jobs import batches
from flink_jobs.attribution import rows as r
from flink_jobs.attribution.rows import RowRules, check_rows
from schemas import flowattr_pb2 as pb
from schemas.columns import ATTRIBUTION_COLUMNS, FLOW_COLUMNS, FlowColumns, decode_attributed_batch, encode_flow_batch

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
IP_MAP, UNKNOWN = pb.LOCAL_ATTRIBUTION_IP_MAP, pb.LOCAL_ATTRIBUTION_UNKNOWN
WINDOW = (60_000, 120_000)
RULES = RowRules()  # 3 h, 2 s


def _rows(n: int, workloads=("", "web"), remote: bool = False, **columns) -> FlowColumns:
    """n valid rows in WINDOW (start 61_000, end 62_000, IP map -> "web", outbound),
    with the given columns overridden."""
    spec = FLOW_COLUMNS | ATTRIBUTION_COLUMNS if remote else FLOW_COLUMNS
    cols = FlowColumns.zeros(n, spec)
    cols.workloads = list(workloads)
    base = {"start_ms": 61_000, "end_ms": 62_000, "local_attribution": IP_MAP, "local_workload_ref": 1,
            "direction": pb.FLOW_DIRECTION_OUTBOUND}
    for name, value in (base | columns).items():
        cols.columns[name][:] = value
    return cols


def _invalid(check) -> list[int]:
    return np.flatnonzero(~check.valid).tolist()


def test_defaults_are_the_retention_and_two_seconds():
    assert (RULES.max_flow_age_ms, RULES.close_slack_ms) == (10_800_000, 2_000)


def test_end_may_lie_close_slack_outside_the_window():
    # Window [60_000, 120_000), slack 2_000: end must lie in [58_000, 122_000).
    ends = [119_999, 125_000, 121_999, 122_000, 58_000, 57_999, 60_000]
    check = check_rows(_rows(7, start_ms=50_000, end_ms=ends), *WINDOW, RULES)
    assert check.valid.tolist() == [True, False, True, False, True, False, True]
    assert check.reasons[r.END_OUTSIDE_WINDOW].tolist() == [1, 3, 5] and len(check.reasons) == 1
    # Without slack the window is exact: 119_999 in, 120_000 and 59_999 out.
    tight = check_rows(_rows(3, start_ms=50_000, end_ms=[119_999, 120_000, 59_999]), *WINDOW,
                       RowRules(close_slack_ms=0))
    assert _invalid(tight) == [1, 2]


def test_start_after_end_is_rejected_start_equal_to_end_is_not():
    check = check_rows(_rows(3, start_ms=[100_001, 100_000, 99_999], end_ms=100_000), *WINDOW, RULES)
    assert {k: v.tolist() for k, v in check.reasons.items()} == {r.START_AFTER_END: [0]}


def test_start_may_be_at_most_max_flow_age_before_the_window():
    # Window starts at 20_000_000; 3 h = 10_800_000 earlier is 9_200_000.
    cols = _rows(3, start_ms=[9_200_000, 9_199_999, 19_000_000], end_ms=20_000_500)
    check = check_rows(cols, 20_000_000, 20_060_000, RULES)
    assert check.reasons[r.START_TOO_OLD].tolist() == [1] and _invalid(check) == [1]
    # One minute of age: 19_940_000 is the oldest start allowed.
    short = check_rows(_rows(2, start_ms=[19_940_000, 19_939_999], end_ms=20_000_500), 20_000_000,
                       20_060_000, RowRules(max_flow_age_ms=60_000))
    assert _invalid(short) == [1]


def test_unknown_local_attribution_codes():
    # 0 (UNSPECIFIED), 5 and 255 are unknown; 4 (UNKNOWN) with ref 0 and 2 with ref 1 are fine.
    cols = _rows(5, local_attribution=[0, 5, 255, UNKNOWN, IP_MAP], local_workload_ref=[1, 1, 1, 0, 1])
    check = check_rows(cols, *WINDOW, RULES)
    assert check.reasons[r.UNKNOWN_ATTRIBUTION].tolist() == [0, 1, 2]
    assert _invalid(check) == [0, 1, 2]


def test_unknown_direction_codes():
    check = check_rows(_rows(4, direction=[0, 1, 2, 3]), *WINDOW, RULES)
    assert {k: v.tolist() for k, v in check.reasons.items()} == {r.UNKNOWN_DIRECTION: [0, 3]}


def test_local_ref_past_the_dictionary_is_reported_under_that_reason_only():
    # Dictionary ["", "web"]: ref 2 and 2**32 - 1 point past it.
    check = check_rows(_rows(3, local_workload_ref=[1, 2, 2**32 - 1]), *WINDOW, RULES)
    assert list(check.reasons) == [r.LOCAL_REF_PAST_DICTIONARY]
    assert check.reasons[r.LOCAL_REF_PAST_DICTIONARY].tolist() == [1, 2]


def test_attribution_and_ref_must_agree():
    # Dictionary ["", "web", ""]: entry 2 is an (illegal) empty name.
    attribution = [UNKNOWN, UNKNOWN, IP_MAP, IP_MAP, pb.LOCAL_ATTRIBUTION_PORT_MAP,
                   pb.LOCAL_ATTRIBUTION_IDENTITY_FILE, pb.LOCAL_ATTRIBUTION_IDENTITY_FILE]
    refs = [0, 1, 0, 1, 2, 1, 0]
    check = check_rows(_rows(7, workloads=("", "web", ""), local_attribution=attribution,
                             local_workload_ref=refs), *WINDOW, RULES)
    assert list(check.reasons) == [r.ATTRIBUTION_REF_DISAGREE]
    assert check.reasons[r.ATTRIBUTION_REF_DISAGREE].tolist() == [1, 2, 4, 6]


def test_a_workload_name_longer_than_state_keeps_rejects_the_rows_naming_it():
    # Dictionary ["", "web", 256 x "a", 128 x "é" (2 bytes each: 256), 85 x "é" + "a" (171
    # bytes)]: entries 2 and 3 are over 255 UTF-8 bytes, entry 4 is not. Rows 1, 2, 4 name them.
    names = ("", "web", "a" * 256, "é" * 128, "é" * 85 + "a")
    check = check_rows(_rows(5, workloads=names, local_workload_ref=[1, 2, 3, 4, 2]), *WINDOW, RULES)
    assert list(check.reasons) == [r.LOCAL_NAME_TOO_LONG]
    assert check.reasons[r.LOCAL_NAME_TOO_LONG].tolist() == [1, 2, 4]
    ok = check_rows(_rows(1, workloads=("", "a" * 255), local_workload_ref=[1]), *WINDOW, RULES)
    assert ok.valid.all()   # 255 bytes is kept whole


def test_an_ip_change_event_with_a_name_longer_than_state_keeps_is_invalid():
    event = pb.IpChangeEvent(ip=bytes(16), workload="é" * 128, action=pb.IP_CHANGE_ACTION_ASSIGNED,
                             event_time_ms=1_000, emit_time_ms=1_000)
    assert batches.event_problem(event, 2_000, 0) == "workload is longer than 255 UTF-8 bytes"
    event.workload = "é" * 127 + "a"   # 255 bytes
    assert batches.event_problem(event, 2_000, 0) is None


def test_an_empty_dictionary_or_a_named_entry_0_rejects_every_row():
    empty = check_rows(_rows(2, workloads=(), local_attribution=UNKNOWN, local_workload_ref=0),
                       *WINDOW, RULES)
    assert _invalid(empty) == [0, 1]
    assert empty.reasons[r.BAD_DICTIONARY].tolist() == [0, 1]
    assert empty.reasons[r.LOCAL_REF_PAST_DICTIONARY].tolist() == [0, 1]  # ref 0 of nothing
    named = check_rows(_rows(2, workloads=("oops", "web")), *WINDOW, RULES)
    assert list(named.reasons) == [r.BAD_DICTIONARY] and _invalid(named) == [0, 1]
    nothing = check_rows(_rows(0, workloads=()), *WINDOW, RULES)
    assert nothing.valid.tolist() == [] and nothing.reasons == {}


@pytest.mark.filterwarnings("error")  # a numpy overflow warning would fail the test
def test_int64_extremes_never_overflow():
    times = [I64_MIN, -(2**62), 2**62, I64_MAX]
    cols = _rows(4, start_ms=times, end_ms=times)
    # An ordinary window: every extreme row is far outside it.
    assert _invalid(check_rows(cols, *WINDOW, RULES)) == [0, 1, 2, 3]
    # A window at the top of int64: window_end + slack is past int64; end I64_MAX is inside.
    top = check_rows(cols, I64_MAX - 60_000, I64_MAX, RULES)
    assert _invalid(top) == [0, 1, 2]
    assert top.reasons[r.START_TOO_OLD].tolist() == [0, 1, 2]
    # A window at the bottom: window_start - slack and - max age are below int64.
    bottom = check_rows(cols, I64_MIN, I64_MIN + 60_000, RULES)
    assert _invalid(bottom) == [1, 2, 3]
    assert bottom.reasons[r.END_OUTSIDE_WINDOW].tolist() == [1, 2, 3]
    huge = RowRules(max_flow_age_ms=2**64, close_slack_ms=2**64)  # accept every time
    assert _invalid(check_rows(cols, *WINDOW, huge)) == []


def test_a_mixed_batch_reports_exactly_the_bad_rows_and_summarizes_them():
    cols = _rows(6, end_ms=[62_000, 125_000, 62_000, 62_000, 130_000, 62_000], direction=[1, 2, 1, 9, 1, 2])
    check = check_rows(cols, *WINDOW, RULES)
    assert _invalid(check) == [1, 3, 4] and check.rejected.tolist() == [1, 3, 4]
    assert check.summary() == ("3 of 6 rows rejected: end_ms outside the batch window: rows 1, 4; "
                               "unknown direction code: rows 3")
    assert check_rows(_rows(2), *WINDOW, RULES).summary() == "0 of 2 rows rejected"


def test_summary_lists_at_most_limit_rows_per_reason():
    check = check_rows(_rows(15, direction=0), *WINDOW, RULES)
    assert check.summary(limit=3) == "15 of 15 rows rejected: unknown direction code: rows 0, 1, 2 and 12 more"


def test_remote_columns_are_checked_only_for_pending_batches():
    cols = _rows(4, remote=True, remote_workload_ref=[0, 1, 2, 0], evidence_source=[0, 1, 0, 255],
                 unattributed_reason=[0, 0, 255, 0])
    pending = check_rows(cols, *WINDOW, RULES, remote_refs=True)
    assert {k: v.tolist() for k, v in pending.reasons.items()} == {
        r.REMOTE_REF_PAST_DICTIONARY: [2], r.UNKNOWN_REASON: [2], r.UNKNOWN_EVIDENCE_SOURCE: [3]}
    assert _invalid(check_rows(cols, *WINDOW, RULES)) == []  # a FlowBatch has no such columns


int64s = st.integers(I64_MIN, I64_MAX)


def _near(data, anchor: int) -> int:
    """Any int64, or (half the time) one within a few hours of anchor, clamped to int64:
    uniform int64s alone would almost never make a valid row."""
    if data.draw(st.booleans()):
        return data.draw(int64s)
    return min(max(anchor + data.draw(st.integers(-2 * 10_800_000, 2 * 10_800_000)), I64_MIN), I64_MAX)


@settings(max_examples=500, deadline=None)
@given(data=st.data(), window_start=int64s, age=st.integers(0, 2**64), slack=st.integers(0, 2**64))
def test_time_rules_match_plain_python_integers(data, window_start, age, slack):
    if data.draw(st.booleans()):  # small, realistic rules half the time
        age, slack = data.draw(st.integers(0, 10_800_000)), data.draw(st.integers(0, 5_000))
    window_end, end = _near(data, window_start), _near(data, window_start)
    start = _near(data, end)
    expected = (window_start - slack <= end < window_end + slack and start <= end
                and start >= window_start - age)
    check = check_rows(_rows(1, start_ms=start, end_ms=end), window_start, window_end, RowRules(age, slack))
    assert bool(check.valid[0]) == expected


# --- batches.py: the header still rejects the whole record; rows are the caller's choice.

def _flow_batch(cols: FlowColumns) -> bytes:
    header = pb.FlowBatch(exporter_id="e1", host="h1", sequence=3, window_start_ms=WINDOW[0],
                          window_end_ms=WINDOW[1])
    return encode_flow_batch(header, cols)


def test_validate_flow_batch_returns_the_row_check_and_the_dead_letter_lists_bad_rows():
    raw = _flow_batch(_rows(4, end_ms=[62_000, 300_000, 62_000, 62_000], local_workload_ref=[1, 1, 1, 7]))
    header, cols, check = batches.validate_flow_batch(raw, now_ms=200_000, max_future_ms=0)
    assert header.sequence == 3 and len(cols) == 4 and _invalid(check) == [1, 3]
    letter = batches.dead_letter_rows("flows.r1", raw, check, detected_at_ms=5)
    assert (letter.source_topic, letter.original, letter.detected_at_ms) == ("flows.r1", raw, 5)
    assert list(letter.rejected_rows) == [1, 3] and letter.reason == check.summary()
    assert letter.reason.startswith("2 of 4 rows rejected")
    # The valid rows go on with their original flow_index: flow ids stay stable.
    pending = batches.to_pending(header, cols, "r1", 130_000, rows=check.valid)
    assert decode_attributed_batch(pending)[1]["flow_index"].tolist() == [0, 2]
    assert batches.dead_letter_rows("flows.r1", raw, check_rows(_rows(1), *WINDOW, RULES), 5) is None


def test_validate_flow_batch_still_rejects_a_bad_header_or_bytes_whole():
    with pytest.raises(batches.InvalidRecord, match="not a FlowBatch"):
        batches.validate_flow_batch(b"\xff\xff\xff\xff garbage", 200_000, 0)
    with pytest.raises(batches.InvalidRecord, match="in the future"):
        batches.validate_flow_batch(_flow_batch(_rows(1)), now_ms=100_000, max_future_ms=0)
    # The exporter id becomes the outputs' Kafka key (once framed with a u16 length: a 64 KiB
    # id crashed every attempt of its held batch). Rejected at the door (255 bytes pass).
    for length, ok in ((255, True), (256, False), (70_000, False)):
        msg = pb.FlowBatch.FromString(_flow_batch(_rows(1)))
        msg.exporter_id = "e" * length
        if ok:
            batches.validate_flow_batch(msg.SerializeToString(), 200_000, 0)
        else:
            with pytest.raises(batches.InvalidRecord, match="more than 255"):
                batches.validate_flow_batch(msg.SerializeToString(), 200_000, 0)


def test_a_bad_dictionary_on_the_wire_rejects_rows_not_the_record():
    msg = pb.FlowBatch.FromString(_flow_batch(_rows(2)))
    msg.workloads[0] = "oops"
    _, _, check = batches.validate_flow_batch(msg.SerializeToString(), 200_000, 0)
    assert _invalid(check) == [0, 1] and list(check.reasons) == [r.BAD_DICTIONARY]
    # No dictionary at all is read as [""]: an IP-map row then names no workload.
    del msg.workloads[:]
    msg.local_workload_ref = bytes(8)
    _, cols, check = batches.validate_flow_batch(msg.SerializeToString(), 200_000, 0)
    assert cols.workloads == [""] and list(check.reasons) == [r.ATTRIBUTION_REF_DISAGREE]


def test_validate_pending_checks_remote_refs_per_row_and_keeps_flow_index():
    header, cols, _ = batches.validate_flow_batch(_flow_batch(_rows(3)), 200_000, 0)
    pending = pb.AttributedFlowBatch.FromString(batches.to_pending(header, cols, "r1", 130_000, rows=[0, 2]))
    pending.remote_workload_ref = (0).to_bytes(4, "little") + (5).to_bytes(4, "little")
    raw = pending.SerializeToString()
    p_header, p_cols, check = batches.validate_pending(raw, 200_000, 0)
    assert list(check.reasons) == [r.REMOTE_REF_PAST_DICTIONARY] and _invalid(check) == [1]
    kept = decode_attributed_batch(batches.pending_rows(p_header, p_cols, check.valid))
    assert kept[1]["flow_index"].tolist() == [0] and kept[0].next_attempt_ms == 130_000
    pending.next_attempt_ms = 0
    with pytest.raises(batches.InvalidRecord, match="next_attempt_ms"):
        batches.validate_pending(pending.SerializeToString(), 200_000, 0)


@pytest.mark.parametrize("field, value, message", [
    ("next_attempt_ms", 2**63 - 1, "in the future"),      # its flows would be held forever
    ("next_attempt_ms", 200_001, "in the future"),        # 1 ms past the wall clock's bound (0 here)
    ("attempts", 2**32 - 1, "attempts made"),            # attempt + 1 would overflow the uint32
    ("attempts", 41, "attempts made"),
])
def test_a_pending_batchs_retry_schedule_is_bounded(field, value, message):
    header, cols, _ = batches.validate_flow_batch(_flow_batch(_rows(1)), 200_000, 0)
    pending = pb.AttributedFlowBatch.FromString(batches.to_pending(header, cols, "r1", 130_000))
    setattr(pending, field, value)
    with pytest.raises(batches.InvalidRecord, match=message):
        batches.validate_pending(pending.SerializeToString(), 200_000, 0, max_attempts=40)
    setattr(pending, field, 40 if field == "attempts" else 200_000)   # on the bound: fine
    batches.validate_pending(pending.SerializeToString(), 200_000, 0, max_attempts=40)


def test_a_kafka_timestamp_far_from_the_payloads_time_is_named():
    assert batches.timestamp_problem(None, 100, 100, 10, "x") is None           # no timestamp: nothing to judge
    assert batches.timestamp_problem(110, 100, 100, 10, "x") is None
    assert batches.timestamp_problem(90, 100, 200, 10, "x") is None
    assert "more than 10 ms from the end" in batches.timestamp_problem(111, 100, 100, 10, "the end")
    assert batches.timestamp_problem(89, 100, 200, 10, "x")
    assert batches.timestamp_problem(2**63 - 1, 100, 200, 10, "x")
