"""Run a flowattr PyFlink job in local mode (embedded mini-cluster) as a background
process in its own process group, so stopping it also ends its gateway JVM."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from flowattr.stack.processes import BackgroundProcess, start_background, stop_group


class LocalJob:
    def __init__(self, module: str, args: list[str], log_path: Path):
        self.module = module
        self.args = args
        self.log_path = log_path
        self.proc: BackgroundProcess | None = None

    def start(self) -> LocalJob:
        self.proc = start_background([sys.executable, "-m", self.module, *self.args],
                                     self.log_path)
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None:
            stop_group(self.proc.pid, timeout_s=15)
            self.proc.poll()

    def kill_hard(self) -> None:
        """SIGKILL the whole process group (client, gateway JVM, mini-cluster): a crash."""
        import os
        import signal

        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            for _ in range(50):
                if self.proc.poll() is not None:
                    break
                time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> LocalJob:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
