"""The layering is a test: every import of the project's source, read from its AST, must
follow the architecture the README draws.

    schemas (wire formats, columnar codec, IPs and CIDRs, topic names, enums)
      ^-- flink_jobs.attribution (the pure engine)  ^-- flink_jobs (operators, job wiring)
      ^-- exporter (probe = the only bcc import)
    flowattr.stack (embedded broker, Flink cluster, processes) uses schemas only
      (and flink_jobs.python_path: the PYTHONPATH its TaskManagers start with)
    flowattr.lab (simulator, evaluation, benchmark, demo) uses schemas, the engine, the
      config (flink_jobs.job_config), the exporter (the demos run it) and the stack
    flowattr.cli (one module per command group) uses the lab, the stack, the config and
      the exporter (`flowattr exporter` and `flowattr ipmap` are its commands)
pyflink is imported by the job's three Flink modules only; no relative imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = {"schemas", "flink_jobs", "exporter", "flowattr", "bpf"}
# package (module prefix) -> (project packages it may import, third-party roots it must not import)
RULES = {
    "schemas": ({"schemas"}, {"pyflink", "kafka", "bcc", "confluent_kafka"}),
    "flink_jobs.attribution": ({"schemas", "flink_jobs.attribution"}, {"pyflink", "kafka", "bcc", "confluent_kafka"}),
    "flink_jobs": ({"schemas", "flink_jobs"}, {"kafka", "bcc", "confluent_kafka"}),
    "exporter": ({"schemas", "exporter"}, {"pyflink"}),  # bcc: only exporter.probe (below)
    "flowattr": ({"flowattr"}, {"pyflink", "bcc"}),  # the package's own __init__
    "flowattr.graph": (set(), {"pyflink", "kafka", "bcc", "confluent_kafka"}),  # pure: the standard library
    # the cluster starts TaskManagers with the job's PYTHONPATH (a pure module, no pyflink)
    # and its metrics reporter's settings; edges and graph: pure, to read the graph back
    "flowattr.stack": ({"schemas", "flowattr.stack", "flink_jobs.python_path", "flink_jobs.metrics_reporter",
                        "flink_jobs.edges", "flowattr.graph"}, {"pyflink", "bcc"}),
    "flowattr.lab": ({"schemas", "flink_jobs.attribution", "flink_jobs.job_config", "exporter", "flowattr.stack",
                      "flowattr.lab", "flowattr.graph"}, {"pyflink", "bcc"}),
    "flowattr.cli": ({"schemas", "flink_jobs.job_config", "flink_jobs.ownership_changelog", "flink_jobs.edges",
                      "exporter",
                      "flowattr.stack", "flowattr.lab", "flowattr.graph", "flowattr.cli"}, {"pyflink", "bcc"}),
}
BCC_ONLY_IN = "exporter.probe"
PYFLINK_ONLY_IN = {"flink_jobs.attribution_job", "flink_jobs.environment", "flink_jobs.kafka_connectors"}


def _modules(root: Path) -> list[tuple[str, Path]]:
    out = []
    for package in ("schemas", "flink_jobs", "exporter", "flowattr"):
        for path in sorted((root / package).rglob("*.py")):
            if path.name.endswith("_pb2.py"):
                continue
            rel = path.relative_to(root).with_suffix("")
            out.append((".".join(p for p in rel.parts if p != "__init__"), path))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.append((node.lineno, "." * node.level + (node.module or "")))
        elif isinstance(node, ast.ImportFrom) and node.module:
            # `from flowattr.stack import topics` imports the module flowattr.stack.topics
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _rule(module: str):
    return max(((prefix, rule) for prefix, rule in RULES.items()
                if module == prefix or module.startswith(prefix + ".")), key=lambda r: len(r[0]))


def _allowed(name: str, allowed: set[str]) -> bool:
    """Inside an allowed package, or a parent package of one (its __init__ only)."""
    return any(name == a or name.startswith(a + ".") or a.startswith(name + ".") for a in allowed)


def _violations(root: Path) -> list[str]:
    bad = []
    for module, path in _modules(root):
        prefix, (allowed, forbidden) = _rule(module)
        for line, name in _imports(path):
            top = name.split(".")[0]
            where = f"{path.relative_to(root)}:{line} imports {name}"
            if top in PROJECT and not _allowed(name, allowed):
                bad.append(f"{where} ({prefix} may import only {sorted(allowed)})")
            if top in forbidden:
                bad.append(f"{where} ({prefix} must not import {top})")
            if top == "bcc" and module != BCC_ONLY_IN:
                bad.append(f"{where} (bcc is confined to {BCC_ONLY_IN})")
            if top == "pyflink" and module not in PYFLINK_ONLY_IN:
                bad.append(f"{where} (pyflink is confined to {sorted(PYFLINK_ONLY_IN)})")
            if name.startswith("."):
                bad.append(f"{where} (a relative import: name the package)")
    return bad


def test_every_import_follows_the_layers():
    assert len(_modules(ROOT)) > 40, "the source was not found"
    assert _violations(ROOT) == []


@pytest.mark.parametrize("package, source, expected", [
    ("flink_jobs", "from flowattr.stack.topics import RegionTopics\n", "flink_jobs may import only"),
    ("schemas", "import pyflink\n", "must not import pyflink"),
    ("exporter", "from flink_jobs.attribution.engine import Engine\n", "exporter may import only"),
    ("flink_jobs/attribution", "from flink_jobs import batches\n", "flink_jobs.attribution may import only"),
    ("flowattr/cli", "import bcc\n", "bcc is confined"),
    ("flowattr/stack", "from flowattr.lab import simulate\n", "flowattr.stack may import only"),
    ("flowattr/lab", "from flowattr.cli import main\n", "flowattr.lab may import only"),
    ("flowattr/lab", "from flink_jobs import ownership_store\n", "flowattr.lab may import only"),
    ("flink_jobs", "from pyflink.common import Row\n", "pyflink is confined"),
    ("exporter", "from . import probe\n", "a relative import"),
])
def test_the_contract_catches_a_wrong_edge(tmp_path, package, source, expected):
    """The checker itself: a planted edge against the layers is reported."""
    for name in ("schemas", "flink_jobs/attribution", "exporter", "flowattr/cli", "flowattr/stack", "flowattr/lab"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / package / "planted.py").write_text(source)
    assert any(expected in v for v in _violations(tmp_path)), _violations(tmp_path)


def test_no_function_is_longer_than_80_lines():
    """Functions fit on a screen (generated protobuf code excepted)."""
    long = []
    for _, path in _modules(ROOT):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []
