"""A standalone Flink cluster (JobManager + TaskManagers) run from the apache-flink wheel,
with its configuration, logs and pids under the state directory.

Thread mode runs Python inside each TaskManager JVM, under that interpreter's one GIL:
Python work scales with TaskManagers, not with slots. Run one TaskManager per core the
job's Python should use (`--taskmanagers`), each with `slots` slots.

Web UI and REST API: http://127.0.0.1:8081 (`/jobs/overview`,
`/jobs/<id>/vertices/<vertex>/backpressure`, `/jobs/<id>/vertices/<vertex>/metrics`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml

from flink_jobs.metrics_reporter import PROMETHEUS_SETTINGS
from flink_jobs.python_path import embedded_python_path
from flowattr.stack import paths
from flowattr.stack.processes import PortInUseError, port_accepts, port_is_free
from schemas.errors import FlowattrError

REST_PORT = 8081
RPC_PORT = 6123


def _env(state: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "FLINK_CONF_DIR": str(state / "flink-conf"),
        "FLINK_LOG_DIR": str(state / "flink-log"),
        "FLINK_PID_DIR": str(state / "flink-pid"),
        # pemja (thread mode) needs the venv's site-packages explicitly (FLINK-38585).
        "PYTHONPATH": embedded_python_path(),
    })
    return env


def write_config(state: Path, slots: int = 4, rest_port: int = REST_PORT, taskmanagers: int = 1,
                 tm_process_size: str = "4096m") -> Path:
    """Copy the wheel's conf/ into the state dir and set loopback addresses, slots and
    the venv's Python for workers."""
    conf_dir = state / "flink-conf"
    if conf_dir.exists():
        shutil.rmtree(conf_dir)
    shutil.copytree(paths.pyflink_home() / "conf", conf_dir)
    config = yaml.safe_load((conf_dir / "config.yaml").read_text())
    py = paths.python_executable()
    config.setdefault("jobmanager", {}).update({"bind-host": "127.0.0.1"})
    config["jobmanager"].setdefault("rpc", {}).update({"address": "127.0.0.1", "port": RPC_PORT})
    config.setdefault("taskmanager", {}).update(
        {"bind-host": "127.0.0.1", "host": "127.0.0.1", "numberOfTaskSlots": slots})
    config["taskmanager"].setdefault("memory", {}).setdefault("process", {})["size"] = tm_process_size
    config.setdefault("rest", {}).update(
        {"address": "127.0.0.1", "bind-address": "127.0.0.1", "port": rest_port})
    config["parallelism"] = {"default": 2}
    # The hold on disk: keyed state (held batches) in RocksDB on local disk, checkpoints
    # incremental (only new SST files), under the state dir (shared by every process of
    # this one-machine cluster). A job's --checkpoint-dir overrides the directory.
    config["state"] = {"backend": {"type": "rocksdb"}}
    config.setdefault("execution", {})["checkpointing"] = {
        "incremental": True, "dir": f"file://{(state / 'checkpoints').resolve()}"}
    # A TaskManager killed with -9 is noticed by missed heartbeats: every 2 s, lost after
    # 10 s (Flink's default 50 s would stall the job that long per kill).
    config["heartbeat"] = {"interval": 2000, "timeout": 10000}
    config["restart-strategy"] = {"type": "exponential-delay"}
    # Spread a job's slots over the TaskManagers (not all on the first one): each holds
    # part of the job, so losing any TaskManager is a failover, never a non-event.
    config["taskmanager"]["load-balance"] = {"mode": "slots"}
    config["python"] = {"executable": py, "client": {"executable": py}, "execution-mode": "thread"}
    # Prometheus (flink_jobs/metrics_reporter.py): the JobManager and each TaskManager.
    config.update(PROMETHEUS_SETTINGS)
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (conf_dir / "masters").write_text(f"127.0.0.1:{rest_port}\n")
    (conf_dir / "workers").write_text("127.0.0.1\n" * taskmanagers)  # start-cluster.sh: one TM per line
    for d in ("flink-log", "flink-pid"):
        (state / d).mkdir(exist_ok=True)
    return conf_dir


