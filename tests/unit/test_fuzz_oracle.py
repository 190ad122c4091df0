"""The fuzzer's verdicts (known by construction) agree with the collector's pure
validators on every record of a sample: neither side accepts what the other rejects.
The job itself is judged against the same verdicts in tests/e2e/test_reliability.py."""

from __future__ import annotations

import collections

import pytest

from flink_jobs import batches
from flowattr.lab.fuzz import RECORD, ROWS, VALID, Fuzzer
from schemas import flowattr_pb2 as pb

NOW = 1_790_000_000_000
MAX_FUTURE_MS = 600_000


MAX_ATTEMPTS = 40


def _verdict(kind: str, value: bytes, timestamp_ms: int | None) -> tuple[str, tuple[int, ...]]:
    """What the job's validators say, the Kafka timestamp check included."""
    ts = NOW if timestamp_ms is None else timestamp_ms  # the sender stamps the stream's time
    try:
        if kind == "ipchanges":
            batches.validate_event(value, NOW, MAX_FUTURE_MS, kafka_ms=ts)
            return VALID, ()
        if kind == "flows":
            _, _, check = batches.validate_flow_batch(value, NOW, MAX_FUTURE_MS, kafka_ms=ts)
        else:
            _, _, check = batches.validate_pending(value, NOW, MAX_FUTURE_MS, max_attempts=MAX_ATTEMPTS, kafka_ms=ts)
    except batches.InvalidRecord:
        return RECORD, ()
    rejected = tuple(check.rejected.tolist())
    return (ROWS, rejected) if rejected else (VALID, ())


@pytest.mark.parametrize("seed", [1, 2])
def test_every_fuzz_verdict_matches_the_validators(seed):
    records = Fuzzer(seed, NOW, "t").records(4_000)
    wrong = [(r.kind, r.mutation, r.verdict, r.rows, _verdict(r.kind, r.value, r.timestamp_ms)) for r in records
             if _verdict(r.kind, r.value, r.timestamp_ms) != (r.verdict, r.rows)]
    assert wrong == []
    kinds = collections.Counter((r.kind, r.verdict) for r in records)
    # every topic gets invalid records, and the batch topics all three verdicts
    assert all(kinds[(k, RECORD)] for k in ("flows", "ipchanges", "retry", "inbound"))
    assert all(kinds[(k, v)] for k in ("flows", "retry", "inbound") for v in (ROWS, VALID))


def test_dead_letters_are_judged_record_by_record():
    """The reliability run's judge: identical invalid records count as many as were sent,
    a replayed dead letter once, wrong rows and a missing letter as accepted, a letter for
    a valid record as a rejection, the fleet's own dead letters not at all."""
    from flowattr.lab.fuzz import FuzzRecord
    from flowattr.lab.reliability import judge_dead_letters

    def topic_of(kind):
        return f"{kind}.r"

    records = [FuzzRecord("flows", b"\x00same", RECORD, "random"), FuzzRecord("flows", b"\x00same", RECORD, "random"),
               FuzzRecord("retry", b"rows", ROWS, "rows", (1, 3)), FuzzRecord("inbound", b"ok", VALID, "edge"),
               FuzzRecord("ipchanges", b"\x00lost", RECORD, "random")]
    letter = pb.DeadLetter
    letters = [letter(source_topic="flows.r", original=b"\x00same"),
               letter(source_topic="flows.r", original=b"\x00same"),
               letter(source_topic="flows.r", original=b"\x00same"),             # a replay: not a third record
               letter(source_topic="retry.r", original=b"rows", rejected_rows=[1]),  # row 3 went on
               letter(source_topic="inbound.r", original=b"ok"),                  # a valid record rejected
               letter(source_topic="flows.r", original=b"fleet row", rejected_rows=[0])]
    report = judge_dead_letters(records, letters, topic_of)
    assert report["fuzz_invalid"] == 4
    assert report["dead_lettered"] == 2                     # the two identical ones
    assert report["invalid_accepted"] == 2                  # the lost event; the rows record (wrong rows)
    assert report["valid_rejected"] == 1


def test_the_rows_that_must_get_an_outcome_are_the_rows_the_validators_keep():
    """expected_outcomes (what the reliability run waits for on the output topics) is
    worked out from the verdicts; cross-checked here against the validators' own rows."""
    from flowattr.lab.fuzz import expected_outcomes

    records = Fuzzer(3, NOW, "t").records(2_000)
    kept = set()
    for r in records:
        if r.kind == "ipchanges" or _verdict(r.kind, r.value, r.timestamp_ms)[0] == RECORD:
            continue
        ts = NOW if r.timestamp_ms is None else r.timestamp_ms
        if r.kind == "flows":
            header, _, check = batches.validate_flow_batch(r.value, NOW, MAX_FUTURE_MS, kafka_ms=ts)
            ids = [(header.exporter_id, header.sequence, i) for i in range(len(check.valid))]
        else:
            header, cols, check = batches.validate_pending(r.value, NOW, MAX_FUTURE_MS, max_attempts=MAX_ATTEMPTS,
                                                           kafka_ms=ts)
            ids = [(header.source_exporter_id, header.source_sequence, int(i)) for i in cols["flow_index"]]
        kept |= {k for k, ok in zip(ids, check.valid.tolist(), strict=True) if ok}
    expected = expected_outcomes(records)
    assert len(expected) > 1_000
    assert expected == kept


def test_fuzz_outcomes_are_judged_flow_by_flow():
    from flowattr.lab.evaluate import TopicOutcomes
    from flowattr.lab.reliability import judge_fuzz_outcomes

    expected = {("e", 1, 0), ("e", 1, 1), ("e", 2, 0)}
    outcomes = TopicOutcomes(attributed={("e", 2, 0): ("w", 1, b"")},
                             unattributed={("e", 1, 0): (7, b""), ("other", 1, 0): (7, b"")})
    assert judge_fuzz_outcomes(expected, outcomes) == {
        "fuzz_valid_flows": 3, "fuzz_valid_lost": 1, "fuzz_valid_attributed": 1}
