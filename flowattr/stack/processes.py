"""Background processes of the embedded stack: start in their own process group, record
the pid, stop the whole group (a killed PyFlink client otherwise leaves its JVM behind)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

from schemas.errors import FlowattrError


class PortInUseError(FlowattrError):
    pass


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (for tests and parallel stacks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class BackgroundProcess:
    """A child started in its own session (process group). No Popen object: the process
    is meant to outlive this handle (a broker, a job), so nothing warns when it does."""

    def __init__(self, pid: int, log_offset: int = 0):
        self.pid = pid
        self.log_offset = log_offset   # the log's size when this process started writing to it
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # not our child (or reaped elsewhere)
                return None if pid_alive(self.pid) else -1
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


def start_background(cmd: list[str], log_path: Path, env: dict | None = None) -> BackgroundProcess:
    """Start `cmd` in a new session (its own process group), output appended to log_path."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    offset = os.fstat(fd).st_size
    try:
        actions = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_DUP2, fd, 1), (os.POSIX_SPAWN_DUP2, fd, 2)]
        pid = os.posix_spawnp(cmd[0], cmd, dict(os.environ if env is None else env),
                              file_actions=actions, setsid=True)
    finally:
        os.close(fd)
    return BackgroundProcess(pid, offset)


def wait_for_line(log: Path, needle: str, timeout_s: float, pid: int | None = None, since: int = 0) -> None:
    """Until a line of the log written after byte `since` contains `needle` (logs are
    appended: pass the process's log_offset, or an earlier run's line answers); raises
    when the deadline passes or the process `pid` exits first (saying where its log is)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists():
            with open(log, "rb") as f:
                f.seek(since)
                if needle.encode() in f.read():
                    return
        if pid is not None and not pid_alive(pid):
            raise FlowattrError(f"the process exited before logging {needle!r}; see {log}")
        time.sleep(0.5)
    raise FlowattrError(f"no {needle!r} in {log} within {timeout_s:.0f} s; see that log")


def stop_group(pid: int, timeout_s: float = 10.0) -> bool:
    """SIGTERM the process group led by pid, SIGKILL after timeout_s. True if it was running."""
    if not pid_alive(pid):
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            _reap(pid)
            return True
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)
    return True


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def write_record(path: Path, record: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(path)


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
