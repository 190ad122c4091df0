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
