"""Waiting for a background process's log line (flowattr/stack/processes.py): logs are
appended across runs, so only the lines this process wrote count. An earlier run's
"capturing" once made `flowattr bench` count the exporter's BPF compile as capture CPU."""

from __future__ import annotations

import pytest

from flowattr.stack.processes import start_background, wait_for_line
from schemas.errors import FlowattrError


def test_an_earlier_runs_line_does_not_answer(tmp_path):
    log = tmp_path / "exporter.log"
    log.write_text("exporter x capturing; batches every 60 s\n")       # an earlier run
    quiet = start_background(["sh", "-c", "echo starting"], log)
    assert quiet.log_offset == len("exporter x capturing; batches every 60 s\n")
    with pytest.raises(FlowattrError, match="exited before logging"):
        wait_for_line(log, "capturing", 10, quiet.pid, since=quiet.log_offset)
    ready = start_background(["sh", "-c", "sleep 0.3; echo capturing now"], log)
    wait_for_line(log, "capturing now", 10, ready.pid, since=ready.log_offset)
