# flowattr — the two commands of the quick start are `make demo` and `make test`.
# Both install what is missing first (scripts/setup.sh is idempotent and fast when done).
VENV := .venv
PY := $(VENV)/bin/python
FLOWATTR := $(VENV)/bin/flowattr

.PHONY: setup demo test test-fast bench reliability schemas lint stop clean help

help:
	@echo "make demo    install what is missing, start the embedded stack, run the job, print the result"
	@echo "make test    install what is missing, run the whole test suite (bpf tests need root)"
	@echo "make bench   throughput, latency, state size, exporter overhead -> bench/results.json"
	@echo "make reliability  fuzz every input topic, kill -9 TaskManagers -> bench/reliability.json"
	@echo "make schemas regenerate schemas/*_pb2.py from schemas/*.proto"
	@echo "make stop    stop the embedded broker and Flink cluster"

setup:
	@bash scripts/setup.sh

demo: setup
	$(FLOWATTR) demo

test: setup
	$(PY) -m pytest

bench: setup
	$(FLOWATTR) bench

reliability: setup
	$(FLOWATTR) reliability

test-fast: setup
	$(PY) -m pytest -m "not flink and not e2e and not bpf and not slow"

schemas: setup
	$(PY) -m schemas.generate

lint: setup
	$(VENV)/bin/ruff check .

stop:
	-$(FLOWATTR) cluster stop
	-$(FLOWATTR) broker stop

clean: stop
	rm -rf $(VENV) .flowattr