def taskmanager_pids(state: Path) -> list[int]:
    """PIDs of the TaskManagers that start-cluster.sh / taskmanager.sh started and that
    still run (the pid file keeps killed ones)."""
    pids = []
    for pid_file in (state / "flink-pid").glob("*taskexecutor*.pid"):
        for line in pid_file.read_text().split():
            if line.isdigit() and Path(f"/proc/{line}").exists():
                pids.append(int(line))
    return sorted(pids)


def start_taskmanager(state: Path) -> None:
    """One more TaskManager (after one died): `taskmanager.sh start`."""
    script = paths.pyflink_home() / "bin" / "taskmanager.sh"
    subprocess.run(["bash", str(script), "start"], env=_env(state), check=True, stdout=subprocess.DEVNULL)


def cancel(job_id: str, timeout_s: float = 60) -> None:
    """Cancel a job and wait until it is CANCELED."""
    rest_get(f"/jobs/{job_id}/yarn-cancel")
    deadline = time.monotonic() + timeout_s
    while rest_get(f"/jobs/{job_id}")["state"] != "CANCELED":
        if time.monotonic() > deadline:
            raise FlowattrError(f"job {job_id} not CANCELED within {timeout_s:.0f} s; see the Flink logs")
        time.sleep(0.5)


def rest_get(path: str, rest_port: int = REST_PORT, timeout: float = 5.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{rest_port}{path}", timeout=timeout) as resp:
        return json.loads(resp.read())


def rest_post(path: str, body: dict, rest_port: int = REST_PORT, timeout: float = 10.0):
    request = urllib.request.Request(f"http://127.0.0.1:{rest_port}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as resp:
        return json.loads(resp.read())


def list_jobs() -> list[dict]:
    """Every job the cluster knows: id, name, state, start time (ms)."""
    if not is_running():
        raise FlowattrError("no Flink cluster on 127.0.0.1:8081; start one: flowattr cluster start")
    return [{"id": j["jid"], "name": j["name"], "state": j["state"], "start_ms": j["start-time"]}
            for j in rest_get("/jobs/overview")["jobs"]]


def stop_with_savepoint(job_id: str, directory: str, timeout_s: float = 300, progress=print) -> str:
    """Stop a job with a savepoint (Flink's stop: sources stop, a final savepoint is taken,
    then the job finishes); returns the savepoint's path, to resume from."""
    if not is_running():
        raise FlowattrError("no Flink cluster on 127.0.0.1:8081; start one: flowattr cluster start")
    try:
        trigger = rest_post(f"/jobs/{job_id}/stop", {"targetDirectory": directory, "drain": False})["request-id"]
    except urllib.error.HTTPError as exc:
        raise FlowattrError(f"the cluster refused to stop job {job_id} ({exc.code}); is it running? "
                            "see `flowattr job list`") from exc
    progress(f"stopping job {job_id} with a savepoint in {directory} ...")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = rest_get(f"/jobs/{job_id}/savepoints/{trigger}")
        if status["status"]["id"] == "COMPLETED":
            operation = status.get("operation", {})
            if "location" not in operation:
                raise FlowattrError(f"the savepoint of job {job_id} failed: "
                                    f"{str(operation.get('failure-cause', operation))[:2000]}")
            progress(f"savepoint written: {operation['location']}")
            return operation["location"]
        time.sleep(1)
    raise FlowattrError(f"no savepoint of job {job_id} within {timeout_s:.0f} s; see the Flink logs")


def is_running(rest_port: int = REST_PORT) -> bool:
    try:
        rest_get("/overview", rest_port, timeout=2)
        return True
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start(state: Path, slots: int = 4, timeout_s: float = 90.0, progress=print, taskmanagers: int = 1,
          tm_process_size: str = "4096m") -> None:
    if is_running():
        progress("Flink cluster already running: http://127.0.0.1:8081")
        return
    for port in (REST_PORT, RPC_PORT):
        if not port_is_free(port):
            raise PortInUseError(f"port {port} on 127.0.0.1 is in use; stop whatever holds it "
                                 "(another Flink cluster? `flowattr cluster stop`) and retry")
    write_config(state, slots, taskmanagers=taskmanagers, tm_process_size=tm_process_size)
    script = paths.pyflink_home() / "bin" / "start-cluster.sh"
    progress(f"starting Flink cluster (JobManager + {taskmanagers} TaskManager(s) x {slots} slots, ~10-20 s)")
    subprocess.run(["bash", str(script)], env=_env(state), check=True,
                   stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if is_running():
            overview = rest_get("/overview")
            if overview.get("taskmanagers", 0) >= taskmanagers:
                progress(f"Flink cluster up: web UI http://127.0.0.1:{REST_PORT} "
                         f"({overview.get('slots-total')} slots); logs {state / 'flink-log'}")
                return
        time.sleep(1)
    raise FlowattrError(f"the Flink cluster did not come up in {timeout_s} s; "
                       f"see logs in {state / 'flink-log'}")


def stop(state: Path, progress=print) -> None:
    script = paths.pyflink_home() / "bin" / "stop-cluster.sh"
    if not (state / "flink-conf").exists():
        progress("no Flink cluster configuration in this state dir; nothing to stop")
        return
    subprocess.run(["bash", str(script)], env=_env(state), check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (port_accepts(REST_PORT) or port_accepts(RPC_PORT)):
        time.sleep(0.5)
    progress("Flink cluster stopped")


def run_command(flink: Path, py: str, job_module_path: Path, job_args: list[str], from_savepoint: str | None = None,
                allow_non_restored_state: bool = False) -> list[str]:
    """The `flink run` command line of submit()."""
    if allow_non_restored_state and not from_savepoint:
        raise FlowattrError("--allow-non-restored-state only applies when resuming from a savepoint (--from)")
    resume = ["-s", from_savepoint, *(["-n"] if allow_non_restored_state else [])] if from_savepoint else []
    return ["bash", str(flink), "run", "-d", "-m", f"127.0.0.1:{REST_PORT}", *resume,
            "-pyexec", py, "-pyclientexec", py, "-py", str(job_module_path), *job_args]


def submit(state: Path, job_module_path: Path, job_args: list[str], progress=print,
           from_savepoint: str | None = None, allow_non_restored_state: bool = False) -> str:
    """`flink run -d [-s SAVEPOINT [-n]] -py JOB -- ARGS` against the running cluster;
    returns the job id. `from_savepoint`: resume from that savepoint's state and Kafka
    offsets (`flowattr job resume`); `allow_non_restored_state` (Flink's -n): skip the
    savepoint's state of operators the job no longer has, instead of refusing it."""
    if not is_running():
        raise FlowattrError("no Flink cluster on 127.0.0.1:8081; start one: flowattr cluster start")
    cmd = run_command(paths.pyflink_home() / "bin" / "flink", paths.python_executable(), job_module_path, job_args,
                      from_savepoint, allow_non_restored_state)
    progress("submitting: " + " ".join(cmd[1:]))
    out = subprocess.run(cmd, env=_env(state), capture_output=True, text=True, timeout=180)
    text = out.stdout + out.stderr
    for line in text.splitlines():
        if "JobID" in line:
            job_id = line.split()[-1]
            progress(f"submitted job {job_id}: http://127.0.0.1:{REST_PORT}/#/job/running/{job_id}")
            return job_id
    raise FlowattrError(f"flink run failed (exit {out.returncode}):\n{text[-4000:]}")
