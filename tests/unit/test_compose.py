"""docker-compose.yml cannot run here (no Docker engine): validate it against the Compose
specification's JSON schema and check the wiring an operator depends on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

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
        assert re.search(r":\d+\.\d+\.\d+$", image), f"{name}: image {image!r} is not pinned"
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
