"""The PYTHONPATH every JVM that runs the job's Python needs. No pyflink import: the
embedded cluster (flowattr.stack) starts TaskManagers with it before any job exists."""

from __future__ import annotations

import os
import sysconfig


def embedded_python_path() -> str:
    """PYTHONPATH for thread mode: pemja's embedded interpreter ignores the venv and sees
    only the base interpreter's sys.path (FLINK-38585: "No module named 'pemja'"), so the
    venv's site-packages must be passed explicitly to every JVM that runs Python."""
    project_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Both: .pth files (the editable install's finder) are not processed for PYTHONPATH.
    entries = [sysconfig.get_paths()["purelib"], project_root, os.environ.get("PYTHONPATH", "")]
    return os.pathsep.join(e for e in entries if e)
