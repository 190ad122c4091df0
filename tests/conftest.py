"""Shared fixtures: ONE embedded broker for the whole session (each test uses its own
topics), and helpers to run Flink jobs as background process groups."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from flowattr.stack import broker
from flowattr.stack.processes import free_port


@pytest.fixture(scope="session")
def stack_state(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flowattr-state")


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_state) -> str:
    """A tansu broker on a free loopback port, shared by every test of the session."""
    status = broker.start(stack_state, free_port(), progress=lambda *_: None)
    yield status.bootstrap
    broker.stop(stack_state)


@pytest.fixture
def unique_region() -> str:
    """A region name no other test uses, so topics never collide on the shared broker."""
    return "t" + uuid.uuid4().hex[:8]
