"""docker-compose.yml cannot run here (no Docker engine): validate it against the Compose
specification's JSON schema and check the wiring an operator depends on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

from flink_jobs.job_config import default_regions
from flink_jobs.metrics_reporter import PROMETHEUS_SETTINGS
from flowattr.stack import paths
from schemas.topics import RegionTopics

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_validates_against_the_compose_spec():
    schema = json.loads(paths.compose_spec_schema().read_text())
    validator = jsonschema.Draft201909Validator(schema)  # the draft its $schema names
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(COMPOSE)]
    assert errors == []


def test_images_are_pinned_and_build_files_exist():
    for name, svc in COMPOSE["services"].items():
        image = svc.get("image", "")
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: image {image!r} is not pinned"
        if "build" in svc:
            assert (ROOT / svc["build"]["context"] / svc["build"]["dockerfile"]).exists(), name


def test_long_running_services_have_healthchecks_and_startup_is_ordered():
    services = COMPOSE["services"]
    for name in ("kafka", "jobmanager", "taskmanager", "exporter"):
        assert "healthcheck" in services[name], name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    submit = services["submit-job"]["depends_on"]
    assert submit["topics"]["condition"] == "service_completed_successfully"
    assert submit["taskmanager"]["condition"] == "service_healthy"
    assert services["exporter"]["privileged"] is True


def test_topics_and_job_match_the_project():
    script = COMPOSE["services"]["topics"]["command"][0]
    expected = RegionTopics("us-east-1").all()
    for topic, partitions in expected.items():
        kind = topic.split(".")[0]
        assert f"{kind}:{partitions}" in script, topic
    job = next(a for a in COMPOSE["services"]["submit-job"]["command"] if a.endswith(".py"))
    assert (ROOT / job.removeprefix("/opt/flowattr/")).exists(), job


def test_prometheus_scrapes_every_metrics_endpoint_and_grafana_loads_the_dashboard():
    """Flink's reporter on 9249 in the JobManager and the TaskManager, the exporter's
    --metrics-port on the host's network: each is a scrape target; Grafana mounts the
    dashboard file the tests check against the scraped metrics."""
    services = COMPOSE["services"]
    for name in ("jobmanager", "taskmanager"):
        properties = yaml.safe_load(services[name]["environment"]["FLINK_PROPERTIES"])
        assert properties["metrics.reporter.prom.factory.class"].endswith("PrometheusReporterFactory")
        assert properties["metrics.reporter.prom.port"] == 9249
        # The same labels left out as the embedded stack's (each scrape renders the page anew).
        assert properties["metrics.reporter.prom.scope.variables.excludes"] == \
            PROMETHEUS_SETTINGS["metrics.reporter.prom.scope.variables.excludes"]
    exporter = services["exporter"]["command"]
    port = exporter[exporter.index("--metrics-port") + 1]
    assert exporter[exporter.index("--metrics-address") + 1] == "0.0.0.0"   # reachable from the bridge
    scrape = yaml.safe_load((ROOT / "grafana" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"jobmanager:9249", "taskmanager:9249", f"host.docker.internal:{port}"}
    assert "host.docker.internal:host-gateway" in services["prometheus"]["extra_hosts"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in services["grafana"]["volumes"]}
    assert (ROOT / mounts["./grafana/flowattr.json"].replace("/var/lib/grafana/dashboards", "grafana")).exists()
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/flowattr.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == str(Path(mounts["./grafana/flowattr.json"]).parent)


def test_the_keyed_topics_are_compacted():
    """edges and ownership hold the latest value per key: compacted, as create_topics does."""
    from schemas.topics import COMPACTED_KINDS
    script = COMPOSE["services"]["topics"]["command"][0]
    compacted = re.search(r'case "\$\$\{spec%%:\*\}" in ([^)]+)\) config="--config cleanup.policy=compact"', script)
    assert compacted and set(compacted.group(1).split("|")) == set(COMPACTED_KINDS)


def _topics_created() -> set[str]:
    """The topic names the topics service's script creates (its two loops, expanded)."""
    script = COMPOSE["services"]["topics"]["command"][0]
    regions = re.search(r"for region in ([^;]+);", script).group(1).split()
    specs = re.search(r"for spec in ([^;]+);", script).group(1).split()
    return {f"{spec.split(':')[0]}.{region}" for region in regions for spec in specs}


