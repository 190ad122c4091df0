"""Expected failures print one line that says what to do; a bug keeps its traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowattr import cli
from flowattr.cli import observe
from flowattr.stack.processes import free_port
from schemas.errors import FlowattrError


def test_an_expected_failure_is_one_line_and_exit_2(monkeypatch, capsys):
    def fails(args):
        raise FlowattrError("the thing is missing; run `flowattr thing start`")
    monkeypatch.setitem(observe.COMMANDS, "tail", (observe._add_tail, fails))
    assert cli.main(["tail", "attributed.us-east-1"]) == 2
    err = capsys.readouterr().err
    assert err == "flowattr tail: error: the thing is missing; run `flowattr thing start`\n"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(args):
        raise RuntimeError("a bug")
    monkeypatch.setitem(observe.COMMANDS, "tail", (observe._add_tail, bug))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["tail", "attributed.us-east-1"])


@pytest.mark.slow
def test_tail_without_a_broker_says_so_in_one_line():
    """kafka-python gives up on bootstrap after BOOTSTRAP_TIMEOUT_MS (10 s)."""
    port = free_port()  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "flowattr.cli", "tail", "attributed.us-east-1",
                           "--bootstrap", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"flowattr tail: error: no Kafka broker answers at 127.0.0.1:{port}; start the embedded one with "
        "`flowattr broker start`, or pass the right --bootstrap"]


def test_resume_passes_allow_non_restored_state_to_flink_run_only_with_a_savepoint(monkeypatch):
    """`flowattr job resume --allow-non-restored-state` must reach `flink run` as -n after
    the savepoint (Flink's flag), and only then: without the flag, a savepoint whose state
    does not map is refused, as before; without a savepoint the flag is an error."""
    from pathlib import Path

    from flowattr.stack import flink_cluster
    job = Path("/opt/job.py")
    plain = flink_cluster.run_command(Path("/f/bin/flink"), "py", job, ["--region", "r"], "file:///sp/savepoint-1")
    assert plain[plain.index("-s"):plain.index("-s") + 3] == ["-s", "file:///sp/savepoint-1", "-pyexec"]
    allowed = flink_cluster.run_command(Path("/f/bin/flink"), "py", job, ["--region", "r"], "file:///sp/savepoint-1",
                                        allow_non_restored_state=True)
    assert allowed[allowed.index("-s"):allowed.index("-s") + 3] == ["-s", "file:///sp/savepoint-1", "-n"]
    assert allowed[-3:] == [str(job), "--region", "r"]
    with pytest.raises(FlowattrError, match="only applies when resuming"):
        flink_cluster.run_command(Path("/f/bin/flink"), "py", job, [], None, allow_non_restored_state=True)
    seen = {}
    monkeypatch.setattr(flink_cluster, "submit", lambda *a, **kw: seen.update(kw) or "job-id")
    assert cli.main(["job", "resume", "--from", "file:///sp/savepoint-1", "--allow-non-restored-state",
                     "--", "--region", "r"]) == 0
    assert seen == {"from_savepoint": "file:///sp/savepoint-1", "allow_non_restored_state": True}
