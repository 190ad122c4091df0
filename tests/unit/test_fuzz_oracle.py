"""The fuzzer's verdicts (known by construction) agree with the collector's pure
validators on every record of a sample: neither side accepts what the other rejects.
The job itself is judged against the same verdicts in tests/e2e/test_reliability.py."""

from __future__ import annotations

import collections

import pytest

from flink_jobs import batches
from flowattr.lab.fuzz import RECORD, ROWS, VALID, Fuzzer

NOW = 1_790_000_000_000
MAX_FUTURE_MS = 600_000


def _verdict(kind: str, value: bytes) -> tuple[str, tuple[int, ...]]:
    try:
        if kind == "ipchanges":
            batches.validate_event(value, NOW, MAX_FUTURE_MS)
            return VALID, ()
        validate = batches.validate_flow_batch if kind == "flows" else batches.validate_pending
        _, _, check = validate(value, NOW, MAX_FUTURE_MS)
    except batches.InvalidRecord:
        return RECORD, ()
    rejected = tuple(check.rejected.tolist())
    return (ROWS, rejected) if rejected else (VALID, ())


@pytest.mark.parametrize("seed", [1, 2])
def test_every_fuzz_verdict_matches_the_validators(seed):
    records = Fuzzer(seed, NOW, "t").records(4_000)
    wrong = [(r.kind, r.mutation, r.verdict, r.rows, _verdict(r.kind, r.value)) for r in records
             if _verdict(r.kind, r.value) != (r.verdict, r.rows)]
    assert wrong == []
    kinds = collections.Counter((r.kind, r.verdict) for r in records)
    # every topic gets invalid records, and the batch topics all three verdicts
    assert all(kinds[(k, RECORD)] for k in ("flows", "ipchanges", "retry", "inbound"))
    assert all(kinds[(k, v)] for k in ("flows", "retry", "inbound") for v in (ROWS, VALID))


def test_records_are_unique_so_dead_letters_match_one_record_each():
    records = Fuzzer(3, NOW, "t").records(4_000)
    batches_ = [r.value for r in records if r.verdict != VALID or r.kind != "ipchanges"]
    assert len(set(batches_)) > 0.97 * len(batches_)  # random bytes may repeat only when tiny