def test_the_topics_created_are_the_topics_the_collector_reads_and_writes():
    """Every region the default config routes to: the collector reads and writes its own
    region's topics and forwards to inbound.<region> of every other one."""
    home, region_cidrs, _ = default_regions()
    regions = set(region_cidrs.values())
    used = set(RegionTopics(home).all()) | {RegionTopics(r).inbound for r in regions - {home}}
    assert used <= _topics_created()
    assert _topics_created() == {t for r in regions for t in RegionTopics(r).all()}
    submit = COMPOSE["services"]["submit-job"]["command"]
    assert submit[submit.index("--region") + 1] == home


def _listeners() -> dict[str, str]:
    """Advertised host:port -> listener name of the kafka service."""
    env = COMPOSE["services"]["kafka"]["environment"]
    out = {}
    for item in env["KAFKA_ADVERTISED_LISTENERS"].split(","):
        name, address = item.split("://")
        out[address] = name
    return out


def test_every_bootstrap_address_reaches_an_advertised_listener_in_its_network_mode():
    """A client keeps talking to the ADVERTISED address: on the compose network that must
    be the service name; with the host's network, a published port on localhost."""
    services = COMPOSE["services"]
    published = {p.split(":")[0] for p in services["kafka"].get("ports", [])}
    listeners = _listeners()
    checked = 0
    for name, svc in services.items():
        command = svc.get("command")
        if not isinstance(command, list) or "--bootstrap" not in command:
            continue
        bootstrap = command[command.index("--bootstrap") + 1]
        host, port = bootstrap.rsplit(":", 1)
        assert bootstrap in listeners, f"{name}: {bootstrap} is not an advertised listener"
        if svc.get("network_mode") == "host":
            assert host in ("localhost", "127.0.0.1") and port in published, name
        else:
            assert host in services, f"{name}: {host} is no service on the compose network"
        checked += 1
    assert checked == 2  # the collector and the exporter


def test_jobmanager_and_taskmanagers_share_the_checkpoint_and_savepoint_volume():
    services = COMPOSE["services"]
    dirs = set()
    for name in ("jobmanager", "taskmanager"):
        props = yaml.safe_load(services[name]["environment"]["FLINK_PROPERTIES"])
        dirs |= {props["execution.checkpointing.dir"], props["execution.checkpointing.savepoint-dir"]}
    submit = services["submit-job"]["command"]
    dirs.add(submit[submit.index("--checkpoint-dir") + 1])
    mounts = {name: {v.split(":")[1]: v.split(":")[0] for v in services[name].get("volumes", [])}
              for name in ("jobmanager", "taskmanager")}
    for d in dirs:
        path = d.removeprefix("file://")
        for name, mounted in mounts.items():
            target = next((t for t in mounted if path.startswith(t + "/")), None)
            assert target is not None, f"{d} is on no volume of {name}"
            assert mounted[target] in COMPOSE["volumes"], f"{name}: {mounted[target]} is not a named volume"
        assert len({next(v for t, v in m.items() if path.startswith(t + "/")) for m in mounts.values()}) == 1, d


def test_the_images_install_the_wheel_as_tests_e2e_test_wheel_does():
    """Non-editable installs of the project (pip builds its wheel), the collector with its
    extra, and no source tree on the Python path (the wheel carries every module)."""
    flink = (ROOT / "docker/flink/Dockerfile").read_text()
    exporter = (ROOT / "docker/exporter/Dockerfile").read_text()
    assert 'pip install --no-cache-dir "/opt/flowattr[collector]"' in flink
    assert "pip install --no-cache-dir /opt/flowattr\n" in exporter
    for text in (flink, exporter):
        assert " -e " not in text and "--editable" not in text
        assert ":/opt/flowattr" not in text and "PYTHONPATH=/opt/flowattr" not in text


def test_the_hold_lives_on_disk_in_compose_too():
    """Held batches may be several heaps big (tests/e2e/test_hold_on_disk.py): RocksDB with
    incremental checkpoints, as on the standalone cluster."""
    for name in ("jobmanager", "taskmanager"):
        props = yaml.safe_load(COMPOSE["services"][name]["environment"]["FLINK_PROPERTIES"])
        assert props["state.backend.type"] == "rocksdb", name
        assert props["execution.checkpointing.incremental"] is True, name
