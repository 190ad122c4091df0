"""The built wheel, installed non-editable into a clean virtual environment and run from
outside the repository: every package, subpackage and data file is in it (the venv the
other tests use is an editable install, which hides a missing one).

The clean venv gets the wheel alone (--no-deps); its dependencies are read from the
project venv's site-packages through a plain path in a .pth file, which adds that
directory without running its .pth files, so the project's editable finder stays off
and every flowattr module must come from the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _run(args, cwd: Path, timeout: float = 300) -> str:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    # Built from a copy of the source files only: a build/ left in the work tree by an
    # earlier build would otherwise be packed again, whatever pyproject.toml now says.
    source = tmp / "source"
    for name in _run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO).splitlines():
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
          str(source)], cwd=tmp)
    wheel = next((tmp / "dist").glob("flowattr-*.whl"))
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp)
    site = Path(_run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=tmp).strip())
    (site / "zz_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp, venv, site, wheel


def test_every_module_and_data_file_comes_from_the_wheel(installed):
    tmp, venv, site, _ = installed
    probe = ("import flowattr.cli, flowattr.lab.evaluate, flowattr.stack.broker, flink_jobs.attribution.engine, "
             "flink_jobs.job_config as jc, exporter.agent, schemas.flowattr_pb2\n"
             "for m in (flowattr.cli, flink_jobs.attribution.engine, exporter.agent, schemas.flowattr_pb2):\n"
             "    print(m.__file__)\n"
             "print(jc.DEFAULT_CONFIG, jc.DEFAULT_CONFIG.is_file())\n"
             "print(jc.load(None, {}).region)")
    out = _run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp).splitlines()
    assert all(line.startswith(str(site)) for line in out[:4]), out
    assert out[4].startswith(str(site)) and out[4].endswith(" True"), out
    assert out[5] == "us-east-1"
    for data in ("bpf/flowtrace.c", "bpf/flow_event.h", "schemas/flowattr.proto"):
        assert (site / data).is_file(), data


def test_the_installed_commands_answer_help_and_version(installed):
    tmp, venv, _, _ = installed
    assert _run([str(venv / "bin" / "flowattr"), "--version"], cwd=tmp).strip() == "flowattr 0.1.0"
    assert "flowattr demo" in _run([str(venv / "bin" / "flowattr"), "--help"], cwd=tmp)
    job_help = _run([str(venv / "bin" / "python"), "-m", "flink_jobs.attribution_job", "--help"], cwd=tmp)
    assert "--bootstrap" in job_help


def test_pyflink_is_the_collector_extra_only(installed):
    """An exporter host installs the base wheel: no apache-flink (hundreds of MB)."""
    *_, wheel = installed
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    flink = [r for r in requires if r.startswith("apache-flink")]
    assert flink == ['apache-flink==2.0.2; extra == "collector"'], requires
    assert any(r.startswith("kafka-python") and "extra" not in r for r in requires)
